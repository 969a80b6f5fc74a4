"""Invites read the same in the three parsers calendar clients are built on, byte-exact to RFC 5545.

Each parser runs in a fresh process (icalendar and vobject in Python, Mozilla's ical.js in node),
so no parser's caches or timezone registry carry over from one case to the next.
`parse_everywhere` is shared with the e-mail and outbox tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from booking.invites import (
    InviteEvent,
    build_feed,
    build_invite,
    discreet_summary,
    google_calendar_url,
    invite_calendar,
    outlook_calendar_url,
)

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NEW_YORK = ZoneInfo("America/New_York")
ORGANIZER = "webinars@orthodex.example"
STAMP = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)

ICALENDAR = """
import json, sys
from datetime import timezone
import icalendar

def utc(value):
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

def many(value):
    return [] if value is None else value if isinstance(value, list) else [value]

def text(component, name):
    value = component.get(name)
    return None if value is None else str(value)

calendar = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
events, errors = [], list(calendar.errors)
for event in calendar.walk("VEVENT"):
    errors += event.errors
    organizer = event.get("ORGANIZER")
    events.append({
        "uid": str(event["UID"]),
        "sequence": int(event.get("SEQUENCE", 0)),
        "summary": text(event, "SUMMARY"),
        "description": text(event, "DESCRIPTION"),
        "location": text(event, "LOCATION"),
        "url": text(event, "URL"),
        "status": text(event, "STATUS"),
        "start": utc(event.decoded("DTSTART")),
        "end": utc(event.decoded("DTEND")),
        "organizer": None if organizer is None else str(organizer),
        "organizer_cn": None if organizer is None else organizer.params.get("CN"),
        "attendees": [
            {"address": str(a), "cn": a.params.get("CN"), "partstat": a.params.get("PARTSTAT"),
             "rsvp": a.params.get("RSVP")}
            for a in many(event.get("ATTENDEE"))
        ],
    })
print(json.dumps({"method": text(calendar, "METHOD"), "timezones": len(calendar.walk("VTIMEZONE")),
                  "events": events, "errors": [str(e) for e in errors]}))
"""

VOBJECT = """
import json, sys
from datetime import timezone
import vobject

def utc(value):
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

def one(component, name):
    line = component.contents.get(name)
    return None if not line else line[0].value

def param(line, name):
    values = line.params.get(name)
    return values[0] if values else None

calendar = vobject.readOne(sys.stdin.buffer.read().decode("utf-8"))
events = []
for event in calendar.contents.get("vevent", []):
    organizer = event.contents.get("organizer", [None])[0]
    events.append({
        "uid": one(event, "uid"),
        "sequence": int(one(event, "sequence") or 0),
        "summary": one(event, "summary"),
        "description": one(event, "description"),
        "location": one(event, "location"),
        "url": one(event, "url"),
        "status": one(event, "status"),
        "start": utc(event.dtstart.value),
        "end": utc(event.dtend.value),
        "organizer": None if organizer is None else organizer.value,
        "organizer_cn": None if organizer is None else param(organizer, "CN"),
        "attendees": [
            {"address": a.value, "cn": param(a, "CN"), "partstat": param(a, "PARTSTAT"),
             "rsvp": param(a, "RSVP")}
            for a in event.contents.get("attendee", [])
        ],
    })
print(json.dumps({"method": one(calendar, "method"), "timezones": len(calendar.contents.get("vtimezone", [])),
                  "events": events, "errors": []}))
"""


def _node() -> str:
    node = shutil.which("node", path=str(Path(sys.executable).parent)) or shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "ical.js").is_dir():
        pytest.fail("node and tests/js/node_modules/ical.js are needed: run `python3 dev.py setup`")
    return node


def _run(command: list[str], ics: bytes) -> dict[str, Any]:
    done = subprocess.run(command, input=ics, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, f"{command[0]} could not parse:\n{done.stderr.decode()}\n{ics.decode()}"
    result: dict[str, Any] = json.loads(done.stdout)
    assert not result.pop("errors", []), f"{command[0]} reported errors: {result}"
    return result


def parse_everywhere(ics: bytes) -> dict[str, dict[str, Any]]:
    """icalendar, vobject and ical.js's reading of `ics`, each from a fresh process, normalised."""
    return {
        "icalendar": _run([sys.executable, "-c", ICALENDAR], ics),
        "vobject": _run([sys.executable, "-c", VOBJECT], ics),
        "ical.js": _run([_node(), str(JS_DIR / "parse_ics.mjs")], ics),
    }


