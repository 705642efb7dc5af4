"""Reproduction studies (e2sim.study): job summaries, fine-tuning off, δ copies, CLI, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from e2sim.cli import main
from e2sim.experiment import ExperimentResult, ModelSource, run_experiment
from e2sim.study import (
    delta_jobs,
    e2_loop_comparison,
    finetune_jobs,
    finetune_paired_rows,
    loss_jobs,
    make_scenario,
    plot_table6,
    prediction_jobs,
    prediction_rows,
    run_jobs,
    scenario_label,
    with_hyperparameters,
)
from lighttune_core.tuner import LightTuneModel

TINY_SPEC = ("TDL-B50", 30.0, "low", 40, "medium")
"""A cheap scenario: 40 ms CSI-RS period (10 first transmissions per UE and period, enough to be learned from), so 0.3 s holds 7 periods."""


@pytest.fixture(scope="module")
def finetune_results() -> list[dict]:
    model = ModelSource(LightTuneModel(seed=0), "random model (test)")
    return run_jobs(finetune_jobs(model, n_ue=4, seed=3, duration_s=0.3, specs=[TINY_SPEC]), workers=1)


def test_finetune_off_never_updates_and_matches_frozen(finetune_results: list[dict]) -> None:
    on, off = finetune_results
    assert (on["learn"], off["learn"]) == (True, False)
    for name, s in off["schemes"].items():
        assert s["updates"] == 0, name
        assert s["samples"] > 0
        assert s["error_tuned"] == pytest.approx(s["error_frozen"], abs=1e-12), name
    # a random start model far off (this one: mean |error| 0.758; not every random block-input
    # network is, seed 4's guesses 0.327 already, below delta) gets fine-tuned, which lowers
    # the error (to 0.417 measured)
    assert on["schemes"]["olla"]["error_frozen"] > 0.5
    assert on["schemes"]["olla"]["updates"] > 0
    assert on["schemes"]["olla"]["error_tuned"] < on["schemes"]["olla"]["error_frozen"]


def test_same_seed_gives_same_olla_arm(finetune_results: list[dict]) -> None:
    on, off = finetune_results
    # common random numbers across jobs: OLLA does not depend on the model
    assert on["schemes"]["olla"]["throughput_bps"] == off["schemes"]["olla"]["throughput_bps"]
    assert on["schemes"]["olla"]["bler"] == off["schemes"]["olla"]["bler"]


def test_summary_figures_are_consistent(finetune_results: list[dict]) -> None:
    s = finetune_results[0]["schemes"]["olla"]
    assert s["error_reduction_pct"] == pytest.approx(100 * (1 - s["error_tuned"] / s["error_frozen"]))
    assert s["updates_per_1000"] == pytest.approx(1000 * s["updates"] / s["samples"])
    series = [v for v in s["error_tuned_series"] if v is not None]
    assert len(s["error_tuned_series"]) == len(s["period_end_s"])
    assert min(series) <= s["error_tuned"] <= max(series)
    assert s["gain"] == [0.0, 0.0, 0.0]  # OLLA against itself
    rows = prediction_rows(finetune_results)
    assert rows[0]["scenario"] == scenario_label(TINY_SPEC)
    assert rows[1]["updates"] == 0


def test_paired_on_vs_off_rows(finetune_results: list[dict]) -> None:
    rows = finetune_paired_rows(finetune_results)
    assert [r["scheme"] for r in rows] == ["CQI-Tune", "RI-CQI-Tune"]
    on, off = finetune_results
    t_on = np.array(on["schemes"]["ri_cqi"]["throughput_bps"])
    t_off = np.array(off["schemes"]["ri_cqi"]["throughput_bps"])
    expected = 100 * (t_on - t_off).mean() / t_off.mean()
    assert rows[1]["gain_on_vs_off_pct"] == pytest.approx(expected)
    assert rows[1]["ci95_low_pct"] <= rows[1]["gain_on_vs_off_pct"] <= rows[1]["ci95_high_pct"]


def test_with_hyperparameters_keeps_parameters() -> None:
    model = LightTuneModel(seed=2)
    copy = with_hyperparameters(model, delta=0.1)
    assert copy.delta == 0.1 and model.delta == 0.3
    for a, b in zip(copy.params.weights, model.params.weights):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((20, 12))
    np.testing.assert_array_equal(copy.predict_many(x), model.predict_many(x))


def test_delta_jobs_set_delta_and_reject_bad_values() -> None:
    model = ModelSource(LightTuneModel(seed=0), "m")
    jobs = delta_jobs(model, 4, 1, 0.3, deltas=(0.1, 0.5), specs=[TINY_SPEC])
    assert [LightTuneModel.from_bytes(j.model_bytes).delta for j in jobs] == [0.1, 0.5]
    assert [j.tag for j in jobs] == ["delta=0.1", "delta=0.5"]
    with pytest.raises(ValueError, match="delta"):
        delta_jobs(model, 4, 1, 0.3, deltas=(0.0,), specs=[TINY_SPEC])


def test_loss_jobs_need_one_model_of_each_loss() -> None:
    proposed = ModelSource(LightTuneModel(seed=0), "p")
    softplus = ModelSource(LightTuneModel(seed=0, loss="softplus"), "s")
    jobs = loss_jobs(proposed, softplus, 4, 1, 0.3, specs=[TINY_SPEC])
    assert [LightTuneModel.from_bytes(j.model_bytes).loss for j in jobs] == ["proposed", "softplus"]
    with pytest.raises(ValueError, match="softplus"):
        loss_jobs(proposed, proposed, 4, 1, 0.3, specs=[TINY_SPEC])


def test_study_jobs_run_on_the_chosen_du_preset_and_curve_set(finetune_results: list[dict]) -> None:
    """`e2sim study ... --du X --bler-curves Y`: the jobs' scenario takes both, the summary
    records them, and the same channel on the other curve set gives OLLA another outcome."""
    assert make_scenario(TINY_SPEC, 4, 1, "oai", "sionna-tables").du_preset == "oai"
    assert make_scenario(TINY_SPEC, 4, 1, "oai", "sionna-tables").bler_curves == "sionna-tables"
    assert (finetune_results[0]["du_preset"], finetune_results[0]["bler_curves"]) == ("srsran", "ldpc-mc")
    from dataclasses import replace

    model = ModelSource(LightTuneModel(seed=0), "random model (test)")
    job = prediction_jobs(model, n_ue=4, seed=3, duration_s=0.3, specs=[TINY_SPEC])[0]
    other = run_jobs([replace(job, bler_curves="sionna-tables")], workers=1)[0]
    assert other["bler_curves"] == "sionna-tables"
    assert other["schemes"]["olla"]["throughput_bps"] != finetune_results[0]["schemes"]["olla"]["throughput_bps"]


def test_make_scenario_rejects_unknown_snr_range() -> None:
    assert make_scenario(TINY_SPEC, 4, 1).snr_db == (16.0, 24.0)
    with pytest.raises(ValueError, match="SNR range"):
        make_scenario(("TDL-B50", 30.0, "low", 10, "extreme"), 4, 1)


def test_study_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "prediction", "--out-dir", str(tmp_path)]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["study", "table6-plot", "--out-dir", str(tmp_path)]) == 2
    assert "--table6-json" in capsys.readouterr().err
    model = tmp_path / "m.ltm"
    model.write_bytes(LightTuneModel(seed=0).to_bytes())
    assert main(["study", "loss", "--model", str(model), "--out-dir", str(tmp_path)]) == 2
    assert "--softplus-model" in capsys.readouterr().err
    assert main(["study", "delta", "--model", str(model), "--ues", "1", "--out-dir", str(tmp_path)]) == 2
    assert "--ues" in capsys.readouterr().err
    assert main(["study", "delta", "--model", str(model), "--only", "7", "--out-dir", str(tmp_path)]) == 2
    assert "--only [7]" in capsys.readouterr().err


def test_table6_plot_from_json(tmp_path: Path) -> None:
    results = [{"row": 0, "snr": "medium", "cqi": [0.01, -0.01, 0.03], "ri_cqi": [0.02, 0.0, 0.04], "olla_bler": 0.1},
               {"row": 5, "snr": "high", "cqi": [0.0, -0.02, 0.02], "ri_cqi": [0.05, 0.01, 0.09], "olla_bler": 0.1}]
    path = tmp_path / "table6.json"
    path.write_text(json.dumps(results))
    assert main(["study", "table6-plot", "--table6-json", str(path), "--out-dir", str(tmp_path)]) == 0
    png = (tmp_path / "table6_gains.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert plot_table6(results, tmp_path / "again.png").is_file()
    from e2sim.study import table6_comparison_rows

    rows = table6_comparison_rows(results)
    assert len(rows) == 4 and (tmp_path / "table6_vs_paper.csv").is_file()
    first = rows[0]  # row 0 medium CQI-Tune: paper 5.3 %, ours 1.0 % [-1.0, 3.0]
    assert (first["channel"], first["snr"], first["scheme"], first["paper_pct"]) == ("TDL-A10", "medium", "CQI-Tune", 5.3)
    assert first["gain_pct"] == pytest.approx(1.0) and not first["paper_in_ci"]
    assert first["difference_pct"] == pytest.approx(1.0 - 5.3)
    last = rows[3]  # row 5 high RI-CQI-Tune: paper 15.5 %, ours 5 % [1, 9]
    assert last["paper_pct"] == 15.5 and not last["paper_in_ci"]
    assert rows[2]["paper_pct"] == 3.4 and rows[2]["paper_in_ci"] is False


def test_training_curve_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    curve = tmp_path / "m.curve.csv"
    lines = ["layer,epoch,loss,holdout_accuracy,holdout_mean_abs_error"]
    lines += [f"{lay},{e},{5.0 / e - (lay - 1) * 0.5},{0.5 + 0.04 * e},{0.1 / e}" for lay in (1, 2) for e in range(1, 11)]
    curve.write_text("\n".join(lines) + "\n")
    assert main(["study", "training-curve", "--curve", str(curve), "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss\n1,2\n")
    assert main(["study", "training-curve", "--curve", str(bad), "--out-dir", str(tmp_path)]) == 2
    assert "not a lighttune-train curve" in capsys.readouterr().err


def _e2_results_from(result: ExperimentResult) -> dict:
    """An ``e2sim run --compare`` results dict holding an in-process run's figures."""
    cells = [{"scheme": name, "bler": res.bler, "ue_throughput_bps": [float(v) for v in res.throughput_bps]}
             for name, res in result.schemes.items()]
    gains = {name: {"gain": result.gain(name).gain, "ci95_low": result.gain(name).ci_low,
                    "ci95_high": result.gain(name).ci_high}
             for name in result.schemes if name != "olla"}
    return {"scenario": result.scenario.to_dict(), "simulated_s": result.duration_s, "clock": "lockstep",
            "completed": True, "wall_s": 1.0, "cells": cells, "gains_over_olla": gains}


