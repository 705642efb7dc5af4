"""KPM report path: imputation cost, throughput vs our service model, codec comparison.

1. **Imputation cost.** BLER-prediction error (mean |predicted − true| of the DU's own
   decision, next period) with full features vs with the features a node without our
   ``LT.`` measurements yields (imputed by the rule of :mod:`lighttune_e2.kpm.reports`),
   on the same simulated periods (DU + channel). Model: the packaged
   ``lighttune_models/offline-v1.ltm`` if present, else a small in-process one
   (:func:`e2sim.experiment.quick_model`).
2. **Throughput.** Per cell-period on the xApp side: E2AP decode of the RIC Indication(s)
   + service-model decode into ``LinkReports``; UE-reports/s and p99 latency for 64 and
   1,000 UEs, KPM (format 3, split below 16 KB) vs LT-LINKADAPT. Node-side encode timed
   separately. The KPM path decodes through the ASN.1 library (asn1tools with its bit reads
   sped up, :class:`~lighttune_e2.kpm.schema.FastPerDecoder`), no hand-written PER.
3. **Where the time goes** in one KPM format-3 message: asn1tools' PER decode, the mapping
   of its values to numpy; and asn1tools vs pycrate encode/decode per indication.

Times are wall time (``time.perf_counter``; ``process_time`` has a coarse resolution on our
machines) with BLAS held to one thread (``threadpoolctl``); the 1-minute load average is
saved with the figures. UE-reports/s is given both from the mean and from the minimum (best
case, least disturbed) of the repeats. The end-to-end KPM loop (decode -> policy -> control)
is in ``benchmarks/e2_loop.py`` (loop part, ``kpm`` rows); this script measures the report
path alone.

Prints the figures and saves them to ``benchmarks/results/kpm_path.json``.

Run: ``python benchmarks/kpm_path.py [--repeat N] [--periods P]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from results_file import save_results  # benchmarks/ is the script's directory

from e2sim.channel import LinkChannel, Scenario
from e2sim.du import DU
from e2sim.kpm_function import MEASUREMENT_IDS, KpmPeriod, KpmRanFunction
from lighttune_core.features import bler_label, build_features
from lighttune_core.report import LinkReports
from lighttune_e2 import e2ap as E
from lighttune_e2 import service_model as sm
from lighttune_e2.kpm.codec import (
    INDICATION_MESSAGE,
    _asn1tools_decode_whole,
    _pycrate_decode_whole,
    encode_with_pycrate,
)
from lighttune_e2.kpm.model import CellGlobalId, RanFunctionDefinition, ReportStyle
from lighttune_e2.kpm.reports import (
    UE_MEASUREMENT_NAMES,
    _gather,
    decode_kpm_indication,
    reports_from_flat,
)
from lighttune_e2.kpm.schema import KpmVersion
from lighttune_e2.kpm.subscription import plan_kpm_subscription

RESULTS = Path(__file__).resolve().parent / "results" / "kpm_path.json"
MODEL_FILE = Path(__file__).resolve().parents[1] / "lighttune_models" / "offline-v1.ltm"
CELL = CellGlobalId(b"\x00\xf1\x10", 1)
REQUEST = E.RicRequestId(1, 1)


def _model() -> tuple[Any, str]:
    from e2sim.experiment import load_model, quick_model

    if MODEL_FILE.exists():
        source = load_model(MODEL_FILE)
    else:
        source = quick_model(n_samples=3000, epochs=10, seed=0)
    return source.model, source.description


def kpm_node(names: tuple[str, ...], period_ms: int = 10) -> tuple[KpmRanFunction, Any, Any]:
    """Our node function offering ``names`` (report style 4), the xApp's plan for it at
    ``period_ms``, and the subscription the node admitted."""
    fn = KpmRanFunction(CELL)
    definition = RanFunctionDefinition(
        fn.definition.short_name, fn.definition.oid, fn.definition.description,
        report_styles=(ReportStyle(4, "UE-level", 4, tuple((n, MEASUREMENT_IDS[n]) for n in names), 1, 3),),
        ran_function_id=2,
    )
    plan = plan_kpm_subscription(definition, period_ms)
    decision = fn.handle_subscription(plan.event_trigger, plan.action_definition)
    if decision.subscription is None:
        raise RuntimeError(f"our KPM node refused the plan: {decision.detail}")
    return fn, plan, decision.subscription


def _kpm_reports(fn: KpmRanFunction, plan: Any, sub: Any, period: KpmPeriod) -> tuple[LinkReports, tuple[str, ...]]:
    parts = [decode_kpm_indication(h, m, plan.codec) for h, m in fn.build_indications(sub, period)]
    return LinkReports.concat([p[1] for p in parts]), tuple(sorted({f for p in parts for f in p[3]}))


def imputation_cost(n_periods: int, seed: int = 21) -> dict[str, Any]:
    """Prediction error of the DU's decision with full vs imputed features, same periods."""
    model, description = _model()
    scenario = Scenario(profile="TDL-A30", n_ue=32, snr_db=(0.0, 24.0), doppler_hz=10.0, csi_period_ms=10, seed=seed)
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    outs = []
    while len(outs) < n_periods + 1:
        out = du.step(channel.step())
        if out is not None:
            outs.append(out)
    full_node = kpm_node(UE_MEASUREMENT_NAMES)
    std_node = kpm_node(tuple(n for n in UE_MEASUREMENT_NAMES if not n.startswith("LT.")))
    errors: dict[str, list[np.ndarray]] = {"full": [], "kpm_full": [], "kpm_imputed": []}
    imputed: tuple[str, ...] = ()
    for k in range(1, n_periods):  # period 0 has no CSI yet
        reports = outs[k].reports
        label, valid = bler_label(outs[k + 1].reports.n_ack, outs[k + 1].reports.n_nack)
        period = KpmPeriod.from_outcome(outs[k], du, 1.7e9)
        variants = {
            "full": reports,
            "kpm_full": _kpm_reports(*full_node, period)[0],
        }
        std_reports, imputed = _kpm_reports(*std_node, period)
        variants["kpm_imputed"] = std_reports
        for name, r in variants.items():
            pred = model.predict_many(build_features(r, r.ri, r.cqi))
            errors[name].append(np.abs(pred - label)[valid])
    out = {name: float(np.mean(np.concatenate(v))) for name, v in errors.items()}
    out["samples"] = int(sum(v.size for v in errors["full"]))
    out["imputed_features"] = list(imputed)
    out["relative_increase"] = (out["kpm_imputed"] - out["full"]) / out["full"]
    out["model"] = description
    return out


