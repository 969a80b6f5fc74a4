"""The "add to calendar" links a registrant gets: built per session once, the same as built whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from booking.invites import google_calendar_url, outlook_calendar_url
from booking.schemas import manage_page_url
from booking.service import Seat, _calendar_links, invite_event

NETWORK = "Test Clinic Network"
START = datetime(2026, 7, 14, 17, 30, tzinfo=UTC)


def seat(title: str, join_url: str = "https://meet.example/j/42?pwd=a b&c=d") -> Seat:
    return Seat(
        registration_id=1,
        session_id=7,
        name="Zoë O'Brien",
        email="zoe@example.org",
        status="confirmed",
        waitlist_ticket=None,
        invite_uid="u-1@orthodex.test",
        token_hash="0" * 64,
        sequence=0,
        consent=True,
        created_at=START - timedelta(days=3),
        updated_at=START - timedelta(days=3),
        starts_at=START,
        duration_minutes=90,
        timezone="America/Chicago",
        session_status="scheduled",
        join_url=join_url,
        session_updated_at=START - timedelta(days=5),
        webinar_slug="knees",
        webinar_title=title,
    )


@pytest.mark.parametrize(
    "title",
    [
        "Stem cell and platelet procedures for knee arthritis",
        "Knees & hips: 50% off? Ça va, naïve café 🦵; yes, really",
        # The stand-in character itself, in the title: built whole, not from the template.
        "A title with \ue000 in it",
        # Long enough that the details are cut, with the manage link past the cut.
        "Long " * 290,
        # Long enough that the cut falls inside the manage link.
        "x" * 1380,
    ],
)
def test_templated_links_are_the_links_built_whole(title: str) -> None:
    for token in ("tok-A_1", "tok-B_2" * 10):
        manage = manage_page_url("https://clinic.example/base", token)
        holder = seat(title)
        event = invite_event(NETWORK, holder, manage)
        assert _calendar_links(NETWORK, holder, manage) == (
            google_calendar_url(event),
            outlook_calendar_url(event),
        )


def test_each_registrant_gets_their_own_manage_link() -> None:
    holder = seat("Shoulder pain webinar")
    first = _calendar_links(NETWORK, holder, manage_page_url("https://c.example", "first-token"))
    second = _calendar_links(NETWORK, holder, manage_page_url("https://c.example", "second-token"))
    assert all("first-token" in link and "second-token" not in link for link in first)
    assert all("second-token" in link and "first-token" not in link for link in second)
