"""What the xApp subscribes to on a KPM node, chosen from the node's RAN function definition.

:func:`plan_kpm_subscription` picks, in this order of preference:

* report style 4 (common-condition UE-level, AD format 4 -> IM format 3) with one condition
  that every UE meets: ``cQI lessthan 16`` (a wideband CQI is 0..15). Nodes that honour
  only other conditions can be given one (``condition=``), e.g. OAI only evaluates
  ``sNSSAI equal`` and aborts on anything else, so pass
  ``TestCondition("sNSSAI", "equal", "valueInt", 1)`` there;
* report style 5 (listed UEs, AD format 5) when style 4 is not offered and the UE list is
  known (at least 2 UEs, as the format requires).

The measurements are those of :data:`~lighttune_e2.kpm.reports.UE_MEASUREMENT_NAMES`
that the chosen style lists (only what the node offers) and that the features and the
fine-tuning label use, and ``DRB.UEThpDl`` (``LinkReports.served_bits``: the delivered bits
the cell's rank-change check, :class:`lighttune_core.calibration.RankChangeCheck`, compares).
``RRU.PrbUsedDl`` (informative, no record field) is not subscribed, nor are the
all-transmission TB counters when the first-transmission ones are offered (the decoder reads
those first). Each measurement costs every UE report a record, so leaving out what the
record does not use is a direct saving on the wire and in decode time.

What is missing is assessed in full (:func:`assess_kpm_function`, also attached to the plan
and to a :class:`KpmSubscriptionUnavailable`): every measurement of ours the node lacks, the
features each would cost, whether advising is possible at all (``CARR.WBCQIDist`` offered
at UE level) and whether the models can fine-tune (HARQ counts offered). A node such as
srsRAN's DU (15 UE-level names, none of them RI/CQI or HARQ counts) is thus told everything
it lacks, not only the first missing name. The event trigger (style 1, periodic) and
the granularity period are both the CSI-RS report period, so one indication carries one
period of each UE.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from lighttune_core.features import FEATURE_NAMES
from lighttune_e2.kpm.codec import KpmCodec, codec_for_ran_function
from lighttune_e2.kpm.model import (
    ActionDefinition,
    ActionDefinitionFormat1,
    ActionDefinitionFormat4,
    ActionDefinitionFormat5,
    CellGlobalId,
    EventTrigger,
    GnbDuUeId,
    MatchingUeCondition,
    MeasurementInfo,
    RanFunctionDefinition,
    TestCondition,
)
from lighttune_e2.kpm.reports import (
    MEASUREMENT_ALIASES,
    PRB_USED_DL,
    TB_ERRORS,
    TB_ERRORS_INITIAL,
    TB_TOTAL,
    TB_TOTAL_INITIAL,
    UE_MEASUREMENT_NAMES,
    WB_CQI_DIST,
    MissingMeasurementCost,
    missing_measurement_costs,
)

#: The style-4 condition every UE meets: wideband CQI < 16.
MATCH_EVERY_UE: TestCondition = TestCondition("cQI", "lessthan", "valueInt", 16)

#: Measurements without which no LinkReports can be built.
REQUIRED_MEASUREMENTS: tuple[str, ...] = (WB_CQI_DIST,)


@dataclasses.dataclass(frozen=True)
class KpmFunctionAssessment:
    """What a node's KPM function can give the report path, and what its gaps cost.

    Attributes:
        short_name, oid: the function's names; ``ran_function_id`` its E2AP id (or None).
        style: the UE-level report style the xApp would use (4, or 5 with >= 2 known UEs),
            ``None`` when the function offers neither.
        offered: our measurement names (:data:`UE_MEASUREMENT_NAMES`) that style offers.
        missing: the cost of every measurement of ours the style lacks
            (:func:`~lighttune_e2.kpm.reports.missing_measurement_costs`), all of them
            (not just the first that blocks).
        advising_possible: reports of this function become ``LinkReports``: predictions and
            recommendations (advisory) or decisions (with LT-LINKADAPT control) are possible,
            with the ``imputed`` features filled by the imputation rule.
        learning_possible: the function carries HARQ counts, so the models can fine-tune.
        reason: why advising is not possible (empty when it is).
    """

    short_name: str
    oid: str
    ran_function_id: int | None
    style: int | None
    offered: tuple[str, ...]
    missing: tuple[MissingMeasurementCost, ...]
    advising_possible: bool
    learning_possible: bool
    reason: str = ""

    @property
    def missing_names(self) -> tuple[str, ...]:
        """The missing measurement names, in table order."""
        return tuple(cost.name for cost in self.missing)

    @property
    def costly_features(self) -> tuple[str, ...]:
        """Features the missing measurements cost (imputed, or lost when advising is impossible),
        in :data:`~lighttune_core.features.FEATURE_NAMES` order."""
        costly = {f for cost in self.missing for f in cost.features}
        return tuple(f for f in FEATURE_NAMES if f in costly)

    def describe(self) -> str:
        """One log line: the verdict, then every missing measurement with its cost."""
        name = f"KPM function {self.short_name!r}" + (
            f" ({self.ran_function_id})" if self.ran_function_id is not None else "")
        if self.advising_possible:
            verdict = (f"{name} style {self.style}: advising possible"
                       + ("" if self.learning_possible else ", without fine-tuning (no HARQ counts)"))
        else:
            verdict = f"{name}: advising NOT possible: {self.reason}"
        if not self.missing:
            return verdict + "; every measurement offered"
        items = []
        for cost in self.missing:
            features = ", ".join(cost.features) if len(cost.features) < len(FEATURE_NAMES) else "all 12 features"
            items.append(f"{cost.name} [{features or 'no feature'}: {cost.effect}]")
        return f"{verdict}; {len(self.missing)} missing measurement(s): " + "; ".join(items)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form (``/ric/v1/stats`` under the node)."""
        return {
            "short_name": self.short_name, "oid": self.oid, "ran_function_id": self.ran_function_id,
            "style": self.style, "offered": list(self.offered),
            "missing_measurements": [cost.as_json() for cost in self.missing],
            "costly_features": list(self.costly_features),
            "advising_possible": self.advising_possible, "learning_possible": self.learning_possible,
            "reason": self.reason,
        }