def test_e2_comparison_agrees_with_itself_and_sees_a_difference() -> None:
    model = ModelSource(LightTuneModel(seed=0), "random model (test)")
    scenario = make_scenario(TINY_SPEC, 4, 5)
    result = run_experiment(scenario, 0.2, model, schemes=("olla", "ri_cqi"))
    e2 = _e2_results_from(result)
    rows, md = e2_loop_comparison(e2, model)
    assert [r["scheme"] for r in rows] == ["OLLA", "RI-CQI-Tune"]
    for r in rows:  # same seed, same model: the in-process rerun is identical
        assert r["e2_vs_inprocess"][0] == pytest.approx(0.0, abs=1e-12)
        assert r["e2_mbps_per_ue"] == pytest.approx(r["inprocess_mbps_per_ue"])
    assert "RI-CQI-Tune" in md and "seed 5" in md
    # a loop that served 10 % less to every UE is seen as -10 %
    e2["cells"][1]["ue_throughput_bps"] = [0.9 * v for v in e2["cells"][1]["ue_throughput_bps"]]
    rows, _ = e2_loop_comparison(e2, model)
    assert rows[1]["e2_vs_inprocess"][0] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="field"):
        e2_loop_comparison({"cells": []}, model)
    with pytest.raises(ValueError, match="--compare"):
        e2_loop_comparison({**e2, "cells": e2["cells"][:1]}, model)


