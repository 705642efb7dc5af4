"""The simulated node's E2SM-KPM RAN function: definition, subscriptions, indications."""

from __future__ import annotations

import numpy as np
import pytest

from e2sim.channel import LinkChannel, Scenario
from e2sim.du import DU
from e2sim.kpm_function import (
    CELL_MEASUREMENTS,
    KPM_RAN_FUNCTION_ID,
    KpmPeriod,
    KpmRanFunction,
    KpmSubscription,
)
from lighttune_core.report import LinkReports
from lighttune_e2.kpm.codec import (
    DEFAULT_CODEC,
    KPM_V2_OID,
    KPM_V3_OID,
    codec_for_ran_function,
)
from lighttune_e2.kpm.model import (
    ActionDefinition,
    ActionDefinitionFormat1,
    ActionDefinitionFormat4,
    ActionDefinitionFormat5,
    CellGlobalId,
    EventTrigger,
    GnbDuUeId,
    IndicationMessageFormat1,
    IndicationMessageFormat3,
    MatchingUeCondition,
    MeasurementInfo,
    TestCondition,
)
from lighttune_e2.kpm.reports import UE_MEASUREMENT_NAMES, decode_kpm_indication
from lighttune_e2.kpm.schema import KpmVersion
from lighttune_e2.kpm.subscription import plan_kpm_subscription

CELL = CellGlobalId(b"\x00\xf1\x10", 0x66C000010)


def run_du(n_ue: int = 12, periods: int = 3, seed: int = 4) -> tuple[DU, list]:
    scenario = Scenario(profile="TDL-A30", n_ue=n_ue, snr_db=(0.0, 30.0), csi_period_ms=10, seed=seed)
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    outcomes = []
    while len(outcomes) < periods:
        out = du.step(channel.step())
        if out is not None:
            outcomes.append(out)
    return du, outcomes


def ad(style: int, definition: object) -> bytes:
    return DEFAULT_CODEC.encode_action_definition(ActionDefinition(style, definition))  # type: ignore[arg-type]


TRIGGER = DEFAULT_CODEC.encode_event_trigger(EventTrigger(10))
INFO = ActionDefinitionFormat1(tuple(MeasurementInfo(n) for n in UE_MEASUREMENT_NAMES), 10)


@pytest.mark.parametrize("oid", [KPM_V3_OID, KPM_V2_OID])
def test_definition_round_trip(oid: str) -> None:
    fn = KpmRanFunction(CELL, oid=oid)
    item = fn.ran_function()
    assert item.ran_function_id == KPM_RAN_FUNCTION_ID == 2 and item.oid == oid
    decoded = DEFAULT_CODEC.decode_ran_function_definition(item.definition, item.ran_function_id)
    assert decoded == fn.definition
    assert decoded.short_name == "ORAN-E2SM-KPM"
    assert [s.style_type for s in decoded.report_styles] == [1, 4, 5]
    assert [s.indication_message_format_type for s in decoded.report_styles] == [1, 3, 3]
    assert {n for n, _ in decoded.report_style(4).measurements} == set(UE_MEASUREMENT_NAMES)
    assert {n for n, _ in decoded.report_style(1).measurements} == set(CELL_MEASUREMENTS)
    assert decoded.event_trigger_styles[0].style_type == 1
    # srsRAN-style v2 OID still means v3.00 content
    assert codec_for_ran_function(decoded).encode_version is KpmVersion.V3_00


def test_style4_condition_evaluated_per_ue() -> None:
    snssai = np.array([(1 << 24) | 0xFFFFFF, (2 << 24) | 0x000001] * 3)
    fn = KpmRanFunction(CELL, ue_snssai=snssai)
    du, outs = run_du(n_ue=6)
    reports = outs[-1].reports
    cases = [
        ((MatchingUeCondition(TestCondition("sNSSAI", "equal", "valueInt", 1)),), (snssai >> 24) == 1),
        ((MatchingUeCondition(TestCondition("sNSSAI", "equal", "valueOctS", bytes([2, 0, 0, 1]))),),
         snssai == ((2 << 24) | 1)),
        ((MatchingUeCondition(TestCondition("cQI", "greaterthan", "valueInt", 7)),), reports.cqi > 7),
        ((MatchingUeCondition(TestCondition("cQI", "lessthan", "valueInt", 5), logical_or=True),
          MatchingUeCondition(TestCondition("sNSSAI", "equal", "valueInt", 2))),
         (reports.cqi < 5) | ((snssai >> 24) == 2)),
        ((MatchingUeCondition(TestCondition("cQI", "greaterthan", "valueInt", 3)),
          MatchingUeCondition(TestCondition("sNSSAI", "equal", "valueInt", 1))),
         (reports.cqi > 3) & ((snssai >> 24) == 1)),
    ]
    for conditions, expected in cases:
        decision = fn.handle_subscription(TRIGGER, ad(4, ActionDefinitionFormat4(conditions, INFO)))
        assert decision.accepted, decision.detail
        np.testing.assert_array_equal(fn.matching_ues(decision.subscription, reports), expected)
        messages = fn.build_indications(decision.subscription, KpmPeriod.from_outcome(outs[-1], du, 1.7e9))
        ids = [r.ue_id.key for _, m in messages for r in DEFAULT_CODEC.decode_indication_message(m).reports]
        assert ids == reports.ue_id[expected].tolist()


