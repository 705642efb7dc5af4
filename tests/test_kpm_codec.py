"""Round trips of every E2SM-KPM PDU we produce, v3.00 and v2.x, with asn1tools and pycrate
agreeing byte for byte; timestamps; version selection; encode-side validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lighttune_e2.errors import E2DecodeError, E2EncodeError
from lighttune_e2.kpm.codec import (
    DEFAULT_CODEC,
    KPM_V2_OID,
    KPM_V3_OID,
    KpmCodec,
    codec_for_ran_function,
    encode_with_pycrate,
    raw_value,
)
from lighttune_e2.kpm.model import (
    ActionDefinition,
    ActionDefinitionFormat1,
    ActionDefinitionFormat2,
    ActionDefinitionFormat4,
    ActionDefinitionFormat5,
    CellGlobalId,
    EventTrigger,
    EventTriggerStyle,
    GnbCuUpUeId,
    GnbDuUeId,
    GnbUeId,
    Guami,
    IndicationHeader,
    IndicationMessageFormat1,
    IndicationMessageFormat3,
    MatchingUeCondition,
    MeasurementInfo,
    MeasurementLabel,
    MeasurementPeriod,
    RanFunctionDefinition,
    ReportStyle,
    TestCondition,
    UeMeasurementReport,
    distribution_measurement,
    ntp_seconds_timestamp,
    ntp_timestamp,
)
from lighttune_e2.kpm.schema import KpmVersion

GUAMI = Guami(b"\x00\xf1\x10", amf_region_id=128, amf_set_id=513, amf_pointer=5)
CELL = CellGlobalId(b"\x00\xf1\x10", 0x66C000010)
UE_MEASUREMENTS = ("DRB.UEThpDl", "RRU.PrbUsedDl", "TB.TotNbrDl", "TB.ErrTotNbrDl", "DRB.UEThpUl", "RRU.PrbUsedUl")

V3 = KpmCodec(encode_version=KpmVersion.V3_00)
V203 = KpmCodec(encode_version=KpmVersion.V2_03, decode_order=(KpmVersion.V2_03,))
V201 = KpmCodec(encode_version=KpmVersion.V2_01, decode_order=(KpmVersion.V2_01,))


def _cqi_bins() -> np.ndarray:
    """CARR.WBCQIDist bins: CQI 0..15 (X = CQI + 1) x rank 1..2 (Y), CQI table 1 (Z)."""
    cqi, rank = np.meshgrid(np.arange(16), np.arange(1, 3), indexing="ij")
    return np.stack([cqi.ravel() + 1, rank.ravel(), np.ones(cqi.size, dtype=np.int64)], axis=1)


def _ran_function() -> RanFunctionDefinition:
    names = tuple((name, None) for name in UE_MEASUREMENTS) + (("CARR.WBCQIDist", 7),)
    styles = tuple(
        ReportStyle(style, name, action_fmt, names, 1, im_fmt)
        for style, name, action_fmt, im_fmt in (
            (1, "E2 Node Measurement", 1, 1),
            (4, "Common Condition-based, UE-level Measurement", 4, 3),
            (5, "E2 Node Measurement for multiple UEs", 5, 3),
        )
    )
    return RanFunctionDefinition(
        short_name="ORAN-E2SM-KPM",
        oid=KPM_V3_OID,
        description="KPM Monitor",
        instance=1,
        event_trigger_styles=(EventTriggerStyle(1, "Periodic Report", 1),),
        report_styles=styles,
    )


def _subscription() -> ActionDefinitionFormat1:
    measurements = tuple(MeasurementInfo(name) for name in UE_MEASUREMENTS)
    return ActionDefinitionFormat1(
        measurements + (distribution_measurement("CARR.WBCQIDist", _cqi_bins()),), 100, CELL
    )


def _actions() -> list[ActionDefinition]:
    sub = _subscription()
    return [
        ActionDefinition(1, sub),
        ActionDefinition(2, ActionDefinitionFormat2(GnbDuUeId(17), sub)),
        ActionDefinition(
            4,
            ActionDefinitionFormat4(
                (
                    MatchingUeCondition(TestCondition("cQI", "greaterthan", "valueInt", 3), logical_or=True),
                    MatchingUeCondition(TestCondition("sNSSAI", "equal", "valueOctS", b"\x01")),
                    MatchingUeCondition(TestCondition("ul-rSRP", "lessthan", "valueReal", -100.5)),
                    MatchingUeCondition(TestCondition("isStat", "present")),
                ),
                sub,
            ),
        ),
        ActionDefinition(
            5,
            ActionDefinitionFormat5(
                (GnbDuUeId(1), GnbUeId(2, GUAMI, (9,), b"\x00" * 7 + b"\x02"), GnbCuUpUeId(3, b"\x01" * 8)), sub
            ),
        ),
    ]


def _ue_report(ue: int) -> IndicationMessageFormat1:
    """Two periods: REAL throughput, integers, a noValue and the 32 CQI-bin counts."""
    rng = np.random.default_rng(ue)
    periods = []
    for period in range(2):
        counts = tuple(int(c) for c in rng.integers(0, 50, size=32))
        head = (float(rng.uniform(0, 1e5)), int(rng.integers(0, 273)), 1000 + ue, ue % 7, None, 12.25)
        periods.append(MeasurementPeriod(head + counts, incomplete=period == 1 and ue % 2 == 1))
    return IndicationMessageFormat1(tuple(periods), _subscription().measurements, 100)


def _format3(n_ues: int) -> IndicationMessageFormat3:
    ids = [
        GnbUeId(ue, GUAMI, ran_ue_id=ue.to_bytes(8, "big")) if ue % 2 else GnbDuUeId(ue) for ue in range(n_ues)
    ]
    return IndicationMessageFormat3(tuple(UeMeasurementReport(i, _ue_report(n)) for n, i in enumerate(ids)))


def _check(codec: KpmCodec, message: object, encode: str, decode: str) -> bytes:
    data = getattr(codec, encode)(message)
    assert getattr(codec, decode)(data) == message
    type_name, raw = raw_value(message, codec.encode_version)
    assert encode_with_pycrate(type_name, raw, codec.encode_version) == data
    return data


def test_ran_function_definition_round_trip_and_pycrate_agree() -> None:
    data = _check(V3, _ran_function(), "encode_ran_function_definition", "decode_ran_function_definition")
    decoded = V3.decode_ran_function_definition(data, ran_function_id=2)
    assert decoded.ran_function_id == 2
    assert decoded.report_style(4).indication_message_format_type == 3
    assert decoded.report_style(3) is None


@pytest.mark.parametrize("period_ms, expected", [(1000, "0803e7"), (10000, "08270f")])
def test_event_trigger_bytes(period_ms: int, expected: str) -> None:
    # 10000 ms -> 08 27 0f is what kpimon-go hard-codes ({8, 39, 15}, control/control.go).
    data = _check(V3, EventTrigger(period_ms), "encode_event_trigger", "decode_event_trigger")
    assert data.hex() == expected


@pytest.mark.parametrize("index", range(4))
def test_action_definitions_round_trip_and_pycrate_agree(index: int) -> None:
    _check(V3, _actions()[index], "encode_action_definition", "decode_action_definition")


def test_action_definition_format4_is_an_extension_alternative() -> None:
    # Standard v3: AD F4 is after the extension marker (first byte 0x00 style INTEGER
    # length, then 0x80 = extension bit set) - FlexRIC's modified encoding differs here.
    data = V3.encode_action_definition(_actions()[2])
    assert data[3] & 0x80


def test_indication_header_v3_ntp_round_trip() -> None:
    header = IndicationHeader(ntp_timestamp(1_700_000_000.25), sender_name="lighttune-e2sim", vendor_name="LT")
    data = _check(V3, header, "encode_indication_header", "decode_indication_header")
    assert len(data) > 8
    assert V3.decode_indication_header(data).unix_time_s == pytest.approx(1_700_000_000.25, abs=1e-6)


def test_indication_header_accepts_oai_microseconds() -> None:
    micros = 1_719_331_550_635_203  # OAI/FlexRIC: time_now_us() big-endian in 8 octets
    header = IndicationHeader(micros.to_bytes(8, "big"))
    decoded = V3.decode_indication_header(V3.encode_indication_header(header))
    assert decoded.unix_time_s == pytest.approx(micros / 1e6)


def test_indication_header_v2_four_octets() -> None:
    header = IndicationHeader(ntp_seconds_timestamp(1_661_367_863.0), sender_type="DU")
    data = _check(V203, header, "encode_indication_header", "decode_indication_header")
    # The default codec tries v3.00 first (fails: 8-octet TimeStamp) and falls back to v2.
    assert DEFAULT_CODEC.decode_indication_header(data).unix_time_s == 1_661_367_863.0
    # Unix seconds (FlexRIC v2.03) are told apart from NTP seconds by magnitude.
    assert IndicationHeader((1_661_367_863).to_bytes(4, "big")).unix_time_s == 1_661_367_863.0


def test_timestamp_size_must_match_version() -> None:
    with pytest.raises(E2EncodeError, match="collet_start_time"):
        V3.encode_indication_header(IndicationHeader(ntp_seconds_timestamp(0.0)))


def test_indication_format1_round_trip_values_array() -> None:
    message = _ue_report(3)
    _check(V3, message, "encode_indication_message", "decode_indication_message")
    values = message.values()
    assert values.shape == (2, 38)
    assert math.isnan(values[0, 4]) and values[0, 5] == 12.25
    names = message.record_names()
    assert names[0][0] == "DRB.UEThpDl"
    assert names[6] == ("CARR.WBCQIDist", MeasurementLabel(dist_bin_x=1, dist_bin_y=1, dist_bin_z=1))


def test_indication_format3_round_trip_and_pycrate_agree() -> None:
    message = _format3(4)
    data = _check(V3, message, "encode_indication_message", "decode_indication_message")
    assert data[0] == 0x40  # extension alternative, encoded as an open type
    decoded = V3.decode_indication_message(data)
    assert isinstance(decoded, IndicationMessageFormat3)
    assert [r.ue_id.key for r in decoded.reports] == [0, 1, 2, 3]
    assert isinstance(decoded.reports[0].report.periods[0].records[0], float)
    assert isinstance(decoded.reports[0].report.periods[0].records[1], int)


@pytest.mark.parametrize("codec", [V203, V201], ids=["v2.03", "v2.01"])
def test_v2_round_trips(codec: KpmCodec) -> None:
    header = IndicationHeader(ntp_seconds_timestamp(1_700_000_000.0))
    _check(codec, header, "encode_indication_header", "decode_indication_header")
    _check(codec, _format3(2), "encode_indication_message", "decode_indication_message")
    _check(codec, _actions()[0], "encode_action_definition", "decode_action_definition")
    _check(codec, EventTrigger(1000), "encode_event_trigger", "decode_event_trigger")


def test_v201_rejects_v3_only_test_condition() -> None:
    with pytest.raises(E2EncodeError):
        V201.encode_action_definition(_actions()[2])  # cQI / ul-rSRP exist from v2.02 on


def test_decoder_picks_version_of_v3_header_and_v2_header() -> None:
    v3_header = V3.encode_indication_header(IndicationHeader(ntp_timestamp(1.0e9)))
    v2_header = V203.encode_indication_header(IndicationHeader(ntp_seconds_timestamp(1.0e9)))
    for data, size in ((v3_header, 8), (v2_header, 4)):
        assert len(DEFAULT_CODEC.decode_indication_header(data).collet_start_time) == size


def test_codec_for_ran_function_selects_by_oid_and_name() -> None:
    srsran = RanFunctionDefinition("ORAN-E2SM-KPM", KPM_V2_OID, "KPM Monitor")
    flexric_v3 = RanFunctionDefinition("ORAN-E2SM-KPM-v03.00", KPM_V3_OID, "KPM Monitor")
    flexric_v201 = RanFunctionDefinition("ORAN-E2SM-KPM-v02.01", KPM_V2_OID, "KPM Monitor")
    assert codec_for_ran_function(srsran).encode_version is KpmVersion.V3_00
    assert codec_for_ran_function(flexric_v3).encode_version is KpmVersion.V3_00
    codec = codec_for_ran_function(flexric_v201)
    assert codec.encode_version is KpmVersion.V2_01
    assert set(codec.decode_order) == set(KpmVersion)


def test_model_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="reporting_period_ms"):
        EventTrigger(0)
    with pytest.raises(ValueError, match="ue_ids"):
        ActionDefinitionFormat5((GnbDuUeId(1),), _subscription())
    with pytest.raises(ValueError, match="dist_bin_x"):
        MeasurementLabel(dist_bin_x=0)
    with pytest.raises(ValueError, match="test_type"):
        TestCondition("snr")
    with pytest.raises(E2EncodeError, match="finite"):
        V3.encode_indication_message(IndicationMessageFormat1((MeasurementPeriod((math.inf,)),)))
    with pytest.raises(E2EncodeError, match="PrintableString|measName|character"):
        V3.encode_action_definition(ActionDefinition(1, ActionDefinitionFormat1((MeasurementInfo("é"),), 1)))


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(E2DecodeError, match="expected bytes"):
        DEFAULT_CODEC.decode_indication_message("0c00")  # type: ignore[arg-type]


def test_indication_format3_over_16k_is_fragmented_per_x691() -> None:
    # Above 16K octets the open type is fragmented; asn1tools gets this wrong both ways,
    # so the codec encodes with pycrate and decodes via the pycrate fallback.
    message = _format3(120)
    data = _check(V3, message, "encode_indication_message", "decode_indication_message")
    assert len(data) > 16384 and data[2] & 0xC0 == 0xC0  # fragmented length (m x 16K octets)


def test_real_values_from_either_library_convert_once_and_refuse_huge_exponents() -> None:
    import math

    from lighttune_e2.kpm.codec import real_to_float

    assert real_to_float(2.5) == 2.5  # asn1tools
    assert real_to_float((3, 2, -1)) == 1.5 and real_to_float((5, 10, 2)) == 500.0  # pycrate
    assert real_to_float((1, 10, -1)) == 0.1  # correctly rounded, not 1 * 10.0 ** -1 re-rounded
    assert real_to_float((1, None, 0)) == math.inf and math.isnan(real_to_float((0, None, 0)))
    assert real_to_float((1, 2, -5000)) == 0.0 and real_to_float((-7, 10, -500)) == 0.0
    for huge in ((1, 2, 5000), (1, 10, 10**9), (3, 10, 2**200)):  # a malformed PDU's exponent:
        with pytest.raises(OverflowError):  # refused, without building 10**(10**9)
            real_to_float(huge)
