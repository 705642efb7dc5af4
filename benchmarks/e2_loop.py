"""E2 loop cost, first part: E2AP APER codec and LT-LINKADAPT service-model codec.

Measures per-PDU encode/decode time of a RIC Indication carrying a ~4 kB message through
pycrate's E2AP (and through asn1tools when an E2AP ASN.1 source directory is given with
``--e2ap-asn DIR`` and it compiles), and the service-model encode/decode time per indication
for 64 and 1,000 UEs. Prints the figures and saves them to
``benchmarks/results/e2_loop.json``.

Run: ``python benchmarks/e2_loop.py [--repeat N] [--e2ap-asn DIR]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lighttune_core.report import LinkReports
from lighttune_xapp.e2 import e2ap as E
from lighttune_xapp.e2 import service_model as sm

RESULTS = Path(__file__).resolve().parent / "results" / "e2_loop.json"


def per_call_us(fn: Callable[[], Any], repeat: int) -> float:
    """Median over 5 rounds of the mean time per call, microseconds."""
    fn()
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        rounds.append((time.perf_counter() - t0) / repeat * 1e6)
    return float(np.median(rounds))


def reports(n: int, seed: int = 1) -> LinkReports:
    rng = np.random.default_rng(seed)
    ri = rng.integers(1, 5, n)
    sinr = rng.uniform(-5, 30, (n, 4))
    sinr[np.arange(4)[None, :] >= ri[:, None]] = np.nan
    return LinkReports(
        ue_id=np.arange(n), ri=ri, cqi=rng.integers(0, 16, n), sinr_layers_db=sinr,
        csirs_snr_db=rng.uniform(-10, 40, n), rank=rng.integers(1, 5, n), mcs=rng.integers(0, 29, n),
        olla_offset_db=rng.uniform(-5, 5, n), n_ack=rng.integers(0, 100, n), n_nack=rng.integers(0, 20, n),
        served_bits=rng.integers(0, 10**9, n), csi_age_ms=rng.uniform(0, 80, n),
    )


def bench_asn1tools(asn_dir: str | None, indication: E.RicIndication, repeat: int) -> dict[str, Any]:
    if asn_dir is None:
        return {"status": "not run: no E2AP ASN.1 source given (--e2ap-asn DIR)"}
    try:
        import asn1tools

        files = sorted(str(p) for p in Path(asn_dir).glob("*.asn*"))
        spec = asn1tools.compile_files(files, "per")
    except Exception as exc:  # record whatever asn1tools reports
        return {"status": f"compile failed: {type(exc).__name__}: {str(exc)[:300]}"}
    value = ("initiatingMessage", {
        "procedureCode": 5, "criticality": "ignore",
        "value": ("RICindication", {"protocolIEs": []}),
    })
    try:
        data = spec.encode("E2AP-PDU", value)
        return {
            "status": "compiled",
            "encode_us": per_call_us(lambda: spec.encode("E2AP-PDU", value), repeat),
            "decode_us": per_call_us(lambda: spec.decode("E2AP-PDU", data), repeat),
        }
    except Exception as exc:
        return {"status": f"compiled, encode failed: {type(exc).__name__}: {str(exc)[:300]}"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--e2ap-asn", default=None)
    args = ap.parse_args(argv)

    out: dict[str, Any] = {"python": sys.version.split()[0], "machine": platform.machine()}
    rid = E.RicRequestId(1001, 1)
    ind = E.RicIndication(rid, 200, 0, 7, "report", b"h" * 24, bytes(range(256)) * 16)
    wire = E.encode(ind)
    out["ric_indication_4k"] = {
        "wire_octets": len(wire),
        "pycrate_encode_us": per_call_us(lambda: E.encode(ind), args.repeat),
        "pycrate_decode_us": per_call_us(lambda: E.decode(wire), args.repeat),
    }
    out["asn1tools"] = bench_asn1tools(args.e2ap_asn, ind, args.repeat)
    for n in (64, 1000):
        r = reports(n)
        hdr, msg = sm.encode_indication(1, 0, 0, r)
        ind_n = E.RicIndication(rid, 200, 0, 7, "report", hdr, msg)
        wire_n = E.encode(ind_n)
        rep = max(5, args.repeat // (1 if n <= 64 else 10))
        sm_enc = per_call_us(lambda: sm.encode_indication(1, 0, 0, r), rep)
        sm_dec = per_call_us(lambda: sm.decode_indication(hdr, msg), rep)
        ap_enc = per_call_us(lambda: E.encode(ind_n), rep)
        ap_dec = per_call_us(lambda: E.decode(wire_n), rep)
        out[f"indication_{n}_ues"] = {
            "sm_message_octets": len(msg), "wire_octets": len(wire_n),
            "sm_encode_us": sm_enc, "sm_decode_us": sm_dec,
            "e2ap_encode_us": ap_enc, "e2ap_decode_us": ap_dec,
            "total_decode_us_per_ue": (sm_dec + ap_dec) / n,
        }
    print(json.dumps(out, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"saved benchmarks/results/{RESULTS.name}")
    return out


if __name__ == "__main__":
    main()