@pytest.mark.parametrize(
    "test",
    [
        TestCondition("ul-rSRP", "lessthan", "valueInt", 1000),
        TestCondition("cQI", "contains", "valueInt", 3),
        TestCondition("sNSSAI", "greaterthan", "valueInt", 1),
        TestCondition("cQI", "equal", "valueReal", 3.0),
    ],
)
def test_unsupported_condition_rejected_with_cause(test: TestCondition) -> None:
    fn = KpmRanFunction(CELL)
    decision = fn.handle_subscription(TRIGGER, ad(4, ActionDefinitionFormat4((MatchingUeCondition(test),), INFO)))
    assert not decision.accepted
    assert (decision.cause.group, decision.cause.value) == ("ricRequest", "action-not-supported")
    assert test.test_type in decision.detail or "condition" in decision.detail


def test_other_refusals_carry_causes() -> None:
    fn = KpmRanFunction(CELL)
    bad_measure = ActionDefinitionFormat1((MeasurementInfo("DRB.UEThpUl"),), 10)
    cases = [
        (b"", ad(4, ActionDefinitionFormat4((MatchingUeCondition(TestCondition("cQI", "lessthan", "valueInt", 16)),), INFO)),
         "eventTriggerNotSupported"),
        (TRIGGER, b"\x01\x02\x03", "action-not-supported"),
        (TRIGGER, ad(2, ActionDefinitionFormat1(INFO.measurements, 10)), "action-not-supported"),
        (TRIGGER, ad(5, ActionDefinitionFormat5((GnbDuUeId(0), GnbDuUeId(1)), bad_measure)),
         "requested-information-unavailable"),
        (TRIGGER, ad(1, ActionDefinitionFormat1((MeasurementInfo("TB.TotNbrDl"),), 10,
                                                CellGlobalId(b"\x00\xf1\x10", 5))), "invalid-information-request"),
    ]
    for trigger, action, cause in cases:
        decision = fn.handle_subscription(trigger, action)
        assert not decision.accepted and decision.cause.value == cause


def test_format3_indication_matches_du_period() -> None:
    du, outs = run_du(n_ue=10)
    fn = KpmRanFunction(CELL)
    decision = fn.handle_subscription(TRIGGER, ad(5, ActionDefinitionFormat5(
        tuple(GnbDuUeId(u) for u in (1, 4, 7, 9)), INFO)))
    assert decision.accepted and decision.subscription.ue_ids == (1, 4, 7, 9)
    period = KpmPeriod.from_outcome(outs[-1], du, 1.7e9 + 0.25)
    messages = fn.build_indications(decision.subscription, period)
    header = DEFAULT_CODEC.decode_indication_header(messages[0][0])
    assert header.unix_time_s == pytest.approx(1.7e9 + 0.25, abs=1e-6)
    message = DEFAULT_CODEC.decode_indication_message(messages[0][1])
    assert isinstance(message, IndicationMessageFormat3)
    r = outs[-1].reports
    for item in message.reports:
        i = int(np.flatnonzero(r.ue_id == item.ue_id.key)[0])
        named = dict(zip([n for n, _ in item.report.record_names()], item.report.periods[0].records))
        labels = {n: lab for n, lab in item.report.record_names()}
        assert labels["CARR.WBCQIDist"].dist_bin_x == r.cqi[i] + 1
        assert labels["CARR.WBCQIDist"].dist_bin_y == r.ri[i]
        n_tx = int(r.n_ack[i] + r.n_nack[i])
        assert named["TB.TotNbrDlInitial"] == (n_tx if n_tx else None)
        assert named["TB.ErrTotNbrDlInitial"] == (int(r.n_nack[i]) if n_tx else None)
        assert named["LT.OLLAOffset"] == pytest.approx(r.olla_offset_db[i])
        assert named["LT.SINRLayer1"] == pytest.approx(r.sinr_layers_db[i, 0])
        assert item.report.granularity_period_ms == 10