def test_constant_target_reference(finetune_results: list[dict]) -> None:
    s = finetune_results[1]["schemes"]["olla"]
    assert 0.0 <= s["label_share_at_target"] <= 1.0
    # the mean |0.1 - y| is at least |0.1 - mean(y)| (Jensen) and at most 0.9
    assert abs(0.1 - s["label_mean"]) - 1e-12 <= s["error_constant_target"] <= 0.9
    row = prediction_rows(finetune_results)[1]
    assert row["error_constant_target"] == s["error_constant_target"]


def test_error_plot_series_and_trailing_average(finetune_results: list[dict], tmp_path: Path) -> None:
    from e2sim.study import _moving, plot_error_over_time

    np.testing.assert_allclose(_moving(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    s = finetune_results[0]["schemes"]["olla"]
    assert len(s["error_constant_series"]) == len(s["period_end_s"])
    png = plot_error_over_time(finetune_results, tmp_path / "e.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_dataset_report_counts_labels_and_offsets() -> None:
    from e2sim.study import dataset_report

    rng = np.random.default_rng(0)
    x = rng.random((100, 12))
    x[:, 4], x[:, 5] = 10 / 15, 2 / 4  # reported CQI 10, RI 2
    x[:, 6], x[:, 7] = 2 / 4, 10 / 15  # baseline decision ...
    x[:40, 7] = 8 / 15  # ... except 40 samples backed off by 2 CQI steps
    y = np.full(100, 0.1)
    y[:30] = 0.0
    md = dataset_report(x, y, LightTuneModel(seed=0))
    assert "| 0.0 | 30.0% |" in md and "| 0.1 | 70.0% |" in md
    assert "Best constant: ŷ = 0.1, error 0.0300, accuracy 0.700" in md
    assert "| +0 | -2 | 40 | 0.025 | 0.750 | 0.000 |" in md
    assert "| +0 | +0 | 60 | 0.100 | 0.000 | 0.000 |" in md
    assert "majority label 0.700" in md
    with pytest.raises(ValueError, match="features"):
        dataset_report(x[:, :5], y)
