"""Protocol fuzz: mutated KPM payloads raise only E2DecodeError (or decode cleanly)."""

from __future__ import annotations

import time

import numpy as np

from lighttune_e2.errors import E2DecodeError
from lighttune_e2.kpm.codec import KpmCodec
from lighttune_e2.kpm.model import (
    ActionDefinition,
    ActionDefinitionFormat1,
    ActionDefinitionFormat4,
    EventTrigger,
    GnbDuUeId,
    IndicationHeader,
    IndicationMessageFormat1,
    IndicationMessageFormat3,
    MatchingUeCondition,
    MeasurementInfo,
    MeasurementPeriod,
    TestCondition,
    UeMeasurementReport,
    ntp_timestamp,
)

N_PAYLOADS = 10_000
TIME_BUDGET_S = 60.0


def _seeds(codec: KpmCodec) -> list[tuple[str, bytes]]:
    meas = (MeasurementInfo("DRB.UEThpDl"), MeasurementInfo("RRU.PrbUsedDl"))
    report = IndicationMessageFormat1((MeasurementPeriod((1.5, 7)),), meas, 1000)
    sub = ActionDefinitionFormat1(meas, 1000)
    return [
        ("decode_indication_message", codec.encode_indication_message(report)),
        (
            "decode_indication_message",
            codec.encode_indication_message(
                IndicationMessageFormat3((UeMeasurementReport(GnbDuUeId(1), report), UeMeasurementReport(GnbDuUeId(2), report)))
            ),
        ),
        ("decode_indication_header", codec.encode_indication_header(IndicationHeader(ntp_timestamp(1.7e9), sender_name="x"))),
        ("decode_event_trigger", codec.encode_event_trigger(EventTrigger(1000))),
        (
            "decode_action_definition",
            codec.encode_action_definition(
                ActionDefinition(4, ActionDefinitionFormat4((MatchingUeCondition(TestCondition("cQI", "lessthan", "valueInt", 9)),), sub))
            ),
        ),
    ]


def _mutate(rng: np.random.Generator, data: bytes) -> bytes:
    buf = bytearray(data)
    kind = rng.integers(0, 5)
    if kind == 0 and buf:  # flip bits
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(buf)))
            buf[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1 and buf:  # truncate
        del buf[int(rng.integers(0, len(buf))):]
    elif kind == 2:  # random bytes inserted
        i = int(rng.integers(0, len(buf) + 1))
        buf[i:i] = rng.integers(0, 256, size=int(rng.integers(1, 6)), dtype=np.uint8).tobytes()
    elif kind == 3 and buf:  # overwrite a byte with an extreme value
        buf[int(rng.integers(0, len(buf)))] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
    else:  # fully random payload
        buf = bytearray(rng.integers(0, 256, size=int(rng.integers(0, 40)), dtype=np.uint8).tobytes())
    return bytes(buf)


def test_mutated_payloads_raise_only_decode_error() -> None:
    # asn1tools alone: the pycrate fallback is exercised by the vector tests; here it would
    # only slow the run (each failure is tried with 3 versions x 2 libraries otherwise).
    codec = KpmCodec(use_pycrate_fallback=False)
    seeds = _seeds(codec)
    rng = np.random.default_rng(20241123)
    start = time.monotonic()
    done = errors = 0
    while done < N_PAYLOADS and time.monotonic() - start < TIME_BUDGET_S:
        method, seed = seeds[done % len(seeds)]
        payload = _mutate(rng, seed)
        try:
            getattr(codec, method)(payload)
        except E2DecodeError:
            errors += 1
        done += 1
    assert done >= 1000  # even a very slow machine gets through a meaningful number
    assert errors > done // 10  # the mutations do break payloads


def test_mutated_payloads_with_pycrate_fallback() -> None:
    codec = KpmCodec()
    seeds = _seeds(codec)
    rng = np.random.default_rng(7)
    for n in range(300):
        method, seed = seeds[n % len(seeds)]
        try:
            getattr(codec, method)(_mutate(rng, seed))
        except E2DecodeError:
            pass