def assert_wire_format(ics: bytes) -> None:
    """RFC 5545 3.1: CRLF line ends only, no line over 75 octets, folds never split a character."""
    assert ics.endswith(b"\r\n")
    assert b"\n" not in ics.replace(b"\r\n", b""), "bare LF"
    assert b"\r" not in ics.replace(b"\r\n", b""), "bare CR"
    for line in ics.split(b"\r\n"):
        assert len(line) <= 75, f"{len(line)} octets: {line!r}"
        line.decode("utf-8")  # raises if a fold cut a multi-byte character in two


def same_everywhere(parsed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What all three parsers agree on (fails on any disagreement), as one parser's output."""
    first, *_others = parsed.values()
    for name, other in parsed.items():
        assert other == first, f"{name} reads it differently:\n{other}\nvs\n{first}"
    return first


def _event(start: datetime, minutes: int = 60, **changes: Any) -> InviteEvent:
    fields: dict[str, Any] = {
        "uid": "registration-41f3@orthodex.example",
        "sequence": 0,
        "summary": discreet_summary("Test Clinic Network"),
        "description": "Stem cell and platelet procedures for knee arthritis",
        "start": start,
        # In UTC: aware arithmetic in a local zone is wall-clock time, an hour off across a DST change.
        "end": start.astimezone(UTC) + timedelta(minutes=minutes),
        "location": "Online",
        "url": "https://orthodex.example/registrations/abc",
    }
    fields.update(changes)
    return InviteEvent(**fields)


def _invite(event: InviteEvent, method: Any = "REQUEST", name: str = "Ada Lovelace") -> bytes:
    return build_invite(
        event,
        method=method,
        organizer_email=ORGANIZER,
        organizer_name="Test Clinic Network",
        attendee_email="ada@example.com",
        attendee_name=name,
        dtstamp=STAMP,
    )


# Expected instants worked out by hand from the tz rules, not by the code under test.
DST_CASES = [
    # New York springs forward at 2:00 on 2026-03-08: starts in EST, ends in EDT.
    pytest.param(
        datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK),
        "2026-03-08T06:30:00Z",
        "2026-03-08T07:30:00Z",
        id="spring-forward-across-the-gap",
    ),
    pytest.param(
        datetime(2026, 3, 8, 18, 0, tzinfo=NEW_YORK),
        "2026-03-08T22:00:00Z",
        "2026-03-08T23:00:00Z",
        id="spring-forward-day-evening",
    ),
    # 1:30 happens twice on 2026-11-01: fold=0 is the first (EDT), fold=1 the second (EST).
    pytest.param(
        datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK),
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:30:00Z",
        id="fall-back-first-1:30",
    ),
    pytest.param(
        datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK),
        "2026-11-01T06:30:00Z",
        "2026-11-01T07:30:00Z",
        id="fall-back-second-1:30",
    ),
    pytest.param(
        datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK),
        "2026-07-14T22:00:00Z",
        "2026-07-14T23:00:00Z",
        id="july-new-york",
    ),
    pytest.param(
        datetime(2026, 7, 14, 18, 0, tzinfo=ZoneInfo("America/Los_Angeles")),
        "2026-07-15T01:00:00Z",
        "2026-07-15T02:00:00Z",
        id="july-los-angeles-next-utc-day",
    ),
    pytest.param(
        datetime(2026, 7, 14, 18, 0, tzinfo=ZoneInfo("America/Phoenix")),
        "2026-07-15T01:00:00Z",
        "2026-07-15T02:00:00Z",
        id="july-phoenix-no-dst",
    ),
    pytest.param(
        datetime(2026, 3, 29, 10, 0, tzinfo=ZoneInfo("Europe/London")),
        "2026-03-29T09:00:00Z",
        "2026-03-29T10:00:00Z",
        id="london-bst-starts",
    ),
]


@pytest.mark.parametrize(("start", "utc_start", "utc_end"), DST_CASES)
def test_invite_start_and_end_are_the_same_instant_in_every_parser(
    start: datetime, utc_start: str, utc_end: str
) -> None:
    ics = _invite(_event(start))
    assert_wire_format(ics)
    event = same_everywhere(parse_everywhere(ics))["events"][0]
    assert (event["start"], event["end"]) == (utc_start, utc_end)


def test_invite_times_are_utc_without_a_vtimezone() -> None:
    ics = _invite(_event(datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK)))
    assert b"VTIMEZONE" not in ics
    assert b"DTSTART:20260714T220000Z\r\n" in ics
    assert b"DTEND:20260714T230000Z\r\n" in ics
    assert b"DTSTAMP:20260201T120000Z\r\n" in ics
    assert same_everywhere(parse_everywhere(ics))["timezones"] == 0


