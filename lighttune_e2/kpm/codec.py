"""E2SM-KPM codec: aligned-PER bytes <-> the dataclasses of :mod:`lighttune_e2.kpm.model`.

Libraries. asn1tools (schema compiled once per process, :mod:`.schema`) is the primary
encoder and decoder. pycrate, from modules generated at development time, is the fallback
decoder (it handles what asn1tools does not, e.g. Viavi's empty ``measName`` whose size
extension asn1tools cannot decode) and the cross-check encoder of the tests.

Versions. v3.00 (8-octet TimeStamp; also v4.00 content), v2.03 and v2.01 (4-octet
TimeStamp). A :class:`KpmCodec` holds the order in which versions are tried when decoding
and the version it encodes with; :func:`codec_for_ran_function` derives both from the RAN
function definition's OID and short name (``1.3.6.1.4.1.53148.1.3.2.2`` or a name saying
v03/v04 -> v3.00; a name saying v02.01/v02.03 -> that version; the v2 OID with no version in
the name, as srsRAN advertises for v3 content -> v3.00 first). Decoding tries every version,
preferred first, each with asn1tools then pycrate, and keeps the first that decodes *and*
maps onto our model.

asn1tools defects worked around: REAL mantissas with a needless leading zero octet (see
:mod:`.schema`), and open types longer than 16K octets encoded without the length determinant
of the fragment that follows (X.691 10.9.3.8); PDUs of 16K octets or more are therefore
encoded with pycrate, which is spec-conformant there.

Trailing octets. asn1tools (and asn1c's ``aper_decode``) ignore bytes after a complete PDU;
we count them (``_asn1tools_decode_prefix``). A decode that uses the whole buffer is
preferred over every other; failing that, a complete PDU followed by at most
:data:`MAX_TRAILING_OCTETS` octets is accepted and the octets are reported
(:attr:`DecodeOutcome.trailing_octets`, ``KpmDecodeResult.trailing_octets``) so that the
caller counts and logs them. Longer trailers are refused: such bytes are more likely another
encoding whose prefix happens to parse.

Errors. Anything undecodable raises :class:`~lighttune_e2.errors.E2DecodeError`
listing every (library, version) attempt and why it failed; never another exception. The
text names a likely cause only where it can be one (:func:`explain_failure`): FlexRIC's
non-standard "modified" v3 encoding for action definitions and indication messages (the
only PDUs whose bytes it changes), and KPM v1 for a RAN function description in v1 form
(:class:`KpmV1Unsupported`, :func:`detect_kpm_v1`). Values that do not fit the schema raise
:class:`~lighttune_e2.errors.E2EncodeError`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

import asn1tools
from pycrate_asn1rt.codecs import ASN1CodecPER
from pycrate_core.charpy import Charpy

from lighttune_e2.errors import E2DecodeError, E2EncodeError
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
    IndicationMessage,
    IndicationMessageFormat1,
    IndicationMessageFormat2,
    IndicationMessageFormat3,
    MatchingCondition,
    MatchingUeCondition,
    MeasurementConditionUeIds,
    MeasurementInfo,
    MeasurementLabel,
    MeasurementPeriod,
    RanFunctionDefinition,
    RecordValue,
    ReportStyle,
    TestCondition,
    UeId,
    UeMeasurementReport,
)
from lighttune_e2.kpm.schema import (
    ASN1_DIR,
    FastPerDecoder,
    KpmVersion,
    asn1tools_spec,
    pycrate_module,
)

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: E2SM OIDs seen in the field (see the module docstring for how they select a version).
KPM_V2_OID: str = "1.3.6.1.4.1.53148.1.2.2.2"
KPM_V3_OID: str = "1.3.6.1.4.1.53148.1.3.2.2"

# ASN.1 type names of the PDUs carried in E2AP OCTET STRINGs.
RAN_FUNCTION_DESCRIPTION = "E2SM-KPM-RANfunction-Description"
EVENT_TRIGGER_DEFINITION = "E2SM-KPM-EventTriggerDefinition"
ACTION_DEFINITION = "E2SM-KPM-ActionDefinition"
INDICATION_HEADER = "E2SM-KPM-IndicationHeader"
INDICATION_MESSAGE = "E2SM-KPM-IndicationMessage"


# ---------------------------------------------------------------------------------------
# Raw-value helpers (asn1tools form; pycrate differences are normalised on the way in)
# ---------------------------------------------------------------------------------------


def _bits_to_int(value: Any) -> int:
    """BIT STRING -> int: asn1tools gives (bytes, nbits), pycrate (int, nbits)."""
    data, nbits = value
    if isinstance(data, int):
        return data
    return int.from_bytes(data, "big") >> (8 * len(data) - nbits)


def _int_to_bits(value: int, nbits: int) -> tuple[bytes, int]:
    """int -> asn1tools BIT STRING (bytes left-aligned, nbits)."""
    nbytes = (nbits + 7) // 8
    return (value << (8 * nbytes - nbits)).to_bytes(nbytes, "big"), nbits


_MAX_DECIMAL_EXPONENT = 400
"""Beyond ``10**±400`` a decimal REAL is 0 or out of float range: decided without building
the power (a malformed PDU may carry a huge exponent)."""


def real_to_float(value: Any) -> float:
    """REAL -> float: asn1tools gives a float, pycrate ``(mantissa, base, exponent)``.

    ``mantissa · base^exponent`` rounded once: ``ldexp`` for base 2, exact integer arithmetic
    for base 10 (``int / int`` rounds correctly and underflows to 0.0). Raises OverflowError
    when the value is beyond float range (a caller drops that record), never builds a huge
    power. ``(m, None, _)`` is pycrate's ±inf (``m`` ≠ 0) or NaN.
    """
    if value.__class__ is float:
        return value
    if isinstance(value, tuple):
        mantissa, base, exponent = value
        if base is None:
            return math.copysign(math.inf, mantissa) if mantissa else math.nan
        if base == 2:
            return math.ldexp(float(mantissa), exponent)
        if mantissa == 0 or exponent < -_MAX_DECIMAL_EXPONENT:
            return math.copysign(0.0, mantissa)
        if exponent > _MAX_DECIMAL_EXPONENT:
            raise OverflowError(f"REAL {mantissa}e{exponent} is beyond float range")
        return float(mantissa * base**exponent) if exponent >= 0 else mantissa / base ** (-exponent)
    return float(value)


def _label_raw(label: MeasurementLabel) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if label.no_label:
        raw["noLabel"] = "true"
    if label.five_qi is not None:
        raw["fiveQI"] = label.five_qi
    if label.layer_mu_mimo is not None:
        raw["layerMU-MIMO"] = label.layer_mu_mimo
    if label.dist_bin_x is not None:
        raw["distBinX"] = label.dist_bin_x
    if label.dist_bin_y is not None:
        raw["distBinY"] = label.dist_bin_y
    if label.dist_bin_z is not None:
        raw["distBinZ"] = label.dist_bin_z
    if label.ssb_index is not None:
        raw["ssbIndex"] = label.ssb_index
    return raw


def _label_from_raw(raw: dict[str, Any]) -> MeasurementLabel:
    return MeasurementLabel(
        no_label="noLabel" in raw,
        five_qi=raw.get("fiveQI"),
        layer_mu_mimo=raw.get("layerMU-MIMO"),
        dist_bin_x=raw.get("distBinX"),
        dist_bin_y=raw.get("distBinY"),
        dist_bin_z=raw.get("distBinZ"),
        ssb_index=raw.get("ssbIndex"),
    )


def _meas_type_raw(name: str | None, meas_id: int | None) -> tuple[str, Any]:
    return ("measName", name) if name is not None else ("measID", meas_id)


def _meas_info_raw(info: MeasurementInfo) -> dict[str, Any]:
    return {
        "measType": _meas_type_raw(info.name, info.meas_id),
        "labelInfoList": [{"measLabel": _label_raw(label)} for label in info.labels],
    }


def _meas_info_from_raw(raw: dict[str, Any]) -> MeasurementInfo:
    kind, value = raw["measType"]
    labels = tuple(_label_from_raw(item["measLabel"]) for item in raw["labelInfoList"])
    if kind == "measName":
        return MeasurementInfo(name=value, labels=labels)
    return MeasurementInfo(name=None, labels=labels, meas_id=value)


def _cgi_raw(cgi: CellGlobalId) -> tuple[str, Any]:
    if cgi.nr:
        return ("nR-CGI", {"pLMNIdentity": cgi.plmn_identity, "nRCellIdentity": _int_to_bits(cgi.cell_identity, 36)})
    return ("eUTRA-CGI", {"pLMNIdentity": cgi.plmn_identity, "eUTRACellIdentity": _int_to_bits(cgi.cell_identity, 28)})


def _cgi_from_raw(raw: tuple[str, Any]) -> CellGlobalId:
    kind, value = raw
    if kind == "nR-CGI":
        return CellGlobalId(value["pLMNIdentity"], _bits_to_int(value["nRCellIdentity"]), nr=True)
    if kind == "eUTRA-CGI":
        return CellGlobalId(value["pLMNIdentity"], _bits_to_int(value["eUTRACellIdentity"]), nr=False)
    raise ValueError(f"unsupported CGI alternative {kind!r}")


def _guami_raw(guami: Guami) -> dict[str, Any]:
    return {
        "pLMNIdentity": guami.plmn_identity,
        "aMFRegionID": _int_to_bits(guami.amf_region_id, 8),
        "aMFSetID": _int_to_bits(guami.amf_set_id, 10),
        "aMFPointer": _int_to_bits(guami.amf_pointer, 6),
    }


def _guami_from_raw(raw: dict[str, Any]) -> Guami:
    return Guami(
        raw["pLMNIdentity"],
        _bits_to_int(raw["aMFRegionID"]),
        _bits_to_int(raw["aMFSetID"]),
        _bits_to_int(raw["aMFPointer"]),
    )


def _ue_id_raw(ue_id: UeId) -> tuple[str, Any]:
    if isinstance(ue_id, GnbDuUeId):
        raw: dict[str, Any] = {"gNB-CU-UE-F1AP-ID": ue_id.gnb_cu_ue_f1ap_id}
        if ue_id.ran_ue_id is not None:
            raw["ran-UEID"] = ue_id.ran_ue_id
        return ("gNB-DU-UEID", raw)
    if isinstance(ue_id, GnbUeId):
        raw = {"amf-UE-NGAP-ID": ue_id.amf_ue_ngap_id, "guami": _guami_raw(ue_id.guami)}
        if ue_id.gnb_cu_ue_f1ap_ids:
            raw["gNB-CU-UE-F1AP-ID-List"] = [{"gNB-CU-UE-F1AP-ID": f1ap} for f1ap in ue_id.gnb_cu_ue_f1ap_ids]
        if ue_id.ran_ue_id is not None:
            raw["ran-UEID"] = ue_id.ran_ue_id
        return ("gNB-UEID", raw)
    if isinstance(ue_id, GnbCuUpUeId):
        raw = {"gNB-CU-CP-UE-E1AP-ID": ue_id.gnb_cu_cp_ue_e1ap_id}
        if ue_id.ran_ue_id is not None:
            raw["ran-UEID"] = ue_id.ran_ue_id
        return ("gNB-CU-UP-UEID", raw)
    raise ValueError(f"ue_id must be GnbUeId, GnbDuUeId or GnbCuUpUeId, got {type(ue_id).__name__}")


def _ue_id_from_raw(raw: tuple[str, Any]) -> UeId:
    kind, value = raw
    if kind == "gNB-DU-UEID":
        return GnbDuUeId(value["gNB-CU-UE-F1AP-ID"], value.get("ran-UEID"))
    if kind == "gNB-UEID":
        f1ap = tuple(item["gNB-CU-UE-F1AP-ID"] for item in value.get("gNB-CU-UE-F1AP-ID-List", ()))
        return GnbUeId(value["amf-UE-NGAP-ID"], _guami_from_raw(value["guami"]), f1ap, value.get("ran-UEID"))
    if kind == "gNB-CU-UP-UEID":
        return GnbCuUpUeId(value["gNB-CU-CP-UE-E1AP-ID"], value.get("ran-UEID"))
    raise ValueError(f"unsupported UEID alternative {kind!r} (we model gNB-UEID, gNB-DU-UEID, gNB-CU-UP-UEID)")


def _record_raw(value: RecordValue) -> tuple[str, Any]:
    cls = value.__class__
    if cls is int:
        return ("integer", value)
    if cls is float:
        if not math.isfinite(value):
            raise ValueError(f"measurement real values must be finite (use None for noValue), got {value!r}")
        return ("real", value)
    if value is None:
        return ("noValue", None)
    raise ValueError(f"measurement record must be int, float or None, got {value!r}")


def _records_from_raw(raw: list[tuple[str, Any]]) -> tuple[RecordValue, ...]:
    return tuple(value if kind == "integer" else None if kind == "noValue" else real_to_float(value) for kind, value in raw)


def _im_format1_raw(message: IndicationMessageFormat1) -> dict[str, Any]:
    raw: dict[str, Any] = {"measData": []}
    for period in message.periods:
        item: dict[str, Any] = {"measRecord": [_record_raw(v) for v in period.records]}
        if period.incomplete:
            item["incompleteFlag"] = "true"
        raw["measData"].append(item)
    if message.measurements is not None:
        raw["measInfoList"] = [_meas_info_raw(m) for m in message.measurements]
    if message.granularity_period_ms is not None:
        raw["granulPeriod"] = message.granularity_period_ms
    return raw


def _im_format1_from_raw(raw: dict[str, Any]) -> IndicationMessageFormat1:
    periods = tuple(
        MeasurementPeriod(_records_from_raw(item["measRecord"]), "incompleteFlag" in item) for item in raw["measData"]
    )
    infos = raw.get("measInfoList")
    return IndicationMessageFormat1(
        periods=periods,
        measurements=None if infos is None else tuple(_meas_info_from_raw(m) for m in infos),
        granularity_period_ms=raw.get("granulPeriod"),
    )


def _ad_format1_raw(definition: ActionDefinitionFormat1) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "measInfoList": [_meas_info_raw(m) for m in definition.measurements],
        "granulPeriod": definition.granularity_period_ms,
    }
    if definition.cell_global_id is not None:
        raw["cellGlobalID"] = _cgi_raw(definition.cell_global_id)
    return raw


def _ad_format1_from_raw(raw: dict[str, Any]) -> ActionDefinitionFormat1:
    cgi = raw.get("cellGlobalID")
    return ActionDefinitionFormat1(
        measurements=tuple(_meas_info_from_raw(m) for m in raw["measInfoList"]),
        granularity_period_ms=raw["granulPeriod"],
        cell_global_id=None if cgi is None else _cgi_from_raw(cgi),
    )


def _test_value_raw(kind: str, value: Any) -> tuple[str, Any]:
    if kind == "valueBitS":
        return (kind, (value, 8 * len(value)))
    return (kind, value)


def _test_condition_raw(test: TestCondition) -> dict[str, Any]:
    raw: dict[str, Any] = {"testType": (test.test_type, "true")}
    if test.expression is not None:
        raw["testExpr"] = test.expression
    if test.value_kind is not None:
        raw["testValue"] = _test_value_raw(test.value_kind, test.value)
    return raw


def _test_condition_from_raw(raw: dict[str, Any]) -> TestCondition:
    kind = value = None
    if "testValue" in raw:
        kind, value = raw["testValue"]
        if kind == "valueBitS":
            bits, nbits = value
            value = bits if isinstance(bits, bytes) else bits.to_bytes((nbits + 7) // 8, "big")
        elif kind == "valueReal":
            value = real_to_float(value)
    return TestCondition(raw["testType"][0], raw.get("testExpr"), kind, value)


# ---------------------------------------------------------------------------------------
# Dataclass <-> raw, per PDU
# ---------------------------------------------------------------------------------------


def _ran_function_raw(definition: RanFunctionDefinition) -> dict[str, Any]:
    name: dict[str, Any] = {
        "ranFunction-ShortName": definition.short_name,
        "ranFunction-E2SM-OID": definition.oid,
        "ranFunction-Description": definition.description,
    }
    if definition.instance is not None:
        name["ranFunction-Instance"] = definition.instance
    raw: dict[str, Any] = {"ranFunction-Name": name}
    if definition.event_trigger_styles:
        raw["ric-EventTriggerStyle-List"] = [
            {
                "ric-EventTriggerStyle-Type": s.style_type,
                "ric-EventTriggerStyle-Name": s.name,
                "ric-EventTriggerFormat-Type": s.format_type,
            }
            for s in definition.event_trigger_styles
        ]
    if definition.report_styles:
        styles = []
        for s in definition.report_styles:
            actions = []
            for meas_name, meas_id in s.measurements:
                action: dict[str, Any] = {"measName": meas_name}
                if meas_id is not None:
                    action["measID"] = meas_id
                actions.append(action)
            styles.append(
                {
                    "ric-ReportStyle-Type": s.style_type,
                    "ric-ReportStyle-Name": s.name,
                    "ric-ActionFormat-Type": s.action_format_type,
                    "measInfo-Action-List": actions,
                    "ric-IndicationHeaderFormat-Type": s.indication_header_format_type,
                    "ric-IndicationMessageFormat-Type": s.indication_message_format_type,
                }
            )
        raw["ric-ReportStyle-List"] = styles
    return raw


def _ran_function_from_raw(raw: dict[str, Any]) -> RanFunctionDefinition:
    name = raw["ranFunction-Name"]
    return RanFunctionDefinition(
        short_name=name["ranFunction-ShortName"],
        oid=name["ranFunction-E2SM-OID"],
        description=name["ranFunction-Description"],
        instance=name.get("ranFunction-Instance"),
        event_trigger_styles=tuple(
            EventTriggerStyle(
                s["ric-EventTriggerStyle-Type"], s["ric-EventTriggerStyle-Name"], s["ric-EventTriggerFormat-Type"]
            )
            for s in raw.get("ric-EventTriggerStyle-List", ())
        ),
        report_styles=tuple(
            ReportStyle(
                style_type=s["ric-ReportStyle-Type"],
                name=s["ric-ReportStyle-Name"],
                action_format_type=s["ric-ActionFormat-Type"],
                measurements=tuple((m["measName"], m.get("measID")) for m in s["measInfo-Action-List"]),
                indication_header_format_type=s["ric-IndicationHeaderFormat-Type"],
                indication_message_format_type=s["ric-IndicationMessageFormat-Type"],
            )
            for s in raw.get("ric-ReportStyle-List", ())
        ),
    )


def _event_trigger_raw(trigger: EventTrigger) -> dict[str, Any]:
    return {"eventDefinition-formats": ("eventDefinition-Format1", {"reportingPeriod": trigger.reporting_period_ms})}


def _event_trigger_from_raw(raw: dict[str, Any]) -> EventTrigger:
    kind, value = raw["eventDefinition-formats"]
    if kind != "eventDefinition-Format1":
        raise ValueError(f"unsupported event trigger format {kind!r}")
    return EventTrigger(value["reportingPeriod"])


def _action_definition_raw(action: ActionDefinition, version: KpmVersion) -> dict[str, Any]:
    definition = action.definition
    if isinstance(definition, ActionDefinitionFormat1):
        formats: tuple[str, Any] = ("actionDefinition-Format1", _ad_format1_raw(definition))
    elif isinstance(definition, ActionDefinitionFormat2):
        formats = (
            "actionDefinition-Format2",
            {"ueID": _ue_id_raw(definition.ue_id), "subscriptInfo": _ad_format1_raw(definition.subscription)},
        )
    elif isinstance(definition, ActionDefinitionFormat4):
        conditions = []
        for cond in definition.conditions:
            item: dict[str, Any] = {"testCondInfo": _test_condition_raw(cond.test)}
            if cond.logical_or:
                item["logicalOR"] = "true"
            conditions.append(item)
        formats = (
            "actionDefinition-Format4",
            {"matchingUeCondList": conditions, "subscriptionInfo": _ad_format1_raw(definition.subscription)},
        )
    elif isinstance(definition, ActionDefinitionFormat5):
        formats = (
            "actionDefinition-Format5",
            {
                "matchingUEidList": [{"ueID": _ue_id_raw(u)} for u in definition.ue_ids],
                "subscriptionInfo": _ad_format1_raw(definition.subscription),
            },
        )
    else:
        raise ValueError(f"unsupported action definition {type(definition).__name__}")
    return {"ric-Style-Type": action.style_type, "actionDefinition-formats": formats}


def _action_definition_from_raw(raw: dict[str, Any]) -> ActionDefinition:
    kind, value = raw["actionDefinition-formats"]
    if kind == "actionDefinition-Format1":
        definition: Any = _ad_format1_from_raw(value)
    elif kind == "actionDefinition-Format2":
        definition = ActionDefinitionFormat2(_ue_id_from_raw(value["ueID"]), _ad_format1_from_raw(value["subscriptInfo"]))
    elif kind == "actionDefinition-Format4":
        definition = ActionDefinitionFormat4(
            tuple(
                MatchingUeCondition(_test_condition_from_raw(c["testCondInfo"]), "logicalOR" in c)
                for c in value["matchingUeCondList"]
            ),
            _ad_format1_from_raw(value["subscriptionInfo"]),
        )
    elif kind == "actionDefinition-Format5":
        definition = ActionDefinitionFormat5(
            tuple(_ue_id_from_raw(u["ueID"]) for u in value["matchingUEidList"]),
            _ad_format1_from_raw(value["subscriptionInfo"]),
        )
    else:
        raise ValueError(f"unsupported action definition format {kind!r} (we model formats 1, 2, 4, 5)")
    return ActionDefinition(raw["ric-Style-Type"], definition)


def _indication_header_raw(header: IndicationHeader, version: KpmVersion) -> dict[str, Any]:
    if len(header.collet_start_time) != version.timestamp_octets:
        raise ValueError(
            f"indication_header.collet_start_time has {len(header.collet_start_time)} bytes; "
            f"KPM v{version.value} needs {version.timestamp_octets}"
        )
    raw: dict[str, Any] = {"colletStartTime": header.collet_start_time}
    for field, key in (
        ("file_format_version", "fileFormatversion"),
        ("sender_name", "senderName"),
        ("sender_type", "senderType"),
        ("vendor_name", "vendorName"),
    ):
        value = getattr(header, field)
        if value is not None:
            raw[key] = value
    return {"indicationHeader-formats": ("indicationHeader-Format1", raw)}


def _indication_header_from_raw(raw: dict[str, Any]) -> IndicationHeader:
    kind, value = raw["indicationHeader-formats"]
    if kind != "indicationHeader-Format1":
        raise ValueError(f"unsupported indication header format {kind!r}")
    return IndicationHeader(
        collet_start_time=value["colletStartTime"],
        file_format_version=value.get("fileFormatversion"),
        sender_name=value.get("senderName"),
        sender_type=value.get("senderType"),
        vendor_name=value.get("vendorName"),
    )


def _matching_condition_raw(cond: MatchingCondition, version: KpmVersion) -> Any:
    choice = ("measLabel", _label_raw(cond.label)) if cond.label is not None else (
        "testCondInfo", _test_condition_raw(cond.test))  # type: ignore[arg-type]
    if version is KpmVersion.V2_01:  # MatchingCondItem is the CHOICE itself, without logicalOR
        if cond.logical_or:
            raise ValueError("KPM v2.01 cannot carry logicalOR in a matching condition")
        return choice
    raw: dict[str, Any] = {"matchingCondChoice": choice}
    if cond.logical_or:
        raw["logicalOR"] = "true"
    return raw


def _matching_condition_from_raw(raw: Any) -> MatchingCondition:
    if isinstance(raw, dict):  # v2.03 and later
        kind, value = raw["matchingCondChoice"]
        logical_or = "logicalOR" in raw
    else:
        (kind, value), logical_or = raw, False
    if kind == "measLabel":
        return MatchingCondition(label=_label_from_raw(value), logical_or=logical_or)
    if kind == "testCondInfo":
        return MatchingCondition(test=_test_condition_from_raw(value), logical_or=logical_or)
    raise ValueError(f"unsupported matching condition {kind!r}")


def _im_format2_raw(message: IndicationMessageFormat2, version: KpmVersion) -> dict[str, Any]:
    items = []
    for cond in message.conditions:
        item: dict[str, Any] = {
            "measType": _meas_type_raw(cond.name, cond.meas_id),
            "matchingCond": [_matching_condition_raw(c, version) for c in cond.conditions],
        }
        if cond.matched_ue_ids:
            item["matchingUEidList"] = [{"ueID": _ue_id_raw(u)} for u in cond.matched_ue_ids]
        items.append(item)
    raw = _im_format1_raw(IndicationMessageFormat1(message.periods, None, message.granularity_period_ms))
    raw["measCondUEidList"] = items
    return raw


def _im_format2_from_raw(raw: dict[str, Any]) -> IndicationMessageFormat2:
    data = _im_format1_from_raw(raw)  # measData and granulPeriod as in format 1 (no measInfoList)
    conditions = []
    for item in raw["measCondUEidList"]:
        kind, ident = item["measType"]
        conditions.append(MeasurementConditionUeIds(
            name=ident if kind == "measName" else None,
            meas_id=ident if kind == "measID" else None,
            conditions=tuple(_matching_condition_from_raw(c) for c in item["matchingCond"]),
            matched_ue_ids=tuple(_ue_id_from_raw(u["ueID"]) for u in item.get("matchingUEidList", ())),
        ))
    return IndicationMessageFormat2(data.periods, tuple(conditions), data.granularity_period_ms)


def _indication_message_raw(message: IndicationMessage, version: KpmVersion) -> dict[str, Any]:
    if isinstance(message, IndicationMessageFormat1):
        formats: tuple[str, Any] = ("indicationMessage-Format1", _im_format1_raw(message))
    elif isinstance(message, IndicationMessageFormat2):
        formats = ("indicationMessage-Format2", _im_format2_raw(message, version))
    elif isinstance(message, IndicationMessageFormat3):
        formats = (
            "indicationMessage-Format3",
            {
                "ueMeasReportList": [
                    {"ueID": _ue_id_raw(r.ue_id), "measReport": _im_format1_raw(r.report)} for r in message.reports
                ]
            },
        )
    else:
        raise ValueError(f"unsupported indication message {type(message).__name__}")
    return {"indicationMessage-formats": formats}


def _indication_message_from_raw(raw: dict[str, Any]) -> IndicationMessage:
    kind, value = raw["indicationMessage-formats"]
    if kind == "indicationMessage-Format1":
        return _im_format1_from_raw(value)
    if kind == "indicationMessage-Format2":
        return _im_format2_from_raw(value)
    if kind == "indicationMessage-Format3":
        return IndicationMessageFormat3(
            tuple(
                UeMeasurementReport(_ue_id_from_raw(item["ueID"]), _im_format1_from_raw(item["measReport"]))
                for item in value["ueMeasReportList"]
            )
        )
    raise ValueError(f"unsupported indication message format {kind!r} (we model formats 1, 2 and 3)")


# ---------------------------------------------------------------------------------------
# pycrate value conversion (for the fallback decoder and the cross-check encoder)
# ---------------------------------------------------------------------------------------


def _float_to_pycrate_real(value: float) -> tuple[int, int, int]:
    """float -> pycrate REAL (mantissa, 2, exponent) with an odd mantissa (0 -> (0, 2, 0))."""
    if value == 0.0:
        return (0, 2, 0)
    numerator, denominator = value.as_integer_ratio()
    exponent = -(denominator.bit_length() - 1)
    while numerator % 2 == 0:
        numerator //= 2
        exponent += 1
    return (numerator, 2, exponent)


def to_pycrate_value(raw: Any) -> Any:
    """Convert an asn1tools-form value to pycrate's form (BIT STRING, REAL, NULL differ)."""
    cls = raw.__class__
    if cls is dict:
        return {k: to_pycrate_value(v) for k, v in raw.items()}
    if cls is list:
        return [to_pycrate_value(v) for v in raw]
    if cls is tuple:
        if len(raw) == 2 and isinstance(raw[0], bytes) and isinstance(raw[1], int):
            return (_bits_to_int(raw), raw[1])
        return (raw[0], to_pycrate_value(raw[1]))
    if cls is float:
        return _float_to_pycrate_real(raw)
    if raw is None:
        return 0
    return raw


