"""The search index's two inner loops, compiled with numba.

A search touches a few thousand locations. As numpy calls, the radius scan and the facet counts
are some forty small operations whose fixed cost (a microsecond or more each) outweighs the work
itself; as two compiled loops they cost a few microseconds in all. Compiled code is cached next to
this file (or in NUMBA_CACHE_DIR), and `warm_up` compiles it before a worker takes requests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from directory.geo import EARTH_RADIUS_MI


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
def within(
    main: tuple[Any, Any, Any, Any],
    starts: Any,
    stops: Any,
    delta: tuple[Any, Any, Any, Any],
    origin: Any,
    min_cos: float,
    slot: Any,
) -> tuple[Any, Any, Any]:
    """Providers with a location within the radius: (positions, cosines, flag words).

    `main` and `delta` are each a store's (unit vectors, alive, provider position, flags); the
    main store is read between each `starts[i]` and `stops[i]`, the delta store whole. A provider
    appears once, with the cosine of the angle to its nearest location (the largest): distance
    falls as the cosine rises, so callers sort on it and take `arc_miles` of the few they show.
    `slot` is per-position scratch that must hold -1 everywhere; it is left that way.
    """
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


def arc_miles(cosine: float) -> float:
    """Great-circle miles for the cosine of the angle between two unit vectors."""
    return EARTH_RADIUS_MI * math.acos(min(1.0, cosine))


@njit(cache=True, nogil=True)
def count_bits(flags: Any, first: Any, second: Any, bits: int) -> tuple[Any, Any]:
    """How many words under each mask have each of the low `bits` bits set."""
    counts_first = np.zeros(bits, np.int64)
    counts_second = np.zeros(bits, np.int64)
    for i in range(len(flags)):
        word = flags[i]
        if first[i]:
            for bit in range(bits):
                counts_first[bit] += np.int64((word >> np.uint64(bit)) & np.uint64(1))
        if second[i]:
            for bit in range(bits):
                counts_second[bit] += np.int64((word >> np.uint64(bit)) & np.uint64(1))
    return counts_first, counts_second


def warm_up() -> None:
    """Compile (or load from the cache) both kernels, so no request pays for it."""
    xyz = np.zeros((1, 3))
    alive = np.ones(1, dtype=bool)
    provider = np.zeros(1, dtype=np.int64)
    flags = np.zeros(1, dtype=np.uint64)
    store = (xyz, alive, provider, flags)
    bounds = np.zeros(1, dtype=np.int64)
    within(store, bounds, bounds, store, np.array([1.0, 0.0, 0.0]), 0.5, np.full(1, -1, dtype=np.int64))
    count_bits(flags, alive, alive, 1)
