"""scripts/setup: refuses unknown extras and a Python without venv support before doing anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sandbox(tmp_path: Path) -> Path:
    """A copy of scripts/setup and pyproject.toml (setup works in its script's parent directory)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path / "scripts" / "setup"


def test_unknown_extra_fails_and_names_the_known_ones(tmp_path: Path) -> None:
    setup = _sandbox(tmp_path)
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run([str(setup), "ric,tset"], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode != 0
    assert "unknown extra 'tset'" in out.stderr and "ric, test" in out.stderr
    assert not (tmp_path / ".venv").exists()  # refused before creating anything


def test_python_without_ensurepip_is_reported_clearly(tmp_path: Path) -> None:
    setup = _sandbox(tmp_path)
    fake = tmp_path / "fake"
    (fake / "ensurepip").mkdir(parents=True)
    (fake / "ensurepip" / "__init__.py").write_text('raise ImportError("ensurepip is not available")\n')
    python = tmp_path / "python3"  # a Python whose ensurepip is missing, as on Debian without python3-venv
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{fake}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "PYTHON": str(python), "SETUP_NO_APT": "1"}
    out = subprocess.run([str(setup), "test"], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 1
    assert "ensurepip module is missing" in out.stderr and "apt-get install python3." in out.stderr
    assert not (tmp_path / ".venv").exists()
