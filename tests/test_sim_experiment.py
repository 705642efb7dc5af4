"""Experiment runner and e2sim CLI: bad parameters, tiny end-to-end runs, dataset file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from e2sim.channel import Scenario
from e2sim.cli import main
from e2sim.experiment import (
    ModelSource,
    CONDITION_GRID,
    TABLE6_ROWS,
    generate_dataset,
    generate_dataset_conditions,
    paired_gain,
    run_experiment,
    table6_markdown,
)
from e2sim.traces import record_trace
from lighttune_core.features import FEATURE_NAMES, N_FEATURES
from lighttune_core.tuner import LightTuneModel

TINY = ["--ues", "4", "--duration-s", "0.2", "--csi-period", "10", "--quiet", "--quick-samples", "60"]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--profile", "TDL-Z30", "unknown profile"),
        ("--csi-period", "33", "csi_period_ms"),
        ("--doppler", "-5", "doppler_hz"),
        ("--ues", "0", "n_ue"),
    ],
)
def test_experiment_cli_rejects_bad_scenario(flag: str, value: str, message: str,
                                             capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["experiment", "--quiet", "--out-dir", str(tmp_path), flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "error" in err
    assert not (tmp_path / "experiment.csv").exists()


def test_experiment_cli_rejects_reversed_snr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "--quiet", "--snr", "24", "16"]) == 2
    assert "reversed" in capsys.readouterr().err


def test_tiny_experiment_writes_csv_markdown_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["experiment", "--profile", "TDL-B50", "--doppler", "30", "--snr", "16", "24",
            "--seed", "3", "--out-dir", str(tmp_path), *TINY]
    assert main(args) == 0
    with (tmp_path / "experiment.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["scheme"] for r in rows] == ["OLLA", "CQI-Tune", "RI-CQI-Tune"]
    for r in rows:
        assert float(r["mean_throughput_mbps"]) > 0
        assert 0.0 <= float(r["bler"]) <= 1.0
    assert float(rows[0]["gain_over_olla_pct"]) == 0.0
    md = (tmp_path / "experiment.md").read_text()
    assert "in-process quick model" in md and "RI-CQI-Tune" in md
    png = (tmp_path / "experiment.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Model:" in capsys.readouterr().out


def test_experiment_and_table6_load_the_packaged_model_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --model or --quick-samples the runs use the model the xApp ships (no 30 s of
    quick training first); both options at once are refused."""
    import e2sim.cli as e2cli
    from lighttune_models import BUILTIN_MODEL_FILE, builtin_model_bytes

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a quick model was trained")

    monkeypatch.setattr(e2cli, "quick_model", no_training)
    args = ["experiment", "--ues", "2", "--duration-s", "0.05", "--csi-period", "10", "--quiet",
            "--out-dir", str(tmp_path)]
    assert main(args) == 0
    assert f"packaged offline model {BUILTIN_MODEL_FILE}" in (tmp_path / "experiment.md").read_text()
    seen: dict[str, object] = {}
    monkeypatch.setattr(e2cli, "run_table6", lambda model, *a, **k: seen.setdefault("model", model) and [])
    monkeypatch.setattr(e2cli, "table6_markdown", lambda *a, **k: "")
    main(["table6", "--rows", "0", "--quiet", "--out-dir", str(tmp_path)])
    source = seen["model"]
    assert f"packaged offline model {BUILTIN_MODEL_FILE}" in source.description  # type: ignore[attr-defined]
    # the very model the xApp loads for modelPath "builtin", weights included
    assert source.model.to_bytes() == builtin_model_bytes()  # type: ignore[attr-defined]
    capsys.readouterr()
    assert main([*args, "--model", str(tmp_path / "m.ltm"), "--quick-samples", "8"]) == 2
    assert "not both" in capsys.readouterr().err


