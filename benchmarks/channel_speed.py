"""Speed and memory of the live radio model, and the cost/effect of subband granularity.

Run from the repository root:

    python benchmarks/channel_speed.py [--slots N]

Prints UE-slots/s of ``LinkChannel.step()`` for 1, 64 and 1,000 UEs (TDL-A30 4x4,
106 RBs at 30 kHz, automatic subbands = 8 RB), at 64 UEs for the paper's other profiles
(their automatic subband sizes) and for fixed granularities, and the EESM effective-SINR
difference between per-RB and 8-RB subbands at TDL-C300; saves the figures to
``benchmarks/results/channel_speed.json``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import numpy as np

from e2sim.channel import LinkChannel, Scenario
from e2sim.channel.bler import effective_sinr_db
from results_file import save_results  # benchmarks/ is the script's directory

RESULTS = Path(__file__).resolve().parent / "results" / "channel_speed.json"


def ue_slots_per_second(n_ue: int, slots: int, subband_rb: int | None = None,
                        profile: str = "TDL-A30", correlation: str = "low") -> float:
    """Steps a fresh LinkChannel ``slots`` times (after one warm-up) and returns UE-slots/s."""
    link = LinkChannel(Scenario(profile=profile, correlation=correlation, n_ue=n_ue,
                                csi_period_ms=10, seed=1), subband_rb=subband_rb)
    link.step()
    start = time.perf_counter()
    for _ in range(slots):
        link.step()
    return n_ue * slots / (time.perf_counter() - start)


def granularity_error_db(n_ue: int = 64, slots: int = 20, mcs: int = 15) -> dict[str, float]:
    """EESM effective SINR (rank 2, MCS 15) with 8-RB subbands minus per-RB, dB statistics.

    The same fading realisation (same seed) is evaluated at both granularities.
    """
    scenario = Scenario(profile="TDL-C300", n_ue=n_ue, snr_db=(0.0, 24.0), csi_period_ms=5, seed=3)
    fine, coarse = LinkChannel(scenario, subband_rb=1), LinkChannel(scenario, subband_rb=8)
    diffs = []
    for _ in range(slots):
        a, b = fine.step(), coarse.step()
        eff_fine = effective_sinr_db(a.sinr_db[:, 1], mcs, 1, fine.subband_n_rb)
        eff_coarse = effective_sinr_db(b.sinr_db[:, 1], mcs, 1, coarse.subband_n_rb)
        diffs.append(eff_coarse - eff_fine)
    d = np.concatenate(diffs)
    return {"mean_db": float(d.mean()), "rms_db": float(np.sqrt(np.mean(d**2))),
            "p95_abs_db": float(np.percentile(np.abs(d), 95))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=40, help="timed slots per case")
    args = parser.parse_args()
    results: dict[str, object] = {"machine": platform.processor() or platform.machine(),
                                  "python": platform.python_version(), "slots": args.slots}
    speed = {}
    for n_ue in (1, 64, 1000):
        slots = args.slots if n_ue < 1000 else max(args.slots // 4, 5)
        speed[str(n_ue)] = ue_slots_per_second(n_ue, slots)
        print(f"TDL-A30 4x4 low corr, 14 subbands, {n_ue:5d} UEs: {speed[str(n_ue)]:10.0f} UE-slots/s")
    results["ue_slots_per_s"] = speed
    results["high_correlation_64_ue"] = ue_slots_per_second(64, args.slots, correlation="high")
    print(f"TDL-A30 4x4 high corr, 64 UEs: {results['high_correlation_64_ue']:10.0f} UE-slots/s")
    per_profile = {}
    for profile in ("TDL-A10", "TDL-B50", "TDL-B100", "TDL-B200", "TDL-C200"):
        per_profile[profile] = ue_slots_per_second(64, args.slots, profile=profile)
        print(f"{profile:9s} (auto subbands), 64 UEs: {per_profile[profile]:10.0f} UE-slots/s")
    results["profiles_64_ue"] = per_profile
    granularity = {}
    for subband_rb in (1, 4, 8, 16):
        granularity[str(subband_rb)] = ue_slots_per_second(64, args.slots, subband_rb=subband_rb)
        print(f"subband of {subband_rb:2d} RB, 64 UEs: {granularity[str(subband_rb)]:10.0f} UE-slots/s")
    results["subband_rb_ue_slots_per_s_64_ue"] = granularity
    error = granularity_error_db()
    results["eesm_8rb_minus_per_rb_tdl_c300"] = error
    print("EESM eff. SINR, 8-RB subbands minus per-RB (TDL-C300, rank 2, MCS 15): "
          f"mean {error['mean_db']:+.3f} dB, rms {error['rms_db']:.3f} dB, "
          f"95% |diff| {error['p95_abs_db']:.3f} dB")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    results["peak_rss_mb"] = peak_mb
    print(f"peak RSS {peak_mb:.0f} MB")
    save_results(results, RESULTS)


if __name__ == "__main__":
    main()
