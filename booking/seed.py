"""Demo webinars: the seed page's offer ("Stem Cell & Platelet Procedures for treating arthritis,
common joint injuries & spine pain"), presented by demo providers, with sessions in the coming weeks
in several US time zones. Deterministic, so a demo looks the same each time it is seeded.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from booking.models import Webinar
from booking.service import SessionInput, WebinarInput, add_session, create_webinar
from core.db import Database
from directory.service import load_docs


@dataclass(frozen=True, slots=True)
class DemoWebinar:
    title: str
    description: str
    regions: tuple[str, ...]
    conditions: tuple[str, ...]


DEMO_WEBINARS = (
    DemoWebinar(
        "Stem cell and platelet procedures for knee arthritis",
        "How image-guided injections of your own bone-marrow concentrate or platelets are used for "
        "knee osteoarthritis: who may be a candidate, what the procedure and recovery are like, and "
        "what the research says. Bring your questions for the live Q&A.",
        ("knee",),
        ("knee-osteoarthritis",),
    ),
    DemoWebinar(
        "Common joint injuries without surgery: meniscus, ACL, rotator cuff and tennis elbow",
        "Tears and tendon injuries of the knee, shoulder and elbow: when a regenerative procedure "
        "may help them heal, when surgery is still the better choice, and how to decide.",
        ("knee", "shoulder", "elbow"),
        ("meniscus-tear", "acl-tear", "rotator-cuff-tear", "tennis-elbow"),
    ),
    DemoWebinar(
        "Back and neck pain: platelet and stem cell options for the spine",
        "Disc problems, pinched nerves, SI joint pain and sciatica: how precise spinal injections "
        "of your own cells are used instead of fusion surgery, and what to expect.",
        ("lower-spine", "cervical-spine"),
        (),
    ),
    DemoWebinar(
        "Hip arthritis and labral tears: what regenerative medicine can do",
        "The hip joint, its cartilage and labrum: non-surgical procedures, realistic outcomes and "
        "rehabilitation, explained by the physicians who perform them.",
        ("hip",),
        ("hip-arthritis", "hip-labral-tear"),
    ),
)
# (IANA zone, local start) for the demo sessions: lunchtime and evening slots across the country.
SLOTS = (
    ("America/New_York", time(18, 30)),
    ("America/Chicago", time(12, 0)),
    ("America/Denver", time(18, 0)),
    ("America/Los_Angeles", time(17, 30)),
    ("America/Phoenix", time(12, 30)),
)
CAPACITIES = (25, 50, 100, 200)


def seed_demo_webinars(db: Database, today: date | None = None) -> str:
    """A few webinars with sessions over the next weeks; does nothing if webinars exist."""
    with db.session() as session:
        if session.execute(select(func.count()).select_from(Webinar)).scalar_one():
            return "Webinars already exist; left as they are."
        providers = load_docs(session)
    rng = random.Random(2026)
    today = today or datetime.now(UTC).date()
    sessions = 0
    for n, demo in enumerate(DEMO_WEBINARS):
        # Presenters treat what the webinar is about (by region), two per webinar where possible.
        fitting = sorted((p for p in providers if set(p.regions) & set(demo.regions)), key=lambda p: p.id)
        presenters = [p.id for p in rng.sample(fitting, k=min(2, len(fitting)))]
        slug = create_webinar(
            db,
            WebinarInput(
                title=demo.title,
                description=demo.description,
                presenter_ids=presenters,
                regions=list(demo.regions),
                conditions=list(demo.conditions),
            ),
        )
        for week in range(3):
            zone, local_start = SLOTS[(n + week) % len(SLOTS)]
            day = today + timedelta(days=7 * week + 3 + 2 * n)
            starts_at = datetime.combine(day, local_start, tzinfo=ZoneInfo(zone))
            add_session(
                db,
                slug,
                SessionInput(
                    starts_at=starts_at,
                    timezone=zone,
                    capacity=rng.choice(CAPACITIES),
                    join_url=f"https://meet.orthodex.example/j/{secrets.token_urlsafe(9)}",
                    duration_minutes=rng.choice((45, 60, 60, 90)),
                ),
            )
            sessions += 1
    return f"Seeded {len(DEMO_WEBINARS)} demo webinars with {sessions} sessions."