class KpmSubscriptionUnavailable(ValueError):
    """The node's KPM function offers nothing the report path can use (message says why).

    Attributes:
        assessment: the full assessment (every missing measurement and its cost), when the
            function was assessed.
    """

    def __init__(self, message: str, assessment: KpmFunctionAssessment | None = None) -> None:
        super().__init__(message)
        self.assessment = assessment


@dataclasses.dataclass(frozen=True)
class KpmSubscriptionPlan:
    """A KPM subscription for one node, ready to send.

    Attributes:
        ran_function_id: the node's KPM RAN function id (E2AP).
        style: report style 4 or 5.
        measurements: subscribed names, in order (the node's spelling; see the module
            docstring for what is left out).
        missing: wanted names the node does not offer (their features get imputed).
        period_ms: event-trigger reporting period = granularity period, ms.
        event_trigger: encoded event trigger definition.
        action_definition: encoded action definition.
        codec: the codec of the node's KPM flavour (decode its indications with it).
    """

    ran_function_id: int | None
    style: int
    measurements: tuple[str, ...]
    missing: tuple[str, ...]
    period_ms: int
    event_trigger: bytes
    action_definition: bytes
    codec: KpmCodec
    assessment: KpmFunctionAssessment | None = None


def _offered_names(definition: RanFunctionDefinition, style: int) -> dict[str, tuple[str, int | None]]:
    """Our name -> (the node's spelling, its measID or None), for what ``style`` offers."""
    report_style = definition.report_style(style)
    if report_style is None:
        return {}
    out: dict[str, tuple[str, int | None]] = {}
    for name, meas_id in report_style.measurements:
        ours = MEASUREMENT_ALIASES.get(name, name)
        if ours in UE_MEASUREMENT_NAMES:
            out.setdefault(ours, (name, meas_id))
    return out


