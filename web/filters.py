"""Jinja filters for patient-facing pages: pure functions, so each is tested on its own."""

from __future__ import annotations

import re
from datetime import date


def miles_away(distance_mi: float | None) -> str:
    """'3.2 miles away'; 'less than 0.1 miles away' for a clinic in the patient's own ZIP."""
    if distance_mi is None:
        return ""
    if distance_mi < 0.05:
        return "less than 0.1 miles away"
    # Tenths matter nearby ("0.4 miles"); farther away they are noise ("23 miles").
    shown = f"{distance_mi:.0f}" if distance_mi >= 9.95 else f"{distance_mi:.1f}"
    if shown == "1.0":
        return "1 mile away"
    return f"{shown} miles away"


def tel_href(phone: str) -> str:
    """A tel: link a phone can dial: US numbers become E.164 (+1 and ten digits)."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 10:
        digits = "1" + digits
    return f"tel:+{digits}" if digits else ""


def why_text(why: str) -> str:
    """The service says "tennis elbow -> Lateral epicondylitis (M77.1-)"; people read a colon."""
    return why.replace(" -> ", ": ")


def long_date(day: date | None) -> str:
    """'November 1, 2026': no leading zero, month spelled out (no locale lookup)."""
    if day is None:
        return ""
    return f"{day.strftime('%B')} {day.day}, {day.year}"


def plural(count: int, one: str, many: str) -> str:
    """'1 doctor', '12 doctors'."""
    return f"{count} {one if count == 1 else many}"


FILTERS = {
    "miles_away": miles_away,
    "tel_href": tel_href,
    "why_text": why_text,
    "long_date": long_date,
    "plural": plural,
}
