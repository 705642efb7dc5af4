"""KPM wiring: the node endpoint's subscription admission hook, the simulated node's KPM
functions (one per cell, cell in ranFunction-Instance) and their admission decisions."""

from __future__ import annotations

import pytest

from e2sim.channel import Scenario
from e2sim.kpm_function import KPM_RAN_FUNCTION_ID
from e2sim.node import DEFAULT_PLMN, E2SimNode, build_cells
from lighttune_e2 import e2ap as E
from lighttune_e2 import endpoints as ep
from lighttune_e2.kpm.codec import DEFAULT_CODEC, KPM_V2_OID, KPM_V3_OID
from lighttune_e2.kpm.model import (
    CellGlobalId,
    IndicationHeader,
    TestCondition,
    ntp_timestamp,
)
from lighttune_e2.kpm.subscription import plan_kpm_subscription
from lighttune_e2.service_model import DEFAULT_RAN_FUNCTION_ID, SM_OID
from tests.test_e2_endpoints import FUNC, NODE_ID, OTHER, exchange


def _linked(admit: ep.SubscriptionAdmission | None) -> tuple[ep.E2NodeEndpoint, ep.RicEndpoint]:
    node = ep.E2NodeEndpoint(NODE_ID, (FUNC, OTHER), admit=admit)
    ric = ep.RicEndpoint(accept_oids=None)
    exchange(node.start_setup(0.0), node, ric, 0.0)
    return node, ric


def test_admission_hook_refuses_with_its_cause_and_admits_the_rest() -> None:
    asked: list[int] = []

    def admit(request: E.RicSubscriptionRequest) -> E.Cause | None:
        asked.append(request.ran_function_id)
        return E.Cause("ricRequest", "requested-information-unavailable") if request.ran_function_id == 2 else None

    node, ric = _linked(admit)
    rid, out = ric.subscribe(2, b"trig", (E.RicAction(1, "report", b"ad"),), 1.0)
    ev_ric, ev_node = exchange(out, ric, node, 1.0)
    assert ev_node == [] and rid not in node.subscriptions
    assert isinstance(ev_ric[0], ep.SubscriptionRejected)
    assert ev_ric[0].failure.cause == E.Cause("ricRequest", "requested-information-unavailable")
    rid2, out = ric.subscribe(200, b"trig", (E.RicAction(1, "report", b"ad"),), 1.0)
    ev_ric, ev_node = exchange(out, ric, node, 1.0)
    assert isinstance(ev_node[0], ep.SubscriptionStarted) and rid2 in node.subscriptions
    assert isinstance(ev_ric[0], ep.SubscriptionAccepted)
    assert asked == [2, 200]


def test_admission_hook_is_asked_only_after_the_endpoint_checks() -> None:
    asked: list[E.RicSubscriptionRequest] = []
    node, ric = _linked(lambda r: asked.append(r))  # type: ignore[func-returns-value]
    msg = E.RicSubscriptionRequest(E.RicRequestId(5, 1), 200, b"t", (E.RicAction(1), E.RicAction(1)))
    out, _ = node.receive_bytes(E.encode(msg), 1.0)
    failure = E.decode(out[0])
    assert isinstance(failure, E.RicSubscriptionFailure) and failure.cause.value == "duplicate-action"
    assert asked == []


def test_a_failing_admission_hook_refuses_the_request_not_the_link() -> None:
    def broken(_request: E.RicSubscriptionRequest) -> E.Cause | None:
        raise RuntimeError("bug in the hook")

    node, ric = _linked(broken)
    _rid, out = ric.subscribe(200, b"trig", (E.RicAction(1, "report", b"ad"),), 1.0)
    ev_ric, ev_node = exchange(out, ric, node, 1.0)
    assert isinstance(ev_ric[0], ep.SubscriptionRejected) and ev_ric[0].failure.cause.value == "unspecified"
    assert node.stats.protocol_errors == 1 and node.state is ep.LinkState.READY
    assert ev_node == []


