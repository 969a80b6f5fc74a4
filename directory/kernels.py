"""The search index's inner loops, compiled with numba.

A search touches a few thousand locations. As numpy calls, the radius scan, the filters with their
facet counts and the page's ranking are some forty small operations whose fixed cost (a
microsecond or more each) outweighs the work itself; as three compiled loops they cost a few tens
of microseconds in all. Compiled code is cached next to this file (or in NUMBA_CACHE_DIR), and
`warm_up` compiles it before a worker takes requests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _scan(
    xyz: Any,
    alive: Any,
    provider: Any,
    flags: Any,
    start: int,
    stop: int,
    origin: Any,
    min_cos: float,
    slot: Any,
    out_position: Any,
    out_cosine: Any,
    out_flags: Any,
    count: int,
) -> int:
    ox, oy, oz = origin[0], origin[1], origin[2]
    for loc in range(start, stop):
        cosine = xyz[loc, 0] * ox + xyz[loc, 1] * oy + xyz[loc, 2] * oz
        if cosine < min_cos or not alive[loc]:
            continue
        position = provider[loc]
        seen = slot[position]
        if seen < 0:
            slot[position] = count
            out_position[count] = position
            out_cosine[count] = cosine
            out_flags[count] = flags[loc]
            count += 1
        elif cosine > out_cosine[seen]:
            out_cosine[seen] = cosine
    return count


@njit(cache=True, nogil=True)
def _row_key(row: int, column: int) -> int:
    # Cells sort by latitude row, then longitude column.
    return (row + 1000) * 10_000 + (column + 1000)


@njit(cache=True, nogil=True)
def cell_key(lat: float, lon: float, cell: float) -> int:
    """The key of the cell (`cell` degrees square) holding a point; the main store sorts on it."""
    return _row_key(math.floor(lat / cell), math.floor(lon / cell))


@njit(cache=True, nogil=True)
def _spans(key: Any, lat: float, lon: float, dlat: float, dlon: float, cell: float) -> tuple[Any, Any]:
    """Where each latitude row's run of cells within the box starts and stops in `key`."""
    first_row = math.floor((lat - dlat) / cell)
    last_row = math.floor((lat + dlat) / cell)
    west, east = lon - dlon, lon + dlon
    # Longitude column ranges, split where the box crosses the antimeridian.
    lo_cols, hi_cols = [], []
    if east - west >= 360:
        lo_cols.append(math.floor(-180 / cell))
        hi_cols.append(math.floor(180 / cell))
    else:
        if west < -180:
            lo_cols.append(math.floor((west + 360) / cell))
            hi_cols.append(math.floor(180 / cell))
            west = -180.0
        if east > 180:
            lo_cols.append(math.floor(-180 / cell))
            hi_cols.append(math.floor((east - 360) / cell))
            east = 180.0
        lo_cols.append(math.floor(west / cell))
        hi_cols.append(math.floor(east / cell))
    count = (last_row - first_row + 1) * len(lo_cols)
    lows = np.empty(count, np.int64)
    highs = np.empty(count, np.int64)
    i = 0
    for row in range(first_row, last_row + 1):
        for j in range(len(lo_cols)):
            lows[i] = _row_key(row, lo_cols[j])
            # Keys are integers: a span ends before the first key above its last cell.
            highs[i] = _row_key(row, hi_cols[j]) + 1
            i += 1
    return np.searchsorted(key, lows), np.searchsorted(key, highs)


@njit(cache=True, nogil=True)
def within(
    main_key: Any,
    main: tuple[Any, Any, Any, Any],
    delta: tuple[Any, Any, Any, Any],
    box: tuple[float, float, float, float, float],
    origin: Any,
    min_cos: float,
    slot: Any,
) -> tuple[Any, Any, Any]:
    """Providers with a location within the radius: (positions, cosines, flag words).

    `main` and `delta` are each a store's (unit vectors, alive, provider position, flags). The
    main store is sorted by `main_key` (cell keys) and read where the cells of `box` (latitude,
    longitude, half-height and half-width in degrees, cell size) lie; the delta store is read whole.
    A provider appears once, with the cosine of the angle to its nearest location (the largest):
    distance falls as the cosine rises, so callers sort on it and measure only the few they show
    (EARTH_RADIUS_MI * acos(cosine)). `slot` is per-position scratch that must hold -1
    everywhere; it is left that way.
    """
    starts, stops = _spans(main_key, box[0], box[1], box[2], box[3], box[4])
    size = len(delta[2])
    for i in range(len(starts)):
        size += max(0, stops[i] - starts[i])
    out_position = np.empty(size, np.int64)
    out_cosine = np.empty(size, np.float64)
    out_flags = np.empty(size, np.uint64)
    count = 0
    xyz, alive, provider, flags = main
    for i in range(len(starts)):
        count = _scan(
            xyz, alive, provider, flags, starts[i], stops[i], origin, min_cos, slot,
            out_position, out_cosine, out_flags, count,
        )  # fmt: skip
    xyz, alive, provider, flags = delta
    count = _scan(
        xyz, alive, provider, flags, 0, len(provider), origin, min_cos, slot,
        out_position, out_cosine, out_flags, count,
    )  # fmt: skip
    for i in range(count):
        slot[out_position[i]] = -1
    return out_position[:count], out_cosine[:count], out_flags[:count]