def test_experiment_plot_gives_each_scheme_one_colour_in_both_panels(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from e2sim.experiment import plot_result

    scenario = Scenario(profile="TDL-B50", n_ue=3, snr_db=(16.0, 24.0), csi_period_ms=10, seed=2)
    result = run_experiment(scenario, 0.1, ModelSource(LightTuneModel(seed=1), "untrained test model"))
    monkeypatch.setattr(plt, "close", lambda fig: None)  # keep the figure to look at it
    plot_result(result, tmp_path / "experiment.png")
    top, bottom = plt.gcf().axes
    colour = {line.get_label(): line.get_color() for line in top.get_lines()}
    assert len(set(colour.values())) == 3
    for line in bottom.get_lines():  # "<scheme> fine-tuned" / "<scheme> frozen"
        scheme = line.get_label().rsplit(" ", 1)[0]
        assert line.get_color() == colour[scheme], line.get_label()
    plt.close("all")


@pytest.mark.float_sensitive
def test_experiment_from_trace_matches_live(tmp_path: Path) -> None:
    scenario = Scenario(profile="TDL-A30", n_ue=3, snr_db=(10.0, 20.0), csi_period_ms=10, seed=2)
    path = record_trace(scenario, 200, tmp_path / "t.npz")
    model = ModelSource(LightTuneModel(seed=1), "untrained test model")
    from e2sim.traces import TraceReplay

    live = run_experiment(scenario, 0.1, model)
    replay = run_experiment(scenario, 0.1, model, source=TraceReplay(path))
    assert replay.source == "trace t.npz"
    for s in live.schemes:
        assert np.array_equal(live.schemes[s].throughput_bps, replay.schemes[s].throughput_bps)
        assert live.schemes[s].n_nack == replay.schemes[s].n_nack
    with pytest.raises(ValueError, match="trace holds 200 slots"):
        run_experiment(scenario, 1.0, model, source=TraceReplay(path))


def test_dataset_cli_and_generator(tmp_path: Path) -> None:
    out = tmp_path / "d.npz"
    assert main(["dataset", "--out", str(out), "--samples", "50", "--ues", "8",
                 "--csi-period", "10", "--seed", "4", "--quiet"]) == 0
    with np.load(out) as npz:
        x, y, meta = npz["features"], npz["labels"], json.loads(str(npz["meta"]))
    assert x.shape == (50, N_FEATURES) and y.shape == (50,)
    assert set(np.round(y, 1)) <= set(np.round(np.arange(11) * 0.1, 1))
    assert meta["scenario"]["profile"] == "TDL-A30" and meta["seed"] == 4
    assert len(meta["feature_names"]) == N_FEATURES
    # exploration makes candidate decisions differ from the reported ones in some samples
    sc = Scenario(n_ue=8, csi_period_ms=10, seed=4)
    x2, _ = generate_dataset(sc, 50)
    assert np.array_equal(x, x2)
    differs = (x2[:, 6] != x2[:, 5]) | (x2[:, 7] != x2[:, 4])
    assert 0 < differs.mean() < 1


def test_dataset_over_several_conditions(tmp_path: Path) -> None:
    # each condition is its own cell with its share of the samples, in the order given;
    # the file records the conditions, and the result does not depend on the worker count
    out = tmp_path / "c.npz"
    assert main(["dataset", "--out", str(out), "--samples", "41", "--ues", "8", "--csi-period", "10",
                 "--seed", "2", "--quiet", "--conditions", "low:low", "high:high", "--workers", "2"]) == 0
    with np.load(out) as npz:
        x, meta = npz["features"], json.loads(str(npz["meta"]))
    assert x.shape == (41, N_FEATURES)
    assert [(c["correlation"], c["snr_range"]) for c in meta["conditions"]] == [("low", "low"), ("high", "high")]
    snr = x[:, FEATURE_NAMES.index("csirs_snr")]
    assert snr[:21].max() < snr[21:].min()  # 0-12 dB share first (21 = 41 // 2 + 1), then 28-40 dB
    sc = Scenario(n_ue=8, csi_period_ms=10, seed=2)
    x1, _ = generate_dataset_conditions(sc, [("low", "low"), ("high", "high")], 41, workers=1)
    assert np.array_equal(x, x1)
    assert len(CONDITION_GRID) == 9 and len(set(CONDITION_GRID)) == 9


@pytest.mark.parametrize("spec", ["low", "low:mid", "strong:high", ":"])
def test_dataset_refuses_bad_conditions(spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.npz"
    assert main(["dataset", "--out", str(out), "--samples", "10", "--quiet", "--conditions", spec]) == 2
    assert "CORRELATION:SNR" in capsys.readouterr().err and not out.exists()


def test_paired_gain_and_table6_rendering() -> None:
    base = np.array([10.0, 20.0, 30.0])
    g = paired_gain(base + 2.0, base)
    assert g.gain == pytest.approx(0.1) and g.ci_low == pytest.approx(0.1)
    noisy = paired_gain(base + np.array([1.0, -1.0, 3.0]), base)
    assert noisy.ci_low < noisy.gain < noisy.ci_high
    assert len(TABLE6_ROWS) == 16
    md = table6_markdown([{"row": 1, "snr": "medium", "cqi": (0.05, 0.01, 0.09),
                           "ri_cqi": (0.02, -0.01, 0.05), "olla_bler": 0.1}], "m", 4, 1.0)
    assert "TDL-B50, 30 Hz" in md and "+5.0% [+1.0, +9.0] | 12.1%" in md
