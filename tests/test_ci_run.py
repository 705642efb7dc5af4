"""The CI entry point: README's test command first, then the float-sensitive tests under a
second numpy/OpenBLAS CPU-feature setting (.ci/alt_cpu_env.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pytest_lines() -> list[str]:
    return [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
            if "-m pytest" in line and not line.lstrip().startswith("#")]


def test_readme_command_runs_first_then_the_float_sensitive_tests() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"set up \.venv; (\.venv/bin/python -m pytest -q)", readme)
    assert command is not None, "README must state the test command"
    first, *rest = _pytest_lines()
    assert first == f'{command.group(1)} "$@"'
    assert len(rest) == 1 and "-m float_sensitive" in rest[0] and 'env "${alt[@]}"' in rest[0]
    assert re.search(r'^markers = \[\n    "float_sensitive: ', (ROOT / "pyproject.toml").read_text(), re.M)


def test_second_setting_is_really_applied() -> None:
    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "alt_cpu_env.py")], capture_output=True, text=True,
                         timeout=120, check=True)
    setting = dict(line.split("=", 1) for line in out.stdout.splitlines() if line)
    assert set(setting) <= {"NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE"}
    env = {k: v for k, v in os.environ.items() if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")}
    check = [sys.executable, str(ROOT / ".ci" / "alt_cpu_env.py"), "--check"]
    ok = subprocess.run(check, env={**env, **setting}, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    if "OPENBLAS_CORETYPE" in setting:  # the check can fail: a core OpenBLAS does not run is refused
        bad = subprocess.run(check, env={**env, **setting, "OPENBLAS_CORETYPE": "NoSuchCore"}, capture_output=True,
                             text=True, timeout=120)
        assert bad.returncode == 1 and "not NoSuchCore" in bad.stderr