NAMES = [
    "Doe, Jane",
    "O'Brien; Séamus",
    "Zoë Ångström-Núñez",
    "Ana 😀 María, Jr.; PhD",
    "李小龙",
    'Robert "Bob" Smith',
]


@pytest.mark.parametrize("name", NAMES)
def test_names_survive_the_round_trip(name: str) -> None:
    event = _event(
        datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK),
        summary=f"Webinar for {name}, with; commas\\and backslashes",
        description=f"Hello {name},\nline two; with, punctuation 🦴\n\nlast line",
        location=f"{name}'s room, floor 2; east wing",
    )
    ics = _invite(event, name=name)
    assert_wire_format(ics)
    parsed = same_everywhere(parse_everywhere(ics))["events"][0]
    # A double quote cannot sit inside a quoted parameter (RFC 5545 3.2); it becomes a single one.
    assert parsed["attendees"][0]["cn"] == name.replace('"', "'")
    assert parsed["summary"] == event.summary
    assert parsed["description"] == event.description
    assert parsed["location"] == event.location


def test_long_multibyte_text_is_folded_between_characters() -> None:
    # 3-byte and 4-byte characters at every offset, so some fold lands next to each.
    description = "é" * 7 + "🦴" * 40 + "café — ça va? " * 30 + "李" * 50
    event = _event(datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK), description=description)
    ics = _invite(event, name="Ünïcödé 😀" * 8)
    assert_wire_format(ics)
    assert max(len(line) for line in ics.split(b"\r\n")) > 70, "the test needs lines long enough to fold"
    parsed = same_everywhere(parse_everywhere(ics))["events"][0]
    assert parsed["description"] == description
    assert parsed["attendees"][0]["cn"] == "Ünïcödé 😀" * 8


def test_request_has_the_recipient_as_its_only_attendee() -> None:
    ics = _invite(_event(datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK)))
    calendar = same_everywhere(parse_everywhere(ics))
    assert calendar["method"] == "REQUEST"
    [event] = calendar["events"]
    assert event["status"] == "CONFIRMED"
    assert event["sequence"] == 0
    assert event["organizer"] == f"mailto:{ORGANIZER}"
    assert event["attendees"] == [
        {
            "address": "mailto:ada@example.com",
            "cn": "Ada Lovelace",
            "partstat": "NEEDS-ACTION",
            "rsvp": "TRUE",
        }
    ]
    assert ics.count(b"ATTENDEE") == 1


def test_a_change_raises_sequence_and_cancel_keeps_the_uid() -> None:
    start = datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK)
    first = _event(start)
    moved = _event(start + timedelta(days=1), sequence=first.sequence + 1)
    cancelled = _event(start + timedelta(days=1), sequence=moved.sequence + 1, cancelled=True)
    readings = [
        same_everywhere(parse_everywhere(ics))
        for ics in (_invite(first), _invite(moved), _invite(cancelled, method="CANCEL"))
    ]
    assert [r["method"] for r in readings] == ["REQUEST", "REQUEST", "CANCEL"]
    events = [r["events"][0] for r in readings]
    assert {e["uid"] for e in events} == {first.uid}
    assert [e["sequence"] for e in events] == [0, 1, 2]
    assert [e["status"] for e in events] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    assert events[1]["start"] == "2026-07-15T22:00:00Z"
    assert events[2]["attendees"][0]["address"] == "mailto:ada@example.com"


def test_cancel_is_cancelled_even_if_the_event_is_not_marked() -> None:
    ics = _invite(_event(datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK), sequence=3), method="CANCEL")
    assert b"METHOD:CANCEL\r\n" in ics
    assert b"STATUS:CANCELLED\r\n" in ics
    assert b"VALARM" not in ics


@pytest.mark.parametrize(
    ("changes", "method"),
    [
        ({"cancelled": True}, "REQUEST"),
        ({}, "PUBLISH"),
        ({"sequence": -1}, "REQUEST"),
        ({"start": datetime(2026, 7, 14, 18, 0)}, "REQUEST"),
        ({"minutes": 0}, "REQUEST"),
        ({"uid": "two\r\nlines"}, "REQUEST"),
    ],
)
def test_impossible_invites_are_refused(changes: dict[str, Any], method: str) -> None:
    start = changes.pop("start", datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK))
    with pytest.raises(ValueError):  # noqa: PT011 - several messages, one rule: nothing half-right
        _invite(_event(start, **changes), method=method)


