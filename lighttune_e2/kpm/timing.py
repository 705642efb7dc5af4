"""Encode/decode timing of KPM indication format 3 (asn1tools vs pycrate), for benchmarks.

:func:`time_indication_format3` builds a seeded F3 PDU with ``n_ues`` UEs x
``n_measurements`` measurements (the first REAL, the rest INTEGER, noLabel, one period,
gNB-DU-UEID) and returns median times in milliseconds per indication and the implied
UE-reports per second of our decode path (asn1tools + mapping to dataclasses).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

from lighttune_e2.kpm.codec import (
    INDICATION_MESSAGE,
    KpmCodec,
    _pycrate_decode_whole,
    encode_with_pycrate,
    raw_value,
)
from lighttune_e2.kpm.model import (
    GnbDuUeId,
    IndicationMessageFormat1,
    IndicationMessageFormat3,
    MeasurementInfo,
    MeasurementPeriod,
    UeMeasurementReport,
)
from lighttune_e2.kpm.schema import KpmVersion, asn1tools_spec


def synthetic_format3(n_ues: int, n_measurements: int = 6, seed: int = 0) -> IndicationMessageFormat3:
    """A seeded IM format 3 with ``n_ues`` UEs and ``n_measurements`` records each."""
    rng = np.random.default_rng(seed)
    infos = tuple(MeasurementInfo(f"M.{k}") for k in range(n_measurements))
    reals = rng.uniform(0.0, 1e5, size=n_ues)
    ints = rng.integers(0, 2**31, size=(n_ues, max(n_measurements - 1, 0)))
    reports = tuple(
        UeMeasurementReport(
            GnbDuUeId(ue),
            IndicationMessageFormat1(
                (MeasurementPeriod((float(reals[ue]),) + tuple(int(v) for v in ints[ue])),), infos, 1000
            ),
        )
        for ue in range(n_ues)
    )
    return IndicationMessageFormat3(reports)


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return 1e3 * statistics.median(samples)


def _asn1tools_decode_ms(spec: object, data: bytes, repeats: int) -> float:
    """Raw asn1tools decode time, NaN where asn1tools cannot decode the PDU.

    asn1tools 0.169 cannot read an open type fragmented at 16K octets (F3 over 16 KB, i.e.
    more than ~155 UEs x 6 measurements); the codec then decodes with pycrate.
    """
    try:
        spec.decode(INDICATION_MESSAGE, data)  # type: ignore[attr-defined]
    except Exception:
        return float("nan")
    return _median_ms(lambda: spec.decode(INDICATION_MESSAGE, data), repeats)  # type: ignore[attr-defined]


def time_indication_format3(n_ues: int, n_measurements: int = 6, repeats: int = 7, seed: int = 0) -> dict[str, float]:
    """Median ms per F3 indication for each step, plus size and UE-reports/s.

    Keys: ``bytes``, ``asn1tools_encode_ms`` (our encode incl. dataclass mapping),
    ``asn1tools_decode_ms`` (raw library decode; NaN if it cannot), ``codec_decode_ms`` (our decode incl.
    mapping to dataclasses), ``pycrate_encode_ms``, ``pycrate_decode_ms`` (raw library),
    ``ue_reports_per_s`` (= n_ues / codec_decode).
    """
    codec = KpmCodec(encode_version=KpmVersion.V3_00)
    message = synthetic_format3(n_ues, n_measurements, seed)
    data = codec.encode_indication_message(message)
    type_name, raw = raw_value(message)
    assert type_name == INDICATION_MESSAGE
    if encode_with_pycrate(type_name, raw, KpmVersion.V3_00) != data:
        raise RuntimeError("asn1tools and pycrate encodings differ")
    spec = asn1tools_spec(KpmVersion.V3_00)
    result = {
        "n_ues": float(n_ues),
        "bytes": float(len(data)),
        "asn1tools_encode_ms": _median_ms(lambda: codec.encode_indication_message(message), repeats),
        "asn1tools_decode_ms": _asn1tools_decode_ms(spec, data, repeats),
        "codec_decode_ms": _median_ms(lambda: codec.decode_indication_message(data), repeats),
        "pycrate_encode_ms": _median_ms(lambda: encode_with_pycrate(type_name, raw, KpmVersion.V3_00), repeats),
        "pycrate_decode_ms": _median_ms(
            lambda: _pycrate_decode_whole(KpmVersion.V3_00, INDICATION_MESSAGE, data), repeats
        ),
    }
    result["ue_reports_per_s"] = n_ues / (result["codec_decode_ms"] / 1e3)
    return result