def _pycrate_type(version: KpmVersion, type_name: str) -> Any:
    return getattr(pycrate_module(version), type_name.replace("-", "_"))


#: X.691 fragment size (16K octets): above it asn1tools' open-type encoding is wrong.
_FRAGMENT_OCTETS = 16384

# pycrate's PDU objects are module-level singletons with state: one decode at a time.
_PYCRATE_LOCK = threading.Lock()


#: Octets after a complete PDU that a decode still accepts (counted and logged). asn1c's
#: ``aper_decode`` and asn1tools' ``decode`` accept any trailer: the PDU ends where its
#: encoding says. A stray octet or two appears in the field (a buffer rounded up, a length
#: counted one too long), so it is accepted; a longer trailer is refused, since then the
#: bytes are more likely another encoding whose first octets happen to form a short PDU
#: (FlexRIC's "modified" IM format 1 of 52 octets parses as a standard 14-octet PDU + 38).
MAX_TRAILING_OCTETS: int = 4


def _asn1tools_decode_prefix(version: KpmVersion, type_name: str, data: bytes) -> tuple[Any, int]:
    """asn1tools PER decode of the PDU at the start of ``data``: (value, trailing octets).

    asn1tools' public ``decode`` hides what it did not read, so a payload in another
    encoding can "decode" as a short, wrong PDU. This drives the compiled type with a
    decoder we keep, to count the whole octets left after the PDU (the padding bits of its
    final octet are part of it, X.691 11.1).
    """
    compiled = asn1tools_spec(version)._types[type_name]
    decoder = FastPerDecoder(bytearray(data))
    value = compiled._type.decode(decoder)
    return value, decoder.number_of_bits // 8


