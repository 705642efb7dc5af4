"""Cost of one KPM measurement on the xApp's report path: ``DRB.UEThpDl`` in or out.

The xApp's KPM plan subscribes ``DRB.UEThpDl`` (served bits) for the rank-change check
(:class:`lighttune_core.calibration.RankChangeCheck`); every subscribed measurement adds one
record to every UE's report. This script builds two subscriptions as the xApp plans them
(``kpm_path.kpm_node``) for our node offering every
measurement of :data:`~lighttune_e2.kpm.reports.UE_MEASUREMENT_NAMES`, with and without
``DRB.UEThpDl``, encodes the same cell periods with each (the field trace of
``benchmarks/loop_workload.py``, one 64-UE format-3 indication per period) and times the
xApp's decode (:class:`~lighttune_e2.kpm.reports.KpmNodeDecoder`: E2SM-KPM PER decode and the
mapping into ``LinkReports``).

Figures per variant: subscribed measurements, octets per indication, decode µs per UE
(median and minimum over ``--repeat`` passes over all periods), wall time with BLAS held to
one thread; pin the process with ``taskset -c 0``. Saved to
``benchmarks/results/kpm_record_cost.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from e2sim.kpm_function import KpmPeriod
from lighttune_e2.kpm.reports import UE_MEASUREMENT_NAMES, UE_THROUGHPUT_DL, KpmNodeDecoder

from kpm_path import kpm_node  # benchmarks/ is the script's directory
from loop_workload import field_periods
from results_file import RESULTS_DIR, save_results

PERIOD_MS = 80.0
"""Reporting period of the subscription and spacing of the encoded periods (ms)."""


def measure(names: tuple[str, ...], n_ue: int, n_periods: int, repeat: int) -> dict[str, Any]:
    """Octets and decode time per UE of ``n_periods`` field-trace periods of ``n_ue`` UEs."""
    fn, plan, sub = kpm_node(names, int(PERIOD_MS))
    periods, _meta = field_periods(n_ue, n_periods)
    messages = [
        list(fn.build_indications(sub, KpmPeriod(rep, PERIOD_MS, 1.7e9 + k * PERIOD_MS / 1e3, 106, 160)))
        for k, rep in enumerate(periods)
    ]
    decoder = KpmNodeDecoder("bench", plan.codec, plan.measurements, PERIOD_MS)
    per_ue_s: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        for indications in messages:
            for header, message in indications:
                if decoder.decode(header, message) is None:
                    raise RuntimeError("an indication of our own node did not decode")
        per_ue_s.append((time.perf_counter() - start) / (len(messages) * n_ue))
    return {
        "measurements": list(plan.measurements),
        "n_measurements": len(plan.measurements),
        "indications_per_period": float(np.mean([len(m) for m in messages])),
        "octets_per_period": float(np.mean([sum(len(msg) for _h, msg in m) for m in messages])),
        "decode_us_per_ue_median": float(np.median(per_ue_s) * 1e6),
        "decode_us_per_ue_min": float(np.min(per_ue_s) * 1e6),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ues", type=int, default=64, help="UEs per cell (one indication per period up to ~100)")
    ap.add_argument("--periods", type=int, default=30, help="field-trace periods encoded per variant")
    ap.add_argument("--repeat", type=int, default=7, help="timed passes over all periods")
    ap.add_argument("--out", default=str(RESULTS_DIR / "kpm_record_cost.json"))
    args = ap.parse_args(argv)
    for name in ("ues", "periods", "repeat"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")
    threadpool_limits(1)
    with_all = measure(UE_MEASUREMENT_NAMES, args.ues, args.periods, args.repeat)
    without = measure(tuple(n for n in UE_MEASUREMENT_NAMES if n != UE_THROUGHPUT_DL), args.ues, args.periods,
                      args.repeat)
    out: dict[str, Any] = {
        "ues": args.ues,
        "periods": args.periods,
        "repeat": args.repeat,
        "load_average_1min": os.getloadavg()[0],
        "with_ue_thp_dl": with_all,
        "without_ue_thp_dl": without,
        "octets_added": with_all["octets_per_period"] - without["octets_per_period"],
        "decode_us_per_ue_added": with_all["decode_us_per_ue_median"] - without["decode_us_per_ue_median"],
    }
    for label, v in (("with DRB.UEThpDl", with_all), ("without", without)):
        print(f"{label}: {v['n_measurements']} measurements, {v['octets_per_period']:.0f} octets per period, "
              f"decode {v['decode_us_per_ue_median']:.1f} us per UE (min {v['decode_us_per_ue_min']:.1f})")
    print(f"DRB.UEThpDl adds {out['octets_added']:.0f} octets per period "
          f"({100 * out['octets_added'] / without['octets_per_period']:.1f} %) and "
          f"{out['decode_us_per_ue_added']:.2f} us per UE "
          f"({100 * out['decode_us_per_ue_added'] / without['decode_us_per_ue_median']:.1f} %)")
    save_results(out, args.out)
    return out


if __name__ == "__main__":
    main()
