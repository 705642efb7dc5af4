"""Command lines of the loop: address/mode parsing, clear errors, the demo's results table."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2sim.node import main as e2sim_run_main
from e2sim.node import parse_ric_address
from lighttune_core.cell import TuneMode
from lighttune_core.tuner import LightTuneModel
from lighttune_demo.cli import results_table
from lighttune_xapp.local import main as local_main
from lighttune_xapp.local import parse_cell_mode, parse_host_port


def test_addresses_and_cell_modes_parse_or_name_the_bad_value() -> None:
    assert parse_host_port("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_host_port("36421") == ("0.0.0.0", 36421)
    assert parse_ric_address("10.0.0.5") == ("10.0.0.5", 36421)
    assert parse_cell_mode("7=cqi") == ("7", TuneMode.CQI)
    with pytest.raises(ValueError, match="port"):
        parse_host_port("host:http")
    with pytest.raises(ValueError, match="65535"):
        parse_ric_address("host:70000")
    with pytest.raises(ValueError, match="off, cqi, ri_cqi"):
        parse_cell_mode("1=fast")
    with pytest.raises(ValueError, match="CELL=MODE"):
        parse_cell_mode("ri_cqi")


def test_xapp_refuses_a_missing_model_with_the_field_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = local_main(["--listen", "127.0.0.1:0", "--transport", "tcp", "--model", str(tmp_path / "none.ltm")])
    assert code == 2
    assert "controls.modelPath" in capsys.readouterr().err


def test_e2sim_run_rejects_bad_scenarios_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    assert e2sim_run_main(["--profile", "TDL-X9", "--duration", "1"]) == 2
    assert "unknown profile" in capsys.readouterr().err
    assert e2sim_run_main(["--compare", "olla,fast"]) == 2
    assert "--compare" in capsys.readouterr().err
    assert e2sim_run_main(["--duration", "0.1", "--csi-period", "80"]) == 2
    assert "two CSI periods" in capsys.readouterr().err


def test_demo_table_joins_e2sim_results_and_xapp_stats() -> None:
    cell = {"throughput_mbps_per_ue": 100.0, "bler": 0.1, "controls_applied": 10, "control_timeouts": 0}
    e2sim = {
        "cells": [dict(cell, scheme="olla"), dict(cell, scheme="cqi", throughput_mbps_per_ue=103.0),
                  dict(cell, scheme="ri_cqi", throughput_mbps_per_ue=110.0, bler=0.08)],
        "gains_over_olla": {"cqi": {"gain": 0.03, "ci95_low": -0.01, "ci95_high": 0.07},
                            "ri_cqi": {"gain": 0.10, "ci95_low": 0.05, "ci95_high": 0.15}},
        "scenario": {"profile": "TDL-B50", "doppler_hz": 30.0, "correlation": "low", "snr_db": [16.0, 24.0],
                     "csi_period_ms": 80, "n_ue": 32, "seed": 1, "du_preset": "srsran", "bler_curves": "ldpc-mc"},
        "simulated_s": 6.0,
    }
    xapp = {"cells": {"1": {"n_updates": 5, "mean_abs_error": 0.2, "mean_abs_error_frozen": 0.4},
                      "3": {"n_updates": 40, "mean_abs_error": 0.15, "mean_abs_error_frozen": 0.35}}}
    table = results_table(e2sim, xapp, "test model")
    rows = {line.split()[0]: line for line in table.splitlines() if line[:4] in ("OLLA", "CQI-", "RI-C")}
    assert "baseline" in rows["OLLA"] and "0.200 (0.400)" in rows["OLLA"]
    assert "+10.0% [+5.0%, +15.0%]" in rows["RI-CQI-Tune"] and " 40 " in rows["RI-CQI-Tune"]
    assert "+3.0% [-1.0%, +7.0%]" in rows["CQI-Tune"] and "n/a" in rows["CQI-Tune"]  # no xApp stats for cell 2
    assert "30 controls applied, 0 timed out" in table
    assert "DU: srsran link-adaptation preset, ldpc-mc BLER curves" in table  # what the gains were measured on


def test_train_model_script_refuses_bad_options_before_any_work() -> None:
    import subprocess

    script = Path(__file__).resolve().parents[1] / "scripts" / "train-model"
    for args, message in ((["--epochs", "x"], "positive integers"), (["--bogus"], "unknown option"),
                          (["--bler-curves", "ldpc"], "--bler-curves must be"),
                          (["--conditions", "all"], "--conditions must be"),
                          (["--average-tail", "1"], "--average-tail takes a fraction"),
                          (["--extra-csi-period", "80"], "--extra-csi-period must be"),
                          (["--extra-csi-period", "40,"], "--extra-csi-period must be"),
                          (["--extra-csi-period", "20,40,20"], "lists a period twice")):
        done = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and message in done.stderr
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "83,200-sample dataset" in shown.stdout and "set -e" not in shown.stdout
    for text in ("offline-v9.ltm", "offline-v8.ltm", "offline-v6.ltm", "--readout", "training curve PNG"):
        assert text in shown.stdout
    assert "--average-tail F" in shown.stdout and "--extra-csi-period MS[,MS...]" in shown.stdout


def test_demo_runs_the_packaged_model_and_trains_a_stand_in_only_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import e2sim.experiment
    import lighttune_demo.cli as demo
    from lighttune_models import BUILTIN_MODEL_FILE, builtin_model_bytes

    path, what = demo.resolve_model(None, tmp_path, seed=1)
    assert path.read_bytes() == builtin_model_bytes() and what == f"packaged offline model {BUILTIN_MODEL_FILE}"

    def missing() -> bytes:
        raise FileNotFoundError("no packaged model")

    trained = e2sim.experiment.ModelSource(LightTuneModel(seed=4), "stand-in")
    monkeypatch.setattr(demo, "builtin_model_bytes", missing)
    monkeypatch.setattr(e2sim.experiment, "quick_model", lambda **kwargs: trained)
    path, what = demo.resolve_model(None, tmp_path, seed=1)
    assert path.read_bytes() == trained.model.to_bytes() and what == "stand-in"
    assert "training a small stand-in" in capsys.readouterr().err
