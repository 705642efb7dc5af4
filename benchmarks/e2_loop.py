"""E2 loop cost, codec part: E2AP APER libraries and the LT-LINKADAPT service-model codec.

1. E2AP library comparison (issue 5): a RIC Indication carrying a ~4 kB message, encoded and
   decoded by pycrate's compiled E2AP (raw pycrate values, and through our
   ``lighttune_e2.e2ap`` dataclass layer) and by asn1tools compiled with codec ``'per'``
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
lighttune_xapp | tar -x -C <dir>``) and run ``PYTHONPATH=<dir>:<venv site-packages> python -S
benchmarks/e2_loop.py --skip-e2ap --skip-loop --out benchmarks/results/e2_loop_sm_v1.json``
(``-S`` keeps the editable install of the current tree off the path): the output records the
service-model version it measured.

3. Full loop (``loop`` key, :func:`bench_loop`): one cell of 64 and of 1,000 UEs, pinned to
   one CPU, per indication: E2AP decode -> report decode -> ``LinkAdaptationPolicy.decide``
   (features, predictions, RI-CQI-Tune) -> control encode -> E2AP encode (the control is
   ready: **decision latency**, p50/p99) -> ``LinkAdaptationPolicy.finish`` (LightTune on the
   period's outcomes, after the control has left, as the xApp does it). UE-reports/s counts
   all of it, learning included; the share of each stage and the top functions by own time
   (cProfile). Policy from the packaged offline model. Two report workloads
   (``benchmarks/loop_workload.py``): ``field`` — an e2sim cell (TDL-B200 50 Hz, high SNR, the
   paper's mismatched case) recorded in closed loop, the operating point the targets are
   judged on — and ``stress`` — random, inconsistent reports that defeat the search's pruning
   and keep about a third of the samples updating forever. Keys ``<path>_<workload>_<n>_ues``.
   Each case runs ``--loop-runs`` times (default 3): its figures are those of the run of
   highest throughput (``timeit``'s best of repeats: this shared VM's speed drifts by up to
   1.6x within seconds), every run's throughput and p99 and their medians under ``runs``.
   As the xApp does at start-up, the process first keeps freed heap memory
   (``lighttune_xapp.app.keep_freed_heap_memory``; ``--default-malloc`` leaves glibc's
   defaults, for a before/after: ``benchmarks/results/e2_loop_default_malloc.json``), and the
   minor page faults per indication are recorded.
   Targets (issue 5): >= 20,000 UE-reports/s on one core, decision p99 <= 10 ms for 1,000 UEs.

4. KPM report path (``kpm_*`` keys, unless ``--skip-kpm``): the same cells reporting through
   standard E2SM-KPM (style 4, indication format 3 split below 16 KB) from our node, decoded
   by asn1tools into the same ``LinkReports``, answered through LT-LINKADAPT control, side by
   side with the service model (``sm_*``); and KPM format-3 encode/decode per indication,
   asn1tools vs pycrate (``kpm_codecs_64_ues``). Target (issue 9): >= 5,000 UE-reports/s end
   to end on one core. The report path alone (and the imputation cost) is measured by
   ``benchmarks/kpm_path.py``.

Run: ``python benchmarks/e2_loop.py [--repeat N] [--e2ap-asn DIR] [--skip-e2ap] [--skip-codec]
[--skip-loop] [--skip-kpm] [--workloads field stress] [--loop-periods N] [--loop-runs N] [--out FILE]`` (with ``--skip-codec`` / ``--skip-loop`` the
other part's figures already saved in ``--out`` are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from loop_workload import (  # benchmarks/ is the script's directory
    field_periods,
    stress_reports,
)
from results_file import save_results

from lighttune_core.report import LinkReports
from lighttune_e2 import e2ap as E
from lighttune_e2 import service_model as sm

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
    r = stress_reports(n, seed=1)
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


# --------------------------------------------------------------------------- full loop


WORKLOADS: tuple[str, ...] = ("field", "stress")
"""Report workloads of the loop part (see ``benchmarks/loop_workload.py``): ``field`` = an
e2sim cell recorded in closed loop (the operating point the targets are judged on),
``stress`` = random inconsistent reports (no pruning, ~1/3 of the samples update forever)."""


def workload_periods(workload: str, n: int, periods: int) -> list[LinkReports]:
    """``periods`` periods of an ``n``-UE cell of the given workload."""
    if workload == "field":
        return field_periods(n, periods)[0]
    if workload == "stress":
        return [stress_reports(n, seed=100 + k) for k in range(periods)]
    raise ValueError(f"unknown workload {workload!r}; choose from {WORKLOADS}")


def _sm_loop_periods(cell: list[LinkReports]) -> list[list[bytes]]:
    """Per period, the one E2AP RIC Indication (LT-LINKADAPT) of the cell."""
    pdus = []
    for k, rep in enumerate(cell):
        hdr, msg = sm.encode_indication(1, k, 80 * k, rep)
        pdus.append([E.encode(E.RicIndication(E.RicRequestId(1001, 1), 200, 1, k, "report", hdr, msg))])
    return pdus


KPM_PERIOD_MS = 80.0
"""CSI-RS period of the KPM loop cells (ms): granularity and reporting period."""


def _kpm_node() -> tuple[Any, Any, Any]:
    """Our node's KPM function, the xApp's plan for it, and the admitted style-4 subscription."""
    from e2sim.kpm_function import KpmRanFunction
    from lighttune_e2.kpm.model import CellGlobalId
    from lighttune_e2.kpm.subscription import plan_kpm_subscription

    fn = KpmRanFunction(CellGlobalId(b"\x00\xf1\x10", 7))
    plan = plan_kpm_subscription(fn.definition, int(KPM_PERIOD_MS))
    decision = fn.handle_subscription(plan.event_trigger, plan.action_definition)
    if decision.subscription is None:
        raise RuntimeError(f"our KPM node refused the xApp's subscription: {decision.detail}")
    return fn, plan, decision.subscription


def _kpm_loop_periods(cell: list[LinkReports]) -> tuple[list[list[bytes]], Any]:
    """Per period, the E2AP RIC Indication PDUs (KPM format 3, split below 16 KB) of the cell."""
    from e2sim.kpm_function import KpmPeriod

    fn, plan, sub = _kpm_node()
    out = []
    for k, rep in enumerate(cell):
        period = KpmPeriod(rep, KPM_PERIOD_MS, 1.7e9 + k * KPM_PERIOD_MS / 1e3, 106, 160)
        out.append([E.encode(E.RicIndication(E.RicRequestId(1001, 1), fn.ran_function_id, 1, k, "report", h, m))
                    for h, m in fn.build_indications(sub, period)])
    return out, plan


ReportDecoder = Callable[[E.RicIndication], tuple[str, int, int, LinkReports]]
"""RIC Indication -> (policy cell key, NR cell id, period index for the control, reports)."""


def _report_decoder(path: str, plan: Any) -> ReportDecoder:
    """The xApp's decode of one indication for the ``sm`` or the ``kpm`` report path."""
    if path == "sm":
        def decode_sm(ind: E.RicIndication) -> tuple[str, int, int, LinkReports]:
            hdr, rep, _dropped = sm.decode_indication(ind.header, ind.message)
            return str(hdr.cell_id), hdr.cell_id, hdr.period_index, rep

        return decode_sm
    from lighttune_e2.kpm.reports import KpmNodeDecoder

    decoder = KpmNodeDecoder("bench", plan.codec, plan.measurements, KPM_PERIOD_MS)

    def decode_kpm(ind: E.RicIndication) -> tuple[str, int, int, LinkReports]:
        result = decoder.decode(ind.header, ind.message)
        if result is None:
            raise RuntimeError("KPM indication of our own node did not decode")
        return "7", 7, int(result.header.period_key_ms), result.reports

    return decode_kpm