def synthetic_reports(n: int, seed: int = 1) -> LinkReports:
    """Plausible seeded reports of ``n`` UEs (some without transmission)."""
    rng = np.random.default_rng(seed)
    ri = rng.integers(1, 5, n)
    sinr = rng.uniform(-5, 30, (n, 4))
    sinr[np.arange(4)[None, :] >= ri[:, None]] = np.nan
    total = rng.integers(0, 160, n)
    nack = rng.binomial(total, 0.1)
    return LinkReports(
        ue_id=np.arange(n), ri=ri, cqi=rng.integers(1, 16, n), sinr_layers_db=sinr,
        csirs_snr_db=rng.uniform(-10, 40, n), rank=ri, mcs=rng.integers(0, 28, n),
        olla_offset_db=rng.uniform(-5, 5, n), n_ack=total - nack, n_nack=nack,
        served_bits=rng.integers(0, 10**7, n), csi_age_ms=np.full(n, 0.5),
    )


def _timings(fn: Callable[[], Any], repeat: int) -> np.ndarray:
    """Wall seconds (``time.perf_counter``) of ``repeat`` calls after one warm-up, float64 [repeat]."""
    fn()
    samples = np.empty(repeat)
    for i in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples[i] = time.perf_counter() - t0
    return samples


def throughput(n_ue: int, repeat: int) -> dict[str, Any]:
    """KPM vs LT-LINKADAPT per cell-period, xApp side (E2AP decode + SM decode)."""
    reports = synthetic_reports(n_ue)
    fn, plan, sub = kpm_node(UE_MEASUREMENT_NAMES)
    period = KpmPeriod(reports, 10.0, 1.7e9, 106, 20)
    kpm_enc = _timings(lambda: fn.build_indications(sub, period), max(repeat // 4, 2))
    kpm_pdus = [E.encode(E.RicIndication(REQUEST, 2, 1, i, "report", h, m))
                for i, (h, m) in enumerate(fn.build_indications(sub, period))]

    def kpm_decode() -> int:
        n = 0
        for pdu in kpm_pdus:
            ind = E.decode(pdu)
            n += len(decode_kpm_indication(ind.header, ind.message, plan.codec)[1])
        return n

    assert kpm_decode() == n_ue
    kpm = _timings(kpm_decode, repeat)
    sm_enc = _timings(lambda: sm.encode_indication(1, 7, 1000, reports), repeat)
    header, message = sm.encode_indication(1, 7, 1000, reports)
    sm_pdu = E.encode(E.RicIndication(REQUEST, 3, 1, 0, "report", header, message))

    def sm_decode() -> int:
        ind = E.decode(sm_pdu)
        return len(sm.decode_indication(ind.header, ind.message)[1])

    assert sm_decode() == n_ue
    ours = _timings(sm_decode, repeat)
    return {
        "n_ues": n_ue,
        "kpm_indications": len(kpm_pdus),
        "kpm_octets": [len(p) for p in kpm_pdus],
        "kpm_ue_reports_per_s": n_ue / float(np.mean(kpm)),
        "kpm_ue_reports_per_s_best": n_ue / float(np.min(kpm)),
        "kpm_p99_ms": 1e3 * float(np.percentile(kpm, 99)),
        "kpm_node_encode_ms": 1e3 * float(np.median(kpm_enc)),
        "sm_octets": len(sm_pdu),
        "sm_ue_reports_per_s": n_ue / float(np.mean(ours)),
        "sm_ue_reports_per_s_best": n_ue / float(np.min(ours)),
        "sm_p99_ms": 1e3 * float(np.percentile(ours, 99)),
        "sm_node_encode_ms": 1e3 * float(np.median(sm_enc)),
    }


def breakdown(n_ue: int, repeat: int) -> dict[str, Any]:
    """Where the time of one format-3 message goes; asn1tools vs pycrate."""
    fn, plan, sub = kpm_node(UE_MEASUREMENT_NAMES)
    period = KpmPeriod(synthetic_reports(n_ue), 10.0, 1.7e9, 106, 20)
    header, message = fn.build_indications(sub, period)[0]
    n_in_message = len(decode_kpm_indication(header, message, plan.codec)[1])
    version = KpmVersion.V3_00
    raw = _asn1tools_decode_whole(version, INDICATION_MESSAGE, message)
    ms = lambda f: 1e3 * float(np.median(_timings(f, repeat)))  # noqa: E731
    by_id = dict(plan.codec.measurement_ids)
    flat = _gather(raw, None, by_id, 10.0)
    items = raw["indicationMessage-formats"][1]["ueMeasReportList"]
    value = {"indicationMessage-formats": ("indicationMessage-Format3", {"ueMeasReportList": items})}
    return {
        "ues_in_message": n_in_message,
        "octets": len(message),
        "asn1tools_decode_ms": ms(lambda: _asn1tools_decode_whole(version, INDICATION_MESSAGE, message)),
        "values_to_flat_lists_ms": ms(lambda: _gather(raw, None, by_id, 10.0)),
        "flat_to_linkreports_ms": ms(lambda: reports_from_flat(flat, 1)),
        "header_decode_ms": ms(lambda: plan.codec.decode_indication_header(header)),
        "dataclass_decode_ms": ms(lambda: plan.codec.decode_indication_message(message)),
        "asn1tools_encode_ms": ms(lambda: plan.codec.encode_indication_message_value(value)),
        "pycrate_decode_ms": ms(lambda: _pycrate_decode_whole(version, INDICATION_MESSAGE, message)),
        "pycrate_encode_ms": ms(lambda: encode_with_pycrate(INDICATION_MESSAGE, value, version)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--periods", type=int, default=40)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    result: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                              "clock": "perf_counter (wall s, one BLAS thread)", "load_1min": os.getloadavg()[0]}
    result["imputation"] = imputation_cost(args.periods)
    print(json.dumps(result["imputation"], indent=1))
    result["throughput"] = [throughput(n, args.repeat if n < 500 else max(args.repeat // 4, 3)) for n in (64, 1000)]
    for row in result["throughput"]:
        print(json.dumps(row))
    result["breakdown"] = breakdown(32, args.repeat)
    print(json.dumps(result["breakdown"], indent=1))
    save_results(result, RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
