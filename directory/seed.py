"""Demo and benchmark directories. Deterministic (seeded), so screenshots and benchmarks repeat."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import func, insert, select

from core.db import Database
from directory.geo import all_places, lookup_zip
from directory.models import Location, Provider, ProviderCondition, ProviderRegion
from directory.service import ListingInput, LocationInput, bump_version, save_listing, slugify
from directory.taxonomy import CONDITION_BY_SLUG, CONDITIONS, REGIONS, conditions_in

FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Maria",
    "Wei",
    "Priya",
    "Ahmed",
    "Fatima",
    "Hiroshi",
    "Olga",
    "Kwame",
    "Ana",
    "Luis",
    "Mei",
    "Daniel",
    "Grace",
    "Samuel",
    "Nadia",
    "Omar",
    "Elena",
    "Victor",
    "Aisha",
    "Jorge",
    "Hannah",
]
LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Patel",
    "Kim",
    "Chen",
]
CREDENTIALS = ("MD", "DO", "MD", "MD, PhD", "DO", "MD")
LANGUAGES = ("Spanish", "Mandarin", "Vietnamese", "French", "Russian", "Arabic", "Hindi", "Korean")
PROCEDURES = (
    "Platelet-rich plasma (PRP) injection",
    "Bone marrow concentrate (BMC) injection",
    "Platelet lysate injection",
    "Prolotherapy",
    "Ultrasound-guided injection",
    "Fluoroscopy-guided spinal injection",
)
CLINIC_WORDS = (
    "Regenerative Orthopedics",
    "Interventional Orthopedics",
    "Spine & Joint Center",
    "Sports & Regenerative Medicine",
    "Orthopedic Biologics Clinic",
)
# (ZIP, street address) for demo clinics in cities across the country.
DEMO_CLINICS = (
    ("10016", "425 Park Ave S"),
    ("02115", "300 Longwood Ave"),
    ("19104", "3400 Spruce St"),
    ("60611", "680 N Lake Shore Dr"),
    ("80021", "403 Summit Blvd"),
    ("75230", "8230 Walnut Hill Ln"),
    ("77030", "6560 Fannin St"),
    ("85016", "2222 E Highland Ave"),
    ("90048", "8635 W 3rd St"),
    ("94115", "2100 Webster St"),
    ("98104", "1100 9th Ave"),
    ("33136", "1611 NW 12th Ave"),
    ("30309", "1968 Peachtree Rd NW"),
    ("37203", "2201 Murphy Ave"),
    ("55402", "800 Nicollet Mall"),
    ("84102", "50 N Medical Dr"),
)


def make_npi(rng: random.Random) -> str:
    """A 10-digit number with a valid NPI check digit (Luhn over 80840 + the first nine)."""
    body = "1" + "".join(str(rng.randrange(10)) for _ in range(8))
    digits = [int(d) for d in "80840" + body]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def _listing(rng: random.Random, zip_code: str, street: str, index: int) -> ListingInput:
    place = lookup_zip(zip_code)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    credentials = rng.choice(CREDENTIALS)
    regions = rng.sample([r.slug for r in REGIONS], k=rng.randint(2, 4))
    conditions = [c.slug for r in regions for c in conditions_in(r) if rng.random() < 0.8]
    languages = ["English", *rng.sample(LANGUAGES, k=rng.choice((0, 0, 1, 1, 2)))]
    clinic = f"{place.city} {rng.choice(CLINIC_WORDS)}"
    locations = [
        LocationInput(
            clinic,
            street,
            place.city,
            place.state,
            zip_code,
            f"({rng.randint(201, 989)}) 555-{rng.randint(100, 199):04d}",
        )
    ]
    if index % 4 == 0:
        # Some physicians also see patients at a satellite clinic in a nearby ZIP.
        nearby = [
            p
            for p in all_places()
            if abs(p.lat - place.lat) < 0.3 and abs(p.lon - place.lon) < 0.3 and p.zip != zip_code
        ]
        if nearby:
            other = rng.choice(sorted(nearby, key=lambda p: p.zip))
            locations.append(
                LocationInput(
                    f"{other.city} satellite clinic",
                    f"{rng.randint(10, 999)} Main St",
                    other.city,
                    other.state,
                    other.zip,
                    f"({rng.randint(201, 989)}) 555-{rng.randint(100, 199):04d}",
                )
            )
    focus = ", ".join(c.replace("-", " ") for c in regions)
    return ListingInput(
        name=f"{first} {last}",
        credentials=credentials,
        npi=make_npi(rng),
        bio=(
            f"Dr. {last} is a {credentials} specialising in image-guided regenerative procedures for "
            f"the {focus}. {'Sees patients by video as well as in person. ' if index % 3 == 0 else ''}"
            "Trained in interventional orthopedics; believes in exhausting non-surgical options first."
        ),
        languages=languages,
        procedures=rng.sample(PROCEDURES, k=rng.randint(2, 4)),
        accepting_new_patients=rng.random() < 0.8,
        telehealth=index % 3 == 0,
        published=True,
        conditions=conditions,
        regions=regions,
        locations=locations,
        last_reviewed=date(2026, 11, 1) - timedelta(days=rng.randint(0, 120)),
    )


def seed_demo_directory(db: Database) -> str:
    """About three providers per demo clinic city; does nothing if providers already exist."""
    with db.write() as session:
        if session.execute(select(func.count()).select_from(Provider)).scalar_one():
            return "Directory already has providers; left as it is."
        rng = random.Random(2026)
        count = 0
        for zip_code, street in DEMO_CLINICS:
            for _ in range(rng.choice((2, 3, 3))):
                save_listing(session, _listing(rng, zip_code, street, count))
                count += 1
    return f"Seeded {count} demo providers in {len(DEMO_CLINICS)} cities."


def seed_bench(database_url: str, providers: int) -> str:
    """`providers` synthetic providers spread over every US ZIP, written in bulk."""
    db = Database(database_url)
    rng = random.Random(100_000)
    places = sorted(all_places(), key=lambda p: p.zip)
    condition_slugs = [c.slug for c in CONDITIONS]
    try:
        with db.write() as session:
            start = int(session.execute(select(func.coalesce(func.max(Provider.id), 0))).scalar_one())
            version = bump_version(session)
            batch = 5000
            for offset in range(0, providers, batch):
                rows: list[dict[str, object]] = []
                locs: list[dict[str, object]] = []
                conds: list[dict[str, object]] = []
                regs: list[dict[str, object]] = []
                for i in range(offset, min(providers, offset + batch)):
                    pid = start + i + 1
                    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                    rows.append(
                        {
                            "id": pid,
                            "slug": f"{slugify(name)}-{pid}",
                            "name": name,
                            "credentials": rng.choice(CREDENTIALS),
                            "npi": None,
                            "bio": "",
                            "photo_url": None,
                            "languages": ["English", *rng.sample(LANGUAGES, k=rng.choice((0, 1)))],
                            "procedures": rng.sample(PROCEDURES, k=2),
                            "accepting_new_patients": rng.random() < 0.8,
                            "telehealth": rng.random() < 0.3,
                            "published": True,
                            "last_reviewed": None,
                            "deleted_at": None,
                            "revision": version,
                        }
                    )
                    for place in rng.sample(places, k=rng.choice((1, 1, 1, 2))):
                        locs.append(
                            {
                                "provider_id": pid,
                                "clinic_name": f"{place.city} Clinic",
                                "address": "1 Main St",
                                "city": place.city,
                                "state": place.state,
                                "zip": place.zip,
                                "lat": place.lat,
                                "lon": place.lon,
                                "phone": "(555) 555-0100",
                            }
                        )
                    chosen = rng.sample(condition_slugs, k=rng.randint(3, 8))
                    conds.extend({"provider_id": pid, "condition_slug": s} for s in chosen)
                    regs.extend(
                        {"provider_id": pid, "region_slug": r}
                        for r in {CONDITION_BY_SLUG[s].regions[0] for s in chosen}
                    )
                session.execute(insert(Provider), rows)
                session.execute(insert(Location), locs)
                session.execute(insert(ProviderCondition), conds)
                session.execute(insert(ProviderRegion), regs)
            if db.engine.dialect.name == "postgresql":
                session.execute(
                    select(func.setval("provider_id_seq", select(func.max(Provider.id)).scalar_subquery()))
                )
    finally:
        db.dispose()
    return f"Seeded {providers} synthetic providers."