def _asn1tools_decode_whole(version: KpmVersion, type_name: str, data: bytes) -> Any:
    """asn1tools PER decode that rejects any octet left over after the PDU."""
    value, trailing = _asn1tools_decode_prefix(version, type_name, data)
    if trailing:
        raise ValueError(f"{trailing} trailing bytes after the PDU")
    return value


def _pycrate_decode_prefix(version: KpmVersion, type_name: str, data: bytes) -> tuple[Any, int]:
    """pycrate aligned-PER decode of the PDU at the start of ``data``: (pycrate's value form,
    trailing octets)."""
    pdu = _pycrate_type(version, type_name)
    with _PYCRATE_LOCK:
        depth = len(ASN1CodecPER._off)
        try:
            buffer = Charpy(data)
            pdu.from_aper(buffer)
            return pdu.get_val(), buffer.len_bit() // 8
        finally:
            del ASN1CodecPER._off[depth:]


def _pycrate_decode_whole(version: KpmVersion, type_name: str, data: bytes) -> Any:
    """pycrate aligned-PER decode that rejects trailing bytes; returns pycrate's value form."""
    value, trailing = _pycrate_decode_prefix(version, type_name, data)
    if trailing:
        raise ValueError(f"{trailing} trailing bytes after the PDU")
    return value


