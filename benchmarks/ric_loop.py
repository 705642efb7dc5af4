"""RIC-mode loop through real RMR: UE-reports/s and decision latency.

Starts a private redis-server, the submgr/E2 manager stub, an E2 Termination endpoint
(RMR, child process) and the unmodified xApp (``python -m lighttune_xapp --mode ric``)
from ``tests/ric_harness.py``, then for cells of 64 and 1,000 UEs sends RIC_INDICATION
messages one at a time and waits for the RIC_CONTROL_REQ each one triggers. Per message
the latency is indication sent -> control received at E2T (RMR both ways, E2AP +
LT-LINKADAPT decode, policy learn/decide, encode), measured at the harness.

    .venv/bin/python benchmarks/ric_loop.py [--periods N]

Prints the figures and saves them to ``benchmarks/results/ric_loop.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ric_harness import RicTestbed, indication_pdu, skip_reason, synthetic_reports  # noqa: E402
from lighttune_xapp.transport import rmr_types  # noqa: E402


def run_cell_size(bed: RicTestbed, n_ues: int, periods: int, cell_id: int, seed: int) -> dict[str, float]:
    """Send ``periods`` indications of one ``n_ues`` cell, each after the previous control."""
    rng = np.random.default_rng(seed)
    instance = bed.instance("gnb-a")
    e2t = bed.e2t["gnb-a"]
    pdus = [indication_pdu(instance, cell_id, p, synthetic_reports(n_ues, rng)) for p in range(periods + 3)]
    latencies = []
    start = None
    for i, pdu in enumerate(pdus):
        if i == 3:  # three warm-up periods (model restore, first decisions)
            start = time.perf_counter()
        sent = time.monotonic()
        e2t.send(rmr_types.RIC_INDICATION, pdu, sub_id=instance, meid="gnb-a")
        control = e2t.expect(rmr_types.RIC_CONTROL_REQ, 120)
        if i >= 3:
            latencies.append(control.at - sent)
    assert start is not None
    elapsed = time.perf_counter() - start
    lat = np.array(latencies)
    return {
        "n_ues": n_ues,
        "indications": periods,
        "ue_reports_per_s": n_ues * periods / elapsed,
        "indications_per_s": periods / elapsed,
        "latency_p50_ms": float(np.percentile(lat, 50) * 1e3),
        "latency_p99_ms": float(np.percentile(lat, 99) * 1e3),
        "latency_max_ms": float(lat.max() * 1e3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--periods", type=int, default=200, help="indications per cell size (default 200)")
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(f"ric_loop: cannot run: {reason}")
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        bed = RicTestbed(Path(tmp), checkpointIntervalS=1.0)
        try:
            bed.start_xapp()
            for cell_id, n_ues in ((1, 64), (2, 1000)):
                row = run_cell_size(bed, n_ues, args.periods, cell_id, seed=cell_id)
                results.append(row)
                print(
                    f"{n_ues:5d} UEs/cell: {row['ue_reports_per_s']:9.0f} UE-reports/s "
                    f"({row['indications_per_s']:.1f} indications/s), decision latency "
                    f"p50 {row['latency_p50_ms']:.2f} ms, p99 {row['latency_p99_ms']:.2f} ms"
                )
        finally:
            bed.close()
    out = ROOT / "benchmarks" / "results" / "ric_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "ric_loop",
        "command": "benchmarks/ric_loop.py --periods %d" % args.periods,
        "transport": "RMR 4.9.4 over TCP loopback, xApp in RIC mode (ricxappframe 3.2.2), E2T harness in a child process",
        "latency": "indication sent at E2T -> RIC_CONTROL_REQ received at E2T, one message in flight",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
