"""The directory refresher's shutdown."""

from __future__ import annotations

import asyncio
import threading

import anyio.to_thread

from core.db import Database
from directory.search import ProviderDoc
from directory.service import DirectoryRefresher


async def test_stop_waits_for_a_refresh_in_flight(db: Database) -> None:
    """Its thread must not read on after shutdown (the database may be gone by then)."""
    refresher = DirectoryRefresher(db, period=0.01, disclaimer="Not advice.")
    await refresher.start()
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_changes(seen: int) -> tuple[int, list[ProviderDoc]]:
        entered.set()
        release.wait(5)
        finished.set()
        return seen, []

    refresher._changes_since = slow_changes  # type: ignore[method-assign]
    assert await anyio.to_thread.run_sync(entered.wait, 5)
    stopping = asyncio.create_task(refresher.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done(), "stop() returned while a refresh was still reading"
    release.set()
    await stopping
    assert finished.is_set()
