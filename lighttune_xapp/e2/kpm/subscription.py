"""What the xApp subscribes to on a KPM node, chosen from the node's RAN function definition.

:func:`plan_kpm_subscription` picks, in this order of preference:

* report style 4 (common-condition UE-level, AD format 4 -> IM format 3) with one condition
  that every UE meets: ``cQI lessthan 16`` (a wideband CQI is 0..15). Nodes that honour
  only other conditions can be given one (``condition=``), e.g. OAI only evaluates
  ``sNSSAI equal`` and aborts on anything else, so pass
  ``TestCondition("sNSSAI", "equal", "valueInt", 1)`` there;
* report style 5 (listed UEs, AD format 5) when style 4 is not offered and the UE list is
  known (at least 2 UEs, as the format requires).

The measurements are those of :data:`~lighttune_xapp.e2.kpm.reports.UE_MEASUREMENT_NAMES`
that the chosen style lists (only what the node offers) and that the features and the
fine-tuning label use: ``RRU.PrbUsedDl`` (informative, no record field) and
``DRB.UEThpDl`` (only ``LinkReports.served_bits``, which no decision or update reads; it is 0
on this path) are not subscribed, nor are the all-transmission TB counters when the
first-transmission ones are offered (the decoder reads those first). Each measurement costs every UE report a record, so leaving out what the
record does not use is a direct saving on the wire and in decode time. What is missing is
returned so the caller can report which features will be imputed. The event trigger (style 1, periodic) and
the granularity period are both the CSI-RS report period, so one indication carries one
period of each UE.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from lighttune_xapp.e2.kpm.codec import KpmCodec, codec_for_ran_function
from lighttune_xapp.e2.kpm.model import (
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
from lighttune_xapp.e2.kpm.reports import (
    MEASUREMENT_ALIASES,
    PRB_USED_DL,
    TB_ERRORS,
    TB_ERRORS_INITIAL,
    TB_TOTAL,
    TB_TOTAL_INITIAL,
    UE_MEASUREMENT_NAMES,
    UE_THROUGHPUT_DL,
    WB_CQI_DIST,
)

#: The style-4 condition every UE meets: wideband CQI < 16.
MATCH_EVERY_UE: TestCondition = TestCondition("cQI", "lessthan", "valueInt", 16)

#: Measurements without which no LinkReports can be built.
REQUIRED_MEASUREMENTS: tuple[str, ...] = (WB_CQI_DIST,)


class KpmSubscriptionUnavailable(ValueError):
    """The node's KPM function offers nothing the report path can use (message says why)."""


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
    candidates = [4] if definition.report_style(4) is not None else []
    if definition.report_style(5) is not None and ue_ids is not None and len(ue_ids) >= 2:
        candidates.append(5)
    if not candidates:
        raise KpmSubscriptionUnavailable(
            f"KPM function {definition.short_name!r} offers neither report style 4 nor style 5 "
            "with a known list of >= 2 UEs"
        )
    style = candidates[0]
    offered = _offered_names(definition, style)
    for needed in REQUIRED_MEASUREMENTS:
        if needed not in offered:
            raise KpmSubscriptionUnavailable(
                f"KPM function {definition.short_name!r} style {style} does not offer {needed}"
            )
    unused = {PRB_USED_DL, UE_THROUGHPUT_DL}
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
    )


__all__ = [
    "MATCH_EVERY_UE",
    "REQUIRED_MEASUREMENTS",
    "KpmSubscriptionPlan",
    "KpmSubscriptionUnavailable",
    "plan_kpm_subscription",
]
