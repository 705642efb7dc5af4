"""Wall time of the vectorised link-adaptation calls per cell step.

Measures ``cqi_tune`` and ``ri_cqi_tune`` (excluding the predictor's own cost: a cheap
row-wise numpy predictor stands in for the model), ``olla_mcs`` + ``olla_update`` for one
slot, and ``transport_block_size`` on a batch, for several UE counts. Prints the figures
and saves them to ``benchmarks/results/linkadapt_tune.json``.

Run: ``.venv/bin/python benchmarks/linkadapt_tune.py``
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from lighttune_core.linkadapt import cqi_tune, olla_mcs, olla_update, ri_cqi_tune, transport_block_size
from lighttune_core.report import LinkReports

RESULTS = Path(__file__).resolve().parent / "results" / "linkadapt_tune.json"


def reports_for(n: int, seed: int = 0) -> LinkReports:
    """Random valid reports of ``n`` UEs."""
    rng = np.random.default_rng(seed)
    ri = rng.integers(1, 5, n)
    sinr = rng.uniform(-5.0, 30.0, (n, 4))
    sinr[np.arange(4)[None, :] >= ri[:, None]] = np.nan
    return LinkReports(
        ue_id=np.arange(n), ri=ri, cqi=rng.integers(1, 16, n), sinr_layers_db=sinr,
        csirs_snr_db=rng.uniform(0.0, 30.0, n), rank=ri, mcs=rng.integers(0, 29, n),
        olla_offset_db=rng.uniform(-3.0, 3.0, n), n_ack=rng.integers(0, 50, n),
        n_nack=rng.integers(0, 10, n), served_bits=np.zeros(n, dtype=np.int64),
        csi_age_ms=rng.uniform(0.0, 80.0, n),
    )


def predictor(x: np.ndarray) -> np.ndarray:
    """Cheap row-wise stand-in for the BLER model."""
    return np.round(np.clip(0.3 + 1.8 * (x[:, 7] - x[:, 4]) + x[:, 6] - x[:, 5], 0, 1) * 10) / 10


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls, seconds."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return float(best)


def main() -> None:
    figures: dict[str, dict[str, float]] = {}
    for n in (10, 100, 1000):
        reports = reports_for(n)
        rng = np.random.default_rng(1)
        offsets = rng.uniform(-5, 5, n)
        ack = rng.random(n) > 0.1
        sent = np.ones(n, dtype=bool)
        figures[str(n)] = {
            "cqi_tune_ms": 1e3 * best_of(lambda: cqi_tune(predictor, reports), 5),
            "ri_cqi_tune_ms": 1e3 * best_of(lambda: ri_cqi_tune(predictor, reports), 5),
            "olla_slot_us": 1e6 * best_of(lambda: olla_update(offsets, ack, sent) + olla_mcs(reports.cqi, offsets), 20),
            "tbs_us": 1e6 * best_of(lambda: transport_block_size(reports.mcs, reports.ri, 106), 20),
        }
        print(
            f"N={n:5d} UEs: cqi_tune {figures[str(n)]['cqi_tune_ms']:.2f} ms, "
            f"ri_cqi_tune {figures[str(n)]['ri_cqi_tune_ms']:.2f} ms, "
            f"OLLA slot {figures[str(n)]['olla_slot_us']:.0f} us, "
            f"TBS {figures[str(n)]['tbs_us']:.0f} us"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "command": ".venv/bin/python benchmarks/linkadapt_tune.py",
                "python": platform.python_version(),
                "numpy": np.__version__,
                "per_ue_count": figures,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {RESULTS.relative_to(Path(__file__).resolve().parent.parent)}")


if __name__ == "__main__":
    main()