def bench_loop(
    n: int, periods: int, workload: str = "field", path: str = "sm", mode: str = "ri_cqi", max_predictions: int | None = -1,
    model: str = "builtin",
) -> dict[str, Any]:
    """One cell of ``n`` UEs through decode -> features -> predict -> decide -> encode -> learn.

    Per indication, as the local xApp handles it: E2AP decode, report decode (``sm``:
    LT-LINKADAPT; ``kpm``: E2SM-KPM format 3 via asn1tools into the same ``LinkReports``),
    ``LinkAdaptationPolicy.decide`` (take the fine-tuning samples, features, predictions,
    RI-CQI-Tune search), LT-LINKADAPT control encode, E2AP RIC Control Request encode — the
    control is ready to send: that is the **decision latency** — then
    ``LinkAdaptationPolicy.finish`` (LightTune on the period's outcomes). UE-reports/s counts
    everything including the learning. The policy starts from the packaged offline model, as
    the xApp does (``modelPath: builtin``). The first period is a warm-up and not timed; a
    KPM cell-period may take several indications (each below 16 KB), latency is per indication.
    ``max_predictions``: the cells' row cap (``XappConfig.max_predictions``; None: the exact
    search; -1: the descriptor's ``controls.maxPredictionsPerDecision``). ``model``: the
    xApp's ``modelPath`` (``"builtin"`` or a model file).
    """
    import cProfile
    import pstats

    from lighttune_xapp.app import (
        freeze_startup_objects,
        load_offline_model,
        local_config,
        read_descriptor,
    )
    from lighttune_xapp.policy import LinkAdaptationPolicy
    from lighttune_xapp.store import MemoryStore

    config = local_config(read_descriptor(), mode=mode)
    if max_predictions != -1:  # -1: the descriptor's controls.maxPredictionsPerDecision
        config = replace(config, max_predictions=max_predictions)
    policy = LinkAdaptationPolicy(config, load_offline_model(model), MemoryStore())
    cell = workload_periods(workload, n, periods + 1)
    if path == "sm":
        cell_periods, plan = _sm_loop_periods(cell), None
    elif path == "kpm":
        cell_periods, plan = _kpm_loop_periods(cell)
    else:
        raise ValueError(f"unknown report path {path!r}")
    decode = _report_decoder(path, plan)
    stages = dict.fromkeys(("e2ap_decode", "report_decode", "decide", "sm_encode", "e2ap_encode", "learn"), 0.0)
    latency: list[float] = []
    busy = 0.0
    counted = 0
    updates = 0

    def one(pdu: bytes, timed: bool, k: int) -> int:
        nonlocal busy, updates
        t0 = time.perf_counter()
        ind = E.decode(pdu)
        t1 = time.perf_counter()
        key, cell_id, period_index, rep = decode(ind)
        t2 = time.perf_counter()
        pending = policy.decide(key, rep)
        t3 = time.perf_counter()
        d = pending.decisions
        ch, cm = sm.encode_control(cell_id, d.ue_id, d.rank, d.cqi, 1, period_index)
        t4 = time.perf_counter()
        E.encode(E.RicControlRequest(E.RicRequestId(1001, 2 + k % 60000), 200, ch, cm, None, "ack"))
        t5 = time.perf_counter()
        res = policy.finish(pending)
        t6 = time.perf_counter()
        if timed:
            for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                stages[name] += dt
            latency.append(t5 - t0)
            busy += t6 - t0
            updates += res.learned.n_updates
        return len(rep)

    for pdu in cell_periods[0]:
        one(pdu, False, 0)
    # as the xApp does once it is up (lighttune_xapp.app.freeze_startup_objects): the codecs'
    # and models' long-lived objects leave the garbage collector's scans
    freeze_startup_objects()
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for k, pdus in enumerate(cell_periods[1:]):
        for pdu in pdus:
            counted += one(pdu, True, k)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    if counted != n * periods:
        raise RuntimeError(f"{counted} UE reports decoded, expected {n * periods}")
    prof = cProfile.Profile()
    profiled = cell_periods[1: 1 + min(periods, 3)]
    prof.enable()
    for k, pdus in enumerate(profiled):
        for pdu in pdus:
            one(pdu, False, k)
    prof.disable()
    n_profiled = sum(len(p) for p in profiled)
    st = pstats.Stats(prof)
    top = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:8]  # by own time
    lat = np.asarray(latency)
    return {
        "ues": n,
        "periods": periods,
        "workload": workload,
        "report_path": path,
        "mode": mode,
        "indications_per_period": len(cell_periods[1]),
        "indication_octets_mean": float(np.mean([len(p) for p in cell_periods[1]])),
        "ue_reports_per_s": n * periods / busy,
        "decision_latency_p50_ms": float(np.percentile(lat, 50) * 1e3),
        "decision_latency_p99_ms": float(np.percentile(lat, 99) * 1e3),
        "decision_latency_ms_by_indication": [round(float(x) * 1e3, 2) for x in lat],
        "cell_period_ms_mean": busy / periods * 1e3,
        "minor_page_faults_per_indication": faults / len(latency),
        "finetune_updates": updates,
        "finetune_updates_per_1000_reports": 1000.0 * updates / (n * periods),
        "stage_share": {k: v / busy for k, v in stages.items()},
        "stage_us_per_ue": {k: v / (n * periods) * 1e6 for k, v in stages.items()},
        "profile_top_own_time": [f"{fn[2]} ({Path(fn[0]).name}:{fn[1]}): {v[2] / n_profiled * 1e3:.2f} ms/indication"
                                 for fn, v in top],
    }


