"""Sans-I/O E2 endpoints paired in memory: setup, subscribe, indications, control, delete,
reset, error indication, timeouts and illegal transitions."""

from __future__ import annotations

import pytest

from lighttune_e2 import e2ap as E
from lighttune_e2 import endpoints as ep
from lighttune_e2.errors import E2DecodeError, E2ProtocolError

SM_OID = "1.3.6.1.4.1.65535.200.1.1"
FUNC = E.RanFunction(200, b"def", 1, SM_OID)
OTHER = E.RanFunction(2, b"kpm", 0, "1.3.6.1.4.1.53148.1.2.2.2")
NODE_ID = E.GlobalE2NodeId(b"\x00\xf1\x10", 7, 22)


def pump(src_out: ep.Output, dst: ep._Endpoint, now: float) -> list[ep.Event]:
    """Deliver src's PDUs to dst; return dst's events (and deliver nothing back)."""
    events: list[ep.Event] = []
    for pdu in src_out[0]:
        out, ev = dst.receive_bytes(pdu, now)
        assert out == [] or all(isinstance(E.decode(p), E.E2apMessage) for p in out)
        events += ev
    return events


def exchange(out: ep.Output, a: ep._Endpoint, b: ep._Endpoint, now: float) -> tuple[list, list]:
    """Deliver out (from a) to b, and b's answers back to a, until quiet. Returns (a_events, b_events)."""
    ev_a: list[ep.Event] = []
    ev_b: list[ep.Event] = []
    pending, to_b = list(out[0]), True
    while pending:
        nxt: list[bytes] = []
        for pdu in pending:
            o, ev = (b if to_b else a).receive_bytes(pdu, now)
            (ev_b if to_b else ev_a).extend(ev)
            nxt += o
        pending, to_b = nxt, not to_b
    return ev_a, ev_b


def linked(accept_oids: frozenset[str] | None = frozenset({SM_OID})) -> tuple[ep.E2NodeEndpoint, ep.RicEndpoint]:
    node = ep.E2NodeEndpoint(NODE_ID, (FUNC, OTHER))
    ric = ep.RicEndpoint(accept_oids=accept_oids)
    ev_node, ev_ric = exchange(node.start_setup(0.0), node, ric, 0.0)
    assert isinstance(ev_ric[0], ep.E2SetupReceived)
    assert isinstance(ev_node[0], ep.SetupCompleted)
    return node, ric


def subscribed(node: ep.E2NodeEndpoint, ric: ep.RicEndpoint) -> E.RicRequestId:
    rid, out = ric.subscribe(200, b"trig", (E.RicAction(0, "report", b"ad"),), 1.0)
    ev_ric, ev_node = exchange(out, ric, node, 1.0)
    assert isinstance(ev_node[0], ep.SubscriptionStarted) and ev_node[0].request.event_trigger == b"trig"
    assert isinstance(ev_ric[0], ep.SubscriptionAccepted) and ev_ric[0].response.admitted == (0,)
    return rid


def test_setup_accepts_only_known_service_models() -> None:
    node, ric = linked()
    assert node.state is ep.LinkState.READY and ric.state is ep.LinkState.READY
    assert set(ric.ran_functions) == {200}
    assert node.accepted_functions == {200}
    assert ric.node_id == NODE_ID


def test_subscription_indications_and_delete() -> None:
    node, ric = linked()
    rid = subscribed(node, ric)
    assert rid.requestor_id == ep.DEFAULT_RIC_REQUESTOR_ID
    sns = []
    for k in range(3):
        events = pump(node.send_indication(rid, 0, b"h%d" % k, b"m"), ric, 2.0)
        assert isinstance(events[0], ep.IndicationReceived)
        sns.append(events[0].indication.sn)
        assert events[0].indication.header == b"h%d" % k
    assert sns == [0, 1, 2]
    assert ric.stats.indications == 3
    ev_ric, ev_node = exchange(ric.unsubscribe(rid, 3.0), ric, node, 3.0)
    assert ev_node == [ep.SubscriptionEnded(rid, 200)]
    assert ev_ric == [ep.SubscriptionDeleted(rid, True)]
    with pytest.raises(E2ProtocolError):
        node.send_indication(rid, 0, b"", b"")
    assert ric.pending_requests() == 0


def test_subscription_to_rejected_function_fails_at_the_api() -> None:
    node, ric = linked()
    with pytest.raises(E2ProtocolError, match="RAN function 2"):
        ric.subscribe(2, b"", (E.RicAction(0),), 0.0)


def test_node_refuses_subscription_for_function_it_was_not_accepted_for() -> None:
    node, ric = linked(accept_oids=None)
    node.accepted_functions.discard(2)
    rid, out = ric.subscribe(2, b"", (E.RicAction(0),), 0.0)
    ev_ric, ev_node = exchange(out, ric, node, 0.0)
    assert ev_node == []
    assert isinstance(ev_ric[0], ep.SubscriptionRejected)
    assert ev_ric[0].failure.cause == E.Cause("ricRequest", "ran-function-id-invalid")


def test_control_failure_reaches_the_ric() -> None:
    node, ric = linked()
    rid, out = ric.send_control(200, b"hdr", b"msg", 6.0)
    events = pump(out, node, 6.0)
    assert isinstance(events[0], ep.ControlReceived) and events[0].request.header == b"hdr"
    fail_events = pump(node.fail_control(events[0].request, E.Cause("ricRequest", "control-failed-to-execute")), ric, 6.1)
    assert isinstance(fail_events[0], ep.ControlFailed)
    assert fail_events[0].failure.request_id == rid
    assert ric.pending_requests() == 0


