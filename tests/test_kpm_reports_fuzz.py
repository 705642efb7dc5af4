"""Fuzz: 10,000 mutated KPM messages inside valid RIC Indications into the report decode path.

Every payload either decodes (possibly with dropped UEs) or is counted as a decode error by
the node's :class:`KpmNodeDecoder`; nothing else escapes, and a good cell interleaved with
the garbage keeps being served in full.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from e2sim.kpm_function import KpmPeriod, KpmRanFunction
from lighttune_e2 import e2ap as E
from lighttune_e2.kpm.reports import KpmNodeDecoder
from lighttune_e2.kpm.subscription import plan_kpm_subscription
from tests.test_kpm_function import CELL, run_du

N_PAYLOADS = 10_000
GOOD_EVERY = 100


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """One seeded mutation: bit flips, truncation, insertion, extreme byte, or noise."""
    buf = bytearray(data)
    kind = int(rng.integers(0, 6))
    if kind == 0:
        for _ in range(int(rng.integers(1, 6))):
            i = int(rng.integers(0, len(buf)))
            buf[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:
        del buf[int(rng.integers(0, len(buf))):]
    elif kind == 2:
        i = int(rng.integers(0, len(buf) + 1))
        buf[i:i] = rng.integers(0, 256, size=int(rng.integers(1, 8)), dtype=np.uint8).tobytes()
    elif kind == 3:
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
    elif kind == 4:  # duplicate a slice (lengths and counts then disagree)
        i = int(rng.integers(0, len(buf)))
        j = min(len(buf), i + int(rng.integers(1, 16)))
        buf[j:j] = buf[i:j]
    else:
        buf = bytearray(rng.integers(0, 256, size=int(rng.integers(0, 64)), dtype=np.uint8).tobytes())
    return bytes(buf)


def test_mutated_kpm_payloads_are_counted_and_good_cell_served() -> None:
    du, outs = run_du(n_ue=3, periods=2, seed=2)
    fn = KpmRanFunction(CELL)
    plan = plan_kpm_subscription(fn.definition, 10)
    sub = fn.handle_subscription(plan.event_trigger, plan.action_definition).subscription
    ((header, good),) = fn.build_indications(sub, KpmPeriod.from_outcome(outs[-1], du, 1.7e9))
    # asn1tools only: with the pycrate fallback each failure costs 6 attempts instead of 3
    codec = dataclasses.replace(plan.codec, use_pycrate_fallback=False)  # keeps the node's measIDs
    decoder = KpmNodeDecoder("fuzzed", codec, plan.measurements, 10)
    request = E.RicRequestId(1, 1)
    rng = np.random.default_rng(20261123)
    decoded = served = 0
    for n in range(N_PAYLOADS):
        is_good = n % GOOD_EVERY == 0
        payload = good if is_good else mutate(rng, good)
        pdu = E.encode(E.RicIndication(request, 2, 1, n % 65536, "report", header, payload))
        indication = E.decode(pdu)
        assert isinstance(indication, E.RicIndication)
        result = decoder.decode(indication.header, indication.message)
        if result is not None:
            decoded += 1
            assert result.drops.total + len(result.reports) >= 0
        if is_good:
            assert result is not None and len(result.reports) == 3
            np.testing.assert_array_equal(result.reports.ue_id, outs[-1].reports.ue_id)
            served += 1
    stats = decoder.stats()
    assert stats["indications"] + stats["decode_errors"] == N_PAYLOADS
    assert stats["indications"] == decoded and served == N_PAYLOADS // GOOD_EVERY
    assert stats["decode_errors"] > N_PAYLOADS // 2  # the mutations do break payloads