def test_the_attendee_address_cannot_smuggle_another_line() -> None:
    with pytest.raises(ValueError, match="e-mail address"):
        build_invite(
            _event(datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK)),
            method="REQUEST",
            organizer_email=ORGANIZER,
            organizer_name="Test",
            attendee_email="ada@example.com:mailto:eve@example.com",
            attendee_name="Ada",
            dtstamp=STAMP,
        )


@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
@pytest.mark.parametrize("description", ["", "Knees; hips, and spines\\", "café — ça va? 🦴 " * 12])
@pytest.mark.parametrize(("location", "url"), [("Online", "https://orthodex.example/r/x"), (None, None)])
def test_every_attendee_gets_what_icalendar_writes_for_their_whole_invite(
    method: Any, description: str, location: str | None, url: str | None
) -> None:
    # One session, one attendee after another: all but the first reuse the session's shared lines.
    start = datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK)
    for number, name in enumerate(NAMES):
        event = _event(
            start,
            uid=f"registration-{number}@orthodex.example",
            sequence=number,
            description=f"{description}\nhttps://orthodex.example/registrations/{number}"
            if description
            else "",
            location=location,
            url=url,
            cancelled=method == "CANCEL",
        )
        arguments: dict[str, Any] = {
            "method": method,
            "organizer_email": ORGANIZER,
            "organizer_name": "Test Clinic Network",
            "attendee_email": f"attendee-{number}@example.com",
            "attendee_name": name,
            "dtstamp": STAMP + timedelta(minutes=number),
        }
        assert build_invite(event, **arguments) == invite_calendar(event, **arguments).to_ical()


def test_feed_is_publish_with_an_organizer_and_no_attendees() -> None:
    events = [
        _event(datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK), uid="session-1@orthodex.example"),
        _event(datetime(2026, 7, 14, 18, 0, tzinfo=NEW_YORK), uid="session-2@orthodex.example", sequence=2),
        _event(
            datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK),
            uid="session-3@orthodex.example",
            sequence=1,
            cancelled=True,
        ),
    ]
    ics = build_feed(
        events,
        organizer_email=ORGANIZER,
        organizer_name="Test Clinic Network",
        calendar_name="Test Clinic Network webinars",
        dtstamp=STAMP,
    )
    assert_wire_format(ics)
    assert b"ATTENDEE" not in ics
    assert b"X-WR-CALNAME:Test Clinic Network webinars\r\n" in ics
    calendar = same_everywhere(parse_everywhere(ics))
    assert calendar["method"] == "PUBLISH"
    assert [e["uid"] for e in calendar["events"]] == [e.uid for e in events]
    assert [e["organizer"] for e in calendar["events"]] == [f"mailto:{ORGANIZER}"] * 3
    assert [e["status"] for e in calendar["events"]] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    assert [e["start"] for e in calendar["events"]] == [
        "2026-03-08T06:30:00Z",
        "2026-07-14T22:00:00Z",
        "2026-11-01T06:30:00Z",
    ]
    assert all(e["attendees"] == [] for e in calendar["events"])


def test_empty_feed_still_parses() -> None:
    ics = build_feed(
        [], organizer_email=ORGANIZER, organizer_name="Test", calendar_name="Webinars", dtstamp=STAMP
    )
    assert_wire_format(ics)
    assert same_everywhere(parse_everywhere(ics)) == {"method": "PUBLISH", "timezones": 0, "events": []}


def test_add_to_calendar_links_carry_the_utc_times() -> None:
    event = _event(datetime(2026, 3, 8, 1, 30, tzinfo=NEW_YORK), summary="Webinar: knees & hips, 50% off?")
    google = urlsplit(google_calendar_url(event))
    assert (google.scheme, google.netloc, google.path) == ("https", "calendar.google.com", "/calendar/render")
    query = parse_qs(google.query)
    assert query["action"] == ["TEMPLATE"]
    assert query["text"] == [event.summary]
    assert query["dates"] == ["20260308T063000Z/20260308T073000Z"]
    assert query["location"] == ["Online"]
    assert event.description in query["details"][0]

    outlook = urlsplit(outlook_calendar_url(event))
    assert (outlook.scheme, outlook.netloc) == ("https", "outlook.live.com")
    query = parse_qs(outlook.query)
    assert query["rru"] == ["addevent"]
    assert query["subject"] == [event.summary]
    assert (query["startdt"], query["enddt"]) == (["2026-03-08T06:30:00Z"], ["2026-03-08T07:30:00Z"])


def test_discreet_summary_names_no_condition() -> None:
    summary = discreet_summary("Test Clinic Network")
    assert "Test Clinic Network" in summary
    for word in ("knee", "arthritis", "stem", "platelet", "spine", "pain"):
        assert word not in summary.lower()
