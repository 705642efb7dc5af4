"""What a prediction cap (``controls.maxPredictionsPerDecision``) costs and buys on a large cell.

A 1,000-UE cell of the field workload (``benchmarks/loop_workload.py``: an e2sim cell,
TDL-B200 50 Hz, high SNR, recorded in closed loop, tiled to 1,000 UEs) runs through one
exact ``CellTuner`` in ``ri_cqi`` mode with the packaged model, deciding before it learns
from each period as the xApp does. Before each decision, each cap's search runs on the very
same state (model, calibration, previous BLER) and is compared with the exact search:

* ``choices_changed``: UE-periods whose RI-CQI-Tune choice differs from the exact search's;
* ``predicted_bits_loss_pct``: ``1 − Σ J(capped) / Σ J(exact)`` per period (``J`` the
  search's objective, delivered bits per RE as the search predicts them), mean and max;
* ``same_rank_changed`` / ``same_rank_score_loss_pct``: the same for the best same-rank
  candidate that the rank-change check compares a rank change with (``SameRankBest``);
* ``cut_ue_periods``: UE-periods with a candidate left unpredicted;
* ``rows``: predicted rows per period (exact: the first number of the list is period 0);
* ``decide_ms``: p50 / p99 wall time of the whole ``CellTuner.decide`` of a separate cell
  run with that cap, the median over ``--rounds`` rounds that run every cap in turn (pin the
  process: ``taskset -c 0``; one BLAS thread).

Run from the repository root::

    taskset -c 0 python benchmarks/search_budget.py [--caps 4000 4500 5000 6000] [--ues 1000]

Prints one line per cap and saves ``benchmarks/results/search_budget.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np
from loop_workload import field_periods  # benchmarks/ is the script's directory
from results_file import RESULTS_DIR, save_results
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.linkadapt import SearchBudget
from lighttune_core.linkadapt.tune import SameRankBest, candidate_rate
from lighttune_core.report import LinkReports
from lighttune_xapp.app import keep_freed_heap_memory, load_offline_model


def _search(tuner: CellTuner, reports: LinkReports, cap: int | None) -> tuple[Any, SameRankBest, SearchBudget]:
    """The tuner's RI-CQI-Tune search on its current state, with ``cap`` rows (None: exact)."""
    same = SameRankBest()
    budget = SearchBudget(cap if cap is not None else 10**12)
    return tuner.search(reports, budget, same), same, budget


def _objective(tuner: CellTuner, reports: LinkReports, res: Any) -> np.ndarray:
    """``J = r · SE(MCS_DU(c, b)) · (1 − adjust(BLER))`` of each UE's choice, float [N]."""
    rate = candidate_rate(reports, res.rank[:, None], res.cqi[:, None], tuner.du_preset, tuner.mcs_table)[:, 0]
    bler = res.predicted_bler
    if tuner.calibration is not None:
        bler = tuner.calibration.adjust(res.rank - reports.ri, bler)
    return rate * (1.0 - np.minimum(bler, 1.0))


def compare(periods: list[LinkReports], caps: list[int]) -> dict[int, dict[str, Any]]:
    """Each cap's search against the exact one, on the states of one exact cell."""
    tuner = CellTuner(load_offline_model("builtin"), TuneMode.RI_CQI)
    stats = {c: {"choices_changed": 0, "same_rank_changed": 0, "cut_ue_periods": 0, "loss": [], "same_loss": [],
                 "rows": []} for c in caps}
    exact_rows: list[int] = []
    for reports in tqdm(periods, desc="periods", unit="period", file=sys.stderr):
        exact, exact_same, exact_budget = _search(tuner, reports, None)
        exact_rows.append(exact_budget.rows)
        j_exact = _objective(tuner, reports, exact).sum()
        for cap in caps:
            got, same, budget = _search(tuner, reports, cap)
            s = stats[cap]
            s["choices_changed"] += int(np.count_nonzero((got.rank != exact.rank) | (got.cqi != exact.cqi)))
            s["same_rank_changed"] += int(np.count_nonzero(same.cqi != exact_same.cqi))
            s["cut_ue_periods"] += budget.cut_ues
            s["loss"].append(100.0 * (1.0 - _objective(tuner, reports, got).sum() / j_exact))
            s["same_loss"].append(100.0 * (1.0 - same.score.sum() / exact_same.score.sum()))
            s["rows"].append(budget.rows)
        tuner.decide(reports)
        tuner.learn(reports)
    out: dict[int, dict[str, Any]] = {0: {"rows": exact_rows}}
    for cap, s in stats.items():
        out[cap] = {
            "choices_changed": s["choices_changed"],
            "predicted_bits_loss_pct": {"mean": float(np.mean(s["loss"])), "max": float(np.max(s["loss"]))},
            "same_rank_changed": s["same_rank_changed"],
            "same_rank_score_loss_pct": {"mean": float(np.mean(s["same_loss"])), "max": float(np.max(s["same_loss"]))},
            "cut_ue_periods": s["cut_ue_periods"],
            "rows": s["rows"],
        }
    return out


