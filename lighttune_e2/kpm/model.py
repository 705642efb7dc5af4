"""E2SM-KPM messages as frozen dataclasses of our own (no ASN.1 library type leaks out).

Naming follows O-RAN.WG3.E2SM-KPM (v2.01 .. v4.00); units are in the field names or
docstrings. Everything here is plain data: the codec in :mod:`lighttune_e2.kpm.codec`
turns it into bytes and back.

Measurement values of an indication are kept per granularity period as tuples whose
element type says what was on the wire: ``int`` = ``integer`` (0 .. 2^32-1), ``float`` =
``real``, ``None`` = ``noValue``. :meth:`IndicationMessageFormat1.values` turns them into a
float64 array for the numeric pipeline.

Timestamps (IndicationHeader ``colletStartTime``): what we *send* in v3 is NTP 64-bit
(seconds since 1900-01-01 in the upper 32 bits, binary fraction in the lower 32 bits), as
srsRAN does; v2 carries 4 octets of NTP seconds (as Viavi does). On receipt we also accept
OAI/FlexRIC's microseconds since 1970 (v3) and Unix seconds (v2); see
:meth:`IndicationHeader.unix_time_s`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Union

import numpy as np

#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET_S: int = 2_208_988_800

#: Measurement record value: int = integer, float = real, None = noValue.
RecordValue = Union[int, float, None]

#: TestCond-Type alternatives (v3.00; v2.01 has only the first six).
TEST_CONDITION_TYPES: tuple[str, ...] = (
    "gBR", "aMBR", "isStat", "isCatM", "rSRP", "rSRQ",
    "ul-rSRP", "cQI", "fiveQI", "qCI", "sNSSAI",
)
#: TestCond-Expression values.
TEST_CONDITION_EXPRESSIONS: tuple[str, ...] = ("equal", "greaterthan", "lessthan", "contains", "present")
#: TestCond-Value alternatives and the Python type of their value.
TEST_VALUE_KINDS: dict[str, type] = {
    "valueInt": int, "valueEnum": int, "valueBool": bool, "valueBitS": bytes,
    "valueOctS": bytes, "valuePrtS": str, "valueReal": float,
}


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _check_octets(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {value!r}")


# ---------------------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellGlobalId:
    """CGI: PLMN identity (3 octets, TBCD) + cell identity (NR 36 bits / E-UTRA 28 bits)."""

    plmn_identity: bytes
    cell_identity: int
    nr: bool = True

    def __post_init__(self) -> None:
        _check_octets("cell_global_id.plmn_identity", self.plmn_identity, 3)
        _check_range("cell_global_id.cell_identity", self.cell_identity, 0, (1 << (36 if self.nr else 28)) - 1)


@dataclasses.dataclass(frozen=True)
class Guami:
    """GUAMI: PLMN (3 octets), AMF region id (8 bits), AMF set id (10 bits), pointer (6 bits)."""

    plmn_identity: bytes
    amf_region_id: int
    amf_set_id: int
    amf_pointer: int

    def __post_init__(self) -> None:
        _check_octets("guami.plmn_identity", self.plmn_identity, 3)
        _check_range("guami.amf_region_id", self.amf_region_id, 0, 255)
        _check_range("guami.amf_set_id", self.amf_set_id, 0, 1023)
        _check_range("guami.amf_pointer", self.amf_pointer, 0, 63)


@dataclasses.dataclass(frozen=True)
class GnbUeId:
    """UEID gNB-UEID: AMF UE NGAP id (0 .. 2^40-1) + GUAMI, optional F1AP ids and RAN UE id.

    OAI's monolithic gNB sends this form (ran-UEID = its RRC UE id).
    """

    amf_ue_ngap_id: int
    guami: Guami
    gnb_cu_ue_f1ap_ids: tuple[int, ...] = ()
    ran_ue_id: bytes | None = None

    def __post_init__(self) -> None:
        _check_range("ue_id.amf_ue_ngap_id", self.amf_ue_ngap_id, 0, (1 << 40) - 1)
        for f1ap in self.gnb_cu_ue_f1ap_ids:
            _check_range("ue_id.gnb_cu_ue_f1ap_ids", f1ap, 0, (1 << 32) - 1)
        if len(self.gnb_cu_ue_f1ap_ids) > 4:
            raise ValueError("ue_id.gnb_cu_ue_f1ap_ids holds at most 4 ids (maxF1APid)")
        if self.ran_ue_id is not None:
            _check_octets("ue_id.ran_ue_id", self.ran_ue_id, 8)

    @property
    def key(self) -> int:
        """Integer key of the UE inside a cell: the RAN UE id if present, else the NGAP id."""
        return int.from_bytes(self.ran_ue_id, "big") if self.ran_ue_id is not None else self.amf_ue_ngap_id


@dataclasses.dataclass(frozen=True)
class GnbDuUeId:
    """UEID gNB-DU-UEID: gNB-CU UE F1AP id (0 .. 2^32-1), optional RAN UE id (8 octets).

    srsRAN's DU and Viavi send this form.
    """

    gnb_cu_ue_f1ap_id: int
    ran_ue_id: bytes | None = None

    def __post_init__(self) -> None:
        _check_range("ue_id.gnb_cu_ue_f1ap_id", self.gnb_cu_ue_f1ap_id, 0, (1 << 32) - 1)
        if self.ran_ue_id is not None:
            _check_octets("ue_id.ran_ue_id", self.ran_ue_id, 8)

    @property
    def key(self) -> int:
        """Integer key of the UE inside a cell: the F1AP id."""
        return self.gnb_cu_ue_f1ap_id


@dataclasses.dataclass(frozen=True)
class GnbCuUpUeId:
    """UEID gNB-CU-UP-UEID: gNB-CU-CP UE E1AP id (0 .. 2^32-1), optional RAN UE id."""

    gnb_cu_cp_ue_e1ap_id: int
    ran_ue_id: bytes | None = None

    def __post_init__(self) -> None:
        _check_range("ue_id.gnb_cu_cp_ue_e1ap_id", self.gnb_cu_cp_ue_e1ap_id, 0, (1 << 32) - 1)
        if self.ran_ue_id is not None:
            _check_octets("ue_id.ran_ue_id", self.ran_ue_id, 8)

    @property
    def key(self) -> int:
        """Integer key of the UE inside a cell: the E1AP id."""
        return self.gnb_cu_cp_ue_e1ap_id


#: The UEID alternatives we model (NR ones). Others are decode errors naming the kind.
UeId = Union[GnbUeId, GnbDuUeId, GnbCuUpUeId]


# ---------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MeasurementLabel:
    """MeasurementLabel: the subcounter a record belongs to.

    ``no_label`` marks the plain counter. Distribution measurements use the bin labels
    (each 1 .. 65535): for ``CARR.WBCQIDist`` (TS 28.552) bin X = CQI + 1 (CQI 0..15),
    Y = rank (1..8), Z = CQI table (1..4); for ``CARR.PDSCHMCSDist`` X = rank, Y = MCS
    table, Z = MCS + 1. Labels we do not model are dropped on decode.
    """

    no_label: bool = False
    five_qi: int | None = None
    layer_mu_mimo: int | None = None
    dist_bin_x: int | None = None
    dist_bin_y: int | None = None
    dist_bin_z: int | None = None
    ssb_index: int | None = None

    def __post_init__(self) -> None:
        for name in ("layer_mu_mimo", "dist_bin_x", "dist_bin_y", "dist_bin_z", "ssb_index"):
            value = getattr(self, name)
            if value is not None:
                _check_range(f"label.{name}", value, 1, 65535)
        if self.five_qi is not None:
            _check_range("label.five_qi", self.five_qi, 0, 255)


NO_LABEL: MeasurementLabel = MeasurementLabel(no_label=True)


@dataclasses.dataclass(frozen=True)
class MeasurementInfo:
    """MeasurementInfoItem: a measurement (by name, or by id) and its labels (>= 1).

    Each label is one subcounter; an indication's record holds one value per (measurement,
    label) in this order.
    """

    name: str | None
    labels: tuple[MeasurementLabel, ...] = (NO_LABEL,)
    meas_id: int | None = None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.meas_id is None):
            raise ValueError("measurement: exactly one of name and meas_id must be given")
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"measurement.name must be a string, got {self.name!r}")
        if self.meas_id is not None:
            _check_range("measurement.meas_id", self.meas_id, 1, 65536)
        if not self.labels:
            raise ValueError(f"measurement {self.name!r}: labels must hold at least one label")


def distribution_measurement(name: str, bins: list[tuple[int, ...]] | np.ndarray) -> MeasurementInfo:
    """A distribution measurement with one label per bin.

    ``bins`` is ``[B, k]`` (k = 1..3 bin coordinates X, Y, Z, each 1..65535), e.g. for
    ``CARR.WBCQIDist`` the rows ``(cqi + 1, rank, cqi_table)``.
    """
    array = np.asarray(bins, dtype=np.int64)
    if array.ndim != 2 or not 1 <= array.shape[1] <= 3 or array.shape[0] == 0:
        raise ValueError(f"bins must be a non-empty [B, 1..3] array, got shape {array.shape}")
    keys = ("dist_bin_x", "dist_bin_y", "dist_bin_z")
    labels = tuple(
        MeasurementLabel(**{keys[j]: int(row[j]) for j in range(array.shape[1])}) for row in array
    )
    return MeasurementInfo(name=name, labels=labels)


# ---------------------------------------------------------------------------------------
# RAN function definition
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EventTriggerStyle:
    """RIC-EventTriggerStyle-Item: style 1 "Periodic Report" uses format 1."""

    style_type: int
    name: str
    format_type: int


@dataclasses.dataclass(frozen=True)
class ReportStyle:
    """RIC-ReportStyle-Item: a report style and the measurements it offers.

    ``measurements`` holds ``(name, meas_id or None)`` pairs (MeasurementInfo-Action-Item).
    """

    style_type: int
    name: str
    action_format_type: int
    measurements: tuple[tuple[str, int | None], ...]
    indication_header_format_type: int
    indication_message_format_type: int


@dataclasses.dataclass(frozen=True)
class RanFunctionDefinition:
    """E2SM-KPM-RANfunction-Description plus the E2AP RAN function id it was advertised under.

    ``ran_function_id`` is not part of the KPM payload (it travels in the E2AP
    RANfunction-Item); the codec leaves it ``None`` unless told.
    """

    short_name: str
    oid: str
    description: str
    instance: int | None = None
    event_trigger_styles: tuple[EventTriggerStyle, ...] = ()
    report_styles: tuple[ReportStyle, ...] = ()
    ran_function_id: int | None = None

    def report_style(self, style_type: int) -> ReportStyle | None:
        """The report style with number ``style_type``, or ``None`` if not offered."""
        for style in self.report_styles:
            if style.style_type == style_type:
                return style
        return None


# ---------------------------------------------------------------------------------------
# Subscription: event trigger and action definitions
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EventTrigger:
    """Event trigger format 1 (style 1, periodic): report every ``reporting_period_ms``."""

    reporting_period_ms: int

    def __post_init__(self) -> None:
        _check_range("event_trigger.reporting_period_ms", self.reporting_period_ms, 1, (1 << 32) - 1)


@dataclasses.dataclass(frozen=True)
class ActionDefinitionFormat1:
    """Action definition format 1: measurements, granularity period (ms), optional cell."""

    measurements: tuple[MeasurementInfo, ...]
    granularity_period_ms: int
    cell_global_id: CellGlobalId | None = None

    def __post_init__(self) -> None:
        if not self.measurements:
            raise ValueError("action_definition.measurements must not be empty")
        _check_range("action_definition.granularity_period_ms", self.granularity_period_ms, 1, (1 << 32) - 1)


@dataclasses.dataclass(frozen=True)
class ActionDefinitionFormat2:
    """Action definition format 2: format 1 for one UE."""

    ue_id: UeId
    subscription: ActionDefinitionFormat1


@dataclasses.dataclass(frozen=True)
class TestCondition:
    """TestCondInfo: a test type (``TEST_CONDITION_TYPES``), expression and value.

    ``value_kind`` names the TestCond-Value alternative (``TEST_VALUE_KINDS``); e.g. the
    FlexRIC example subscribes ``TestCondition("sNSSAI", "equal", "valueInt", 1)`` and the
    srsRAN xApp ``TestCondition("ul-rSRP", "lessthan", "valueInt", 1000)``.
    Bit strings are whole octets.
    """

    __test__ = False  # not a pytest test class despite the name

    test_type: str
    expression: str | None = None
    value_kind: str | None = None
    value: int | float | bool | bytes | str | None = None

    def __post_init__(self) -> None:
        if self.test_type not in TEST_CONDITION_TYPES:
            raise ValueError(f"test_condition.test_type {self.test_type!r} not in {TEST_CONDITION_TYPES}")
        if self.expression is not None and self.expression not in TEST_CONDITION_EXPRESSIONS:
            raise ValueError(f"test_condition.expression {self.expression!r} not in {TEST_CONDITION_EXPRESSIONS}")
        if (self.value_kind is None) != (self.value is None):
            raise ValueError("test_condition: value_kind and value must be given together")
        if self.value_kind is not None:
            expected = TEST_VALUE_KINDS.get(self.value_kind)
            if expected is None:
                raise ValueError(f"test_condition.value_kind {self.value_kind!r} not in {tuple(TEST_VALUE_KINDS)}")
            ok = isinstance(self.value, expected) and (expected is bool or not isinstance(self.value, bool))
            if not ok:
                raise ValueError(f"test_condition.value for {self.value_kind} must be {expected.__name__}")


@dataclasses.dataclass(frozen=True)
class MatchingUeCondition:
    """MatchingUeCondPerSubItem: one test condition; ``logical_or`` joins it to the next."""

    test: TestCondition
    logical_or: bool = False


@dataclasses.dataclass(frozen=True)
class ActionDefinitionFormat4:
    """Action definition format 4 (style 4): UEs matching common conditions -> IM format 3."""

    conditions: tuple[MatchingUeCondition, ...]
    subscription: ActionDefinitionFormat1

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError("action_definition.conditions must hold at least one condition")


@dataclasses.dataclass(frozen=True)
class ActionDefinitionFormat5:
    """Action definition format 5 (style 5): a list of >= 2 UEs -> IM format 3."""

    ue_ids: tuple[UeId, ...]
    subscription: ActionDefinitionFormat1

    def __post_init__(self) -> None:
        if len(self.ue_ids) < 2:
            raise ValueError("action_definition.ue_ids must hold at least 2 UEs (SIZE(2..65535))")


ActionDefinitionFormat = Union[
    ActionDefinitionFormat1, ActionDefinitionFormat2, ActionDefinitionFormat4, ActionDefinitionFormat5
]


@dataclasses.dataclass(frozen=True)
class ActionDefinition:
    """E2SM-KPM-ActionDefinition: RIC style type and one action definition format."""

    style_type: int
    definition: ActionDefinitionFormat


# ---------------------------------------------------------------------------------------
# Indications
# ---------------------------------------------------------------------------------------


def ntp_timestamp(unix_time_s: float) -> bytes:
    """8-octet NTP timestamp: ((t + 2208988800) << 32) + fraction * 2^32, big-endian."""
    if not math.isfinite(unix_time_s) or unix_time_s < -NTP_UNIX_OFFSET_S:
        raise ValueError(f"timestamp must be a finite time after 1900, got {unix_time_s!r}")
    seconds = math.floor(unix_time_s)
    fraction = min(int(round((unix_time_s - seconds) * 2**32)), 2**32 - 1)
    return (((seconds + NTP_UNIX_OFFSET_S) % 2**32) << 32 | fraction).to_bytes(8, "big")


def ntp_seconds_timestamp(unix_time_s: float) -> bytes:
    """4-octet v2 timestamp: NTP seconds (t + 2208988800) mod 2^32, big-endian."""
    if not math.isfinite(unix_time_s):
        raise ValueError(f"timestamp must be finite, got {unix_time_s!r}")
    return ((math.floor(unix_time_s) + NTP_UNIX_OFFSET_S) % 2**32).to_bytes(4, "big")


@dataclasses.dataclass(frozen=True)
class IndicationHeader:
    """Indication header format 1: collection start time (raw octets) and sender strings."""

    collet_start_time: bytes
    file_format_version: str | None = None
    sender_name: str | None = None
    sender_type: str | None = None
    vendor_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.collet_start_time, bytes) or len(self.collet_start_time) not in (4, 8):
            raise ValueError("indication_header.collet_start_time must be 4 (v2) or 8 (v3) bytes")

    @property
    def unix_time_s(self) -> float:
        """Collection start time in seconds since the Unix epoch.

        8 octets: NTP 64-bit when the upper 32 bits are >= 2208988800 (any date from 1970 to
        2036), otherwise OAI/FlexRIC microseconds since 1970 (whose upper 32 bits stay below
        2^22 until the year 2100). 4 octets: NTP seconds when >= 2208988800, else Unix seconds.
        """
        raw = int.from_bytes(self.collet_start_time, "big")
        if len(self.collet_start_time) == 8:
            seconds = raw >> 32
            if seconds >= NTP_UNIX_OFFSET_S:
                return (seconds - NTP_UNIX_OFFSET_S) + (raw & 0xFFFFFFFF) / 2**32
            return raw / 1e6
        return float(raw - NTP_UNIX_OFFSET_S) if raw >= NTP_UNIX_OFFSET_S else float(raw)

    @property
    def period_key_ms(self) -> int:
        """The report's period key: collection start time in whole ms since 1970.

        A KPM indication names no period index; a control answering it (through
        LT-LINKADAPT) carries this key in its header's ``period_index``.
        """
        return max(int(round(self.unix_time_s * 1e3)), 0)


@dataclasses.dataclass(frozen=True)
class MeasurementPeriod:
    """MeasurementDataItem: the records of one granularity period.

    ``records`` has one value per (measurement, label) of the measurement list, in order:
    ``int`` (integer 0 .. 2^32-1), ``float`` (real) or ``None`` (noValue).
    """

    records: tuple[RecordValue, ...]
    incomplete: bool = False

    def __post_init__(self) -> None:
        if not self.records:
            raise ValueError("measurement period must hold at least one record")


@dataclasses.dataclass(frozen=True)
class IndicationMessageFormat1:
    """Indication message format 1: periods of records, optional measurement list and period."""

    periods: tuple[MeasurementPeriod, ...]
    measurements: tuple[MeasurementInfo, ...] | None = None
    granularity_period_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.periods:
            raise ValueError("indication message: periods must not be empty")

    def values(self) -> np.ndarray:
        """Records as float64 ``[P, R]`` (P periods, R records); noValue is NaN.

        Raises ValueError if the periods hold different numbers of records.
        """
        width = len(self.periods[0].records)
        if any(len(p.records) != width for p in self.periods):
            raise ValueError("indication message: periods hold different numbers of records")
        flat = [np.nan if v is None else v for p in self.periods for v in p.records]
        return np.asarray(flat, dtype=np.float64).reshape(len(self.periods), width)

    def record_names(self) -> tuple[tuple[str | None, MeasurementLabel], ...]:
        """(measurement name, label) of each record column; empty if no measurement list."""
        if self.measurements is None:
            return ()
        return tuple((m.name, label) for m in self.measurements for label in m.labels)


@dataclasses.dataclass(frozen=True)
class MatchingCondition:
    """MatchingCondItem: the condition a format-2 value is taken under, either a measurement
    label (the subcounter) or a test condition on the UEs; ``logical_or`` joins it to the next
    (v2.03 and later; v2.01 has no such field and cannot encode it)."""

    label: MeasurementLabel | None = None
    test: TestCondition | None = None
    logical_or: bool = False

    def __post_init__(self) -> None:
        if (self.label is None) == (self.test is None):
            raise ValueError("matching condition: exactly one of label and test must be given")


@dataclasses.dataclass(frozen=True)
class MeasurementConditionUeIds:
    """MeasurementCondUEidItem (IM format 2): a measurement, its matching conditions (>= 1)
    and the UEs that matched them (``matched_ue_ids`` empty = the list is absent: none matched).

    ``name`` may be the empty string: Viavi RIC Test sends ``measName ""`` (outside
    ``SIZE(1..150)``, encoded through the size extension); what that means is decided by the
    report decoder (:mod:`lighttune_e2.kpm.reports`), not here.
    """

    name: str | None
    conditions: tuple[MatchingCondition, ...]
    matched_ue_ids: tuple[UeId, ...] = ()
    meas_id: int | None = None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.meas_id is None):
            raise ValueError("measurement condition: exactly one of name and meas_id must be given")
        if self.meas_id is not None:
            _check_range("measurement_condition.meas_id", self.meas_id, 1, 65536)
        if not self.conditions:
            raise ValueError("measurement condition: conditions must hold at least one condition")


@dataclasses.dataclass(frozen=True)
class IndicationMessageFormat2:
    """Indication message format 2 (style 3, condition-based UE-level): periods of records,
    one record per item of ``conditions`` in the standard layout, and the granularity period.

    The records are kept exactly as sent: Viavi RIC Test lays them out transposed (one
    ``measData`` item per measurement, one record per matched UE); the report decoder
    tells the two layouts apart.
    """

    periods: tuple[MeasurementPeriod, ...]
    conditions: tuple[MeasurementConditionUeIds, ...]
    granularity_period_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.periods or not self.conditions:
            raise ValueError("indication message format 2: periods and conditions must not be empty")


@dataclasses.dataclass(frozen=True)
class UeMeasurementReport:
    """UEMeasurementReportItem: one UE's id and its format-1 report."""

    ue_id: UeId
    report: IndicationMessageFormat1


@dataclasses.dataclass(frozen=True)
class IndicationMessageFormat3:
    """Indication message format 3 (styles 4 and 5): per-UE format-1 reports."""

    reports: tuple[UeMeasurementReport, ...]

    def __post_init__(self) -> None:
        if not self.reports:
            raise ValueError("indication message format 3: reports must not be empty")


IndicationMessage = Union[IndicationMessageFormat1, IndicationMessageFormat2, IndicationMessageFormat3]
