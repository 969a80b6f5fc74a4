"""Directory search throughput and latency against `GET /health` on the same server, same run.

    .venv/bin/python bench/directory_bench.py --providers 1000 100000 --rounds 3 --seconds 10

For each directory size: a fresh SQLite database seeded with `litestar seed bench`, one server
process (`litestar run`, one worker), and wrk (Debian package `wrk`) driving it from a Lua script
that walks at least 1,000 distinct condition x ZIP searches, so no response cache could stand in
for search. Rounds alternate /health and search; the ratio is taken per round and the median
reported. Latency is wrk's median at one connection, the median of as many rounds. Peak memory is
the server's VmHWM.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LITESTAR = Path(sys.executable).parent / "litestar"
LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_wrk(url: str, script: Path | None, seconds: int, connections: int) -> tuple[float, float]:
    """(requests/s, median latency ms) as wrk reports them."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert p50 is not None, out
    value, unit = float(p50.group(1)), p50.group(2)
    return rps, value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def seed(url: str, providers: int) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [LITESTAR, "--app", "app:create_app", "db", "upgrade"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [LITESTAR, "--app", "app:create_app", "seed", "bench", "--providers", str(providers)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def search_paths(url: str, count: int) -> list[str]:
    """Distinct condition x ZIP searches at ZIPs where the directory has clinics."""
    from sqlalchemy import create_engine, text

    from directory.taxonomy import CONDITIONS

    engine = create_engine(url)
    with engine.connect() as conn:
        zips = sorted({row[0] for row in conn.execute(text("SELECT DISTINCT zip FROM location"))})
    engine.dispose()
    rng = random.Random(7)
    combos: set[tuple[str, str]] = set()
    while len(combos) < min(count, len(zips) * len(CONDITIONS)):
        combos.add((rng.choice(CONDITIONS).slug, rng.choice(zips)))
    return [f"/api/providers?condition={c}&near={z}&radius=50&per_page=20" for c, z in sorted(combos)]


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]


def bench_size(providers: int, rounds: int, seconds: int, workdir: Path) -> dict[str, Any]:
    db_url = f"sqlite:///{workdir / f'bench-{providers}.db'}"
    seed(db_url, providers)
    paths = search_paths(db_url, 2000)
    script = workdir / f"search-{providers}.lua"
    paths_file = workdir / f"paths-{providers}.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    script.write_text(LUA % paths_file)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "bench"}
    started = time.monotonic()
    server = subprocess.Popen(
        [LITESTAR, "--app", "app:create_app", "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        startup = time.monotonic() - started
        # Warm both paths once before measuring.
        run_wrk(f"{base}/health", None, 2, 16)
        run_wrk(base, script, 2, 16)
        health, search, ratios = [], [], []
        for _ in range(rounds):
            h, _lat = run_wrk(f"{base}/health", None, seconds, 16)
            s, _lat = run_wrk(base, script, seconds, 16)
            health.append(h)
            search.append(s)
            ratios.append(s / h)
        # One connection: each request alone, so its time is the latency. Median of the rounds.
        latencies = [run_wrk(base, script, seconds, 1)[1] for _ in range(rounds)]
        latency = statistics.median(latencies)
        return {
            "providers": providers,
            "distinct_searches": len(paths),
            "startup_s": round(startup, 1),
            "health_rps": [round(x) for x in health],
            "search_rps": [round(x) for x in search],
            "ratio_per_round": [round(x, 3) for x in ratios],
            "ratio_median": round(statistics.median(ratios), 3),
            "search_p50_ms_1conn": round(latency, 3),
            "search_p50_ms_1conn_per_round": [round(x, 3) for x in latencies],
            "server_peak_rss_mb": round(peak_rss_mb(server.pid), 1),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="orthodex-bench-") as tmp:
        results = [bench_size(n, args.rounds, args.seconds, Path(tmp)) for n in args.providers]
    for r in results:
        print(json.dumps(r))
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(
            json.dumps(
                {
                    "latency_ratio_large_vs_small": round(
                        float(large["search_p50_ms_1conn"]) / float(small["search_p50_ms_1conn"]), 2
                    )
                }
            )
        )


if __name__ == "__main__":
    main()