def bench_kpm_codecs(n: int, repeat: int) -> dict[str, Any]:
    """KPM format-3 encode/decode per indication, asn1tools vs pycrate (first indication of a cell).

    Decode: the library's value only (no mapping to ``LinkReports``); asn1tools with the
    project's bit-read and memoised-item speed-ups (:mod:`lighttune_e2.kpm.schema`).
    Also checks that both libraries produce the same octets.
    """
    from lighttune_e2.kpm.codec import (
        INDICATION_MESSAGE,
        _asn1tools_decode_whole,
        _pycrate_decode_whole,
        encode_with_pycrate,
    )
    from lighttune_e2.kpm.schema import KpmVersion

    cell_periods, plan = _kpm_loop_periods(workload_periods("field", n, 1))
    message = E.decode(cell_periods[0][0]).message
    version = KpmVersion.V3_00
    value = _asn1tools_decode_whole(version, INDICATION_MESSAGE, message)
    ues = len(value["indicationMessage-formats"][1]["ueMeasReportList"])
    ms = lambda fn: per_call_us(fn, repeat) / 1e3  # noqa: E731
    out = {
        "ues_in_indication": ues,
        "octets": len(message),
        "octets_per_ue": len(message) / ues,
        "asn1tools_decode_ms": ms(lambda: _asn1tools_decode_whole(version, INDICATION_MESSAGE, message)),
        "asn1tools_encode_ms": ms(lambda: plan.codec.encode_indication_message_value(value)),
        "pycrate_decode_ms": ms(lambda: _pycrate_decode_whole(version, INDICATION_MESSAGE, message)),
        "pycrate_encode_ms": ms(lambda: encode_with_pycrate(INDICATION_MESSAGE, value, version)),
        "libraries_agree_bytes": encode_with_pycrate(INDICATION_MESSAGE, value, version) == message
        and plan.codec.encode_indication_message_value(value) == message,
    }
    out["asn1tools_decode_ue_reports_per_s"] = ues / (out["asn1tools_decode_ms"] / 1e3)
    out["pycrate_decode_ue_reports_per_s"] = ues / (out["pycrate_decode_ms"] / 1e3)
    return out


