"""Run the real app as a server process (one or several workers) for tests that need one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.mailserver import free_port

ROOT = Path(__file__).resolve().parent.parent
LITESTAR = Path(sys.executable).parent / "litestar"


def litestar(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one `litestar --app app:create_app ...` command (db upgrade, seed demo) to completion."""
    return subprocess.run(
        [str(LITESTAR), "--app", "app:create_app", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


@contextmanager
def running_server(env: dict[str, str], workers: int = 1, startup_timeout: float = 60) -> Iterator[str]:
    """Start `litestar run` on a free loopback port; yield its base URL; always stop it."""
    port = free_port()
    command = [str(LITESTAR), "--app", "app:create_app", "run", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--wc", str(workers)]
    log = open(os.devnull, "w")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "SECRET_KEY": "test-server-secret", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before answering")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not answer /health in time")
            time.sleep(0.1)
        yield base
    finally:
        # The whole process group: `--wc` starts worker processes under a supervisor.
        try:
            os.killpg(process.pid, 15)
            process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, 9)
            process.wait(timeout=15)
        log.close()