@pytest.fixture(scope="module")
def two_cell_node() -> E2SimNode:
    scenario = Scenario(profile="TDL-A10", n_ue=4, csi_period_ms=10, seed=2)
    cells, source, harq = build_cells(scenario, 2)
    return E2SimNode(cells, source, harq, 0.1, progress=False, kpm="beside", kpm_oid=KPM_V2_OID)


def test_node_offers_one_kpm_function_per_cell_named_by_instance(two_cell_node: E2SimNode) -> None:
    functions = {f.ran_function_id: f for f in two_cell_node.ran_functions}
    assert set(functions) == {DEFAULT_RAN_FUNCTION_ID, KPM_RAN_FUNCTION_ID, KPM_RAN_FUNCTION_ID + 1}
    assert functions[DEFAULT_RAN_FUNCTION_ID].oid == SM_OID
    for offset, cell in enumerate(two_cell_node.cells):
        fn = functions[KPM_RAN_FUNCTION_ID + offset]
        assert fn.oid == KPM_V2_OID
        definition = DEFAULT_CODEC.decode_ran_function_definition(fn.definition, fn.ran_function_id)
        assert definition.instance == cell.cell_id


def test_kpm_only_node_offers_no_service_model() -> None:
    scenario = Scenario(profile="TDL-A10", n_ue=2, csi_period_ms=10, seed=2)
    cells, source, harq = build_cells(scenario, 1)
    node = E2SimNode(cells, source, harq, 0.1, progress=False, kpm="only")
    assert [(f.ran_function_id, f.oid) for f in node.ran_functions] == [(KPM_RAN_FUNCTION_ID, KPM_V3_OID)]
    with pytest.raises(ValueError, match="kpm"):
        E2SimNode(cells, source, harq, 0.1, progress=False, kpm="sometimes")


def _request(fid: int, trigger: bytes, definition: bytes) -> E.RicSubscriptionRequest:
    return E.RicSubscriptionRequest(E.RicRequestId(1001, 3), fid, trigger, (E.RicAction(1, "report", definition),))


def test_node_admission_follows_the_kpm_function(two_cell_node: E2SimNode) -> None:
    fid = KPM_RAN_FUNCTION_ID + 1
    cell_id = two_cell_node.cells[1].cell_id
    fn = next(f for f in two_cell_node.ran_functions if f.ran_function_id == fid)
    definition = DEFAULT_CODEC.decode_ran_function_definition(fn.definition, fid)
    good = plan_kpm_subscription(definition, 10, cell=CellGlobalId(DEFAULT_PLMN, cell_id))
    assert two_cell_node.admit_subscription(_request(fid, good.event_trigger, good.action_definition)) is None
    # the other cell's global id in this cell's function
    other = plan_kpm_subscription(definition, 10, cell=CellGlobalId(DEFAULT_PLMN, cell_id - 1))
    cause = two_cell_node.admit_subscription(_request(fid, other.event_trigger, other.action_definition))
    assert cause == E.Cause("ricRequest", "invalid-information-request")
    odd = plan_kpm_subscription(definition, 10, condition=TestCondition("rSRP", "equal", "valueInt", 3))
    cause = two_cell_node.admit_subscription(_request(fid, odd.event_trigger, odd.action_definition))
    assert cause == E.Cause("ricRequest", "action-not-supported")
    assert two_cell_node.admit_subscription(_request(fid, b"\x00", good.action_definition)) == E.Cause(
        "ricRequest", "eventTriggerNotSupported")
    # LT-LINKADAPT subscriptions are not the KPM function's business
    assert two_cell_node.admit_subscription(_request(DEFAULT_RAN_FUNCTION_ID, b"", b"")) is None


def test_period_key_is_the_collection_start_in_ms() -> None:
    header = IndicationHeader(ntp_timestamp(1_700_000_000.123))
    assert header.period_key_ms == 1_700_000_000_123
    decoded = DEFAULT_CODEC.decode_indication_header(DEFAULT_CODEC.encode_indication_header(header))
    assert decoded.period_key_ms == 1_700_000_000_123