KPM_TARGET_UE_REPORTS_PER_S = 5_000.0
"""Issue 9: the KPM path end to end (decode -> policy -> control) on one core."""


LOOP_TARGETS = {"ue_reports_per_s": 20_000.0, "p99_ms_1000_ues": 10.0}
"""Targets of issue 5: >= 20,000 UE-reports/s on one core, p99 <= 10 ms per 1,000-UE indication."""


def best_of_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of highest throughput (the least disturbed: this shared VM's speed drifts by
    up to 1.6x within seconds), with every run's throughput and p99 and their medians under
    ``runs``."""
    best = dict(max(runs, key=lambda r: r["ue_reports_per_s"]))
    rates = [r["ue_reports_per_s"] for r in runs]
    p99 = [r["decision_latency_p99_ms"] for r in runs]
    best["runs"] = {
        "n": len(runs),
        "ue_reports_per_s": rates,
        "ue_reports_per_s_median": float(np.median(rates)),
        "decision_latency_p99_ms": p99,
        "decision_latency_p99_ms_median": float(np.median(p99)),
    }
    return best


def loop_part(args: argparse.Namespace) -> dict[str, Any]:
    """The full-loop figures on one core (the process is pinned to one CPU where possible)."""
    pinned = False
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        pinned = True
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from lighttune_xapp.app import keep_freed_heap_memory

    # as the xApp does at start-up; process-wide and for good, so --default-malloc (a separate
    # run) gives the before/after
    heap_kept = False if args.default_malloc else keep_freed_heap_memory()
    from lighttune_xapp.app import read_descriptor

    # -1: the descriptor's cap; 0: none (the exact search)
    cap = -1 if args.max_predictions is None else (args.max_predictions or None)
    configured = read_descriptor()["controls"].get("maxPredictionsPerDecision", 0)
    out: dict[str, Any] = {"pinned_to_one_cpu": pinned, "heap_memory_kept": heap_kept, "targets": LOOP_TARGETS,
                           "model": args.model,
                           "max_predictions_per_decision": configured if cap == -1 else (cap or 0),
                           "targets_judged_on": "field workload", "load_1min_before": os.getloadavg()[0]}
    paths = ("sm",) if args.skip_kpm else ("sm", "kpm")
    for workload in args.workloads:
        for path in paths:
            for n in (64, 1000):
                key = f"{path}_{workload}_{n}_ues"
                runs = [bench_loop(n, args.loop_periods, workload, path, max_predictions=cap, model=args.model) for _ in range(args.loop_runs)]
                out[key] = best_of_runs(runs)
                r = out[key]
                print(f"{key}: {r['ue_reports_per_s']:,.0f} UE-reports/s (median run "
                      f"{r['runs']['ue_reports_per_s_median']:,.0f}), decision p50 "
                      f"{r['decision_latency_p50_ms']:.2f} ms p99 {r['decision_latency_p99_ms']:.2f} ms (median run "
                      f"{r['runs']['decision_latency_p99_ms_median']:.2f}), "
                      f"{r['finetune_updates_per_1000_reports']:.1f} updates/1000", flush=True)
    if "field" in args.workloads:
        small, big = out["sm_field_64_ues"], out["sm_field_1000_ues"]
        out["meets_throughput_target"] = min(small["ue_reports_per_s"], big["ue_reports_per_s"]) >= 20_000
        out["meets_p99_target"] = big["decision_latency_p99_ms"] <= 10.0
        if not args.skip_kpm:
            rates = [out[f"kpm_field_{n}_ues"]["ue_reports_per_s"] for n in (64, 1000)]
            out["kpm_target_ue_reports_per_s"] = KPM_TARGET_UE_REPORTS_PER_S
            out["kpm_meets_target"] = min(rates) >= KPM_TARGET_UE_REPORTS_PER_S
    if not args.skip_kpm:
        out["kpm_codecs_64_ues"] = bench_kpm_codecs(64, max(3, args.repeat // 20))
    out["load_1min_after"] = os.getloadavg()[0]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=200, help="calls per timing round (1,000-UE cases: a tenth)")
    ap.add_argument("--e2ap-asn", default=str(E2AP_ASN_DIR), help="directory of E2AP ASN.1 text for asn1tools")
    ap.add_argument("--skip-e2ap", action="store_true", help="measure the service model only")
    ap.add_argument("--out", default=str(RESULTS), help="JSON file for the results")
    ap.add_argument("--skip-codec", action="store_true", help="measure the full loop only")
    ap.add_argument("--skip-loop", action="store_true", help="measure the codecs only")
    ap.add_argument("--loop-periods", type=int, default=40, help="timed indications per cell size in the loop part")
    ap.add_argument("--loop-runs", type=int, default=3,
                    help="runs of each loop case; the figures are the best run's, with all runs' beside them")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's allocator at its defaults (the xApp keeps freed heap memory, "
                         "lighttune_xapp.app.keep_freed_heap_memory)")
    ap.add_argument("--skip-kpm", action="store_true", help="leave the E2SM-KPM report path out of the loop part")
    ap.add_argument("--max-predictions", type=int, metavar="N",
                    help="cap on the rows one decision predicts (0: none, the exact search; default: the "
                         "descriptor's controls.maxPredictionsPerDecision)")
    ap.add_argument("--model", default="builtin",
                    help="the xApp's modelPath: 'builtin' (the packaged model, default) or a model file")
    ap.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS),
                    help="report workloads of the loop part (default: field stress)")
    args = ap.parse_args(argv)
    if args.max_predictions is not None and args.max_predictions < 0:
        ap.error(f"--max-predictions must be >= 0, got {args.max_predictions}")

    out: dict[str, Any] = {"python": sys.version.split()[0], "machine": platform.machine()}
    if not args.skip_codec:
        out |= codec_part(args)
    if not args.skip_loop:
        out["loop"] = loop_part(args)
    print(json.dumps(out, indent=2))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if (args.skip_codec or args.skip_loop) and path.is_file():  # keep the other part's saved figures
        saved = json.loads(path.read_text())
        out = saved | out
    save_results(out, path)
    return out


if __name__ == "__main__":
    main()
