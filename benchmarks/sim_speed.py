"""Simulator speed: UE-slots per second, live channel vs trace replay, for 1, 64, 1000 UEs.

Run from the repository root::

    .venv/bin/python benchmarks/sim_speed.py

Scenario: TDL-B50, 30 Hz, low correlation, 16-24 dB, CSI-RS every 80 ms (160 slots), one
DU (table RI/CQI + OLLA, first-transmission HARQ). For each UE count it measures, on one
core (BLAS threads pinned to 1):

* ``channel_live``: LinkChannel.step() alone;
* ``replay_only``: TraceReplay.step() alone (float32 trace, bit-identical);
* ``du_live``: channel + DU per slot; ``du_trace``: trace replay + DU per slot;
* the trace size in bytes per UE-slot (float32).

The DU's per-slot work includes its CSI measurement (every 160 slots here); runs cover whole
CSI periods so that cost is amortised as in a real run. Target: du_trace >= 50,000 UE-slots/s
and replay >= 10x faster than live generation. Prints a table and saves
``benchmarks/results/sim_speed.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from e2sim.channel import LinkChannel, Scenario  # noqa: E402
from e2sim.du import DU  # noqa: E402
from e2sim.traces import TraceReplay, record_trace  # noqa: E402

UE_COUNTS: tuple[int, ...] = (1, 64, 1000)
SLOTS: dict[int, int] = {1: 3200, 64: 320, 1000: 160}
"""Slots per measurement: whole 80 ms CSI periods (160 slots), more for small cells."""
RESULTS = Path(__file__).resolve().parent / "results" / "sim_speed.json"


def _scenario(n_ue: int) -> Scenario:
    return Scenario(profile="TDL-B50", doppler_hz=30.0, correlation="low", snr_db=(16.0, 24.0),
                    csi_period_ms=80, n_ue=n_ue, seed=1)


def _rate(n_ue: int, n_slots: int, seconds: float) -> float:
    return n_ue * n_slots / seconds


def measure(n_ue: int, workdir: Path) -> dict[str, float]:
    """All figures for one UE count."""
    scenario = _scenario(n_ue)
    n_slots = SLOTS[n_ue]
    path = workdir / f"trace_{n_ue}.npz"

    channel = LinkChannel(scenario)
    t0 = time.perf_counter()
    for _ in range(n_slots):
        channel.step()
    channel_live = _rate(n_ue, n_slots, time.perf_counter() - t0)

    record_trace(scenario, n_slots, path)
    size = path.stat().st_size

    replay = TraceReplay(path)
    t0 = time.perf_counter()
    for _ in range(n_slots):
        replay.step()
    replay_only = _rate(n_ue, n_slots, time.perf_counter() - t0)

    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    t0 = time.perf_counter()
    for _ in range(n_slots):
        du.step(channel.step())
    du_live = _rate(n_ue, n_slots, time.perf_counter() - t0)

    replay = TraceReplay(path)
    du = DU(scenario, subband_n_rb=replay.subband_n_rb)
    t0 = time.perf_counter()
    for _ in range(n_slots):
        du.step(replay.step())
    du_trace = _rate(n_ue, n_slots, time.perf_counter() - t0)
    path.unlink()
    return {
        "n_ue": n_ue,
        "n_slots": n_slots,
        "n_subbands": replay.n_subbands,
        "channel_live_ue_slots_per_s": channel_live,
        "replay_only_ue_slots_per_s": replay_only,
        "du_live_ue_slots_per_s": du_live,
        "du_trace_ue_slots_per_s": du_trace,
        "replay_speedup_over_live": replay_only / channel_live,
        "trace_bytes_per_ue_slot_float32": size / (n_ue * n_slots),
    }


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_ue in UE_COUNTS:
            rows.append(measure(n_ue, Path(tmp)))
    header = f"{'UEs':>5} {'channel live':>13} {'replay only':>12} {'DU+live':>10} {'DU+trace':>10} {'replay/live':>11} {'B/UE-slot':>9}"
    print("UE-slots per second, one core")
    print(header)
    for r in rows:
        print(f"{r['n_ue']:>5} {r['channel_live_ue_slots_per_s']:>13,.0f} {r['replay_only_ue_slots_per_s']:>12,.0f} "
              f"{r['du_live_ue_slots_per_s']:>10,.0f} {r['du_trace_ue_slots_per_s']:>10,.0f} "
              f"{r['replay_speedup_over_live']:>10.0f}x {r['trace_bytes_per_ue_slot_float32']:>9.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": ".venv/bin/python benchmarks/sim_speed.py",
        "scenario": _scenario(1).to_dict() | {"n_ue": "varies"},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "results": rows,
    }, indent=1))
    print(f"saved {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS.name}")


if __name__ == "__main__":
    main()