@njit(cache=True, nogil=True)
def select(
    flags: Any,
    keep: Any,
    want_set: Any,
    want_value: Any,
    conditions: Any,
    region: Any,
    region_shift: int,
    facet_bits: int,
) -> tuple[Any, Any, Any]:
    """Filter flag words and count facets: (condition counts, region counts, selected).

    A word passes the base filters when its `want_set` bits equal `want_value` and `keep` (if
    not empty) is true at its index. It is selected when it also has one of the `conditions` bits
    and the `region` bit (a zero mask: no such filter). Facets count what choosing that value
    instead would return, other filters kept: condition counts (bits below `region_shift`) ignore
    the condition filter, region counts (bits up to `facet_bits`) ignore the region filter.
    """
    condition_counts = np.zeros(region_shift, np.int64)
    region_counts = np.zeros(facet_bits - region_shift, np.int64)
    selected = np.zeros(len(flags), np.bool_)
    zero, one = np.uint64(0), np.uint64(1)
    filter_keep = len(keep) > 0
    for i in range(len(flags)):
        word = flags[i]
        if (word & want_set) != want_value or (filter_keep and not keep[i]):
            continue
        has_condition = conditions == zero or (word & conditions) != zero
        in_region = region == zero or (word & region) != zero
        if in_region:
            for bit in range(region_shift):
                condition_counts[bit] += np.int64((word >> np.uint64(bit)) & one)
        if has_condition:
            for bit in range(region_shift, facet_bits):
                region_counts[bit - region_shift] += np.int64((word >> np.uint64(bit)) & one)
        selected[i] = has_condition and in_region
    return condition_counts, region_counts, selected


@njit(cache=True, nogil=True)
def nearest_page(
    positions: Any, cosines: Any, selected: Any, ids: Any, start: int, size: int
) -> tuple[int, Any, Any]:
    """(how many are selected, and `size` of them from `start`: positions, cosines), nearest first.

    Nearest is largest cosine; ties break by provider id (`ids[position]`), so paging is stable.
    """
    total = 0
    for i in range(len(selected)):
        if selected[i]:
            total += 1
    position = np.empty(total, np.int64)
    nearness = np.empty(total, np.float64)
    provider = np.empty(total, np.int64)
    j = 0
    for i in range(len(selected)):
        if selected[i]:
            position[j] = positions[i]
            nearness[j] = -cosines[i]
            provider[j] = ids[positions[i]]
            j += 1
    # By id, then stably by nearness: nearest first, equals by id.
    order = np.argsort(provider, kind="mergesort")
    order = order[np.argsort(nearness[order], kind="mergesort")]
    page = order[start : start + size]
    return total, position[page], -nearness[page]


def warm_up() -> None:
    """Compile (or load from the cache) the kernels, so no request pays for it."""
    xyz = np.zeros((1, 3))
    alive = np.ones(1, dtype=bool)
    provider = np.zeros(1, dtype=np.int64)
    flags = np.zeros(1, dtype=np.uint64)
    store = (xyz, alive, provider, flags)
    slot = np.full(1, -1, dtype=np.int64)
    within(provider, store, store, (0.0, 0.0, 1.0, 1.0, 1.0), np.array([1.0, 0.0, 0.0]), 0.5, slot)
    mask = np.uint64(0)
    select(flags, alive, mask, mask, mask, mask, 1, 2)
    select(flags, np.zeros(0, dtype=bool), mask, mask, mask, mask, 1, 2)
    nearest_page(provider, np.ones(1), alive, provider, 0, 1)
    cell_key(0.0, 0.0, 1.0)
