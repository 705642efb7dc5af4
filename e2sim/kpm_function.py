"""The simulated E2 node's standard E2SM-KPM RAN function (sans-I/O).

What the node offers, as a third-party gNB would (see ``docs/kpm.md``):

* RAN function id 2, short name ``ORAN-E2SM-KPM``, description "KPM Monitor", E2SM OID
  ``1.3.6.1.4.1.53148.1.3.2.2`` (v3.00) by default or, as srsRAN advertises, the v2 OID
  ``1.3.6.1.4.1.53148.1.2.2.2`` with the same v3.00 content (``oid=KPM_V2_OID``).
* Event trigger style 1 "Periodic Report" (format 1, reporting period in ms).
* Report styles 1 "E2 Node Measurement" (AD F1 -> IM F1, cell level), 4 "Common
  Condition-based, UE-level Measurement" (AD F4 -> IM F3) and 5 "E2 Node Measurement for
  multiple UEs" (AD F5 -> IM F3), each listing its measurements
  (:data:`CELL_MEASUREMENTS` for style 1, the per-UE table of
  :mod:`lighttune_e2.kpm.reports` for styles 4 and 5).

Style 4 matching conditions evaluated per UE (joined by AND unless an item sets
``logicalOR``, i.e. an OR of AND-groups):

* ``cQI`` with ``equal`` / ``greaterthan`` / ``lessthan`` and ``valueInt``: the UE's
  latest reported wideband CQI;
* ``sNSSAI`` with ``equal`` and ``valueInt`` (the SST, as the FlexRIC example sends 1) or
  ``valueOctS`` (1 octet SST, or 4 octets SST + SD). Every simulated UE has an S-NSSAI:
  by default SST 1 (eMBB) with no SD (SD = 0xFFFFFF), or per UE as given by
  ``ue_snssai`` (int [U] values ``SST << 24 | SD``).

Any other test type, expression or value kind is refused with the E2AP cause
``ricRequest / action-not-supported``; other refusals: undecodable or non-periodic event
trigger -> ``eventTriggerNotSupported``; undecodable action definition, a style we do not
offer or a format that does not match the style -> ``action-not-supported``; a
measurement (or a label of a scalar measurement other than noLabel) the style does not
offer, or a measurement id it did not advertise -> ``requested-information-unavailable``; a style-1 cell id
that is not ours -> ``invalid-information-request``.

Indications: header format 1 with ``colletStartTime`` = the start of the ended period as
NTP 64-bit (seconds since 1900 in the upper 32 bits, binary fraction below; 4 octets of
NTP seconds if the node encodes KPM v2), sender name ``LightTune e2sim``, type ``DU``,
vendor ``LightTune``. Message format 3 (styles 4/5): per UE a format-1 report with its
own measurement list (the distribution bins it has; measurements named by ``measID`` when
the subscription named them by id, see :data:`MEASUREMENT_IDS`) and one granularity period
equal to the CSI period rounded to whole ms; cells larger than :data:`MAX_INDICATION_OCTETS` are
split into several indications of consecutive UEs, each below 16 KB, because asn1tools
cannot decode a fragmented (>= 16K octets) open type and a fixed-size message keeps the
xApp's decode latency per indication bounded. Format 1 (style 1): cell-level counters.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from lighttune_core.report import LinkReports
from lighttune_e2 import e2ap as E
from lighttune_e2.errors import E2Error
from lighttune_e2.kpm.codec import (
    KPM_V2_OID,
    KPM_V3_OID,
    KpmCodec,
    codec_for_ran_function,
)
from lighttune_e2.kpm.model import (
    ActionDefinitionFormat1,
    ActionDefinitionFormat4,
    ActionDefinitionFormat5,
    CellGlobalId,
    EventTriggerStyle,
    IndicationHeader,
    IndicationMessageFormat1,
    MatchingUeCondition,
    MeasurementInfo,
    MeasurementPeriod,
    RanFunctionDefinition,
    ReportStyle,
    TestCondition,
    distribution_measurement,
    ntp_seconds_timestamp,
    ntp_timestamp,
)
from lighttune_e2.kpm.reports import (
    LT_CSI_AGE,
    LT_CSIRS_SNR,
    LT_OLLA_OFFSET,
    LT_SINR_LAYERS,
    PDSCH_MCS_DIST,
    PRB_USED_DL,
    TB_ERRORS,
    TB_ERRORS_INITIAL,
    TB_TOTAL,
    TB_TOTAL_INITIAL,
    UE_MEASUREMENT_NAMES,
    UE_THROUGHPUT_DL,
    WB_CQI_DIST,
)
from lighttune_e2.kpm.schema import KpmVersion

KPM_RAN_FUNCTION_ID: int = 2
KPM_SHORT_NAME: str = "ORAN-E2SM-KPM"
KPM_DESCRIPTION: str = "KPM Monitor"
KPM_REVISION: int = 0

#: Style-1 (cell level) measurements: TB counters summed over UEs, mean UE throughput
#: (kbit/s, over UEs with TBs), CQI distribution of the cell's reports.
CELL_MEASUREMENTS: tuple[str, ...] = (
    TB_TOTAL, TB_ERRORS, TB_TOTAL_INITIAL, TB_ERRORS_INITIAL, UE_THROUGHPUT_DL, WB_CQI_DIST,
)
#: Test conditions style 4 evaluates, with the expressions each supports.
SUPPORTED_CONDITIONS: dict[str, tuple[str, ...]] = {
    "cQI": ("equal", "greaterthan", "lessthan"),
    "sNSSAI": ("equal",),
}
#: Default S-NSSAI of every simulated UE: SST 1 (eMBB), no SD (0xFFFFFF).
DEFAULT_SNSSAI: int = (1 << 24) | 0xFFFFFF
#: Largest format-3 message the node sends (octets); bigger cells are split.
MAX_INDICATION_OCTETS: int = 16000
#: UEs per format-3 message to start from before splitting by size.
DEFAULT_UES_PER_INDICATION: int = 64

_DISTRIBUTIONS = (WB_CQI_DIST, PDSCH_MCS_DIST)

#: measID of every measurement the node offers (MeasurementInfo-Action-Item.measID of the RAN
#: function definition, ``MeasurementTypeID ::= INTEGER (1..65536, ...)``): 1.. in the order of
#: the per-UE table. A subscription may name measurements by these ids (MeasurementType CHOICE
#: ``measID``); the node then identifies them by id in its reports too.
MEASUREMENT_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(UE_MEASUREMENT_NAMES)}


def _cause(value: str) -> E.Cause:
    return E.Cause("ricRequest", value)


@dataclasses.dataclass(frozen=True)
class KpmPeriod:
    """What the node reports for one ended CSI period of its DU.

    Attributes:
        reports: the DU's :class:`LinkReports` of the period (``U`` UEs).
        duration_ms: length of the period, ms.
        start_unix_s: wall-clock start of the period, seconds since 1970 (header time).
        n_rb: carrier RBs the DU schedules per TB (the DU gives every TB the whole carrier).
        n_slots: slots in the period (for ``RRU.PrbUsedDl``, PRBs per slot).
        mcs_table: the DU's PDSCH MCS table (1..3).

    The simulated DU has first transmissions only and one MCS bin per UE (the most used
    one, ``reports.mcs``), so ``TB.TotNbrDl`` equals ``TB.TotNbrDlInitial`` and the MCS
    distribution has one bin counting every TB of the period.
    """

    reports: LinkReports
    duration_ms: float
    start_unix_s: float
    n_rb: int
    n_slots: int
    mcs_table: int = 1

    @classmethod
    def from_outcome(cls, outcome: Any, du: Any, start_unix_s: float) -> "KpmPeriod":
        """From an ``e2sim.du.PeriodOutcome`` and its ``e2sim.du.DU``."""
        n_slots = int(outcome.end_slot - outcome.start_slot)
        return cls(
            reports=outcome.reports,
            duration_ms=n_slots * du.scenario.slot_s * 1e3,
            start_unix_s=float(start_unix_s),
            n_rb=int(du.scenario.n_rb),
            n_slots=max(n_slots, 1),
            mcs_table=int(du.scenario.mcs_table),
        )


@dataclasses.dataclass(frozen=True)
class KpmSubscription:
    """An accepted KPM subscription action.

    Attributes:
        style: report style 1, 4 or 5.
        reporting_period_ms: event trigger period.
        measurements: subscribed measurement names, in the subscription's order.
        granularity_period_ms: as subscribed.
        conditions: style 4 matching conditions (empty otherwise).
        ue_ids: style 5 UE ids (int, the gNB-DU F1AP id / our UE id), else None.
        by_id: the subscription named its measurements by ``measID``; reports then name them
            by id as well (:data:`MEASUREMENT_IDS`).
    """

    style: int
    reporting_period_ms: int
    measurements: tuple[str, ...]
    granularity_period_ms: int
    conditions: tuple[MatchingUeCondition, ...] = ()
    ue_ids: tuple[int, ...] | None = None
    by_id: bool = False


@dataclasses.dataclass(frozen=True)
class SubscriptionDecision:
    """Outcome of :meth:`KpmRanFunction.handle_subscription`: accepted xor a cause."""

    subscription: KpmSubscription | None
    cause: E.Cause | None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        """True when the action is admitted."""
        return self.subscription is not None


class KpmRanFunction:
    """The node's KPM RAN function: definition, subscription handling, indications.

    One function serves one cell: a KPM indication names no cell, so a multi-cell node
    offers one function per cell (ids :data:`KPM_RAN_FUNCTION_ID`, +1, ...) and states the
    cell in the definition's ``ranFunction-Instance`` = the NR cell identity, the number our
    LT-LINKADAPT headers carry for the same cell (docs/kpm.md, "Cell naming"). An action
    definition naming another cell (``cellGlobalID``, any style) is refused.

    Args:
        cell: the cell's global id (style-1 cell filter, ``ranFunction-Instance``).
        oid: E2SM OID to advertise (v3 by default; ``KPM_V2_OID`` as srsRAN does).
        ue_snssai: int [U] per-UE S-NSSAI ``SST << 24 | SD`` keyed by position in the DU's
            reports, or ``None`` for :data:`DEFAULT_SNSSAI` everywhere.
        max_indication_octets: largest format-3 message; larger cells are split.
        ues_per_indication: first split size tried.
        ran_function_id: the E2AP RAN function id (0..4095).
    """

    def __init__(
        self,
        cell: CellGlobalId,
        oid: str = KPM_V3_OID,
        ue_snssai: np.ndarray | None = None,
        max_indication_octets: int = MAX_INDICATION_OCTETS,
        ues_per_indication: int = DEFAULT_UES_PER_INDICATION,
        ran_function_id: int = KPM_RAN_FUNCTION_ID,
    ) -> None:
        if oid not in (KPM_V3_OID, KPM_V2_OID):
            raise ValueError(f"oid must be the KPM v3 or v2 OID, got {oid!r}")
        if max_indication_octets < 512:
            raise ValueError(f"max_indication_octets must be >= 512, got {max_indication_octets}")
        if ues_per_indication < 1:
            raise ValueError(f"ues_per_indication must be >= 1, got {ues_per_indication}")
        if not 0 <= ran_function_id <= 4095:
            raise ValueError(f"ran_function_id must be in 0 .. 4095, got {ran_function_id}")
        self.ran_function_id = int(ran_function_id)
        self.cell = cell
        self.oid = oid
        self.ue_snssai = None if ue_snssai is None else np.asarray(ue_snssai, dtype=np.int64)
        self.max_indication_octets = int(max_indication_octets)
        self.ues_per_indication = int(ues_per_indication)
        self._chunk = self.ues_per_indication
        self.definition = self._definition()
        self.codec: KpmCodec = codec_for_ran_function(self.definition)

    # ------------------------------------------------------------------ definition
    def _definition(self) -> RanFunctionDefinition:
        ue_level = tuple((name, MEASUREMENT_IDS[name]) for name in UE_MEASUREMENT_NAMES)
        cell_level = tuple((name, MEASUREMENT_IDS[name]) for name in CELL_MEASUREMENTS)
        return RanFunctionDefinition(
            short_name=KPM_SHORT_NAME,
            oid=self.oid,
            description=KPM_DESCRIPTION,
            instance=self.cell.cell_identity,
            event_trigger_styles=(EventTriggerStyle(1, "Periodic Report", 1),),
            report_styles=(
                ReportStyle(1, "E2 Node Measurement", 1, cell_level, 1, 1),
                ReportStyle(4, "Common Condition-based, UE-level Measurement", 4, ue_level, 1, 3),
                ReportStyle(5, "E2 Node Measurement for multiple UEs", 5, ue_level, 1, 3),
            ),
            ran_function_id=self.ran_function_id,
        )

    def definition_bytes(self) -> bytes:
        """E2SM-KPM RAN function description bytes."""
        return self.codec.encode_ran_function_definition(self.definition)

    def ran_function(self) -> E.RanFunction:
        """The E2AP RAN function item of the E2 Setup Request."""
        return E.RanFunction(self.ran_function_id, self.definition_bytes(), KPM_REVISION, self.oid)

    # ------------------------------------------------------------------ subscriptions
    def handle_subscription(self, event_trigger: bytes, action_definition: bytes | None) -> SubscriptionDecision:
        """Admit or refuse one report action of a RIC Subscription Request (pure).

        Returns a :class:`SubscriptionDecision`; never raises on bad input.
        """
        try:
            trigger = self.codec.decode_event_trigger(event_trigger)
        except E2Error as exc:
            return SubscriptionDecision(None, _cause("eventTriggerNotSupported"), str(exc)[:200])
        if action_definition is None:
            return SubscriptionDecision(None, _cause("action-not-supported"), "report action without definition")
        try:
            action = self.codec.decode_action_definition(action_definition)
        except E2Error as exc:
            return SubscriptionDecision(None, _cause("action-not-supported"), str(exc)[:200])
        style = self.definition.report_style(action.style_type)
        definition = action.definition
        expected = {1: ActionDefinitionFormat1, 4: ActionDefinitionFormat4, 5: ActionDefinitionFormat5}
        if style is None or not isinstance(definition, expected[style.style_type]):
            return SubscriptionDecision(
                None, _cause("action-not-supported"),
                f"style {action.style_type} with {type(definition).__name__} is not offered",
            )
        info = definition if isinstance(definition, ActionDefinitionFormat1) else definition.subscription
        if info.cell_global_id is not None and info.cell_global_id != self.cell:
            return SubscriptionDecision(None, _cause("invalid-information-request"), "not this function's cell")
        offered = {name for name, _ in style.measurements}
        offered_ids = {meas_id: name for name, meas_id in style.measurements if meas_id is not None}
        names: list[str] = []
        for meas in info.measurements:
            name = meas.name if meas.name is not None else offered_ids.get(meas.meas_id)  # type: ignore[arg-type]
            if name is None or name not in offered:
                return SubscriptionDecision(
                    None, _cause("requested-information-unavailable"),
                    f"measurement {meas.name or meas.meas_id!r} is not offered by style {style.style_type}",
                )
            if name not in _DISTRIBUTIONS and any(not label.no_label for label in meas.labels):
                return SubscriptionDecision(
                    None, _cause("requested-information-unavailable"),
                    f"measurement {name!r} offers only noLabel",
                )
            names.append(name)
        by_id = bool(info.measurements) and all(meas.name is None for meas in info.measurements)
        conditions: tuple[MatchingUeCondition, ...] = ()
        ue_ids: tuple[int, ...] | None = None
        if isinstance(definition, ActionDefinitionFormat4):
            for cond in definition.conditions:
                problem = _unsupported_condition(cond.test)
                if problem:
                    return SubscriptionDecision(None, _cause("action-not-supported"), problem)
            conditions = definition.conditions
        elif isinstance(definition, ActionDefinitionFormat5):
            ue_ids = tuple(int(u.key) for u in definition.ue_ids)
        return SubscriptionDecision(
            KpmSubscription(
                style=style.style_type,
                reporting_period_ms=trigger.reporting_period_ms,
                measurements=tuple(names),
                granularity_period_ms=info.granularity_period_ms,
                conditions=conditions,
                ue_ids=ue_ids,
                by_id=by_id,
            ),
            None,
        )

    # ------------------------------------------------------------------ UE selection
    def snssai_of(self, n_ue: int) -> np.ndarray:
        """Per-UE S-NSSAI (``SST << 24 | SD``), int64 [n_ue]."""
        if self.ue_snssai is None:
            return np.full(n_ue, DEFAULT_SNSSAI, dtype=np.int64)
        if self.ue_snssai.shape != (n_ue,):
            raise ValueError(f"ue_snssai must have shape ({n_ue},), got {self.ue_snssai.shape}")
        return self.ue_snssai

    def matching_ues(self, subscription: KpmSubscription, reports: LinkReports) -> np.ndarray:
        """bool [U]: the UEs a style-4/5 subscription reports this period."""
        n = len(reports)
        if subscription.ue_ids is not None:
            return np.isin(reports.ue_id, np.asarray(subscription.ue_ids, dtype=np.int64))
        if not subscription.conditions:
            return np.ones(n, dtype=bool)
        snssai = self.snssai_of(n)
        result = np.zeros(n, dtype=bool)
        group = np.ones(n, dtype=bool)
        for cond in subscription.conditions:
            group &= _evaluate_condition(cond.test, reports.cqi, snssai)
            if cond.logical_or:
                result |= group
                group = np.ones(n, dtype=bool)
        return result | group

    # ------------------------------------------------------------------ indications
    def header_bytes(self, start_unix_s: float) -> bytes:
        """Indication header format 1 for a period that started at ``start_unix_s``."""
        v3 = self.codec.encode_version is KpmVersion.V3_00
        stamp = ntp_timestamp(start_unix_s) if v3 else ntp_seconds_timestamp(start_unix_s)
        header = IndicationHeader(stamp, sender_name="LightTune e2sim", sender_type="DU", vendor_name="LightTune")
        return self.codec.encode_indication_header(header)

    def build_indications(self, subscription: KpmSubscription, period: KpmPeriod) -> list[tuple[bytes, bytes]]:
        """``[(header, message), ...]`` to send for one ended period (pure).

        Style 1: one format-1 message. Styles 4/5: format-3 messages over the matching UEs,
        split so each stays below ``max_indication_octets``; no message when no UE matches.
        """
        header = self.header_bytes(period.start_unix_s)
        if subscription.style == 1:
            return [(header, self.codec.encode_indication_message(self._cell_message(subscription, period)))]
        mask = self.matching_ues(subscription, period.reports)
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return []
        items = _ue_report_values(subscription.measurements, period, rows, subscription.by_id)
        out: list[tuple[bytes, bytes]] = []
        chunk = self._chunk  # the split size that fitted last time (no wasted encodes)
        start = 0
        while start < len(items):
            size = min(chunk, len(items) - start)
            message = self._encode_f3(items[start:start + size])
            while len(message) > self.max_indication_octets and size > 1:
                size = max(size // 2, 1)
                chunk = size
                message = self._encode_f3(items[start:start + size])
            out.append((header, message))
            start += size
        self._chunk = chunk
        return out

    def _encode_f3(self, items: list[dict[str, Any]]) -> bytes:
        value = {"indicationMessage-formats": ("indicationMessage-Format3", {"ueMeasReportList": items})}
        return self.codec.encode_indication_message_value(value)

    def _cell_message(self, subscription: KpmSubscription, period: KpmPeriod) -> IndicationMessageFormat1:
        r = period.reports
        n_tx = r.n_ack + r.n_nack
        sent = n_tx > 0
        thp = r.served_bits[sent] / max(round(period.duration_ms), 1)
        infos: list[MeasurementInfo] = []
        records: list[int | float | None] = []
        for name in subscription.measurements:
            if name in (TB_TOTAL, TB_TOTAL_INITIAL):
                infos.append(MeasurementInfo(name))
                records.append(int(n_tx.sum()))
            elif name in (TB_ERRORS, TB_ERRORS_INITIAL):
                infos.append(MeasurementInfo(name))
                records.append(int(r.n_nack.sum()))
            elif name == UE_THROUGHPUT_DL:
                infos.append(MeasurementInfo(name))
                records.append(float(thp.mean()) if thp.size else None)
            elif name == WB_CQI_DIST:
                keys = np.stack([r.cqi + 1, r.ri, np.full(len(r), r.cqi_table)], axis=1)
                bins, counts = np.unique(keys, axis=0, return_counts=True)
                if bins.size == 0:
                    continue
                infos.append(distribution_measurement(name, bins))
                records.extend(int(c) for c in counts)
        if not infos:
            infos.append(MeasurementInfo(TB_TOTAL))
            records.append(None)
        gran = max(int(round(period.duration_ms)), 1)
        return IndicationMessageFormat1((MeasurementPeriod(tuple(records)),), tuple(infos), gran)


def _unsupported_condition(test: TestCondition) -> str:
    """Why a style-4 test condition is not supported ('' if it is)."""
    allowed = SUPPORTED_CONDITIONS.get(test.test_type)
    if allowed is None:
        return f"test condition {test.test_type!r} is not supported (only {sorted(SUPPORTED_CONDITIONS)})"
    if test.expression not in allowed:
        return f"test condition {test.test_type} with expression {test.expression!r} is not supported"
    if test.test_type == "cQI" and test.value_kind != "valueInt":
        return "cQI condition needs valueInt"
    if test.test_type == "sNSSAI":
        if test.value_kind == "valueInt":
            return ""
        if test.value_kind == "valueOctS" and isinstance(test.value, bytes) and len(test.value) in (1, 4):
            return ""
        return "sNSSAI condition needs valueInt (SST) or valueOctS of 1 (SST) or 4 (SST+SD) octets"
    return ""


def _evaluate_condition(test: TestCondition, cqi: np.ndarray, snssai: np.ndarray) -> np.ndarray:
    """bool [U]: one supported test condition per UE."""
    if test.test_type == "cQI":
        value = int(test.value)  # type: ignore[arg-type]
        if test.expression == "equal":
            return cqi == value
        if test.expression == "greaterthan":
            return cqi > value
        return cqi < value
    # sNSSAI equal
    if test.value_kind == "valueInt":
        return (snssai >> 24) == int(test.value)  # type: ignore[arg-type]
    octets = test.value
    assert isinstance(octets, bytes)
    if len(octets) == 1:
        return (snssai >> 24) == octets[0]
    return snssai == int.from_bytes(octets, "big")


def _ue_report_values(
    names: tuple[str, ...], period: KpmPeriod, rows: np.ndarray, by_id: bool = False
) -> list[dict[str, Any]]:
    """asn1tools values of the UE measurement reports (format 1 each) of ``rows``.

    What each UE report carries (E2SM-KPM v3.00 8.2.1.4.1, IM format 1 inside format 3):
    ``measData`` with one period, ``granulPeriod``, and a ``measInfoList`` naming each
    record (needed because the distribution bins differ per UE). Measurements are named by
    ``measID`` when the subscription used ids (``by_id``; 3 octets instead of a
    PrintableString of 11-20), by ``measName`` otherwise. Each distribution carries only its
    occupied bin (one LabelInfoItem with distBinX/Y/Z, E2SM-KPM v3.00 ``MeasurementLabel``),
    not one record per possible bin; scalars carry the single noLabel record.

    Arrays are computed once for all UEs; the loop only assembles the library's dicts.
    """
    r = period.reports
    gran = max(int(round(period.duration_ms)), 1)
    n_tx = (r.n_ack + r.n_nack)[rows]
    sent = (n_tx > 0).tolist()
    ue_id = r.ue_id[rows].tolist()
    cqi_bin = (r.cqi[rows] + 1).tolist()
    ri = r.ri[rows].tolist()
    rank = r.rank[rows].tolist()
    mcs_bin = (r.mcs[rows] + 1).tolist()
    n_tx_l = n_tx.tolist()
    n_nack = r.n_nack[rows].tolist()
    thp = (r.served_bits[rows] / gran).tolist()
    prb = np.rint(period.n_rb * n_tx / period.n_slots).astype(np.int64).tolist()
    sinr = r.sinr_layers_db[rows].tolist()
    snr = r.csirs_snr_db[rows].tolist()
    olla = r.olla_offset_db[rows].tolist()
    age = r.csi_age_ms[rows].tolist()
    cqi_table = r.cqi_table
    mcs_table = period.mcs_table
    no_label = [{"measLabel": {"noLabel": "true"}}]
    meas_type = {name: ("measID", MEASUREMENT_IDS[name]) if by_id else ("measName", name) for name in names}
    infos_fixed = {
        name: {"measType": meas_type[name], "labelInfoList": no_label}
        for name in names if name not in _DISTRIBUTIONS
    }
    no_value = ("noValue", None)
    out: list[dict[str, Any]] = []
    for i in range(len(ue_id)):
        infos: list[dict[str, Any]] = []
        records: list[tuple[str, Any]] = []
        tx = sent[i]
        for name in names:
            if name == WB_CQI_DIST:
                infos.append({"measType": meas_type[name], "labelInfoList": [
                    {"measLabel": {"distBinX": cqi_bin[i], "distBinY": ri[i], "distBinZ": cqi_table}}]})
                records.append(("integer", 1))
                continue
            if name == PDSCH_MCS_DIST:
                infos.append({"measType": meas_type[name], "labelInfoList": [
                    {"measLabel": {"distBinX": rank[i], "distBinY": mcs_table, "distBinZ": mcs_bin[i] if tx else 1}}]})
                records.append(("integer", n_tx_l[i]) if tx else no_value)
                continue
            infos.append(infos_fixed[name])
            if name in (TB_TOTAL, TB_TOTAL_INITIAL):
                records.append(("integer", n_tx_l[i]) if tx else no_value)
            elif name in (TB_ERRORS, TB_ERRORS_INITIAL):
                records.append(("integer", n_nack[i]) if tx else no_value)
            elif name == UE_THROUGHPUT_DL:
                records.append(("real", thp[i]) if tx else no_value)
            elif name == PRB_USED_DL:
                records.append(("integer", prb[i]) if tx else no_value)
            elif name == LT_CSIRS_SNR:
                records.append(("real", snr[i]))
            elif name == LT_OLLA_OFFSET:
                records.append(("real", olla[i]))
            elif name == LT_CSI_AGE:
                records.append(("real", age[i]))
            else:
                layer = LT_SINR_LAYERS.index(name)
                value = sinr[i][layer]
                records.append(("real", value) if layer < ri[i] and math.isfinite(value) else no_value)
        out.append({
            "ueID": ("gNB-DU-UEID", {"gNB-CU-UE-F1AP-ID": ue_id[i]}),
            "measReport": {"measData": [{"measRecord": records}], "measInfoList": infos, "granulPeriod": gran},
        })
    return out


__all__ = [
    "CELL_MEASUREMENTS",
    "DEFAULT_SNSSAI",
    "KPM_RAN_FUNCTION_ID",
    "KPM_SHORT_NAME",
    "KpmPeriod",
    "KpmRanFunction",
    "KpmSubscription",
    "MAX_INDICATION_OCTETS",
    "MEASUREMENT_IDS",
    "SUPPORTED_CONDITIONS",
    "SubscriptionDecision",
]
