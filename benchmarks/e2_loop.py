"""E2 loop cost, codec part: E2AP APER libraries and the LT-LINKADAPT service-model codec.

1. E2AP library comparison (issue 5): a RIC Indication carrying a ~4 kB message, encoded and
   decoded by pycrate's compiled E2AP (raw pycrate values, and through our
   ``lighttune_xapp.e2.e2ap`` dataclass layer) and by asn1tools compiled with codec ``'per'``
   from the E2AP ASN.1 text kept in ``benchmarks/data/e2ap/`` (``--e2ap-asn DIR`` picks
   another directory). If asn1tools compiles it, both libraries' bytes are compared; if it
   does not, the exception and its message are recorded. The decision and its reason are
   part of the output.
2. LT-LINKADAPT service model: encode / decode time per indication for 64 and 1,000 UEs
   (median of 5 rounds of the mean per call), the p99 of single 1,000-UE decodes, message
   size, and the E2AP + service-model decode cost per UE.

Prints the figures and saves them to ``benchmarks/results/e2_loop.json`` (``--out``).

Before/after of the service-model wire change (v1 packed repeated fields -> v2 byte arrays):
extract the tree of the commit before the change (``git archive <commit> lighttune_core
lighttune_xapp | tar -x -C <dir>``) and run ``PYTHONPATH=<dir> python benchmarks/e2_loop.py
--skip-e2ap --out benchmarks/results/e2_loop_sm_v1.json``: the output records the
service-model version it measured.

Run: ``python benchmarks/e2_loop.py [--repeat N] [--e2ap-asn DIR] [--skip-e2ap] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lighttune_core.report import LinkReports
from lighttune_xapp.e2 import e2ap as E
from lighttune_xapp.e2 import service_model as sm

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "e2_loop.json"
E2AP_ASN_DIR = HERE / "data" / "e2ap"


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


def single_call_percentiles_us(fn: Callable[[], Any], calls: int) -> dict[str, float]:
    """p50 / p99 / max of ``calls`` individually timed calls, microseconds."""
    fn()
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    p50, p99 = np.percentile(times * 1e6, [50, 99])
    return {"p50_us": float(p50), "p99_us": float(p99), "max_us": float(times.max() * 1e6), "calls": calls}


def reports(n: int, seed: int = 1) -> LinkReports:
    """N UEs of plausible, in-range reports (seeded)."""
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


# --------------------------------------------------------------------------- E2AP libraries


def ric_indication_4k() -> E.RicIndication:
    """The RIC Indication both libraries code: 24-byte header, 4,096-byte message."""
    return E.RicIndication(E.RicRequestId(1001, 1), 200, 0, 7, "report", b"h" * 24, bytes(range(256)) * 16)


def bench_pycrate(indication: E.RicIndication, repeat: int) -> dict[str, Any]:
    """pycrate E2AP: raw value <-> APER, and our dataclass layer on top of it."""
    from pycrate_asn1dir import E2AP

    pdu = E2AP.E2AP_PDU_Descriptions.E2AP_PDU
    wire = E.encode(indication)
    pdu.from_aper(wire)
    value = pdu.get_val()

    def raw_encode() -> bytes:
        pdu.set_val(value)
        return pdu.to_aper()

    def raw_decode() -> Any:
        pdu.from_aper(wire)
        return pdu.get_val()

    round_trip_ok = E.decode(wire) == indication and raw_encode() == wire
    return {
        "wire_octets": len(wire),
        "round_trip_identical": bool(round_trip_ok),
        "raw_encode_us": per_call_us(raw_encode, repeat),
        "raw_decode_us": per_call_us(raw_decode, repeat),
        "dataclass_encode_us": per_call_us(lambda: E.encode(indication), repeat),
        "dataclass_decode_us": per_call_us(lambda: E.decode(wire), repeat),
    }


def bench_asn1tools(asn_dir: Path, indication: E.RicIndication, repeat: int) -> dict[str, Any]:
    """asn1tools 'per' on the E2AP ASN.1 text in ``asn_dir``: compile, then code the same PDU.

    The value handed to asn1tools is pycrate's decoded value of the PDU (CHOICE as
    (name, value), SEQUENCE as dict, OCTET STRING as bytes), which is also asn1tools' value
    notation; its bytes are compared with pycrate's.
    """
    import asn1tools

    files = sorted(str(p) for p in asn_dir.glob("*.asn*"))
    out: dict[str, Any] = {"asn1tools_version": asn1tools.__version__, "files": [Path(f).name for f in files]}
    if not files:
        return out | {"status": f"not run: no *.asn* file in {asn_dir.name}"}
    t0 = time.perf_counter()
    try:
        spec = asn1tools.compile_files(files, "per")
    except Exception as exc:  # the failure itself is the measured result
        last = traceback.extract_tb(exc.__traceback__)[-1]
        return out | {
            "status": "compile failed",
            "exception": type(exc).__name__,
            "message": str(exc)[:500],
            "raised_in": f"{'/'.join(Path(last.filename).parts[-3:])}:{last.lineno} {last.name}",
            "seconds_to_failure": round(time.perf_counter() - t0, 2),
        }
    out["compile_seconds"] = round(time.perf_counter() - t0, 2)
    from pycrate_asn1dir import E2AP

    pdu = E2AP.E2AP_PDU_Descriptions.E2AP_PDU
    wire = E.encode(indication)
    pdu.from_aper(wire)
    value = pdu.get_val()
    try:
        data = spec.encode("E2AP-PDU", value)
        back = spec.decode("E2AP-PDU", wire)
    except Exception as exc:
        return out | {"status": "compiled, coding failed", "exception": type(exc).__name__, "message": str(exc)[:500]}
    return out | {
        "status": "compiled",
        "bytes_identical_to_pycrate": data == wire,
        "decodes_pycrate_bytes_to_same_value": back == value,
        "encode_us": per_call_us(lambda: spec.encode("E2AP-PDU", value), repeat),
        "decode_us": per_call_us(lambda: spec.decode("E2AP-PDU", wire), repeat),
    }


def e2ap_library_decision(pycrate: dict[str, Any], asn1tools: dict[str, Any]) -> dict[str, str]:
    """Pick the E2AP library on correctness first, then speed."""
    if asn1tools.get("status") != "compiled":
        return {"library": "pycrate", "reason": f"asn1tools cannot be used for E2AP: {asn1tools.get('status')}"
                f" ({asn1tools.get('exception', '')}: {asn1tools.get('message', '')})"}
    if not asn1tools.get("bytes_identical_to_pycrate") or not asn1tools.get("decodes_pycrate_bytes_to_same_value"):
        return {"library": "pycrate", "reason": "asn1tools compiled but its bytes/values differ from pycrate's"}
    faster = asn1tools["decode_us"] + asn1tools["encode_us"] < pycrate["raw_decode_us"] + pycrate["raw_encode_us"]
    return {"library": "asn1tools" if faster else "pycrate",
            "reason": "both give identical bytes; the faster one (encode + decode) wins"}


# --------------------------------------------------------------------------- service model


def bench_service_model(n: int, repeat: int, p99_calls: int) -> dict[str, Any]:
    """Encode/decode of one N-UE LT-LINKADAPT indication, alone and inside an E2AP PDU."""
    r = reports(n)
    hdr, msg = sm.encode_indication(1, 0, 0, r)
    ind = E.RicIndication(E.RicRequestId(1001, 1), 200, 0, 7, "report", hdr, msg)
    wire = E.encode(ind)
    sm_enc = per_call_us(lambda: sm.encode_indication(1, 0, 0, r), repeat)
    sm_dec = per_call_us(lambda: sm.decode_indication(hdr, msg), repeat)
    ap_enc = per_call_us(lambda: E.encode(ind), repeat)
    ap_dec = per_call_us(lambda: E.decode(wire), repeat)
    out: dict[str, Any] = {
        "sm_message_octets": len(msg), "wire_octets": len(wire),
        "sm_encode_us": sm_enc, "sm_decode_us": sm_dec,
        "e2ap_encode_us": ap_enc, "e2ap_decode_us": ap_dec,
        "sm_decode_us_per_ue": sm_dec / n,
        "total_decode_us_per_ue": (sm_dec + ap_dec) / n,
    }
    if p99_calls:
        out["sm_decode_single_call"] = single_call_percentiles_us(lambda: sm.decode_indication(hdr, msg), p99_calls)
    return out


def codec_part(args: argparse.Namespace) -> dict[str, Any]:
    """All codec figures of this benchmark, as one dict."""
    out: dict[str, Any] = {"sm_version": ".".join(map(str, sm.SM_VERSION))}
    if not args.skip_e2ap:
        ind = ric_indication_4k()
        pycrate = bench_pycrate(ind, args.repeat)
        asn1 = bench_asn1tools(Path(args.e2ap_asn), ind, args.repeat)
        out["ric_indication_4k"] = {"pycrate": pycrate, "asn1tools": asn1,
                                    "decision": e2ap_library_decision(pycrate, asn1)}
    for n in (64, 1000):
        rep = max(5, args.repeat if n <= 64 else args.repeat // 10)
        out[f"indication_{n}_ues"] = bench_service_model(n, rep, 200 if n == 1000 else 0)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200, help="calls per timing round (1,000-UE cases: a tenth)")
    ap.add_argument("--e2ap-asn", default=str(E2AP_ASN_DIR), help="directory of E2AP ASN.1 text for asn1tools")
    ap.add_argument("--skip-e2ap", action="store_true", help="measure the service model only")
    ap.add_argument("--out", default=str(RESULTS), help="JSON file for the results")
    args = ap.parse_args(argv)

    out: dict[str, Any] = {"python": sys.version.split()[0], "machine": platform.machine()}
    out |= codec_part(args)
    print(json.dumps(out, indent=2))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"saved {path.name}")
    return out


if __name__ == "__main__":
    main()
