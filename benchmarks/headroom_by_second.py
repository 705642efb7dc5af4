"""Perfect-predictor headroom second by second: is it a start-up transient of the DU's loop?

Run from the repository root::

    .venv/bin/python benchmarks/headroom_by_second.py [--model FILE] [--duration-s 10]

One cell (TDL-A10, 20 Hz, low correlation, 16-24 dB, CSI-RS 80 ms, 32 UEs, seed 1) per DU
preset (srsran, sionna): OLLA and the perfect-predictor RI-CQI-Tune (:mod:`e2sim.headroom`)
on common random numbers. For each simulated second ``s`` it reports OLLA's mean throughput
per UE and the perfect predictor's gain over the periods ending in ``(s, s + 1]``:
``Σ T_perfect / Σ T_OLLA − 1`` over the periods' cell-mean throughputs (Mbit/s, %). The
OLLA back-off of every preset starts at 0; a slow loop (srsRAN's 0.009 CQI per NACK) takes
seconds to reach its operating point, and a headroom measured over a short run includes
that climb. Saves ``benchmarks/results/headroom/by_second.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import RESULTS_DIR, save_results  # noqa: E402

from e2sim.channel import Scenario  # noqa: E402
from e2sim.channel.scenario import SNR_RANGES_DB  # noqa: E402
from e2sim.experiment import load_model, run_experiment  # noqa: E402

PRESETS: tuple[str, ...] = ("srsran", "sionna")


def by_second(model_path: Path, duration_s: float, n_ue: int = 32, seed: int = 1) -> list[dict[str, object]]:
    """One row per (preset, second): OLLA Mbit/s per UE and the perfect predictor's gain (%)."""
    model = load_model(model_path)
    rows: list[dict[str, object]] = []
    for preset in PRESETS:
        scenario = Scenario(profile="TDL-A10", doppler_hz=20.0, correlation="low",
                            snr_db=SNR_RANGES_DB["medium"], csi_period_ms=80, n_ue=n_ue, seed=seed,
                            du_preset=preset)
        res = run_experiment(scenario, duration_s, model, schemes=("olla", "ri_cqi_perfect"))
        end = np.asarray(res.schemes["olla"].period_end_s)
        olla = np.asarray(res.schemes["olla"].period_throughput_bps)
        perfect = np.asarray(res.schemes["ri_cqi_perfect"].period_throughput_bps)
        for s in range(int(np.ceil(duration_s))):
            sel = (end > s) & (end <= s + 1)
            if not sel.any():
                continue
            rows.append({
                "du_preset": preset, "second": s, "periods": int(sel.sum()),
                "olla_mbps": float(olla[sel].mean() / 1e6),
                "perfect_gain_pct": float(100 * (perfect[sel].sum() / olla[sel].sum() - 1)),
            })
            print(f"{preset:7s} {s}-{s + 1} s: OLLA {rows[-1]['olla_mbps']:.2f} Mbit/s, "
                  f"perfect RI-CQI-Tune {rows[-1]['perfect_gain_pct']:+.1f} %", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("lighttune_models/offline-v1.ltm"))
    p.add_argument("--duration-s", type=float, default=10.0)
    args = p.parse_args()
    rows = by_second(args.model, args.duration_s)
    save_results({"scenario": "TDL-A10 20 Hz low corr 16-24 dB, CSI-RS 80 ms, 32 UEs, seed 1",
                  "model": args.model.name, "duration_s": args.duration_s, "rows": rows},
                 RESULTS_DIR / "headroom" / "by_second.json")


if __name__ == "__main__":
    main()