def test_style1_cell_message_sums_counts() -> None:
    du, outs = run_du(n_ue=8)
    fn = KpmRanFunction(CELL)
    decision = fn.handle_subscription(TRIGGER, ad(1, ActionDefinitionFormat1(
        tuple(MeasurementInfo(n) for n in CELL_MEASUREMENTS), 10, CELL)))
    assert decision.accepted
    ((_, data),) = fn.build_indications(decision.subscription, KpmPeriod.from_outcome(outs[-1], du, 1.7e9))
    message = DEFAULT_CODEC.decode_indication_message(data)
    assert isinstance(message, IndicationMessageFormat1)
    named = dict(zip([n for n, _ in message.record_names()], message.periods[0].records))
    r = outs[-1].reports
    assert named["TB.TotNbrDlInitial"] == int((r.n_ack + r.n_nack).sum())
    assert named["TB.ErrTotNbrDlInitial"] == int(r.n_nack.sum())
    cqi_counts = [v for (n, _), v in zip(message.record_names(), message.periods[0].records) if n == "CARR.WBCQIDist"]
    assert sum(cqi_counts) == len(r)


def test_large_cell_split_below_16k_and_decodes_whole() -> None:
    du, outs = run_du(n_ue=150, periods=2, seed=8)
    fn = KpmRanFunction(CELL)
    plan = plan_kpm_subscription(fn.definition, 10)
    decision = fn.handle_subscription(plan.event_trigger, plan.action_definition)
    assert decision.accepted
    messages = fn.build_indications(decision.subscription, KpmPeriod.from_outcome(outs[-1], du, 1.7e9))
    assert len(messages) >= 2 and all(len(m) <= 16000 for _, m in messages)
    parts = [decode_kpm_indication(h, m, plan.codec)[1] for h, m in messages]
    joined = LinkReports.concat(parts)
    np.testing.assert_array_equal(joined.ue_id, outs[-1].reports.ue_id)


def test_subscription_by_measid_gives_lean_reports_decoding_like_names() -> None:
    """The plan names measurements by the ids the node advertised; the node answers in kind.

    Same LinkReports as a by-name subscription, at well under half the octets per UE (the
    per-UE measurement list carries 3-octet measIDs, not PrintableString names).
    """
    du, outs = run_du(n_ue=20, periods=2, seed=5)
    fn = KpmRanFunction(CELL)
    plan = plan_kpm_subscription(fn.definition, 10)
    by_id = fn.handle_subscription(plan.event_trigger, plan.action_definition)
    by_name = fn.handle_subscription(TRIGGER, ad(4, ActionDefinitionFormat4(
        (MatchingUeCondition(TestCondition("cQI", "lessthan", "valueInt", 16)),), INFO)))
    assert by_id.accepted and by_id.subscription.by_id
    assert by_name.accepted and not by_name.subscription.by_id
    assert by_name.subscription.measurements == UE_MEASUREMENT_NAMES
    # the plan leaves out what neither the features, the labels nor the rank-change check use
    # (PRBs, all-transmission TB counts)
    assert by_id.subscription.measurements == tuple(
        n for n in UE_MEASUREMENT_NAMES
        if n not in ("RRU.PrbUsedDl", "TB.TotNbrDl", "TB.ErrTotNbrDl"))
    period = KpmPeriod.from_outcome(outs[-1], du, 1.7e9)
    ((h_id, m_id),) = fn.build_indications(by_id.subscription, period)
    ((h_name, m_name),) = fn.build_indications(by_name.subscription, period)
    assert len(m_id) < 0.6 * len(m_name)
    message = plan.codec.decode_indication_message(m_id)
    assert all(m.name is None and m.meas_id is not None for m in message.reports[0].report.measurements)
    lean = decode_kpm_indication(h_id, m_id, plan.codec)
    heavy = decode_kpm_indication(h_name, m_name, plan.codec)
    assert lean[2] == heavy[2] == 0 and lean[3] == heavy[3] == ()
    for field in ("ue_id", "ri", "cqi", "rank", "mcs", "n_ack", "n_nack"):
        np.testing.assert_array_equal(getattr(lean[1], field), getattr(heavy[1], field))
    # both carry the delivered bits (DRB.UEThpDl)
    np.testing.assert_array_equal(lean[1].served_bits, outs[-1].reports.served_bits)
    np.testing.assert_array_equal(heavy[1].served_bits, outs[-1].reports.served_bits)
    assert heavy[1].served_bits.any()
    np.testing.assert_array_equal(lean[1].sinr_layers_db, heavy[1].sinr_layers_db)
    # without the node's id map the records cannot be named: no UE is usable
    assert len(decode_kpm_indication(h_id, m_id)[1]) == 0


def test_unadvertised_measid_refused() -> None:
    fn = KpmRanFunction(CELL)
    info = ActionDefinitionFormat1((MeasurementInfo(None, meas_id=999),), 10)
    decision = fn.handle_subscription(TRIGGER, ad(4, ActionDefinitionFormat4(
        (MatchingUeCondition(TestCondition("cQI", "lessthan", "valueInt", 16)),), info)))
    assert not decision.accepted and decision.cause.value == "requested-information-unavailable"
