"""CSV import and export of providers: the parser on its own, then dry run vs apply through the app."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import func, select

from accounts.models import AuditEntry
from core.db import Database
from directory.admin import CsvProblem, CsvRow, listing_from_row, read_csv
from directory.models import DirectoryState, Location, Provider
from directory.service import ListingInput
from tests.factories import add_provider

Client = AsyncTestClient[Litestar]
IMPORT = "/api/admin/providers/import"
HEADER = "name,npi,credentials,languages,conditions,published,clinic_name,address,zip"

# --- the parser, no server -------------------------------------------------------------------


def test_excel_quirks_bom_crlf_header_case_and_blank_rows() -> None:
    raw = "\ufeff Name ,NPI,Accepting New-Patients,Bio\r\nAda,1234567893,Yes,'=SUM(1)\r\n,,\r\nBo,,no,'ok\r\n"
    sheet = read_csv(raw.encode())
    assert sheet.columns == ["name", "npi", "accepting_new_patients", "bio"]
    assert [(r.number, r.cells["name"]) for r in sheet.rows] == [(2, "Ada"), (4, "Bo")]
    # Our export's guard against spreadsheet formulas comes off again; other apostrophes stay.
    assert [r.cells["bio"] for r in sheet.rows] == ["=SUM(1)", "'ok"]


def test_windows_1252_files_are_read() -> None:
    sheet = read_csv("name,city\nJosé Núñez,San José\n".encode("cp1252"))
    assert sheet.rows[0].cells == {"name": "José Núñez", "city": "San José"}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("name,specialty\nAda,knees\n", "Unknown column(s): specialty"),
        ("npi,zip\n1234567893,10001\n", "needs a 'name' column"),
        ("name,Name\nAda,Ada\n", "named twice: name"),
        ("name,,zip\nAda,,10001\n", "Column 2 has no name"),
        ("", "The file is empty"),
        ("name\n" + "x\n" * 5001, "at most 5000"),
    ],
)
def test_whole_file_problems_say_how_to_fix(raw: str, words: str) -> None:
    with pytest.raises(CsvProblem, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_csv(raw.encode())


def test_row_to_listing() -> None:
    row = CsvRow(
        number=2,
        cells={
            "name": "Ada",
            "languages": "English; Spanish ;",
            "conditions": "Tennis elbow; knee-osteoarthritis",
            "regions": "Hip",
            "telehealth": "maybe",
            "published": "TRUE",
            "clinic_name": "",
            "address": "",
            "zip": "",
            "clinic_name_2": "Back Bay",
            "address_2": "1 Main",
            "zip_2": "2116",
        },
    )
    listing, errors, groups = listing_from_row(row, ListingInput(name="", published=False))
    assert listing.languages == ["English", "Spanish"]
    assert listing.conditions == ["tennis-elbow", "knee-osteoarthritis"]
    assert listing.regions == ["hip"]
    assert listing.published is True
    assert errors == {"telehealth": "'maybe' is not yes or no."}
    # The first location group is empty; the second one is the provider's only location, and
    # the ZIP a spreadsheet shortened to 2116 is 02116 again.
    assert groups == [2]
    assert [(loc.clinic_name, loc.zip) for loc in listing.locations] == [("Back Bay", "02116")]


# --- through the app -------------------------------------------------------------------------


def sheet(*rows: str, header: str = HEADER) -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode()


def state(db: Database) -> tuple[int, int, int, int]:
    """Providers, locations, directory version, audit entries: what a write would change."""
    with db.session() as session:
        return (
            session.exec(select(func.count()).select_from(Provider)).one(),
            session.exec(select(func.count()).select_from(Location)).one(),
            session.exec(select(DirectoryState.version)).one(),
            session.exec(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "provider")
            ).one(),
        )


async def post_csv(client: Client, raw: bytes, dry_run: bool) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        IMPORT, params={"dry_run": str(dry_run).lower()}, content=raw, headers={"content-type": "text/csv"}
    )
    return response.status_code, response.json()


GOOD_1 = "Ana Ortiz,1234567893,MD,English;Spanish,tennis-elbow,yes,Midtown Clinic,5 W 31st St,10001"
BAD_2 = 'Ben Broken,1234567890,DO,English,"brain-fog; Knee osteoarthritis",yes,Nowhere,1 Main,00000'
GOOD_3 = 'Cal Chen,,MD,English,"Plantar fasciitis",no,Lakeview,3 Lake Shore Dr,60611'


async def test_dry_run_reports_each_row_and_writes_nothing(admin_client: Client, db: Database) -> None:
    before = state(db)
    status, report = await post_csv(admin_client, sheet(GOOD_1, BAD_2, GOOD_3), dry_run=True)
    assert status == 200
    assert report["dry_run"] is True
    assert report["applied"] is False
    assert (report["created"], report["updated"], report["unchanged"], report["invalid"]) == (2, 0, 0, 1)
    rows = report["rows"]
    assert [(r["row"], r["name"], r["action"]) for r in rows] == [
        (2, "Ana Ortiz", "create"),
        (3, "Ben Broken", "error"),
        (4, "Cal Chen", "create"),
    ]
    assert set(rows[1]["errors"]) == {"npi", "conditions", "zip"}
    assert "check digit" in rows[1]["errors"]["npi"]
    assert "brain-fog" in rows[1]["errors"]["conditions"]
    assert "Knee" not in rows[1]["errors"]["conditions"]  # a condition's name is fine
    assert "not a US ZIP code we know" in rows[1]["errors"]["zip"]
    assert {"name", "npi", "locations", "conditions"} <= set(rows[0]["changed"])
    assert state(db) == before


async def test_apply_with_a_bad_row_in_the_middle_writes_nothing(admin_client: Client, db: Database) -> None:
    before = state(db)
    status, report = await post_csv(admin_client, sheet(GOOD_1, BAD_2, GOOD_3), dry_run=False)
    assert status == 400
    assert report["status_code"] == 400
    assert "nothing was written" in report["detail"]
    assert report["applied"] is False
    assert [r["action"] for r in report["rows"]] == ["create", "error", "create"]
    assert state(db) == before
    assert (await admin_client.get("/api/admin/providers")).json()["total"] == 0


async def test_apply_creates_and_updates_in_one_go(admin_client: Client, db: Database) -> None:
    existing = add_provider(db, "Dora Existing", npi="1245319599", published=False)
    rows = (
        GOOD_1,
        GOOD_3,
        "Dora Existing,1245319599,DO,English,tennis-elbow,yes,Clinic 10001,1 Main St,10001",
    )
    status, report = await post_csv(admin_client, sheet(*rows), dry_run=False)
    assert status == 200, report
    assert report["applied"] is True
    assert (report["created"], report["updated"], report["unchanged"]) == (2, 1, 0)
    # Without a slug, the NPI found Dora's listing: updated, not duplicated.
    dora = report["rows"][2]
    assert (dora["slug"], dora["action"]) == (existing.slug, "update")
    assert sorted(dora["changed"]) == ["credentials", "published"]
    assert report["rows"][0]["slug"] == "ana-ortiz"
    providers = (await admin_client.get("/api/admin/providers")).json()
    assert [(p["name"], p["published"]) for p in providers["items"]] == [
        ("Ana Ortiz", True),
        ("Cal Chen", False),
        ("Dora Existing", True),
    ]
    entries = (await admin_client.get("/api/admin/audit", params={"action": "provider.import"})).json()[
        "items"
    ]
    assert sorted(e["entity_id"] for e in entries) == sorted(["ana-ortiz", "cal-chen", existing.slug])
    dora_entry = next(e for e in entries if e["entity_id"] == existing.slug)
    assert (dora_entry["before"]["credentials"], dora_entry["after"]["credentials"]) == ("MD", "DO")
    # Imported changes reach public search like any other edit.
    names: list[str] = []
    for _ in range(20):
        names = [i["name"] for i in (await admin_client.get("/api/providers")).json()["items"]]
        if "Ana Ortiz" in names:
            break
        await asyncio.sleep(0.05)
    assert sorted(names) == ["Ana Ortiz", "Dora Existing"]


async def test_export_edit_import_round_trips(admin_client: Client, db: Database) -> None:
    add_provider(
        db,
        "José Núñez",
        zips=("10001", "02116"),
        npi="1234567893",
        bio='=HYPERLINK("http://evil.example")',
        languages=["English", "Spanish"],
        procedures=["PRP", "Bone-marrow concentrate"],
        regions=["hip"],
    )
    add_provider(db, "Ada Lovelace", published=False, telehealth=True)
    gone = add_provider(db, "Gone Provider")
    await admin_client.post(f"/api/admin/providers/{gone.slug}/publish")
    await admin_client.delete(f"/api/admin/providers/{gone.slug}")

    response = await admin_client.get("/api/admin/providers/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    raw = response.content
    assert raw.startswith("\ufeff".encode())
    table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["name"] for r in table] == ["Ada Lovelace", "José Núñez"]  # the deleted one is not exported
    jose = table[1]
    # A cell a spreadsheet would run as a formula is exported as text.
    assert jose["bio"].startswith("'=HYPERLINK")
    assert (jose["zip"], jose["zip_2"]) == ("10001", "02116")

    before = state(db)
    status, report = await post_csv(admin_client, raw, dry_run=True)
    assert status == 200
    assert [r["action"] for r in report["rows"]] == ["unchanged", "unchanged"], report
    status, report = await post_csv(admin_client, raw, dry_run=False)
    assert status == 200
    assert state(db) == before  # nothing changed, nothing written

    table[0]["telehealth"] = "no"
    table[1]["city_2"] = ""  # blank city: filled from the ZIP again, not a change
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(table[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(table)
    status, report = await post_csv(admin_client, out.getvalue().encode(), dry_run=False)
    assert status == 200
    assert [(r["action"], r["changed"]) for r in report["rows"]] == [
        ("update", ["telehealth"]),
        ("unchanged", []),
    ]
    detail = (await admin_client.get(f"/api/admin/providers/{table[0]['slug']}")).json()
    assert detail["telehealth"] is False
    jose_detail = (await admin_client.get(f"/api/admin/providers/{table[1]['slug']}")).json()
    assert jose_detail["bio"] == '=HYPERLINK("http://evil.example")'
    assert [loc["city"] for loc in jose_detail["locations"]] == ["New York", "Boston"]


async def test_multipart_upload_and_errors_by_location_column(admin_client: Client, db: Database) -> None:
    header = "name,clinic_name,address,zip,clinic_name_2,address_2,zip_2"
    raw = sheet("Eve Two Clinics,Main,1 Main St,10001,Satellite,2 Side St,99999", header=header)
    response = await admin_client.post(
        IMPORT, params={"dry_run": "false"}, files={"file": ("providers.csv", raw, "text/csv")}
    )
    assert response.status_code == 400
    row = response.json()["rows"][0]
    assert list(row["errors"]) == ["zip_2"]
    fixed = raw.replace(b"99999", b"10016")
    response = await admin_client.post(
        IMPORT, params={"dry_run": "false"}, files={"file": ("providers.csv", fixed, "text/csv")}
    )
    assert response.status_code == 200, response.text
    slug = response.json()["rows"][0]["slug"]
    detail = (await admin_client.get(f"/api/admin/providers/{slug}")).json()
    assert [loc["zip"] for loc in detail["locations"]] == ["10001", "10016"]


async def test_file_level_and_row_level_rejections(admin_client: Client, db: Database) -> None:
    before = state(db)
    status, body = await post_csv(admin_client, b"name,favourite_colour\nAda,blue\n", dry_run=False)
    assert status == 400
    assert "favourite_colour" in body["detail"]
    status, body = await post_csv(admin_client, b"name,npi\n", dry_run=True)
    assert status == 400
    assert "no providers" in body["detail"]
    deleted = add_provider(db, "Del Eted")
    await admin_client.delete(f"/api/admin/providers/{deleted.slug}")
    status, body = await post_csv(
        admin_client,
        sheet(
            f"{deleted.slug},Del Eted",
            "Bad Slug!,Someone",
            "twin,Twin One",
            "twin,Twin Two",
            header="slug,name",
        ),
        dry_run=True,
    )
    assert status == 200
    errors = [r["errors"] for r in body["rows"]]
    assert "restore" in errors[0]["slug"]
    assert "lower-case" in errors[1]["slug"]
    assert "row 4" in errors[3]["slug"]
    assert state(db)[0] == before[0] + 1