@dataclasses.dataclass(frozen=True)
class DecodeOutcome:
    """A decoded E2SM-KPM PDU: the parsed value, the schema version, the library, and the
    number of octets that followed the complete PDU and were ignored (0 .. MAX_TRAILING_OCTETS)."""

    value: Any
    version: KpmVersion
    library: str
    trailing_octets: int = 0


# ---------------------------------------------------------------------------------------
# The codec
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KpmCodec:
    """Encoder/decoder for one E2 node's KPM flavour.

    ``decode_order``: versions tried when decoding, preferred first (every supported
    version is tried). ``encode_version``: the version we encode with.
    """

    encode_version: KpmVersion = KpmVersion.V3_00
    decode_order: tuple[KpmVersion, ...] = (KpmVersion.V3_00, KpmVersion.V2_03, KpmVersion.V2_01)
    use_pycrate_fallback: bool = True
    #: ``(measID, measName)`` pairs the node assigned in its RAN function definition
    #: (MeasurementInfo-Action-Item.measID, E2SM-KPM v3.00 8.3.x / ASN.1
    #: ``MeasurementInfo-Action-Item``): how reports that identify measurements by
    #: ``measID`` (MeasurementType CHOICE) are read back into names.
    measurement_ids: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        missing = [v for v in KpmVersion if v not in self.decode_order]
        object.__setattr__(self, "decode_order", tuple(self.decode_order) + tuple(missing))

    # -- generic ----------------------------------------------------------------------

    def _encode(self, type_name: str, raw_builder: Callable[[KpmVersion], Any]) -> bytes:
        version = self.encode_version
        try:
            raw = raw_builder(version)
            try:
                data = bytes(asn1tools_spec(version).encode(type_name, raw, check_constraints=True))
            except NotImplementedError:
                # asn1tools 0.169 cannot encode a string's size extension (e.g. Viavi's empty
                # measName); pycrate can
                data = encode_with_pycrate(type_name, raw, version)
            if len(data) >= _FRAGMENT_OCTETS:
                # asn1tools 0.169 omits the length determinant after a 16K fragment of an
                # open type (IM F3 / AD F4-F5 over 16 KB); pycrate follows X.691 10.9.3.8.
                data = encode_with_pycrate(type_name, raw, version)
            return data
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise E2EncodeError(f"cannot encode {type_name} as KPM v{version.value}: {exc}") from exc
        except Exception as exc:  # asn1tools raises its own error hierarchy
            raise E2EncodeError(f"cannot encode {type_name} as KPM v{version.value}: {type(exc).__name__}: {exc}") from exc

    def _decode(self, type_name: str, data: bytes, parse: Callable[[Any], T]) -> tuple[T, KpmVersion]:
        outcome = self._decode_detailed(type_name, data, parse)
        return outcome.value, outcome.version

    def _decode_detailed(self, type_name: str, data: bytes, parse: Callable[[Any], T]) -> DecodeOutcome:
        """Decode ``data`` as ``type_name`` and ``parse`` the library's value.

        Every (version, library) is tried, preferred version first, asn1tools before pycrate;
        the first that decodes the whole buffer *and* parses wins. Only when none does, the
        first that decodes a complete PDU followed by 1 .. :data:`MAX_TRAILING_OCTETS` octets
        and parses is taken, with those octets counted in ``trailing_octets`` (and logged at
        debug level; callers count and report them). Anything else raises E2DecodeError
        naming every attempt.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise E2DecodeError(f"{type_name}: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        attempts: list[str] = []
        lenient: list[tuple[KpmVersion, str, Any, int]] = []
        decoders: list[tuple[str, Callable[[KpmVersion, str, bytes], tuple[Any, int]]]] = [
            ("asn1tools", _asn1tools_decode_prefix)
        ]
        if self.use_pycrate_fallback:
            decoders.append(("pycrate", _pycrate_decode_prefix))
        for version in self.decode_order:
            for library, decode_prefix in decoders:
                label = f"{library} v{version.value}"
                try:
                    raw, trailing = decode_prefix(version, type_name, data)
                    if trailing:
                        if trailing <= MAX_TRAILING_OCTETS:
                            lenient.append((version, library, raw, trailing))
                        raise ValueError(f"{trailing} trailing bytes after the PDU")
                    return DecodeOutcome(parse(raw), version, library)
                except Exception as exc:  # any library or model failure is one failed attempt
                    attempts.append(f"{label}: {type(exc).__name__}: {str(exc)[:120]}")
        for version, library, raw, trailing in lenient:
            try:
                value = parse(raw)
            except Exception as exc:
                attempts.append(f"{library} v{version.value} (ignoring {trailing} trailing octets): "
                                f"{type(exc).__name__}: {str(exc)[:120]}")
                continue
            _log.debug("%s: accepted a complete v%s PDU (%s) followed by %d trailing octet(s) %s",
                       type_name, version.value, library, trailing, data[-trailing:].hex())
            return DecodeOutcome(value, version, library, trailing)
        raise E2DecodeError(self._failure_message(type_name, data, attempts))

    def _failure_message(self, type_name: str, data: bytes, attempts: list[str]) -> str:
        """Why ``data`` is not a ``type_name`` of any supported version (see :func:`explain_failure`)."""
        return explain_failure(type_name, data, attempts)

    def _raise_if_kpm_v1(self, data: bytes) -> None:
        """Raise :class:`KpmV1Unsupported` if ``data`` is a KPM v1 RAN function description."""
        names = detect_kpm_v1(data)
        if names is None:
            return
        short_name, oid, description = names
        raise KpmV1Unsupported(
            f"RAN function {short_name!r} (OID {oid!r}, {description!r}) is E2SM-KPM v1 (v01.00): "
            "KPM v1 is not supported (LightTune speaks E2SM-KPM v2.01, v2.03 and v3.00/v4.00); "
            "the node needs a KPM v2 or v3 RAN function",
            short_name, oid, description,
        )

    # -- RAN function definition ---------------------------------------------------------

    def encode_ran_function_definition(self, definition: RanFunctionDefinition) -> bytes:
        """E2SM-KPM-RANfunction-Description bytes (for E2AP RANfunction-Item)."""
        return self._encode(RAN_FUNCTION_DESCRIPTION, lambda v: _ran_function_raw(definition))

    def decode_ran_function_definition(self, data: bytes, ran_function_id: int | None = None) -> RanFunctionDefinition:
        """Decode a RAN function definition; ``ran_function_id`` is copied from E2AP.

        Raises:
            KpmV1Unsupported: the bytes are a KPM v1 definition (a subclass of E2DecodeError).
            E2DecodeError: anything else that no supported version decodes.
        """
        try:
            definition, _ = self._decode(RAN_FUNCTION_DESCRIPTION, data, _ran_function_from_raw)
        except E2DecodeError:
            self._raise_if_kpm_v1(bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b"")
            raise
        return dataclasses.replace(definition, ran_function_id=ran_function_id)

    # -- subscription ----------------------------------------------------------------------

    def encode_event_trigger(self, trigger: EventTrigger) -> bytes:
        """E2SM-KPM-EventTriggerDefinition format 1 bytes."""
        return self._encode(EVENT_TRIGGER_DEFINITION, lambda v: _event_trigger_raw(trigger))

    def decode_event_trigger(self, data: bytes) -> EventTrigger:
        """Decode an event trigger definition (format 1)."""
        return self._decode(EVENT_TRIGGER_DEFINITION, data, _event_trigger_from_raw)[0]

    def encode_action_definition(self, action: ActionDefinition) -> bytes:
        """E2SM-KPM-ActionDefinition bytes (formats 1, 2, 4, 5)."""
        return self._encode(ACTION_DEFINITION, lambda v: _action_definition_raw(action, v))

    def decode_action_definition(self, data: bytes) -> ActionDefinition:
        """Decode an action definition (formats 1, 2, 4, 5)."""
        return self._decode(ACTION_DEFINITION, data, _action_definition_from_raw)[0]

    # -- indications -------------------------------------------------------------------------

    def encode_indication_header(self, header: IndicationHeader) -> bytes:
        """E2SM-KPM-IndicationHeader format 1 bytes (timestamp size must match the version)."""
        return self._encode(INDICATION_HEADER, lambda v: _indication_header_raw(header, v))

    def decode_indication_header(self, data: bytes) -> IndicationHeader:
        """Decode an indication header (format 1; 4- or 8-octet timestamp)."""
        return self._decode(INDICATION_HEADER, data, _indication_header_from_raw)[0]

    def encode_indication_message(self, message: IndicationMessage) -> bytes:
        """E2SM-KPM-IndicationMessage bytes (formats 1, 2 and 3)."""
        return self._encode(INDICATION_MESSAGE, lambda v: _indication_message_raw(message, v))

    def encode_indication_message_value(self, value: dict[str, Any]) -> bytes:
        """Encode an indication message given as the asn1tools value dict.

        The fast path of a node building large format-3 messages (no dataclass per UE);
        same constraint checks, 16K rule and errors as :meth:`encode_indication_message`.
        """
        return self._encode(INDICATION_MESSAGE, lambda v: value)

    def decode_indication_message(self, data: bytes) -> IndicationMessage:
        """Decode an indication message (formats 1, 2 and 3)."""
        return self._decode(INDICATION_MESSAGE, data, _indication_message_from_raw)[0]

    def decode_indication_message_as(self, data: bytes, parse: Callable[[Any], T]) -> tuple[T, KpmVersion]:
        """Decode an indication message and hand the library's value straight to ``parse``.

        The fast path of the report decoder (:mod:`lighttune_e2.kpm.reports`): no
        dataclass per record. ``parse`` gets the asn1tools value form (pycrate's, from the
        fallback, differs only in REAL = (mantissa, base, exponent) and NULL = 0); if it
        raises, the next (library, version) is tried as for any decode failure.
        """
        return self._decode(INDICATION_MESSAGE, data, parse)

    def decode_indication_header_outcome(self, data: bytes) -> DecodeOutcome:
        """Decode an indication header; the outcome tells the version and any trailing octets."""
        return self._decode_detailed(INDICATION_HEADER, data, _indication_header_from_raw)

    def decode_indication_message_outcome(self, data: bytes, parse: Callable[[Any], T]) -> DecodeOutcome:
        """:meth:`decode_indication_message_as`, with the version and trailing octets in the outcome."""
        return self._decode_detailed(INDICATION_MESSAGE, data, parse)

    def decode_indication_message_with_version(self, data: bytes) -> tuple[IndicationMessage, KpmVersion]:
        """Decode an indication message and tell which schema version decoded it."""
        return self._decode(INDICATION_MESSAGE, data, _indication_message_from_raw)


def kpm_version_for(short_name: str, oid: str) -> tuple[KpmVersion, ...]:
    """Versions to try for a RAN function, preferred first, from its short name and OID.

    The v3 OID or a name with ``v03``/``v04`` -> v3.00 first; a name with ``v02.01`` or
    ``v02.03`` -> that version first; anything else (notably srsRAN's v2 OID for v3 content)
    -> v3.00 first, then v2.03, then v2.01.
    """
    name = short_name.lower()
    if oid.strip() == KPM_V3_OID or "v03" in name or "v04" in name or "v3" in name or "v4" in name:
        return (KpmVersion.V3_00, KpmVersion.V2_03, KpmVersion.V2_01)
    if "v02.01" in name or "v2.01" in name:
        return (KpmVersion.V2_01, KpmVersion.V2_03, KpmVersion.V3_00)
    if "v02.03" in name or "v2.03" in name or "v02.02" in name:
        return (KpmVersion.V2_03, KpmVersion.V3_00, KpmVersion.V2_01)
    return (KpmVersion.V3_00, KpmVersion.V2_03, KpmVersion.V2_01)


def codec_for_ran_function(definition: RanFunctionDefinition) -> KpmCodec:
    """The codec to talk to the E2 node that advertised ``definition`` (its versions and measIDs)."""
    order = kpm_version_for(definition.short_name, definition.oid)
    ids: dict[int, str] = {}
    for style in definition.report_styles:
        for name, meas_id in style.measurements:
            if meas_id is not None:
                ids.setdefault(meas_id, name)
    return KpmCodec(encode_version=order[0], decode_order=order, measurement_ids=tuple(sorted(ids.items())))


#: E2SM OID of KPM v1 (O-RAN.WG3.E2SM-KPM-v01.00, ``... oran(53148) e2(1) version1(1) e2sm(2) 2``).
KPM_V1_OID: str = "1.3.6.1.4.1.53148.1.1.2.2"

#: Our (partial) KPM v1 schema: the RAN function description only, to recognise v1.
KPM_V1_SCHEMA: Path = ASN1_DIR / "e2sm_kpm_v01.00_ranfunction.asn1"

#: PDUs whose bytes differ between the standard and FlexRIC's "modified" v3.00 schema
#: (AD formats 2/4, IM formats 1/3; identical: event trigger, header, RAN function).
_FLEXRIC_MODIFIED_TYPES: frozenset[str] = frozenset({ACTION_DEFINITION, INDICATION_MESSAGE})


class KpmV1Unsupported(E2DecodeError):
    """A RAN function definition in E2SM-KPM v1 (v01.00) form, which LightTune does not speak.

    Attributes:
        short_name, oid, description: the function's names as the node sent them.
    """

    def __init__(self, message: str, short_name: str, oid: str, description: str) -> None:
        super().__init__(message)
        self.short_name = short_name
        self.oid = oid
        self.description = description


_V1_LOCK = threading.Lock()


@functools.cache
def _kpm_v1_spec_unlocked() -> Any:
    return asn1tools.compile_files([str(KPM_V1_SCHEMA)], "per")


def _kpm_v1_spec() -> Any:
    """Our KPM v1 description schema, compiled by asn1tools on first use (once per process)."""
    with _V1_LOCK:
        return _kpm_v1_spec_unlocked()


def detect_kpm_v1(data: bytes) -> tuple[str, str, str] | None:
    """(short name, OID, description) if ``data`` is a whole KPM v1 RAN function description.

    KPM v1 nests the style lists in ``e2SM-KPM-RANfunction-Item`` and its report styles carry
    no action format or measurements, so v1 bytes fail every v2/v3 decode. They are
    recognised by decoding them completely (no trailing octet) with our v1 description
    schema; ``None`` for anything else.
    """
    try:
        compiled = _kpm_v1_spec()._types[RAN_FUNCTION_DESCRIPTION]
        decoder = FastPerDecoder(bytearray(data))
        value = compiled._type.decode(decoder)
        if decoder.number_of_bits >= 8:
            return None
        name = value["ranFunction-Name"]
        return name["ranFunction-ShortName"], name["ranFunction-E2SM-OID"], name["ranFunction-Description"]
    except Exception:
        return None


def explain_failure(type_name: str, data: bytes, attempts: list[str]) -> str:
    """The E2DecodeError text for bytes no supported version decodes.

    Names the PDU, its size and first octets, and every (library, version) attempt. The
    likely cause is named only where it can be one: FlexRIC's "modified" v3.00 encoding
    changes the bytes of action definitions and indication messages only, so it is
    mentioned for those; a RAN function description is checked for KPM v1 instead (see
    :func:`detect_kpm_v1`, raised as :class:`KpmV1Unsupported` by the codec).
    """
    if type_name in _FLEXRIC_MODIFIED_TYPES:
        cause = " (FlexRIC's 'modified' v3.00 encoding, for one, is not standard)"
    else:
        cause = ""
    return (
        f"cannot decode {type_name} ({len(data)} bytes, first {data[:8].hex() or 'none'}) as standard "
        f"E2SM-KPM v2.01/v2.03/v3.00 aligned PER{cause}; tried: " + "; ".join(attempts)
    )


#: Codec for our own nodes and the default decode order (v3.00, v2.03, v2.01).
DEFAULT_CODEC: KpmCodec = KpmCodec()


def encode_with_pycrate(type_name: str, raw: Any, version: KpmVersion) -> bytes:
    """Encode an asn1tools-form value with pycrate (the tests' cross-check encoder)."""
    pdu = _pycrate_type(version, type_name)
    with _PYCRATE_LOCK:
        pdu.set_val(to_pycrate_value(raw))
        return bytes(pdu.to_aper())


def raw_value(message: Any, version: KpmVersion = KpmVersion.V3_00) -> tuple[str, Any]:
    """(ASN.1 type name, asn1tools-form value) of one of our messages (for cross-checks)."""
    builders: dict[type, tuple[str, Callable[[], Any]]] = {
        RanFunctionDefinition: (RAN_FUNCTION_DESCRIPTION, lambda: _ran_function_raw(message)),
        EventTrigger: (EVENT_TRIGGER_DEFINITION, lambda: _event_trigger_raw(message)),
        ActionDefinition: (ACTION_DEFINITION, lambda: _action_definition_raw(message, version)),
        IndicationHeader: (INDICATION_HEADER, lambda: _indication_header_raw(message, version)),
        IndicationMessageFormat1: (INDICATION_MESSAGE, lambda: _indication_message_raw(message, version)),
        IndicationMessageFormat2: (INDICATION_MESSAGE, lambda: _indication_message_raw(message, version)),
        IndicationMessageFormat3: (INDICATION_MESSAGE, lambda: _indication_message_raw(message, version)),
    }
    try:
        type_name, build = builders[type(message)]
    except KeyError:
        raise ValueError(f"not a KPM message: {type(message).__name__}") from None
    return type_name, build()
