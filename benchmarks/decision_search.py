"""The decision search on realistic inputs: exact pruning and float32 compute.

Questions: how many candidate predictions does the exact pruning of RI-CQI-Tune / CQI-Tune
(``prune=True``) save, and does float32 compute change decisions (and how much faster is it)?

Inputs are realistic: a quickly trained offline model (``e2sim.experiment.quick_model``) and
per-UE reports of the simulated DU (TDL channels, low / medium / high SNR) for a number of
CSI periods. For every period both searches run on the *same* model and reports (no
learning in between): ``CellTuner(model, mode)`` in float64 and with
``search_dtype=np.float32``. Figures per mode:

* the share of UE decisions (rank, CQI) that differ, and of candidate BLER predictions that
  differ (the argmax over the 11 labels moved);
* for the differing decisions, the loss of the float32 choice in the float64 objective
  ``r · SE(c) · (1 − BLER₆₄)`` (RI-CQI-Tune) relative to the float64 choice;
* pruning: the share of candidate rows the pruned searches send to the predictor, and
  whether their decisions equal the full searches' (they must);
* CPU time of one 1,000-UE search (median of repeated runs, one BLAS thread, pinned to one
  core when possible) in both dtypes.

Run from the repository root::

    taskset -c 0 python benchmarks/decision_search.py [--periods 20] [--ues 200]

Prints the figures and saves ``benchmarks/results/decision_search.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from e2sim.channel import LinkChannel
from e2sim.channel.scenario import paper_scenario
from e2sim.du import DU
from e2sim.experiment import quick_model
from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import build_features
from lighttune_core.linkadapt import cqi_tune, ri_cqi_tune
from lighttune_core.linkadapt.tables import spectral_efficiency
from lighttune_core.report import LinkReports
from results_file import save_results  # benchmarks/ is the script's directory

RESULTS = Path(__file__).resolve().parent / "results" / "decision_search.json"


def du_reports(snr: str, profile: str, n_ue: int, periods: int, seed: int) -> list[LinkReports]:
    """``periods`` consecutive CSI periods of reports of one simulated cell (table RI/CQI + OLLA)."""
    scenario = paper_scenario(profile=profile, snr=snr, n_ue=n_ue, seed=seed)
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    out: list[LinkReports] = []
    while len(out) < periods:
        step = du.step(channel.step())
        if step is not None:
            out.append(step.reports)
    return out


def compare(model: Any, reports: list[LinkReports], mode: TuneMode) -> dict[str, Any]:
    """Decisions of the float64 and float32 searches on the same model and reports."""
    t64 = CellTuner(model, mode)
    t32 = CellTuner(model, mode, search_dtype=np.float32)
    n_ue = n_diff = 0
    cand_rows = cand_diff = 0
    losses: list[float] = []
    for rep in reports:
        d64 = t64.decide(rep)
        d32 = t32.decide(rep)
        diff = (d64.rank != d32.rank) | (d64.cqi != d32.cqi)
        n_ue += len(rep)
        n_diff += int(diff.sum())
        # candidate-level: the same grid RI-CQI-Tune scores, in both dtypes
        ranks = np.clip(rep.ri[:, None] + np.array([0, -1, 1]), 1, 4)
        cqis = np.maximum(rep.cqi[:, None] - np.arange(5), 1)
        grid_r = np.repeat(ranks, 5, axis=1)
        grid_c = np.tile(cqis, (1, 3))
        x = build_features(rep, grid_r, grid_c).reshape(-1, 12)
        b64 = model.predict_many_unchecked(x)
        b32 = model.predict_many_unchecked(x, np.float32)
        cand_rows += b64.size
        cand_diff += int(np.sum(b64 != b32))
        if mode is TuneMode.RI_CQI and diff.any():
            # objective of both choices under the float64 model
            f64 = model.predict_many_unchecked(build_features(rep.select(diff), d64.rank[diff], d64.cqi[diff]))
            f32 = model.predict_many_unchecked(build_features(rep.select(diff), d32.rank[diff], d32.cqi[diff]))
            j64 = d64.rank[diff] * spectral_efficiency(d64.cqi[diff], rep.cqi_table) * (1 - f64)
            j32 = d32.rank[diff] * spectral_efficiency(d32.cqi[diff], rep.cqi_table) * (1 - f32)
            losses.extend(((j64 - j32) / np.maximum(j64, 1e-12)).tolist())
    out: dict[str, Any] = {
        "ue_decisions": n_ue,
        "decisions_changed": n_diff,
        "decisions_changed_share": n_diff / max(n_ue, 1),
        "candidate_predictions": cand_rows,
        "candidate_predictions_changed_share": cand_diff / max(cand_rows, 1),
    }
    if mode is TuneMode.RI_CQI:
        out["objective_loss_of_changed_mean"] = float(np.mean(losses)) if losses else 0.0
        out["objective_loss_of_changed_max"] = float(np.max(losses)) if losses else 0.0
    return out


def pruning(model: Any, reports: list[LinkReports]) -> dict[str, Any]:
    """Candidate rows predicted by the pruned and the full searches, and their agreement."""
    rows = {"ri_cqi_full": 0, "ri_cqi_pruned": 0, "cqi_full": 0, "cqi_pruned": 0}
    same = True

    def counting(key: str) -> Any:
        def predict(x: np.ndarray) -> np.ndarray:
            rows[key] += x.shape[0]
            return model.predict_many_unchecked(x)

        return predict

    for rep in reports:
        a = ri_cqi_tune(counting("ri_cqi_full"), rep)
        b = ri_cqi_tune(counting("ri_cqi_pruned"), rep, prune=True)
        c = cqi_tune(counting("cqi_full"), rep)
        d = cqi_tune(counting("cqi_pruned"), rep, prune=True)
        same &= all(np.array_equal(u, v) for u, v in zip(a + c, b + d))
    return {
        "ri_cqi_rows_share": rows["ri_cqi_pruned"] / max(rows["ri_cqi_full"], 1),
        "cqi_rows_share": rows["cqi_pruned"] / max(rows["cqi_full"], 1),
        "decisions_equal_full_search": bool(same),
    }


def search_time_ms(model: Any, reports: LinkReports, dtype: type, rounds: int) -> float:
    """Median CPU time of one (pruned) RI-CQI-Tune decision of ``reports`` by ``CellTuner``, ms."""
    tuner = CellTuner(model, TuneMode.RI_CQI, search_dtype=dtype)
    tuner.decide(reports)
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        tuner.decide(reports)
        times.append(time.process_time() - t0)
    return 1e3 * float(np.median(times))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--periods", type=int, default=20, help="CSI periods per scenario")
    ap.add_argument("--ues", type=int, default=200, help="UEs per simulated cell")
    ap.add_argument("--rounds", type=int, default=7, help="timing rounds of the 1,000-UE search")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    threadpool_limits(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    source = quick_model(seed=0)
    model = source.model
    out: dict[str, Any] = {"model": source.description, "load_average_1min": os.getloadavg()[0], "scenarios": {}}
    for snr, profile in (("low", "TDL-A30"), ("medium", "TDL-B100"), ("high", "TDL-C200")):
        reports = du_reports(snr, profile, args.ues, args.periods, seed=3)
        key = f"{profile}_{snr}"
        out["scenarios"][key] = {mode.value: compare(model, reports, mode) for mode in (TuneMode.RI_CQI, TuneMode.CQI)}
        out["scenarios"][key]["pruning"] = pruning(model, reports)
        print(key, json.dumps(out["scenarios"][key]))
    big = LinkReports.concat(du_reports("medium", "TDL-A30", 1000, 1, seed=4))
    out["ri_cqi_search_1000_ues_ms"] = {
        "float64": search_time_ms(model, big, np.float64, args.rounds),
        "float32": search_time_ms(model, big, np.float32, args.rounds),
    }
    print("1,000-UE RI-CQI-Tune search, ms:", out["ri_cqi_search_1000_ues_ms"])
    save_results(out, args.out)
    return out


if __name__ == "__main__":
    main()
