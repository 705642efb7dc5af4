"""The asn1tools decode speed-ups of ``lighttune_e2.kpm.schema`` change no decoded value.

``FastPerDecoder`` must read exactly what asn1tools' own ``Decoder`` reads (values, positions,
errors), and the memoised ``MeasurementInfoItem`` decode must give the values a plain
asn1tools compile of the same schema gives, whatever the UEs' distribution bins and the bit
phase each item starts at.
"""

from __future__ import annotations

import random
from typing import Callable

import asn1tools
import numpy as np
import pytest
from asn1tools.codecs import ber, per

from e2sim.kpm_function import KpmPeriod, KpmRanFunction
from lighttune_core.report import LinkReports
from lighttune_core.synthetic import random_reports
from lighttune_e2.kpm.codec import INDICATION_MESSAGE, _asn1tools_decode_whole
from lighttune_e2.kpm.reports import _gather, _gather_per_record
from lighttune_e2.kpm.schema import (
    SCHEMA_FILES,
    FastPerDecoder,
    KpmVersion,
    _decode_real_fast,
    real_contents,
)
from lighttune_e2.kpm.subscription import plan_kpm_subscription
from tests.test_kpm_function import CELL


def _read(decoder: per.Decoder, name: str, args: tuple[int, ...]) -> tuple[str, object, int]:
    try:
        return ("ok", getattr(decoder, name)(*args), decoder.number_of_bits)
    except Exception as exc:  # the error type is part of what must agree
        return ("error", type(exc).__name__, -1)


