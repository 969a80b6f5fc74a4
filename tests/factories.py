"""Builders for test data, saved through the same services the app uses."""

from __future__ import annotations

from typing import Any

from core.db import Database
from directory.models import Provider
from directory.service import ListingInput, LocationInput, save_listing


def listing(name: str = "Ada Lovelace", zips: tuple[str, ...] = ("10001",), **overrides: Any) -> ListingInput:
    data: dict[str, Any] = {
        "name": name,
        "credentials": "MD",
        "conditions": ["tennis-elbow"],
        "locations": [LocationInput(f"Clinic {z}", "1 Main St", "", "", z, "(212) 555-0100") for z in zips],
    }
    data.update(overrides)
    return ListingInput(**data)


def add_provider(
    db: Database, name: str = "Ada Lovelace", zips: tuple[str, ...] = ("10001",), **overrides: Any
) -> Provider:
    with db.write() as session:
        return save_listing(session, listing(name, zips, **overrides))
