"""LT-LINKADAPT service model: round trips, per-UE drops, control and its outcome."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lighttune_core.report import LinkReports
from lighttune_xapp.e2 import lt_sm_pb2 as pb
from lighttune_xapp.e2 import service_model as sm
from lighttune_xapp.e2.errors import E2DecodeError, E2EncodeError


def random_reports(n: int, seed: int = 0) -> LinkReports:
    rng = np.random.default_rng(seed)
    ri = rng.integers(1, 5, n)
    sinr = rng.uniform(-5, 30, (n, 4))
    sinr[np.arange(4)[None, :] >= ri[:, None]] = np.nan
    return LinkReports(
        ue_id=rng.permutation(10 * n + 1)[:n], ri=ri, cqi=rng.integers(0, 16, n), sinr_layers_db=sinr,
        csirs_snr_db=rng.uniform(-10, 40, n), rank=rng.integers(1, 5, n), mcs=rng.integers(0, 29, n),
        olla_offset_db=rng.uniform(-5, 5, n), n_ack=rng.integers(0, 100, n), n_nack=rng.integers(0, 20, n),
        served_bits=rng.integers(0, 10**9, n), csi_age_ms=rng.uniform(0, 80, n), cqi_table=2,
    )


def assert_reports_close(a: LinkReports, b: LinkReports) -> None:
    for name in ("ue_id", "ri", "cqi", "rank", "mcs", "n_ack", "n_nack", "served_bits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("csirs_snr_db", "olla_offset_db", "csi_age_ms", "sinr_layers_db"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5, err_msg=name)
    assert a.cqi_table == b.cqi_table


@pytest.mark.parametrize("n", [0, 1, 64, 1000])
def test_indication_round_trip_keeps_every_field(n: int) -> None:
    reports = random_reports(n, seed=n)
    hdr, msg = sm.encode_indication(17, 42, 123456, reports)
    h, back, dropped = sm.decode_indication(hdr, msg)
    assert h == sm.IndicationHeader(17, 42, 123456, 2)
    assert dropped == 0
    assert_reports_close(back, reports)


def test_out_of_range_ue_is_dropped_and_counted_not_the_cell() -> None:
    reports = random_reports(10, seed=3)
    mcs = reports.mcs.copy()
    mcs[4] = 31  # > 28
    ri = reports.ri.copy()
    ri[7] = 0
    bad = LinkReports(**{**reports.__dict__, "mcs": mcs, "ri": ri})
    _, back, dropped = sm.decode_indication(*sm.encode_indication(1, 0, 0, bad))
    assert dropped == 2
    keep = np.ones(10, bool)
    keep[[4, 7]] = False
    assert_reports_close(back, reports.select(keep))


def test_short_column_drops_only_the_trailing_ues() -> None:
    reports = random_reports(6, seed=4)
    hdr, msg = sm.encode_indication(1, 0, 0, reports)
    m = pb.IndicationMessage.FromString(msg)
    del m.n_nack[4:]
    _, back, dropped = sm.decode_indication(hdr, m.SerializeToString())
    assert dropped == 2
    np.testing.assert_array_equal(back.ue_id, reports.ue_id[:4])


def test_long_column_or_garbage_is_a_decode_error() -> None:
    reports = random_reports(3, seed=5)
    hdr, msg = sm.encode_indication(1, 0, 0, reports)
    m = pb.IndicationMessage.FromString(msg)
    m.cqi.append(3)
    with pytest.raises(E2DecodeError, match="cqi"):
        sm.decode_indication(hdr, m.SerializeToString())
    with pytest.raises(E2DecodeError):
        sm.decode_indication(hdr, b"\xff\xff\xff")
    with pytest.raises(E2DecodeError, match="version"):
        sm.decode_indication(pb.IndicationHeader(version=9, cqi_table=1).SerializeToString(), msg)


def test_served_bits_beyond_int64_drops_that_ue() -> None:
    reports = random_reports(3, seed=6)
    hdr, msg = sm.encode_indication(1, 0, 0, reports)
    m = pb.IndicationMessage.FromString(msg)
    m.served_bits[1] = 2**64 - 1
    _, back, dropped = sm.decode_indication(hdr, m.SerializeToString())
    assert dropped == 1
    assert back.ue_id.tolist() == reports.ue_id[[0, 2]].tolist()


def test_encode_indication_rejects_values_that_do_not_fit_the_wire() -> None:
    reports = random_reports(3, seed=7)
    bad = LinkReports(**{**reports.__dict__, "n_ack": np.array([1, -1, 2])})
    with pytest.raises(E2EncodeError, match="n_ack"):
        sm.encode_indication(1, 0, 0, bad)
    with pytest.raises(ValueError, match="cell_id"):
        sm.encode_indication(2**40, 0, 0, reports)


def test_control_round_trip_and_rejections() -> None:
    hdr, msg = sm.encode_control(9, np.array([5, 6, 7]), np.array([1, 2, 4]), np.array([15, 0, 7]), 3, 11)
    h, acc, rej = sm.decode_control(hdr, msg)
    assert h == sm.ControlHeader(9, 11)
    np.testing.assert_array_equal(acc.ue_id, [5, 6, 7])
    np.testing.assert_array_equal(acc.ri, [1, 2, 4])
    np.testing.assert_array_equal(acc.cqi, [15, 0, 7])
    np.testing.assert_array_equal(acc.valid_periods, [3, 3, 3])
    assert len(rej) == 0
    m = pb.ControlMessage(ue_id=[1, 2, 3], ri=[5, 1, 1], cqi=[1, 16, 2], valid_periods=[1, 1])
    _, acc, rej = sm.decode_control(hdr, m.SerializeToString())
    np.testing.assert_array_equal(rej.ue_id, [1, 2, 3])
    reasons = sm.control_reject_reasons(np.array([5, 1, 1]), np.array([1, 16, 2]), np.array([1, 1, -1]),
                                        np.array([True, True, False]))
    np.testing.assert_array_equal(
        reasons, [sm.REJECT_RI_OUT_OF_RANGE, sm.REJECT_CQI_OUT_OF_RANGE, sm.REJECT_MISSING_FIELD]
    )


@pytest.mark.parametrize("kw, field", [({"ri": [0]}, "ri"), ({"cqi": [16]}, "cqi"), ({"ri": [1, 2]}, "ri")])
def test_encode_control_validates(kw: dict, field: str) -> None:
    args = {"ue_id": [1], "ri": [1], "cqi": [1]} | kw
    with pytest.raises(ValueError, match=field):
        sm.encode_control(1, np.array(args["ue_id"]), np.array(args["ri"]), np.array(args["cqi"]))


def test_control_outcome_round_trip() -> None:
    data = sm.encode_control_outcome(np.array([1, 2]), np.array([True, False]), np.array([0, sm.REJECT_UNKNOWN_UE]))
    out = sm.decode_control_outcome(data)
    np.testing.assert_array_equal(out.ue_id, [1, 2])
    np.testing.assert_array_equal(out.accepted, [True, False])
    np.testing.assert_array_equal(out.reason, [0, sm.REJECT_UNKNOWN_UE])
    with pytest.raises(ValueError, match="reason"):
        sm.encode_control_outcome(np.array([1]), np.array([True]), np.array([99]))


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
        pytest.skip("protoc not installed (apt-get install protobuf-compiler) - cannot regenerate lt_sm_pb2.py")
    src = Path(sm.__file__).with_name("lt_sm.proto")
    committed = Path(sm.__file__).with_name("lt_sm_pb2.py")
    version = subprocess.run([protoc, "--version"], capture_output=True, text=True, check=True).stdout
    if not version.split()[-1].startswith("3.21"):
        pytest.skip(f"protoc {version.strip()} differs from 3.21 used for the committed module")
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        subprocess.run([protoc, f"--proto_path={src.parent}", f"--python_out={out}", src.name], check=True)
        assert (Path(out) / "lt_sm_pb2.py").read_text() == committed.read_text()
