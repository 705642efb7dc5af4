"""The installed package works outside the checkout: `pip install .` ships the default
descriptor, and the local xApp starts from an installed copy without CONFIG_FILE."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ROOT / "lighttune_xapp" / "descriptor"


@pytest.mark.parametrize("name", ["config-file.json", "schema.json"])
def test_packaged_descriptor_equals_the_checkouts(name: str) -> None:
    assert (PACKAGED / name).read_bytes() == (ROOT / "xapp-descriptor" / name).read_bytes(), (
        f"lighttune_xapp/descriptor/{name} differs from xapp-descriptor/{name}: copy it over"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built into a wheel and installed (no dependencies) into a directory of its own."""
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("lighttune_models", "lighttune_core", "lighttune_e2", "lighttune_xapp", "e2sim", "lighttune_demo"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels, site = tmp / "wheels", tmp / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)], capture_output=True,
                           text=True, timeout=600)
    if built.returncode != 0:
        pytest.skip(f"cannot build the wheel here: {built.stderr[-500:]}")
    (wheel,) = wheels.glob("lighttune_xapp-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=300)
    return site


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONFIG_FILE", "XAPP_DESCRIPTOR_PATH", "PYTHONPATH")}
    return {**env, "PYTHONPATH": str(site)}


def test_installed_local_xapp_starts_without_a_checkout(installed: Path, tmp_path: Path) -> None:
    env = _env(installed)
    where = subprocess.run([sys.executable, "-c", "import lighttune_xapp.app as a; print(a.__file__);"
                            "print(a.find_descriptor())"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert where.returncode == 0, where.stderr
    module, descriptor = where.stdout.split()
    assert Path(module).is_relative_to(installed) and Path(descriptor).is_relative_to(installed)
    ready = tmp_path / "ready.json"
    log = tmp_path / "xapp.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lighttune_xapp", "--mode", "local", "--listen",
                                 "127.0.0.1:0", "--transport", "tcp", "--ready-file", str(ready)],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not ready.is_file() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert ready.is_file(), log.read_text()
            assert json.loads(ready.read_text())["port"] > 0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def test_installed_package_ships_the_model_both_the_xapp_and_e2sim_load(installed: Path, tmp_path: Path) -> None:
    """The packaged offline model comes with the wheel, and the xApp's ``modelPath: "builtin"``
    and ``e2sim experiment``'s default read the same file from it."""
    code = ("import lighttune_models as m, hashlib;"
            "from lighttune_xapp.app import load_offline_model;"
            "from e2sim.experiment import packaged_model;"
            "print(m.__file__);"
            "print(hashlib.sha256(m.builtin_model_bytes()).hexdigest());"
            "print(load_offline_model('builtin').to_bytes() == packaged_model().model.to_bytes())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(installed), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    module, digest, same = out.stdout.split()
    assert Path(module).is_relative_to(installed)
    from lighttune_models import BUILTIN_MODEL_FILE

    checkout = ROOT / "lighttune_models" / BUILTIN_MODEL_FILE
    assert digest == hashlib.sha256(checkout.read_bytes()).hexdigest()
    assert same == "True"


def test_installed_demo_takes_a_config_and_checks_it_first(installed: Path, tmp_path: Path) -> None:
    env = _env(installed)
    helped = subprocess.run([sys.executable, "-m", "lighttune_demo.cli", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--config FILE" in helped.stdout
    start = time.monotonic()
    bad = subprocess.run([sys.executable, "-m", "lighttune_demo.cli", "--config", str(tmp_path / "none.json")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "none.json" in bad.stderr and "Traceback" not in bad.stderr
    assert time.monotonic() - start < 60  # refused before any process started
