"""Registration and invite-download throughput as a ratio to `GET /health`, same server, same run.

    .venv/bin/python bench/booking_bench.py --rounds 3 --seconds 10

A fresh SQLite database (migrated with `litestar db upgrade`) with one webinar and many sessions
of ample capacity, one server process (`litestar run`, one worker, its outbox worker writing every
e-mail to .eml files), and wrk (Debian package `wrk`) driving it:

- registrations: `POST /api/sessions/{id}/registrations`, every request a new address, spread over
  the sessions so no per-session limit is reached; each one claims a seat and writes its
  confirmation and its reminder to the outbox (as payloads, rendered by the worker) in the same
  transaction;
- invite downloads: `GET /api/registrations/{token}/invite.ics` over 2,000 registrations' tokens.

Each round measures /health, then registrations, then invites, waiting for the outbox to send
everything due (the reminders are due weeks later) before /health and before the invites, so
leftover mail does not slow one side of a ratio. The ratio
is taken per round; the median of the rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from directory_bench import free_port, run_wrk  # noqa: E402 (bench/ is the script's own folder)

LITESTAR = Path(sys.executable).parent / "litestar"
SECRET_KEY = "booking-bench-secret"
SESSIONS = 600
REGISTER_LUA = """
local sessions = {%s}
local n = 0
local tag = "%s"
request = function()
  n = n + 1
  local body = string.format('{"name":"Bench Attendee","email":"r%%s-%%d@bench.example"}', tag, n)
  local path = "/api/sessions/" .. sessions[n %% #sessions + 1] .. "/registrations"
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end
"""
PATHS_LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def prepare(db_url: str) -> list[int]:
    """Migrate and create one webinar with SESSIONS sessions a month ahead; returns their ids."""
    from booking.service import SessionInput, WebinarInput, add_session, create_webinar
    from core.db import Database

    subprocess.run(
        [LITESTAR, "--app", "app:create_app", "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": db_url},
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    db = Database(db_url)
    try:
        slug = create_webinar(db, WebinarInput(title="Bench webinar", regions=["knee"]))
        start = datetime.now(UTC) + timedelta(days=30)
        return [
            add_session(
                db,
                slug,
                SessionInput(
                    start + timedelta(hours=i), "America/New_York", 100_000, "https://meet.example/j/b"
                ),
            )
            for i in range(SESSIONS)
        ]
    finally:
        db.dispose()


def outbox_backlog(db_url: str) -> int:
    """E-mails due now and not sent yet."""
    from sqlalchemy import create_engine, func, select

    from core.mail import OutboxMessage, OutboxStatus, utcnow

    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    pending = (OutboxStatus.queued, OutboxStatus.retrying, OutboxStatus.sending)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            due = select(func.count()).where(
                outbox.c.status.in_([s.value for s in pending]), outbox.c.next_attempt_at <= utcnow()
            )
            return int(conn.execute(due).scalar_one())
    finally:
        engine.dispose()


def wait_for_outbox(db_url: str, limit_s: float = 600) -> float:
    started = time.monotonic()
    while outbox_backlog(db_url):
        if time.monotonic() - started > limit_s:
            raise SystemExit("the outbox did not drain")
        time.sleep(0.5)
    return time.monotonic() - started


def invite_paths(db_url: str, count: int) -> list[str]:
    from sqlalchemy import create_engine, text

    from booking.service import registration_token

    engine = create_engine(db_url)
    with engine.connect() as conn:
        uids = [
            row[0]
            for row in conn.execute(
                text("SELECT invite_uid FROM registration WHERE status = 'confirmed' ORDER BY id LIMIT :n"),
                {"n": count},
            )
        ]
    engine.dispose()
    return [f"/api/registrations/{registration_token(SECRET_KEY, uid)}/invite.ics" for uid in uids]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="orthodex-booking-bench-") as tmp:
        workdir = Path(tmp)
        db_url = f"sqlite:///{workdir / 'bench.db'}"
        sessions = prepare(db_url)
        session_list = ", ".join(map(str, sessions))

        def register_lua(tag: str) -> Path:
            # Each run its own addresses, so every request is a new registration.
            script = workdir / f"register-{tag}.lua"
            script.write_text(REGISTER_LUA % (session_list, tag))
            return script

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "SECRET_KEY": SECRET_KEY,
            "BASE_URL": base,
            "MAIL_DIR": str(workdir / "mail"),
        }
        server = subprocess.Popen(
            [LITESTAR, "--app", "app:create_app", "run", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            c = args.connections
            # Warm-up; it also leaves registrations whose invites the rounds download.
            run_wrk(f"{base}/health", None, 2, c)
            run_wrk(f"{base}/", register_lua("warm"), 3, c)
            paths = invite_paths(db_url, 2000)
            paths_file = workdir / "invites.txt"
            paths_file.write_text("\n".join(paths) + "\n")
            invite_lua = workdir / "invites.lua"
            invite_lua.write_text(PATHS_LUA % paths_file)
            health, register, invite, drains = [], [], [], []
            for n in range(args.rounds):
                drains.append(wait_for_outbox(db_url))
                health.append(run_wrk(f"{base}/health", None, args.seconds, c)[0])
                register.append(run_wrk(f"{base}/", register_lua(f"round{n}"), args.seconds, c)[0])
                drains.append(wait_for_outbox(db_url))
                invite.append(run_wrk(base, invite_lua, args.seconds, c)[0])
            result = {
                "database": "sqlite",
                "server_workers": 1,
                "connections": c,
                "seconds_per_run": args.seconds,
                "invite_tokens": len(paths),
                "health_rps": [round(x) for x in health],
                "registration_rps": [round(x) for x in register],
                "invite_rps": [round(x) for x in invite],
                "registration_ratio_per_round": [
                    round(r / h, 3) for r, h in zip(register, health, strict=True)
                ],
                "invite_ratio_per_round": [round(i / h, 3) for i, h in zip(invite, health, strict=True)],
                "registration_ratio_median": round(
                    statistics.median(r / h for r, h in zip(register, health, strict=True)), 3
                ),
                "invite_ratio_median": round(
                    statistics.median(i / h for i, h in zip(invite, health, strict=True)), 3
                ),
                "outbox_drain_s": [round(d, 1) for d in drains],
            }
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
