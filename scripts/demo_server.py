"""The real app as a server process on a fresh, migrated SQLite database with the demo seed.

Used by the browser tests and by `python -m scripts.screenshots`: the same CLI commands an operator
runs (`litestar db upgrade`, `litestar seed demo`, `litestar run`), on loopback, always stopped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Debian's Chromium: Playwright may not download its own browsers here (no `playwright install`).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LITESTAR = [sys.executable, "-m", "litestar", "--app", "app:create_app"]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(workdir: Path, base_url: str, network_name: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'orthodex.db'}",
        MAIL_DIR=str(workdir / "mail"),
        BASE_URL=base_url,
        NETWORK_NAME=network_name,
        # A fixed, public key: this server holds only demo data and listens on loopback.
        SECRET_KEY="demo-server-secret-key-for-local-use-only",  # noqa: S106
        PYTHONUNBUFFERED="1",
    )
    # Never send real mail from a demo.
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_USER", "SMTP_PASSWORD"):
        env.pop(name, None)
    return env


def _cli(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [*LITESTAR, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"litestar {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


@contextmanager
def demo_server(workdir: Path, network_name: str = "Orthodex Clinic Network") -> Iterator[str]:
    """Yield the base URL of a running demo site; the server is stopped when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _env(workdir, base_url, network_name)
    _cli(["db", "upgrade"], env)
    _cli(["seed", "demo"], env)
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*LITESTAR, "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(base_url, server, log_path)
            yield base_url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


def _wait_until_up(base_url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"the server did not answer /health in {START_TIMEOUT_S:.0f}s:\n{log_path.read_text()}"
    )