def decide_times(periods: list[LinkReports], cap: int | None) -> dict[str, float]:
    """p50 / p99 / max wall ms of ``CellTuner.decide`` over the periods (the first is a warm-up)."""
    tuner = CellTuner(load_offline_model("builtin"), TuneMode.RI_CQI, max_predictions=cap)
    ms: list[float] = []
    for i, reports in enumerate(periods):
        t0 = time.perf_counter()
        tuner.decide(reports)
        if i:
            ms.append(1e3 * (time.perf_counter() - t0))
        tuner.learn(reports)
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--caps", type=int, nargs="+", default=[4000, 4500, 5000, 6000], metavar="ROWS",
                    help="caps to compare with the exact search (default: %(default)s)")
    ap.add_argument("--ues", type=int, default=1000, help="UEs of the cell (default %(default)s)")
    ap.add_argument("--periods", type=int, default=40, help="periods (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="timing rounds (default %(default)s)")
    args = ap.parse_args(argv)
    if any(c < 1 for c in args.caps) or args.ues < 1 or args.periods < 2 or args.rounds < 1:
        ap.error("caps, --ues and --rounds must be >= 1, --periods >= 2")
    threadpool_limits(1)
    heap_kept = keep_freed_heap_memory()
    periods, meta = field_periods(args.ues, args.periods + 1)
    figures = compare(periods, args.caps)
    runs: dict[int | None, list[dict[str, float]]] = {cap: [] for cap in [None, *args.caps]}
    for _ in tqdm(range(args.rounds), desc="timing rounds", unit="round", file=sys.stderr):
        for cap in runs:  # interleaved, so a slow spell of the machine hits every cap alike
            runs[cap].append(decide_times(periods, cap))
    times = {cap: {k: float(np.median([r[k] for r in rs])) for k in ("p50", "p99", "max")} for cap, rs in runs.items()}
    exact_times = times[None]
    print(f"exact search: rows per period max {max(figures[0]['rows'])}, median {np.median(figures[0]['rows']):.0f}; "
          f"decide p50 {exact_times['p50']:.2f} ms, p99 {exact_times['p99']:.2f} ms")
    result: dict[str, Any] = {
        "ues": args.ues, "periods": len(periods), "workload": meta, "heap_memory_kept": heap_kept,
        "timing_rounds": args.rounds,
        "pinned_cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "exact": {"rows": figures[0]["rows"], "decide_ms": exact_times}, "caps": {},
    }
    for cap in args.caps:
        f = figures[cap]
        f["decide_ms"] = times[cap]
        result["caps"][str(cap)] = f
        print(f"cap {cap}: choices changed {f['choices_changed']} of {args.ues * len(periods)} UE-periods "
              f"(predicted bits −{f['predicted_bits_loss_pct']['mean']:.3f} % mean, −{f['predicted_bits_loss_pct']['max']:.3f} % "
              f"worst period); same-rank best changed {f['same_rank_changed']} (−{f['same_rank_score_loss_pct']['mean']:.3f} % "
              f"mean); {f['cut_ue_periods']} UE-periods cut; decide p50 {f['decide_ms']['p50']:.2f} ms, "
              f"p99 {f['decide_ms']['p99']:.2f} ms")
    save_results(result, RESULTS_DIR / "search_budget.json")
    return result


if __name__ == "__main__":
    main()
