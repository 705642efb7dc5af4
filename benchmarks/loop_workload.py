"""Workloads of the E2-loop benchmarks: per-period cell reports the xApp's policy is timed on.

Two kinds:

* **field** — reports of a simulated cell (e2sim's channel and DU) recorded in closed loop:
  each period the policy of the xApp (RI-CQI-Tune over OLLA, LightTune fine-tuning from the
  packaged offline model) decides, the DU applies the decisions, and the next period's
  reports carry their HARQ outcome. Default scenario: the paper's mismatched case TDL-B200,
  50 Hz, medium correlation, high SNR (28–40 dB) — where the offline model is most wrong
  and fine-tuning fires most. Recording is slow (the channel of every UE every slot), so a
  64-UE trace is recorded once into ``benchmarks/data/`` and a larger cell is built from
  copies of it with distinct UE ids (:func:`tile_periods`): the same per-UE statistics,
  ``n / 64`` times the work.
* **stress** — uniformly random, mutually inconsistent reports (CQI independent of SINR,
  BLER labels uniform over 0–0.3): the decision search cannot prune and, since no model
  can learn random labels, about a third of the samples trigger a LightTune update every
  period, forever. An upper bound on the cost, not an operating point.

Record the field trace (about 2–4 min on one core)::

    python benchmarks/loop_workload.py [--ues 64] [--periods 41] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from lighttune_core.report import LinkReports
from lighttune_core.synthetic import random_reports

FIELD_TRACE = Path(__file__).resolve().parent / "data" / "loop_trace_tdlb200_high_64ue.npz"
"""The committed field trace (64 UEs, 41 periods)."""

_FIELDS: tuple[str, ...] = (
    "ue_id", "ri", "cqi", "sinr_layers_db", "csirs_snr_db", "rank", "mcs", "olla_offset_db",
    "n_ack", "n_nack", "served_bits", "csi_age_ms",
)


def save_periods(path: Path, periods: list[LinkReports], meta: str) -> Path:
    """Write ``P`` periods of one cell (``N`` UEs each, the same UEs) as arrays ``[P, N, ...]``."""
    if not periods or any(len(p) != len(periods[0]) for p in periods):
        raise ValueError("periods must be non-empty and hold the same number of UEs")
    arrays = {f: np.stack([getattr(p, f) for p in periods]) for f in _FIELDS}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, meta=np.array(meta), cqi_table=np.array(periods[0].cqi_table), **arrays)
    return path


def load_periods(path: Path) -> tuple[list[LinkReports], str]:
    """Inverse of :func:`save_periods`: the periods and the trace's description."""
    with np.load(path) as data:
        missing = [f for f in _FIELDS if f not in data]
        if missing:
            raise ValueError(f"{path.name} is not a loop trace: missing {missing}")
        arrays = {f: data[f] for f in _FIELDS}
        meta = str(data["meta"])
        table = int(data["cqi_table"])
    n_periods = arrays["ue_id"].shape[0]
    return [LinkReports(**{f: a[k] for f, a in arrays.items()}, cqi_table=table) for k in range(n_periods)], meta


def tile_periods(periods: list[LinkReports], n: int) -> list[LinkReports]:
    """A cell of ``n`` UEs from copies of the recorded UEs (ids shifted per copy)."""
    base = len(periods[0])
    copies = -(-n // base)
    span = int(max(int(p.ue_id.max()) for p in periods)) + 1
    out = []
    for p in periods:
        parts = []
        for c in range(copies):
            fields = {f: getattr(p, f) for f in _FIELDS}
            fields["ue_id"] = p.ue_id + c * span
            parts.append(LinkReports(**fields, cqi_table=p.cqi_table))
        out.append(LinkReports.concat(parts).select(np.arange(n)))
    return out


def field_periods(n: int, periods: int, path: Path = FIELD_TRACE) -> tuple[list[LinkReports], str]:
    """``periods`` periods of an ``n``-UE cell from the field trace (cycled if shorter)."""
    if not path.exists():
        raise FileNotFoundError(f"{path.name} is missing: record it with python benchmarks/loop_workload.py")
    recorded, meta = load_periods(path)
    cycled = [recorded[k % len(recorded)] for k in range(periods)]
    return tile_periods(cycled, n), meta


def stress_reports(n: int, seed: int) -> LinkReports:
    """``n`` UEs of uniformly random, in-range but mutually inconsistent reports (seeded):
    :func:`lighttune_core.synthetic.random_reports` with ``consistent=False``."""
    return random_reports(n, seed, consistent=False)


def record_field_trace(n_ue: int, n_periods: int, out: Path, seed: int = 5) -> Path:
    """Run the closed loop (channel, DU, the xApp's policy in-process) and save its reports."""
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    from e2sim.channel import LinkChannel, Scenario
    from e2sim.du import DU
    from e2sim.experiment import DuRandomness
    from lighttune_xapp.app import load_offline_model
    from lighttune_core.cell import CellTuner, TuneMode

    threadpool_limits(1)
    scenario = Scenario(profile="TDL-B200", doppler_hz=50.0, correlation="medium", snr_db=(28.0, 40.0),
                        n_ue=n_ue, seed=seed)
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    harq = DuRandomness(scenario.seed, n_ue, scenario.csi_snr_error_db)
    tuner = CellTuner(load_offline_model("builtin"), TuneMode.RI_CQI)
    periods: list[LinkReports] = []
    updates = 0
    with tqdm(total=n_periods, desc="recording", unit="period") as bar:
        while len(periods) < n_periods:
            out_period = du.step(channel.step(), harq.harq_uniforms(), None)
            if out_period is None:
                continue
            reports = out_period.reports
            decisions, learned = tuner.step(reports)
            updates += learned.n_updates
            du.apply_control(decisions.ue_id, decisions.rank, decisions.cqi)
            periods.append(reports)
            bar.update(1)
    meta = (f"e2sim closed loop: {scenario.profile} {scenario.doppler_hz:g} Hz, {scenario.correlation} correlation, "
            f"SNR {scenario.snr_db[0]:g}-{scenario.snr_db[1]:g} dB, {n_ue} UEs, {n_periods} periods of "
            f"{scenario.csi_period_ms} ms, seed {seed}; RI-CQI-Tune with LightTune from the packaged model "
            f"({updates} updates while recording)")
    return save_periods(out, periods, meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ues", type=int, default=64, help="UEs of the recorded cell (default 64)")
    ap.add_argument("--periods", type=int, default=41, help="CSI-RS periods to record (default 41)")
    ap.add_argument("--seed", type=int, default=5, help="scenario seed (default 5)")
    ap.add_argument("--out", type=Path, default=FIELD_TRACE, help="output .npz")
    args = ap.parse_args(argv)
    if args.ues < 1 or args.periods < 2:
        ap.error("--ues must be >= 1 and --periods >= 2")
    t0 = time.perf_counter()
    path = record_field_trace(args.ues, args.periods, args.out, args.seed)
    periods, meta = load_periods(path)
    print(f"{path.name}: {meta}; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
