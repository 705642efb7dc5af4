"""Known-answer tests: E2SM-KPM bytes sent by real implementations (sources per vector)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lighttune_e2.errors import E2DecodeError
from lighttune_e2.kpm.codec import (
    DEFAULT_CODEC,
    KPM_V2_OID,
    KpmCodec,
    codec_for_ran_function,
)
from lighttune_e2.kpm.model import (
    NO_LABEL,
    GnbDuUeId,
    IndicationMessageFormat1,
    IndicationMessageFormat2,
    MatchingCondition,
)
from lighttune_e2.kpm.schema import KpmVersion, pycrate_module

DATA = Path(__file__).parent / "data" / "kpm"


def _hex(name: str) -> bytes:
    return bytes.fromhex((DATA / name).read_text().strip())


# srsRAN gNB (DU) RAN function definition, as captured from its E2 Setup and embedded as hex
# in a public OSC xApp (usap-xapp, `usap_xapp.py`, "ranFuncDecodedDuNode"); the search index
# did not resolve that file's repository. Same content as srsRAN_Project
# lib/e2/e2sm/e2sm_kpm/e2sm_kpm_asn1_packer.cpp produces (5 styles, v2 OID for v3 content).
SRSRAN_DU = "srsran_du_ran_function_definition.hex"

# srsRAN_4G srsgnb/src/stack/ric/e2ap.cc @ fbe302da7322678fc7471df2e3dab4238124ad58 (RAN function
# id 147): RAN function definition literal passed to ran_function_definition.from_string().
SRSRAN_4G_RFD = bytes.fromhex(
    "40304f52414e2d4532534d2d4b504d000018312e332e362e312e342e312e35333134382e312e322e322e3205004b504d"
    "204d6f6e69746f720001010700506572696f646963207265706f72740101"
)

# Viavi RIC Test indications kept by o-ran-sc/ric-app-kpimon-go @ 8bbbbbb90093db01f88820de755bce0ee2189c88:
# testfile1.txt (header + IM format 1) and testfile2.txt (same header + IM format 2 with an
# empty measName).
VIAVI_HEADER = "viavi_indication_header_v2.hex"
VIAVI_IM_F1 = "viavi_indication_message_format1.hex"
VIAVI_IM_F2 = "viavi_indication_message_format2.hex"

SRSRAN_DU_MEASUREMENTS = {
    "DRB.AirIfDelayUl", "DRB.PacketSuccessRateUlgNBUu", "DRB.RlcDelayUl", "DRB.RlcPacketDropRateDl",
    "DRB.RlcSduDelayDl", "DRB.RlcSduTransmittedVolumeDL", "DRB.RlcSduTransmittedVolumeUL", "DRB.UEThpDl",
    "DRB.UEThpUl", "RRU.PrbAvailDl", "RRU.PrbAvailUl", "RRU.PrbTotDl", "RRU.PrbTotUl", "RRU.PrbUsedDl",
    "RRU.PrbUsedUl",
}


def test_srsran_du_ran_function_definition() -> None:
    data = _hex(SRSRAN_DU)
    definition = DEFAULT_CODEC.decode_ran_function_definition(data, ran_function_id=2)
    assert (definition.short_name, definition.oid, definition.description) == (
        "ORAN-E2SM-KPM", KPM_V2_OID, "KPM Monitor"
    )
    assert definition.ran_function_id == 2 and definition.instance is None
    assert [(s.style_type, s.format_type) for s in definition.event_trigger_styles] == [(1, 1)]
    formats = [(s.style_type, s.action_format_type, s.indication_message_format_type) for s in definition.report_styles]
    assert formats == [(1, 1, 1), (2, 2, 1), (3, 3, 2), (4, 4, 3), (5, 5, 3)]
    style4 = definition.report_style(4)
    assert {name for name, _ in style4.measurements} == SRSRAN_DU_MEASUREMENTS
    # srsRAN advertises no measID (kpimon-go dereferences it without a NULL check).
    assert all(meas_id is None for s in definition.report_styles for _, meas_id in s.measurements)
    # Node-level-only RACH.PreambleDedCell appears in style 1 only; "CQI" is never advertised.
    assert ("RACH.PreambleDedCell", None) in definition.report_style(1).measurements
    assert all(name != "CQI" for s in definition.report_styles for name, _ in s.measurements)
    # Byte-exact re-encoding, and the v2 OID still selects v3.00 first.
    assert DEFAULT_CODEC.encode_ran_function_definition(definition) == data
    assert codec_for_ran_function(definition).decode_order[0] is KpmVersion.V3_00


def test_srsran_du_ran_function_definition_pycrate_agrees() -> None:
    pdu = pycrate_module(KpmVersion.V3_00).E2SM_KPM_RANfunction_Description
    data = _hex(SRSRAN_DU)
    pdu.from_aper(data)
    assert bytes(pdu.to_aper()) == data
    assert len(pdu.get_val()["ric-ReportStyle-List"]) == 5


def test_srsran_4g_ran_function_definition() -> None:
    definition = DEFAULT_CODEC.decode_ran_function_definition(SRSRAN_4G_RFD, ran_function_id=147)
    assert definition.oid == KPM_V2_OID
    assert definition.event_trigger_styles[0].name == "Periodic report"
    assert definition.report_styles == ()
    assert DEFAULT_CODEC.encode_ran_function_definition(definition) == SRSRAN_4G_RFD


def test_viavi_v2_indication_header() -> None:
    data = _hex(VIAVI_HEADER)
    header = DEFAULT_CODEC.decode_indication_header(data)  # v3.00 fails on the 4-octet time
    assert header.collet_start_time == bytes.fromhex("e6b0f4b7")
    assert header.unix_time_s == 1_661_367_863.0  # NTP seconds: 2022-08-24T19:04:23Z
    assert (header.sender_name, header.sender_type, header.vendor_name) == ("DU 1:1", "DU", "Viavi RIC Test")
    assert header.file_format_version is None


def test_viavi_indication_message_format1() -> None:
    data = _hex(VIAVI_IM_F1)
    message = DEFAULT_CODEC.decode_indication_message(data)
    assert isinstance(message, IndicationMessageFormat1)
    assert message.granularity_period_ms == 10000
    assert message.measurements is None
    assert len(message.periods) == 1 and message.periods[0].records == (0,) * 20
    assert DEFAULT_CODEC.encode_indication_message(message) == data


def test_viavi_indication_message_format2() -> None:
    # asn1tools cannot decode the empty measName's size extension; pycrate decodes it with the
    # v2.01 schema (MatchingCondItem as a CHOICE, as Viavi and kpimon-go use).
    data = _hex(VIAVI_IM_F2)
    message, version = DEFAULT_CODEC.decode_indication_message_with_version(data)
    assert version is KpmVersion.V2_01 and isinstance(message, IndicationMessageFormat2)
    assert message.granularity_period_ms == 10000
    # Viavi's transposed layout: 27 measData items of one record, one per measurement
    assert [p.records for p in message.periods] == [(i,) for i in range(1, 28)]
    assert len(message.conditions) == 27
    for cond in message.conditions:
        assert cond.name == "" and cond.meas_id is None
        assert cond.conditions == (MatchingCondition(label=NO_LABEL),)
        assert cond.matched_ue_ids == (GnbDuUeId(1),)
    # byte-exact re-encoding (pycrate encodes the size extension asn1tools cannot)
    assert KpmCodec(encode_version=KpmVersion.V2_01).encode_indication_message(message) == data


@pytest.mark.parametrize(
    "name", ["indication_message_format1", "indication_message_format3", "action_definition_format4"]
)
def test_flexric_modified_encoding_raises_decode_error(name: str) -> None:
    spec = json.loads((DATA / "flexric_modified_v03.00.json").read_text())
    vector = spec["vectors"][name]
    data = bytes.fromhex(vector["hex"])
    decode = (
        DEFAULT_CODEC.decode_indication_message
        if vector["type"] == "E2SM-KPM-IndicationMessage"
        else DEFAULT_CODEC.decode_action_definition
    )
    with pytest.raises(E2DecodeError) as info:
        decode(data)
    text = str(info.value)
    for attempt in ("asn1tools v3.00", "pycrate v3.00", "asn1tools v2.03", "asn1tools v2.01", "pycrate v2.01"):
        assert attempt in text
    assert "modified" in text