def plan_kpm_subscription(
    definition: RanFunctionDefinition,
    csi_period_ms: int,
    ue_ids: Sequence[int] | None = None,
    condition: TestCondition = MATCH_EVERY_UE,
    cell: CellGlobalId | None = None,
) -> KpmSubscriptionPlan:
    """Choose and encode the KPM subscription for a node (see the module docstring).

    Args:
        definition: the node's decoded KPM RAN function definition.
        csi_period_ms: the cell's CSI-RS period, ms (>= 1): reporting and granularity period.
        ue_ids: the node's UE ids (gNB-DU F1AP ids) for style 5, when known.
        condition: the style-4 condition meant to match every UE.
        cell: the cell the subscription is for (``cellGlobalID`` of the format-1 part), or
            ``None`` for every cell of the function.

    Raises:
        KpmSubscriptionUnavailable: neither style 4 nor (with >= 2 UEs) style 5 is offered,
            or the style lacks ``CARR.WBCQIDist``.
        ValueError: ``csi_period_ms`` < 1.
    """
    if isinstance(csi_period_ms, bool) or not isinstance(csi_period_ms, int) or csi_period_ms < 1:
        raise ValueError(f"csi_period_ms must be a positive integer, got {csi_period_ms!r}")
    assessment = assess_kpm_function(definition, ue_ids)
    if not assessment.advising_possible or assessment.style is None:
        raise KpmSubscriptionUnavailable(assessment.describe(), assessment)
    style = assessment.style
    offered = _offered_names(definition, style)
    unused = {PRB_USED_DL}
    if TB_TOTAL_INITIAL in offered and TB_ERRORS_INITIAL in offered:
        unused |= {TB_TOTAL, TB_ERRORS}
    chosen = [offered[name] for name in UE_MEASUREMENT_NAMES if name in offered and name not in unused]
    names = tuple(name for name, _ in chosen)
    missing = tuple(name for name in UE_MEASUREMENT_NAMES if name not in offered)
    # By measID when the node assigned one to every chosen measurement (E2SM-KPM v3.00
    # MeasurementType CHOICE measID, ids from MeasurementInfo-Action-Item.measID): a node
    # answering in kind then names each UE's records by a 3-octet id, not a 11-20 character
    # PrintableString (our node does; see e2sim.kpm_function). Otherwise by name.
    if chosen and all(meas_id is not None for _, meas_id in chosen):
        infos = tuple(MeasurementInfo(None, meas_id=meas_id) for _, meas_id in chosen)
    else:
        infos = tuple(MeasurementInfo(name) for name in names)
    info = ActionDefinitionFormat1(infos, csi_period_ms, cell)
    if style == 4:
        action_format: ActionDefinitionFormat4 | ActionDefinitionFormat5 = ActionDefinitionFormat4(
            (MatchingUeCondition(condition),), info
        )
    else:
        assert ue_ids is not None
        action_format = ActionDefinitionFormat5(tuple(GnbDuUeId(int(u)) for u in ue_ids), info)
    codec = codec_for_ran_function(definition)
    return KpmSubscriptionPlan(
        ran_function_id=definition.ran_function_id,
        style=style,
        measurements=names,
        missing=missing,
        period_ms=csi_period_ms,
        event_trigger=codec.encode_event_trigger(EventTrigger(csi_period_ms)),
        action_definition=codec.encode_action_definition(ActionDefinition(style, action_format)),
        codec=codec,
        assessment=assessment,
    )


def _usable_style(definition: RanFunctionDefinition, ue_ids: Sequence[int] | None) -> int | None:
    """Style 4, else style 5 when >= 2 UE ids are known, else None."""
    if definition.report_style(4) is not None:
        return 4
    if definition.report_style(5) is not None and ue_ids is not None and len(ue_ids) >= 2:
        return 5
    return None


def assess_kpm_function(
    definition: RanFunctionDefinition, ue_ids: Sequence[int] | None = None
) -> KpmFunctionAssessment:
    """Everything a KPM function lacks for the report path, with its cost (see
    :class:`KpmFunctionAssessment`).

    Advising is possible when a UE-level style (4, or 5 with >= 2 known UEs) offers every
    :data:`REQUIRED_MEASUREMENTS` (``CARR.WBCQIDist``: RI and CQI, from which every feature
    derives); then each other missing measurement is imputed by the rule of
    :mod:`lighttune_e2.kpm.reports`. No substitute exists for the CQI distribution: srsRAN
    registers a "CQI" metric but does not advertise it, and it is the mean CQI of its first UE
    for every UE (reference: srsRAN issues #1021, oran-sc-ric #68), so no real per-UE RI/CQI.
    Fine-tuning also needs the HARQ counts (either ``TB.*`` pair).
    """
    style = _usable_style(definition, ue_ids)
    offered_map = _offered_names(definition, style) if style is not None else {}
    offered = tuple(name for name in UE_MEASUREMENT_NAMES if name in offered_map)
    missing = missing_measurement_costs(offered)
    harq = {TB_TOTAL_INITIAL, TB_ERRORS_INITIAL} <= set(offered) or {TB_TOTAL, TB_ERRORS} <= set(offered)
    if style is None:
        reason = ("offers neither report style 4 nor style 5 with a known list of >= 2 UEs "
                  "(no UE-level report)")
    else:
        absent = [name for name in REQUIRED_MEASUREMENTS if name not in offered]
        reason = (f"style {style} does not offer {', '.join(absent)} (per-UE RI and CQI, from which every "
                  "feature derives)") if absent else ""
    return KpmFunctionAssessment(
        short_name=definition.short_name, oid=definition.oid, ran_function_id=definition.ran_function_id,
        style=style, offered=offered, missing=missing, advising_possible=not reason,
        learning_possible=not reason and harq, reason=reason,
    )


__all__ = [
    "MATCH_EVERY_UE",
    "KpmFunctionAssessment",
    "assess_kpm_function",
    "REQUIRED_MEASUREMENTS",
    "KpmSubscriptionPlan",
    "KpmSubscriptionUnavailable",
    "plan_kpm_subscription",
]
