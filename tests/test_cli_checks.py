"""Command lines check their arguments and outputs before any work, and say what went wrong
in one line; help texts and progress bars say what they count."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import e2sim.cli as e2cli
import e2sim.experiment as experiment
from e2sim.channel import Scenario

ROOT = Path(__file__).resolve().parents[1]


def _no_work(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("work started before the arguments were checked")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dataset_refuses_a_missing_output_directory_before_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(e2cli, "generate_dataset_parallel", _no_work)
    out = tmp_path / "missing" / "x.npz"
    assert e2cli.main(["dataset", "--out", str(out), "--samples", "10", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert e2cli.main(["record-trace", "--out", str(out), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_table6_checks_rows_and_output_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(e2cli, "quick_model", _no_work)
    monkeypatch.setattr(e2cli, "run_table6", _no_work)
    assert e2cli.main(["table6", "--rows", "3", "99", "--quiet", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--rows 99" in err and "0-15" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert e2cli.main(["table6", "--rows", "3", "--quiet", "--out-dir", str(blocker / "sub")]) == 2
    assert "--out-dir" in capsys.readouterr().err


def test_experiment_on_an_unwritable_out_dir_gives_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "e2sim", "experiment", "--quiet", "--ues", "2", "--duration-s",
                          "0.05", "--quick-samples", "8", "--out-dir", str(blocker / "results")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and "--out-dir" in lines[0], out.stderr
    assert time.monotonic() - start < 60


def test_run_against_a_closed_port_says_connection_refused_at_once(tmp_path: Path) -> None:
    port = _closed_port()
    proc = subprocess.Popen([sys.executable, "-m", "e2sim.node", "--ric", f"127.0.0.1:{port}", "--transport", "tcp",
                             "--ues", "2", "--duration", "1", "--link-wait", "20", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stderr is not None
        start = time.monotonic()
        line = proc.stderr.readline()  # default log level (WARNING): the first failure is shown
        assert "connection refused" in line.lower(), line
        assert time.monotonic() - start < 15
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_demo_checks_the_scenario_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import lighttune_demo.cli as demo

    monkeypatch.setattr(demo.subprocess, "Popen", _no_work)
    monkeypatch.setattr(demo, "resolve_model", _no_work)
    assert demo.main(["--profile", "X"]) == 1
    err = capsys.readouterr().err
    assert "unknown profile 'X'" in err and len(err.strip().splitlines()) == 1
    assert demo.main(["--ues", "0"]) == 1
    assert "n_ue" in capsys.readouterr().err


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from lighttune_demo.cli import build_parser as demo_parser
    from lighttune_xapp.local import build_parser as local_parser
    from lighttune_xapp.train import _parser as train_parser
    from lighttune_xapp.transport.ric import build_parser as ric_parser

    return {"e2sim": e2cli.build_parser(), "lighttune-xapp --mode local": local_parser(),
            "lighttune-xapp --mode ric": ric_parser(), "lighttune-demo": demo_parser(),
            "lighttune-train": train_parser()}


def _walk(name: str, parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                out += _walk(f"{name} {sub_name}", sub)
    return out


def test_every_option_has_help_and_no_help_shows_a_doubled_percent() -> None:
    missing, doubled = [], []
    for top, parser in _parsers().items():
        for name, p in _walk(top, parser):
            for action in p._actions:
                if action.option_strings and not action.help and action.help != argparse.SUPPRESS:
                    missing.append(f"{name} {'/'.join(action.option_strings)}")
            if "%%" in p.format_help():
                doubled.append(name)
    assert missing == [] and doubled == []


def test_compare_hint_only_when_the_xapp_modes_do_not_match() -> None:
    from e2sim.node import compare_mode_hint

    def cells(decisions: dict[str, int]) -> dict[str, Any]:
        return {"cells": [{"cell_id": i + 1, "scheme": s, "controls_applied": 10, "ue_decisions_applied": n}
                          for i, (s, n) in enumerate(decisions.items())]}

    assert compare_mode_hint(cells({"olla": 0, "cqi": 320, "ri_cqi": 320})) is None  # what the demo runs
    hint = compare_mode_hint(cells({"olla": 0, "cqi": 0, "ri_cqi": 320}))  # cell 2 left in mode off
    assert hint is not None and "2 (cqi)" in hint and "--cell-mode 2=cqi" in hint and "--cell-mode 1=off" in hint
    assert compare_mode_hint(cells({"olla": 320, "cqi": 320})) is not None  # the OLLA cell was tuned
    no_link = cells({"olla": 0, "cqi": 0})
    for c in no_link["cells"]:
        c["controls_applied"] = 0
    assert compare_mode_hint(no_link) is None


def _bar_counts(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"\| *(\d+)/(\d+) \[", text)]


def test_dataset_bar_ends_at_its_total(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = Scenario(n_ue=8, csi_period_ms=10, seed=4)
    x, _y = experiment.generate_dataset(scenario, 50, progress=True)
    assert x.shape[0] == 50
    counts = _bar_counts(capsys.readouterr().err)
    assert counts and counts[-1] == (50, 50) and all(n <= total == 50 for n, total in counts)


def test_table6_bar_counts_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def fake_job(args: tuple[Any, ...]) -> dict[str, Any]:
        return {"row": args[0], "snr": args[1]}

    monkeypatch.setattr(experiment, "_table6_job", fake_job)
    from lighttune_core.tuner import LightTuneModel

    model = experiment.ModelSource(LightTuneModel(seed=0), "test")
    experiment.run_table6(model, 2, 0.1, 1, workers=1, rows=[0, 1], progress=True)
    err = capsys.readouterr().err
    assert "run/s" in err or "s/run" in err
    assert "slot" not in err and _bar_counts(err)[-1] == (4, 4)


def test_training_bar_total_does_not_jump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lighttune_core.synthetic import synthetic_threshold_task
    from lighttune_xapp.train import main as train_main

    x, y = synthetic_threshold_task(64, seed=1)
    data = experiment.write_dataset(tmp_path / "d.npz", x, y, {"scenario": "test"})
    assert train_main([str(data), "--epochs", "3", "--batch-size", "32"]) == 0
    counts = _bar_counts(capsys.readouterr().err)
    assert counts and {total for _, total in counts} == {counts[-1][1]} and counts[-1][0] == counts[-1][1]
    assert np.isfinite(counts[-1][1])