def test_control_without_ack_is_not_tracked_or_answered() -> None:
    node, ric = linked()
    _, out = ric.send_control(200, b"h", b"m", 1.0, ack=False)
    assert ric.pending_requests() == 0
    req = pump(out, node, 1.0)[0].request
    assert node.ack_control(req) == ([], [])


def test_control_ack_reaches_the_ric() -> None:
    node, ric = linked()
    rid, out = ric.send_control(200, b"hdr", b"msg", 5.0)
    req = pump(out, node, 5.0)[0].request
    events = pump(node.ack_control(req, b"outcome"), ric, 5.1)
    assert events == [ep.ControlAcknowledged(E.RicControlAcknowledge(rid, 200, None, b"outcome"))]
    with pytest.raises(E2ProtocolError):
        node.ack_control(req)  # answered already


def test_reset_from_ric_clears_subscriptions_on_both_sides() -> None:
    node, ric = linked()
    rid = subscribed(node, ric)
    ev_ric, ev_node = exchange(ric.reset(4.0), ric, node, 4.0)
    assert ev_node == [ep.ResetDone(True)] and ev_ric == [ep.ResetDone(False)]
    assert ric.subscriptions == {} and node.subscriptions == {}
    events = pump(node.reset(5.0), ric, 5.0)
    assert events == [ep.ResetDone(True)]


def test_indication_for_unknown_subscription_is_counted_and_answered_with_error_indication() -> None:
    node, ric = linked()
    rid = subscribed(node, ric)
    forged = E.encode(E.RicIndication(E.RicRequestId(9, 9), 200, 0, 1, "report", b"", b""))
    out, events = ric.receive_bytes(forged, 2.0)
    assert isinstance(events[0], ep.ProtocolErrorEvent) and isinstance(events[0].error, E2ProtocolError)
    assert ric.stats.protocol_errors == 1
    back = pump((out, []), node, 2.0)
    assert isinstance(back[0], ep.ErrorIndicationReceived)
    assert back[0].message.request_id == E.RicRequestId(9, 9)
    assert isinstance(pump(node.send_indication(rid, 0, b"", b""), ric, 2.1)[0], ep.IndicationReceived)


def test_garbage_bytes_are_a_counted_decode_error() -> None:
    _, ric = linked()
    out, events = ric.receive_bytes(b"\x13\x37", 0.0)
    assert isinstance(events[0].error, E2DecodeError)
    assert ric.stats.decode_errors == 1
    assert isinstance(E.decode(out[0]), E.ErrorIndication)


def test_subscription_timeout_then_late_answer_is_a_protocol_error() -> None:
    node, ric = linked()
    rid, out = ric.subscribe(200, b"", (E.RicAction(0),), 10.0)
    assert ric.next_deadline() == pytest.approx(10.0 + ep.DEFAULT_REQUEST_TIMEOUT_S)
    assert ric.timer(12.0) == ([], [])
    _, events = ric.timer(16.0)
    assert events == [ep.RequestTimedOut("subscription", rid)]
    assert ric.stats.timeouts == 1
    late_out, _ = node.receive_bytes(out[0][0], 16.5)
    _, events = ric.receive_bytes(late_out[0], 16.6)
    assert isinstance(events[0], ep.ProtocolErrorEvent)


def test_setup_timeout_returns_node_to_idle_and_allows_retry() -> None:
    node = ep.E2NodeEndpoint(NODE_ID, (FUNC,), request_timeout_s=1.0)
    node.start_setup(0.0)
    with pytest.raises(E2ProtocolError):
        node.start_setup(0.5)
    _, events = node.timer(1.5)
    assert events == [ep.RequestTimedOut("setup", 0)]
    assert node.state is ep.LinkState.IDLE
    out, _ = node.start_setup(2.0)
    assert E.decode(out[0]).transaction_id == 1


def test_illegal_transitions() -> None:
    ric = ep.RicEndpoint()
    with pytest.raises(E2ProtocolError, match="not ready"):
        ric.subscribe(200, b"", (E.RicAction(0),), 0.0)
    out, events = ric.receive_bytes(E.encode(E.RicSubscriptionDeleteResponse(E.RicRequestId(1, 1), 1)), 0.0)
    assert isinstance(events[0], ep.ProtocolErrorEvent)
    node, ric = linked()
    _, events = ric.receive_bytes(E.encode(E.E2SetupRequest(5, NODE_ID, (FUNC,), node.component_configs)), 1.0)
    assert isinstance(events[0].error, E2ProtocolError)
    with pytest.raises(E2ProtocolError):
        ric.unsubscribe(E.RicRequestId(1001, 77), 1.0)


def test_error_indication_is_delivered_not_answered() -> None:
    node, ric = linked()
    out, events = ric.receive_bytes(E.encode(E.ErrorIndication(cause=E.Cause("misc", "unspecified"))), 0.0)
    assert out == [] and isinstance(events[0], ep.ErrorIndicationReceived)
    ev = pump(ric.error_indication(E.Cause("misc", "unspecified")), node, 0.0)
    assert isinstance(ev[0], ep.ErrorIndicationReceived)
