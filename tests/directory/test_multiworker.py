"""An edit reaches search on every worker process within a second (bounded-staleness cache)."""

from __future__ import annotations

import time

import httpx
from sqlmodel import select

from core.db import Database
from core.migrate import upgrade
from directory.models import Provider
from directory.service import mark_changed
from tests.factories import add_provider
from tests.server import running_server

WORKERS = 2


def _names(base: str) -> set[str]:
    body = httpx.get(f"{base}/api/providers", params={"per_page": 100}, timeout=5).json()
    return {item["name"] for item in body["items"]}


def _agreeing_after(base: str, name: str, present: bool, committed: float) -> int:
    """How many of 20 requests, sent from one second after the commit, agree with it.

    New connections each time, so the kernel spreads them over the worker processes.
    """
    time.sleep(max(0.0, committed + 1.0 - time.monotonic()))
    return sum((name in _names(base)) == present for _ in range(20))


def test_edits_show_on_every_worker_within_a_second(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    try:
        add_provider(db, "Olive Original", ("10001",))
        with running_server({"DATABASE_URL": database_url}, workers=WORKERS) as base:
            assert "Olive Original" in _names(base)
            add_provider(db, "Nina Newcomer", ("10001",))
            committed = time.monotonic()
            assert _agreeing_after(base, "Nina Newcomer", True, committed) == 20
            with db.write() as session:
                provider = session.exec(select(Provider).where(Provider.name == "Olive Original")).one()
                provider.published = False
                mark_changed(session, provider)
            committed = time.monotonic()
            assert _agreeing_after(base, "Olive Original", False, committed) == 20
    finally:
        db.dispose()
