"""US ZIP centroids (offline, from the `zipcodes` package) and great-circle distance in miles."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

import zipcodes

EARTH_RADIUS_MI = 3958.7613
ZIP_RE = re.compile(r"^\d{5}(-\d{4})?$")


@dataclass(frozen=True, slots=True)
class ZipPlace:
    zip: str
    city: str
    state: str
    lat: float
    lon: float
    timezone: str


class UnknownZip(ValueError):
    """A ZIP that is malformed or not a US ZIP code with a known centre."""


@cache
def _places() -> dict[str, ZipPlace]:
    places: dict[str, ZipPlace] = {}
    for row in zipcodes.list_all():  # type: ignore[no-untyped-call]
        try:
            lat, lon = float(row["lat"]), float(row["long"])
        except (TypeError, ValueError):
            continue
        if lat == 0.0 and lon == 0.0:
            continue
        places[row["zip_code"]] = ZipPlace(
            row["zip_code"], row["city"], row["state"], lat, lon, row.get("timezone") or ""
        )
    return places


def all_places() -> list[ZipPlace]:
    return list(_places().values())


def lookup_zip(raw: str) -> ZipPlace:
    """The centre of a five-digit (or ZIP+4) US ZIP code; UnknownZip says what is wrong."""
    text = raw.strip()
    if not ZIP_RE.match(text):
        raise UnknownZip(f"'{raw}' is not a US ZIP code: use five digits, like 10001.")
    place = _places().get(text[:5])
    if place is None:
        raise UnknownZip(f"ZIP code {text[:5]} is not a US ZIP code we know.")
    return place


def haversine_mi(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in miles between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MI * math.asin(math.sqrt(min(1.0, a)))
