"""Block size of the batched all-labels forward (``lighttune_core.ff._PREDICT_CHUNK``).

For N samples of random features (N = 15,000: a 1,000-UE RI-CQI-Tune search of 15
candidates; N = 10,000: the ``predict_many`` target of issue 3), times
``ff.goodness_all_labels_t`` of a ``LightTuneModel(seed=0)`` ``[13, 32, 32]`` for block sizes
64 .. 4096 and for the whole input in one block, in float64 and float32 compute. Block sizes
are measured interleaved (one call of each per round) so that a load change on the shared
machine hits all of them alike; the figures are the minimum and the median over the rounds
of the wall time (`time.perf_counter`).

Run from the repository root, pinned to one core::

    taskset -c 0 python benchmarks/predict_chunk.py [--rounds 9] [--n 15000]

Prints the table and saves ``benchmarks/results/predict_chunk.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from lighttune_core import ff
from lighttune_core.tuner import LightTuneModel
from results_file import save_results  # benchmarks/ is the script's directory

RESULTS = Path(__file__).resolve().parent / "results" / "predict_chunk.json"
BLOCKS: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)


def sweep(n: int, rounds: int, dtype: type) -> dict[str, dict[str, float]]:
    """``{block: {"min_ms", "median_ms"}}`` for ``n`` samples in compute dtype ``dtype``."""
    model = LightTuneModel(seed=0)
    plan = ff.plan_inference(model.params, dtype=dtype)
    x = np.random.default_rng(0).random((n, 12))
    sizes = list(BLOCKS) + [n]
    times: dict[int, list[float]] = {b: [] for b in sizes}
    for b in sizes:  # warm-up
        ff.goodness_all_labels_t(plan, x, block=b)
    for _ in range(rounds):
        for b in sizes:
            t0 = time.perf_counter()
            ff.goodness_all_labels_t(plan, x, block=b)
            times[b].append(time.perf_counter() - t0)
    return {
        str(b): {"min_ms": 1e3 * min(t), "median_ms": 1e3 * float(np.median(t))} for b, t in times.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--n", type=int, nargs="+", default=[15_000, 10_000])
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    threadpool_limits(1)
    out: dict[str, Any] = {
        "load_average_1min": os.getloadavg()[0],
        "timer": "perf_counter",
        "current_block": ff._PREDICT_CHUNK,
    }
    for n in args.n:
        for dtype in (np.float64, np.float32):
            key = f"n{n}_{np.dtype(dtype).name}"
            out[key] = sweep(n, args.rounds, dtype)
            row = "  ".join(f"{b}: {v['min_ms']:.1f}/{v['median_ms']:.1f}" for b, v in out[key].items())
            print(f"{key} (block: min/median ms)  {row}")
    save_results(out, args.out)
    return out


if __name__ == "__main__":
    main()
