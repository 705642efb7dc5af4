"""CPU time of one cell's decision loop (``CellTuner.step``: learn, then RI-CQI-Tune), split.

Two workloads, each for cells of 64 and 1,000 UEs:

* ``synthetic``: the stress reports of ``benchmarks/loop_workload.py`` (uniformly random
  fields and HARQ counts, new every period) and an untrained ``LightTuneModel(seed=0)``;
  about a third of the UEs make the model update every period;
* ``du``: reports of the simulated DU (TDL-A30, low SNR, 10 ms CSI period) and the packaged
  offline model (``lighttune_models``).

Per workload: the median and minimum over the periods of the CPU time of ``learn`` and of
``decide`` (one BLAS thread; pin the process with ``taskset -c 0``), the UE-reports per CPU
second of the whole step, and the LightTune updates per period. The first period is a
warm-up.

Run from the repository root::

    taskset -c 0 python benchmarks/policy_speed.py [--periods 10]

Prints the figures and saves ``benchmarks/results/policy_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.report import LinkReports
from lighttune_core.tuner import LightTuneModel
from lighttune_models import builtin_model_bytes
from results_file import save_results  # benchmarks/ is the script's directory

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "policy_speed.json"


def du_reports(n_ue: int, periods: int, seed: int = 5) -> list[LinkReports]:
    """``periods`` consecutive CSI periods of a simulated cell's reports."""
    from e2sim.channel import LinkChannel
    from e2sim.channel.scenario import paper_scenario
    from e2sim.du import DU

    scenario = paper_scenario(profile="TDL-A30", snr="low", n_ue=n_ue, seed=seed, csi_period_ms=10)
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    out: list[LinkReports] = []
    while len(out) < periods:
        step = du.step(channel.step())
        if step is not None:
            out.append(step.reports)
    return out


def time_cell(model: LightTuneModel, reports: list[LinkReports], check_rank_changes: bool = True) -> dict[str, Any]:
    """CPU time of learn and decide per period (first period not timed); ``check_rank_changes``
    as :class:`~lighttune_core.cell.CellTuner`'s (the same-rank search of the UEs whose
    search wants a rank change is part of ``decide``)."""
    tuner = CellTuner(model, TuneMode.RI_CQI, check_rank_changes=check_rank_changes)
    tuner.step(reports[0])
    learn_s: list[float] = []
    decide_s: list[float] = []
    updates = 0
    for rep in reports[1:]:
        t0 = time.process_time()
        outcome = tuner.learn(rep)
        t1 = time.process_time()
        tuner.decide(rep)
        t2 = time.process_time()
        learn_s.append(t1 - t0)
        decide_s.append(t2 - t1)
        updates += outcome.n_updates
    total = np.add(learn_s, decide_s)
    n_ue = len(reports[1])
    return {
        "ues": n_ue,
        "periods": len(learn_s),
        "learn_ms_median": 1e3 * float(np.median(learn_s)),
        "learn_ms_min": 1e3 * float(np.min(learn_s)),
        "decide_ms_median": 1e3 * float(np.median(decide_s)),
        "decide_ms_min": 1e3 * float(np.min(decide_s)),
        "step_ms_median": 1e3 * float(np.median(total)),
        "ue_reports_per_cpu_s": n_ue / float(np.median(total)),
        "updates_per_period": updates / len(learn_s),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--periods", type=int, default=10, help="timed periods per cell")
    ap.add_argument("--no-rank-check", action="store_true",
                    help="time the cell without its rank-change check (CellTuner check_rank_changes=False)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    threadpool_limits(1)
    sys.path.insert(0, str(HERE))
    from loop_workload import stress_reports

    check = not args.no_rank_check
    out: dict[str, Any] = {"load_average_1min": os.getloadavg()[0], "timer": "process_time", "rank_check": check}
    for n in (64, 1000):
        reps = [stress_reports(n, seed=100 + k) for k in range(args.periods + 1)]
        out[f"synthetic_{n}_ues"] = time_cell(LightTuneModel(seed=0), reps, check)
        print(f"synthetic_{n}_ues", json.dumps(out[f"synthetic_{n}_ues"]))
    blob = builtin_model_bytes()
    for n in (64, 1000):
        out[f"du_{n}_ues"] = time_cell(LightTuneModel.from_bytes(blob), du_reports(n, args.periods + 1), check)
        print(f"du_{n}_ues", json.dumps(out[f"du_{n}_ues"]))
    save_results(out, args.out)
    return out


if __name__ == "__main__":
    main()