def test_fast_bit_reads_match_asn1tools_decoder() -> None:
    rng = random.Random(20261124)
    spans = [1, 2, 7, 200, 255, 256, 257, 65535, 65536, 65537, 2**32]
    for _ in range(2000):
        data = bytearray(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        plain, fast = per.Decoder(bytearray(data)), FastPerDecoder(bytearray(data))
        for _ in range(8):
            op = rng.randrange(5)
            if op == 0:
                low, span = rng.randrange(-5, 5), rng.choice(spans)
                n_bits = (span - 1).bit_length() if span <= 65536 else 8 * rng.randrange(1, 5)
                name, args = "read_constrained_whole_number", (low, low + span - 1, n_bits)
            elif op == 1:
                name, args = "read_bits", (rng.randrange(0, 40),)
            elif op == 2:
                name, args = "read_non_negative_binary_integer", (rng.randrange(0, 20),)
            elif op == 3:
                name, args = "read_bit", ()
            else:
                name, args = "skip_bits", (rng.randrange(0, 3),)
            expected = _read(plain, name, args)
            assert _read(fast, name, args) == expected, (name, args, bytes(data).hex())
            if expected[0] == "error":
                break


def _outcome(decode: Callable[[], float]) -> str:
    try:
        return repr(decode())  # repr: -0.0 and nan compare as written
    except Exception as exc:  # the error type is part of what must agree
        return type(exc).__name__


def test_fast_real_decode_gives_asn1tools_floats() -> None:
    # both encoders' forms (ours: fewest octets; asn1tools': a leading 0x00 mantissa octet),
    # a 2-octet exponent, special values and hand-made long mantissas, read after 0-7 bits
    rng = random.Random(20261123)
    values = [0.0, -0.0, 1.0, -1.0, 0.1, -100.5, 2.0**-126, 2.0**127, 2.0**-140, 1e300, -5e-324,
              float("inf"), float("-inf"), float("nan")]
    values += [rng.uniform(-60.0, 60.0) for _ in range(300)] + [rng.lognormvariate(0.0, 30.0) for _ in range(300)]
    contents = [real_contents(v) for v in values] + [bytes(ber.encode_real(v)) for v in values]
    contents += [b"\x80\x05" + (2**60 + 1).to_bytes(8, "big"), b"\xc0\xf0\x00\x00\x01", b"\x80\x00"]
    real = per.Real("r")
    for octets in contents:
        for lead in range(8):
            encoder = per.Encoder()
            encoder.append_non_negative_binary_integer(0, lead)
            encoder.align()
            encoder.append_length_determinant(len(octets))
            encoder.append_bytes(octets)
            data = encoder.as_bytearray()
            plain, fast = per.Decoder(bytearray(data)), FastPerDecoder(bytearray(data))
            plain.read_non_negative_binary_integer(lead)
            fast.read_non_negative_binary_integer(lead)
            expected, got = _outcome(lambda: real.decode(plain)), _outcome(lambda: _decode_real_fast(real, fast))
            assert got == expected, octets.hex()
            assert fast.number_of_bits == plain.number_of_bits


def _reports(n: int, seed: int) -> LinkReports:
    return random_reports(n, seed, ue_ids=np.arange(n) * 7 + 3, first_tx=(0, 50))


@pytest.mark.parametrize("by_name", [False, True])
def test_memoised_decode_equals_plain_asn1tools(by_name: bool) -> None:
    fn = KpmRanFunction(CELL)
    plan = plan_kpm_subscription(fn.definition, 10)
    sub = fn.handle_subscription(plan.event_trigger, plan.action_definition).subscription
    assert sub is not None
    if by_name:
        sub = type(sub)(**{**sub.__dict__, "by_id": False})
    plain_spec = asn1tools.compile_files([str(SCHEMA_FILES[KpmVersion.V3_00])], "per")
    for seed in range(3):  # three cells: the memo is warm from the first on
        messages = fn.build_indications(sub, KpmPeriod(_reports(40, seed), 10.0, 1.7e9, 106, 20))
        for _, message in messages:
            ours = _asn1tools_decode_whole(KpmVersion.V3_00, INDICATION_MESSAGE, message)
            assert ours == plain_spec.decode(INDICATION_MESSAGE, message)


def _flat_arrays(flat: object) -> dict[str, np.ndarray]:
    names = ("keys", "gran", "s_ue", "s_col", "s_val", "d_ue", "d_kind", "d_x", "d_y", "d_z", "d_val")
    return {n: np.asarray(getattr(flat, n), dtype=np.float64) for n in names}


def test_batched_gather_equals_record_by_record() -> None:
    fn = KpmRanFunction(CELL)
    plan = plan_kpm_subscription(fn.definition, 10)
    sub = fn.handle_subscription(plan.event_trigger, plan.action_definition).subscription
    assert sub is not None
    ((_, message),) = fn.build_indications(sub, KpmPeriod(_reports(30, 9), 10.0, 1.7e9, 106, 20))
    raw = _asn1tools_decode_whole(KpmVersion.V3_00, INDICATION_MESSAGE, message)
    by_id = dict(plan.codec.measurement_ids)
    batched, single = _gather(raw, None, by_id, 10.0), _gather_per_record(raw, None, by_id, 10.0)
    a, b = _flat_arrays(batched), _flat_arrays(single)
    assert len(batched.keys) == 30 and batched.malformed == single.malformed == 0
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_unconvertible_record_drops_only_its_ue() -> None:
    def ue(ue_id: int, real: object) -> dict[str, object]:
        infos = [{"measType": ("measName", "CARR.WBCQIDist"),
                  "labelInfoList": [{"measLabel": {"distBinX": 8, "distBinY": 2, "distBinZ": 1}}]},
                 {"measType": ("measName", "LT.CSIRSSNR"), "labelInfoList": [{"measLabel": {"noLabel": "true"}}]}]
        return {"ueID": ("gNB-DU-UEID", {"gNB-CU-UE-F1AP-ID": ue_id}),
                "measReport": {"measData": [{"measRecord": [("integer", 1), ("real", real)]}],
                               "measInfoList": infos, "granulPeriod": 10}}

    # pycrate's REAL form (mantissa, base, exponent): 2**5000 does not fit a float
    raw = {"indicationMessage-formats": ("indicationMessage-Format3",
                                         {"ueMeasReportList": [ue(1, 12.5), ue(2, (1, 2, 5000)), ue(3, 3.0)]})}
    flat = _gather(raw, None, {}, 10.0)
    assert flat.keys == [1, 3] and flat.malformed == 1
    assert list(flat.s_val) == [12.5, 3.0]
