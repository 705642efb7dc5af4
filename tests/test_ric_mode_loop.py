"""RIC mode for real: the unmodified xApp process against RMR, a submgr stub and Redis.

One xApp serves two E2 nodes (``gnb-a``, ``gnb-b``), each behind its own E2 Termination
endpoint; control requests are routed by MEID through RMR's MEID map. The tests run in
file order on one xApp process (module fixture) and end with its SIGTERM shutdown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from ric_harness import (
    SUBMGR_REQUESTOR_ID,
    RicTestbed,
    skip_reason,
    synthetic_reports,
    wait_until,
)

from lighttune_e2 import e2ap, service_model
from lighttune_xapp.transport import rmr_types

_reason = skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

POLICY_TYPE = 24610


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RicTestbed]:
    testbed = RicTestbed(tmp_path_factory.mktemp("ric-loop"), nodes=("gnb-a", "gnb-b"), checkpointIntervalS=0.5)
    try:
        testbed.start_xapp()
        yield testbed
    finally:
        testbed.close()


def _control(bed: RicTestbed, meid: str, cell: int, period: int, n_ues: int, seed: int) -> tuple[np.ndarray, object]:
    reports = synthetic_reports(n_ues, np.random.default_rng(seed))
    bed.send_indication(meid, cell, period, reports)
    received = bed.e2t[meid].expect(rmr_types.RIC_CONTROL_REQ, 60)
    return reports.ue_id, received


def test_subscription_request_uses_the_api_json_names(bed: RicTestbed) -> None:
    posts = {p["Meid"]: p for p in bed.platform.posts}
    assert set(posts) == {"gnb-a", "gnb-b"}
    body = posts["gnb-a"]
    assert set(body) == {"ClientEndpoint", "Meid", "RANFunctionID", "SubscriptionDetails"}
    assert body["ClientEndpoint"] == {"Host": "127.0.0.1", "HTTPPort": bed.xapp.http_port, "RMRPort": bed.xapp.rmr_port}
    assert body["RANFunctionID"] == service_model.DEFAULT_RAN_FUNCTION_ID
    (details,) = body["SubscriptionDetails"]
    trigger = service_model.encode_event_trigger(service_model.EventTrigger(every_n_csirs_periods=1))
    assert details["EventTriggers"] == list(trigger)
    (action,) = details["ActionToBeSetupList"]
    assert action["ActionType"] == "report" and action["ActionID"] == 1
    assert bytes(action["ActionDefinition"]) == service_model.encode_action_definition(service_model.ActionDefinition())
    assert set(action["SubsequentAction"]) == {"SubsequentActionType", "TimeToWait"}
    # every notification was answered with exactly 200 the first time
    assert bed.platform.notify_status and all(status == 200 for _, status in bed.platform.notify_status)
    ready = json.loads(bed.xapp.http_get("/ric/v1/health/ready")[1])
    assert ready["subscriptions_up"] and ready["model_loaded"]


def test_indication_gives_a_control_routed_by_meid(bed: RicTestbed) -> None:
    for meid, other in (("gnb-a", "gnb-b"), ("gnb-b", "gnb-a")):
        ue_ids, received = _control(bed, meid, 7, 1, 16, seed=1)
        assert received.mtype == rmr_types.RIC_CONTROL_REQ and received.meid == meid
        request = e2ap.decode(received.payload)
        assert isinstance(request, e2ap.RicControlRequest)
        assert request.request_id == e2ap.RicRequestId(SUBMGR_REQUESTOR_ID, bed.instance(meid))
        assert request.ran_function_id == service_model.DEFAULT_RAN_FUNCTION_ID
        header, accepted, rejected = service_model.decode_control(request.header, request.message)
        assert header.cell_id == 7 and header.period_index == 1
        assert len(rejected) == 0
        np.testing.assert_array_equal(accepted.ue_id, ue_ids)
        assert not [m for m in bed.e2t[other].drain() if m.mtype == rmr_types.RIC_CONTROL_REQ]
    # counted after RMR accepted the send, which may be after the E2T endpoint got the message
    wait_until(lambda: bed.xapp.metric("lighttune_control_sends_total") >= 2, 30, "both controls to be counted")


def test_control_ack_and_failure_are_counted(bed: RicTestbed) -> None:
    request_id = e2ap.RicRequestId(SUBMGR_REQUESTOR_ID, bed.instance("gnb-a"))
    outcome = service_model.encode_control_outcome(np.array([1, 2]), np.array([True, False]), np.array([0, 1]))
    ack = e2ap.RicControlAcknowledge(request_id=request_id, ran_function_id=200, outcome=outcome)
    failure = e2ap.RicControlFailure(request_id=request_id, ran_function_id=200, cause=e2ap.Cause("ricRequest", "control-message-invalid"))
    bed.e2t["gnb-a"].send(rmr_types.RIC_CONTROL_ACK, e2ap.encode(ack), meid="gnb-a")
    bed.e2t["gnb-a"].send(rmr_types.RIC_CONTROL_FAILURE, e2ap.encode(failure), meid="gnb-a")
    wait_until(lambda: bed.xapp.metric("lighttune_control_acks_total") >= 1, 30, "the ack to be counted")
    wait_until(
        lambda: bed.xapp.metric('lighttune_control_failures_total{reason="e2_failure"}') >= 1
        and bed.xapp.metric('lighttune_control_failures_total{reason="ue_rejected"}') >= 1,
        30, "the failure and the rejected UE to be counted",
    )


def test_undecodable_indication_is_counted_and_the_loop_goes_on(bed: RicTestbed) -> None:
    before = bed.xapp.metric('lighttune_decode_errors_total{kind="e2ap"}')
    instance = bed.instance("gnb-a")
    bed.e2t["gnb-a"].send(rmr_types.RIC_INDICATION, b"\x00\x01garbage", sub_id=instance, meid="gnb-a")
    wait_until(lambda: bed.xapp.metric('lighttune_decode_errors_total{kind="e2ap"}') > before, 30, "the decode error")
    _ue, received = _control(bed, "gnb-a", 8, 1, 4, seed=2)
    assert received.meid == "gnb-a"
    bed.xapp.assert_running()


def _a1(bed: RicTestbed, request: dict[str, object]) -> dict[str, object]:
    bed.e2t["gnb-a"].send(rmr_types.A1_POLICY_REQ, json.dumps(request).encode(), sub_id=POLICY_TYPE)
    return json.loads(bed.e2t["gnb-a"].expect(rmr_types.A1_POLICY_RESP, 30).payload)


def test_a1_policy_switches_a_cell_off_and_back(bed: RicTestbed) -> None:
    instance = {"cells": [{"cell_id": "gnb-a/9", "mode": "off"}]}
    # as the A1 mediator sends it: every value a string
    answer = _a1(bed, {"operation": "CREATE", "policy_type_id": str(POLICY_TYPE), "policy_instance_id": "p1",
                       "payload": json.dumps(instance)})
    assert answer == {"policy_type_id": POLICY_TYPE, "policy_instance_id": "p1", "handler_id": "lighttune-xapp",
                      "status": "OK"}
    bed.e2t["gnb-a"].drain()
    bed.send_indication("gnb-a", 9, 1, synthetic_reports(4, np.random.default_rng(3)))
    # the next cell's control proves the first indication was processed without one
    _ue, received = _control(bed, "gnb-a", 10, 1, 4, seed=4)
    assert service_model.decode_control(*_split(received.payload))[0].cell_id == 10

    bad = _a1(bed, {"operation": "CREATE", "policy_type_id": str(POLICY_TYPE), "policy_instance_id": "p2",
                    "payload": json.dumps({"cells": [{"cell_id": "gnb-a/9", "mode": "turbo"}]})})
    assert bad["status"] == "ERROR" and bad["policy_type_id"] == POLICY_TYPE
    assert "payload.cells[0].mode" in bed.xapp.wait_log(r"A1 policy request .*rejected: (.*)").group(1)

    deleted = _a1(bed, {"operation": "DELETE", "policy_type_id": str(POLICY_TYPE), "policy_instance_id": "p1",
                        "payload": ""})
    assert deleted["status"] == "DELETED"
    _ue, received = _control(bed, "gnb-a", 9, 2, 4, seed=5)
    assert service_model.decode_control(*_split(received.payload))[0].cell_id == 9


def _split(payload: bytes) -> tuple[bytes, bytes]:
    request = e2ap.decode(payload)
    assert isinstance(request, e2ap.RicControlRequest)
    return request.header, request.message


def test_invalid_config_change_is_rejected_naming_the_field(bed: RicTestbed) -> None:
    descriptor = bed.xapp.descriptor
    descriptor["controls"]["delta"] = 7.5
    bed.xapp.write_descriptor(descriptor)
    line = bed.xapp.wait_log(r"config rejected, keeping the running one: (controls\.\w+)")
    assert line.group(1) == "controls.delta"
    wait_until(lambda: bed.xapp.metric("lighttune_config_rejections_total") >= 1, 30, "the rejection metric")
    descriptor["controls"]["delta"] = 0.3
    bed.xapp.write_descriptor(descriptor)
    _ue, received = _control(bed, "gnb-a", 7, 3, 4, seed=6)  # still serving with the running config
    assert received.meid == "gnb-a"


def test_survives_an_e2t_restart_and_resubscribes_on_node_reconnect(bed: RicTestbed) -> None:
    old_id, old_instance = bed.platform.live_instance("gnb-a") or ("", 0)
    bed.e2t["gnb-a"].close()
    bed.platform.set_node("gnb-a", "DISCONNECTED")
    wait_until(lambda: old_id in bed.platform.deletes, 30, "the stale subscription to be deleted")
    bed.open_e2t("gnb-a")
    bed.platform.set_node("gnb-a", "CONNECTED")
    new_id, new_instance = wait_until(lambda: bed.platform.live_instance("gnb-a"), 60, "a new subscription")
    assert new_id != old_id and new_instance != old_instance
    wait_until(bed.subscriptions_up, 60, "subscriptions up again")
    assert bed.xapp.http_get("/ric/v1/health/ready")[0] == 200
    ue_ids, received = _control(bed, "gnb-a", 7, 4, 8, seed=7)
    request = e2ap.decode(received.payload)
    assert isinstance(request, e2ap.RicControlRequest)
    assert request.request_id.instance_id == new_instance
    # the other node was never disturbed
    _ue, received_b = _control(bed, "gnb-b", 7, 4, 8, seed=8)
    assert received_b.meid == "gnb-b"


def test_sigterm_deletes_every_subscription(bed: RicTestbed) -> None:
    live = set(bed.platform.live)
    assert len(live) == 2
    assert bed.xapp.terminate(120) == 0
    assert live <= set(bed.platform.deletes)
    assert not bed.platform.live
    assert "deleted subscriptions" in bed.xapp.log_text()
