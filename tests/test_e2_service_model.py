"""LT-LINKADAPT service model v2: wire layout, round trips, per-UE drops, whole-message errors,
control and its outcome, and the generated protobuf module."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lighttune_core import synthetic
from lighttune_core.report import LinkReports
from lighttune_e2 import lt_sm_pb2 as pb
from lighttune_e2 import service_model as sm
from lighttune_e2.errors import E2DecodeError, E2EncodeError


def random_reports(n: int, seed: int = 0) -> LinkReports:
    """Inconsistent in-range reports with scattered UE ids and CQI table 2."""
    ids = np.random.default_rng(seed + 10**6).permutation(10 * n + 1)[:n]
    return synthetic.random_reports(n, seed, consistent=False, ue_ids=ids, cqi_table=2)


def with_column(reports: LinkReports, **cols: np.ndarray) -> LinkReports:
    return LinkReports(**{**reports.__dict__, **cols})


def assert_reports_close(a: LinkReports, b: LinkReports) -> None:
    for name in ("ue_id", "ri", "cqi", "rank", "mcs", "n_ack", "n_nack", "served_bits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("csirs_snr_db", "olla_offset_db", "csi_age_ms", "sinr_layers_db"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5, err_msg=name)
    assert a.cqi_table == b.cqi_table


def reencode(msg: bytes, **fields: bytes) -> bytes:
    """The IndicationMessage ``msg`` with some columns replaced by raw bytes."""
    m = pb.IndicationMessage.FromString(msg)
    for name, raw in fields.items():
        setattr(m, name, raw)
    return m.SerializeToString()


@pytest.mark.parametrize("n", [0, 1, 64, 1000])
def test_indication_round_trip_keeps_every_field(n: int) -> None:
    reports = random_reports(n, seed=n)
    hdr, msg = sm.encode_indication(17, 42, 123456, reports)
    h, back, dropped = sm.decode_indication(hdr, msg)
    assert h == sm.IndicationHeader(17, 42, 123456, 2, 2)
    assert dropped == 0
    assert_reports_close(back, reports)
    for name in ("ue_id", "served_bits", "ri"):
        assert getattr(back, name).dtype == np.int64 and getattr(back, name).flags.writeable


def test_wire_layout_is_the_documented_little_endian_arrays() -> None:
    sinr = np.array([[1.5, -2.25, np.nan, np.nan], [30.0, 0.5, 7.0, -1.0]])
    reports = LinkReports(
        ue_id=[0x01020304, 7], ri=[2, 4], cqi=[15, 3], sinr_layers_db=sinr, csirs_snr_db=[12.5, -3.0],
        rank=[1, 4], mcs=[28, 0], olla_offset_db=[-1.5, 2.0], n_ack=[70000, 0], n_nack=[3, 1],
        served_bits=[2**40 + 5, 9], csi_age_ms=[5.0, 80.0],
    )
    _, msg = sm.encode_indication(1, 0, 0, reports)
    m = pb.IndicationMessage.FromString(msg)
    assert m.ue_id == b"\x04\x03\x02\x01" + struct.pack("<I", 7)
    assert m.ri == bytes([2, 4]) and m.cqi == bytes([15, 3])
    assert m.rank == bytes([1, 4]) and m.mcs == bytes([28, 0])
    assert len(m.sinr_layers_db) == 2 * 4 * 4  # f32 [N, 4], UE-major
    assert m.sinr_layers_db[:8] == struct.pack("<2f", 1.5, -2.25)
    assert m.sinr_layers_db[16:] == struct.pack("<4f", 30.0, 0.5, 7.0, -1.0)
    assert np.isnan(np.frombuffer(m.sinr_layers_db[8:16], "<f4")).all()
    assert m.csirs_snr_db == struct.pack("<2f", 12.5, -3.0)
    assert m.olla_offset_db == struct.pack("<2f", -1.5, 2.0)
    assert m.n_ack == struct.pack("<2I", 70000, 0) and m.n_nack == struct.pack("<2I", 3, 1)
    assert m.served_bits == struct.pack("<2Q", 2**40 + 5, 9)
    assert m.csi_age_ms == struct.pack("<2f", 5.0, 80.0)
    # 52 bytes per UE of payload, a few bytes of framing per column
    assert 2 * 52 < len(msg) <= 2 * 52 + 12 * 3


def test_version_two_identity() -> None:
    assert sm.SM_VERSION == (2, 1)
    assert sm.SM_OID.endswith(".200.1.2")
    assert pb.DESCRIPTOR.package == "lighttune.e2sm.linkadapt.v2"
    d = sm.decode_ran_function_definition(sm.encode_ran_function_definition(sm.RanFunctionDefinition()))
    assert d.version == (2, 1) and d.oid == sm.SM_OID
    with pytest.raises(E2DecodeError, match="version_major"):
        sm.decode_ran_function_definition(
            pb.RanFunctionDefinition(short_name="LT-LINKADAPT", version_major=1).SerializeToString()
        )


def test_out_of_range_ue_is_dropped_and_counted_not_the_cell() -> None:
    reports = random_reports(10, seed=3)
    mcs = reports.mcs.copy()
    mcs[4] = 31  # > 28, fits u8
    ri = reports.ri.copy()
    ri[7] = 0
    _, back, dropped = sm.decode_indication(*sm.encode_indication(1, 0, 0, with_column(reports, mcs=mcs, ri=ri)))
    assert dropped == 2
    keep = np.ones(10, bool)
    keep[[4, 7]] = False
    assert_reports_close(back, reports.select(keep))


def test_nan_or_infinite_value_drops_only_that_ue() -> None:
    reports = random_reports(5, seed=8)
    snr = reports.csirs_snr_db.copy()
    snr[1] = np.nan
    age = reports.csi_age_ms.copy()
    age[3] = 1e300  # beyond float32: travels as +inf
    _, back, dropped = sm.decode_indication(*sm.encode_indication(1, 0, 0, with_column(reports, csirs_snr_db=snr,
                                                                                        csi_age_ms=age)))
    assert dropped == 2
    np.testing.assert_array_equal(back.ue_id, reports.ue_id[[0, 2, 4]])


@pytest.mark.parametrize("name, delta", [("n_nack", -4), ("cqi", 1), ("sinr_layers_db", -4), ("served_bits", 8),
                                         ("mcs", -3)])
def test_column_of_wrong_length_is_a_whole_message_error(name: str, delta: int) -> None:
    reports = random_reports(3, seed=5)
    hdr, msg = sm.encode_indication(1, 0, 0, reports)
    raw = getattr(pb.IndicationMessage.FromString(msg), name)
    bad = raw[:delta] if delta < 0 else raw + bytes(delta)
    with pytest.raises(E2DecodeError, match=name):
        sm.decode_indication(hdr, reencode(msg, **{name: bad}))


def test_ue_id_not_whole_u32_or_garbage_or_old_version_is_a_decode_error() -> None:
    reports = random_reports(3, seed=5)
    hdr, msg = sm.encode_indication(1, 0, 0, reports)
    with pytest.raises(E2DecodeError, match="ue_id"):
        sm.decode_indication(hdr, reencode(msg, ue_id=bytes(13)))
    with pytest.raises(E2DecodeError):
        sm.decode_indication(hdr, b"\xff\xff\xff")
    with pytest.raises(E2DecodeError, match="version"):
        sm.decode_indication(pb.IndicationHeader(version=1, cqi_table=1).SerializeToString(), msg)
    with pytest.raises(E2DecodeError, match="bytes"):
        sm.decode_indication(hdr, "not bytes")  # type: ignore[arg-type]


def test_served_bits_beyond_int64_drops_that_ue() -> None:
    reports = random_reports(3, seed=6)
    hdr, msg = sm.encode_indication(1, 0, 0, reports)
    raw = bytearray(pb.IndicationMessage.FromString(msg).served_bits)
    raw[8:16] = struct.pack("<Q", 2**64 - 1)
    _, back, dropped = sm.decode_indication(hdr, reencode(msg, served_bits=bytes(raw)))
    assert dropped == 1
    assert back.ue_id.tolist() == reports.ue_id[[0, 2]].tolist()


@pytest.mark.parametrize("name, values", [("n_ack", [1, -1, 2]), ("ri", [1, 256, 2]), ("ue_id", [0, 2**32, 1]),
                                          ("n_nack", [0, 0, 2**32])])
def test_encode_indication_rejects_values_that_do_not_fit_the_wire(name: str, values: list[int]) -> None:
    reports = random_reports(3, seed=7)
    with pytest.raises(E2EncodeError, match=name):
        sm.encode_indication(1, 0, 0, with_column(reports, **{name: np.array(values)}))


def test_encode_indication_rejects_bad_header_values() -> None:
    reports = random_reports(3, seed=7)
    with pytest.raises(ValueError, match="cell_id"):
        sm.encode_indication(2**40, 0, 0, reports)
    with pytest.raises(ValueError, match="period"):
        sm.encode_indication(1, -1, 0, reports)


@pytest.mark.parametrize("cell_id", [2**36, 2**64 - 1])
def test_cell_id_beyond_36_bits_is_a_decode_error(cell_id: int) -> None:
    reports = random_reports(3, seed=7)
    header, message = sm.encode_indication(2**36 - 1, 5, 50, reports)  # the largest valid one passes
    assert sm.decode_indication(header, message)[0].cell_id == 2**36 - 1
    bad = pb.IndicationHeader.FromString(header)
    bad.cell_id = cell_id
    with pytest.raises(E2DecodeError, match="cell_id"):
        sm.decode_indication(bad.SerializeToString(), message)
    ctrl_header, ctrl_message = sm.encode_control(2**36 - 1, np.array([1]), np.array([2]), np.array([7]), 1, 5)
    bad_ctrl = pb.ControlHeader.FromString(ctrl_header)
    bad_ctrl.cell_id = cell_id
    with pytest.raises(E2DecodeError, match="cell_id"):
        sm.decode_control(bad_ctrl.SerializeToString(), ctrl_message)


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64), st.integers(0, 400), st.integers(0, 255))
def test_mutated_messages_raise_only_decode_errors(tail: bytes, pos: int, byte: int) -> None:
    reports = random_reports(4, seed=9)
    hdr, msg = sm.encode_indication(1, 0, 0, reports)
    data = bytearray(msg)
    data[pos % len(data)] = byte
    for candidate in (bytes(data), msg[: pos % len(msg)] + tail):
        try:
            _, back, dropped = sm.decode_indication(hdr, candidate)
        except E2DecodeError:
            continue
        assert len(back) + dropped <= max(len(candidate) // 52 + 1, 4)
        assert back.validate().all()


def test_control_round_trip_and_rejections() -> None:
    hdr, msg = sm.encode_control(9, np.array([5, 6, 7]), np.array([1, 2, 4]), np.array([15, 0, 7]), 3, 11)
    h, acc, rej = sm.decode_control(hdr, msg)
    assert h == sm.ControlHeader(9, 11, 2)
    np.testing.assert_array_equal(acc.ue_id, [5, 6, 7])
    np.testing.assert_array_equal(acc.ri, [1, 2, 4])
    np.testing.assert_array_equal(acc.cqi, [15, 0, 7])
    np.testing.assert_array_equal(acc.valid_periods, [3, 3, 3])
    assert len(rej) == 0
    m = pb.ControlMessage(ue_id=struct.pack("<3I", 1, 2, 3), ri=bytes([5, 1, 1]), cqi=bytes([1, 16, 2]),
                          valid_periods=struct.pack("<3H", 1, 1, 0))
    _, acc, rej = sm.decode_control(hdr, m.SerializeToString())
    assert len(acc) == 0
    np.testing.assert_array_equal(rej.ue_id, [1, 2, 3])
    np.testing.assert_array_equal(
        sm.control_reject_reasons(rej.ri, rej.cqi, rej.valid_periods),
        [sm.REJECT_RI_OUT_OF_RANGE, sm.REJECT_CQI_OUT_OF_RANGE, sm.REJECT_VALIDITY_OUT_OF_RANGE],
    )
    reasons = sm.control_reject_reasons(np.array([1, 4]), np.array([1, 2]), np.array([1, 1]),
                                        present=np.array([True, False]), max_rank=2)
    np.testing.assert_array_equal(reasons, [sm.REJECT_NONE, sm.REJECT_MISSING_FIELD])


def test_control_wire_layout_and_column_length_errors() -> None:
    hdr, msg = sm.encode_control(9, np.array([5, 70000]), np.array([1, 2]), np.array([15, 0]), np.array([1, 1024]))
    m = pb.ControlMessage.FromString(msg)
    assert m.ue_id == struct.pack("<2I", 5, 70000) and m.ri == bytes([1, 2]) and m.cqi == bytes([15, 0])
    assert m.valid_periods == struct.pack("<2H", 1, 1024)
    m.valid_periods = m.valid_periods[:3]
    with pytest.raises(E2DecodeError, match="valid_periods"):
        sm.decode_control(hdr, m.SerializeToString())
    with pytest.raises(E2DecodeError, match="version"):
        sm.decode_control(pb.ControlHeader(version=1).SerializeToString(), msg)


@pytest.mark.parametrize("kw, field", [({"ri": [0]}, "ri"), ({"cqi": [16]}, "cqi"), ({"ri": [1, 2]}, "ri"),
                                       ({"ue_id": [2**32]}, "ue_id"), ({"vp": [1025]}, "valid_periods")])
def test_encode_control_validates(kw: dict, field: str) -> None:
    args = {"ue_id": [1], "ri": [1], "cqi": [1], "vp": [1]} | kw
    with pytest.raises(ValueError, match=field):
        sm.encode_control(1, np.array(args["ue_id"]), np.array(args["ri"]), np.array(args["cqi"]), np.array(args["vp"]))


def test_control_outcome_round_trip_and_bad_rows() -> None:
    data = sm.encode_control_outcome(np.array([1, 2]), np.array([True, False]), np.array([0, sm.REJECT_UNKNOWN_UE]))
    out = sm.decode_control_outcome(data)
    np.testing.assert_array_equal(out.ue_id, [1, 2])
    np.testing.assert_array_equal(out.accepted, [True, False])
    np.testing.assert_array_equal(out.reason, [0, sm.REJECT_UNKNOWN_UE])
    assert out.n_dropped == 0
    assert pb.ControlOutcome.FromString(data).reason == bytes([0, sm.REJECT_UNKNOWN_UE])
    with pytest.raises(ValueError, match="reason"):
        sm.encode_control_outcome(np.array([1]), np.array([True]), np.array([99]))
    with pytest.raises(ValueError, match="accepted"):
        sm.encode_control_outcome(np.array([1]), np.array([False]), np.array([sm.REJECT_NONE]))
    raw = pb.ControlOutcome(ue_id=struct.pack("<4I", 1, 2, 3, 4), accepted=bytes([1, 2, 0, 1]),
                            reason=bytes([0, 0, 77, 3])).SerializeToString()
    out = sm.decode_control_outcome(raw)
    assert out.ue_id.tolist() == [1] and out.n_dropped == 3
    with pytest.raises(E2DecodeError, match="accepted"):
        sm.decode_control_outcome(pb.ControlOutcome(ue_id=bytes(4), accepted=bytes(2), reason=bytes(1))
                                  .SerializeToString())


def test_setup_and_subscription_payloads_round_trip() -> None:
    d = sm.RanFunctionDefinition(report_periods_ms=(10, 80), max_ues_per_indication=64)
    assert sm.decode_ran_function_definition(sm.encode_ran_function_definition(d)) == d
    assert d.oid == sm.SM_OID and d.short_name == "LT-LINKADAPT"
    for t in (sm.EventTrigger(4, None), sm.EventTrigger(None, 80)):
        assert sm.decode_event_trigger(sm.encode_event_trigger(t)) == t
    with pytest.raises(E2DecodeError):
        sm.decode_event_trigger(b"")
    a = sm.ActionDefinition(max_ues=100)
    assert sm.decode_action_definition(sm.encode_action_definition(a)) == a
    with pytest.raises(E2DecodeError, match="short_name"):
        sm.decode_ran_function_definition(pb.RanFunctionDefinition(short_name="KPM").SerializeToString())


def test_generated_module_matches_the_proto() -> None:
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.skip("protoc not installed (scripts/install-test-deps installs protobuf-compiler)")
    src = Path(sm.__file__).with_name("lt_sm.proto")
    committed = Path(sm.__file__).with_name("lt_sm_pb2.py")
    version = subprocess.run([protoc, "--version"], capture_output=True, text=True, check=True).stdout
    if not version.split()[-1].startswith("3.21"):
        pytest.skip(f"protoc {version.strip()} differs from 3.21 used for the committed module")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([protoc, f"--proto_path={src.parent}", f"--python_out={out}", src.name], check=True)
        assert (Path(out) / "lt_sm_pb2.py").read_text() == committed.read_text()


def test_control_header_carries_the_owner_epoch() -> None:
    ue = np.array([1, 2], dtype=np.int64)
    header, message = sm.encode_control(7, ue, np.array([1, 2]), np.array([5, 6]), 1, 3, owner_epoch=2**40 + 9)
    h, accepted, rejected = sm.decode_control(header, message)
    assert (h.cell_id, h.period_index, h.owner_epoch) == (7, 3, 2**40 + 9)
    assert len(accepted) == 2 and len(rejected) == 0
    # a sender that does not fence (2.0, local mode) reads as epoch 0
    h0, _, _ = sm.decode_control(*sm.encode_control(7, ue, np.array([1, 2]), np.array([5, 6])))
    assert h0.owner_epoch == 0
    with pytest.raises(ValueError, match="owner_epoch"):
        sm.encode_control(7, ue, np.array([1, 2]), np.array([5, 6]), owner_epoch=-1)
