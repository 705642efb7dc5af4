"""SubscriptionKeeper (sans RMR): which nodes are wanted when the E2 manager is down."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from lighttune_xapp.transport.submgr import (
    E2ManagerClient,
    MemorySubscriptionLog,
    SubmgrError,
    SubscriptionKeeper,
)


class FakeSubmgr:
    """Records the POSTs; answers with ids ``sub-1``, ``sub-2``, ..."""

    def __init__(self) -> None:
        self.posted: list[str] = []
        self.deleted: list[str] = []

    def subscribe(self, params: Mapping[str, Any]) -> str:
        self.posted.append(str(params["Meid"]))
        return f"sub-{len(self.posted)}"

    def unsubscribe(self, subscription_id: str) -> bool:
        self.deleted.append(subscription_id)
        return True


class FlakyE2Manager:
    """An E2 manager whose answer the test switches: a node list, or down (SubmgrError)."""

    def __init__(self) -> None:
        self.nodes: list[str] | None = None

    def connected_nodes(self) -> list[str]:
        if self.nodes is None:
            raise SubmgrError(0, "connection refused")
        return list(self.nodes)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens


def _keeper(submgr: FakeSubmgr, e2mgr: Any, nodes: tuple[str, ...]) -> SubscriptionKeeper:
    return SubscriptionKeeper(submgr, lambda meid: {"Meid": meid}, MemorySubscriptionLog(),  # type: ignore[arg-type]
                              configured_nodes=nodes, e2mgr=e2mgr)


def test_configured_nodes_are_subscribed_while_the_e2_manager_is_unreachable() -> None:
    submgr = FakeSubmgr()
    e2mgr = E2ManagerClient(f"http://127.0.0.1:{_closed_port()}", timeout_s=2.0)
    with pytest.raises(SubmgrError):
        e2mgr.connected_nodes()  # really down
    keeper = _keeper(submgr, e2mgr, ("gnb_1",))
    keeper.poll()
    assert submgr.posted == ["gnb_1"]
    assert keeper.book.subscription_ids() == {"gnb_1": "sub-1"}
    keeper.poll()  # no second POST while the first is pending
    assert submgr.posted == ["gnb_1"]


def test_e2_manager_outage_keeps_learnt_nodes_and_adds_configured_ones() -> None:
    submgr = FakeSubmgr()
    e2mgr = FlakyE2Manager()
    keeper = _keeper(submgr, e2mgr, ("gnb_1",))
    e2mgr.nodes = ["gnb_2"]
    keeper.poll()
    assert sorted(submgr.posted) == ["gnb_1", "gnb_2"]
    e2mgr.nodes = None  # e2mgr goes down: gnb_2 is kept, nothing is deleted
    keeper.configured_nodes = ("gnb_1", "gnb_3")  # a configuration change meanwhile
    keeper.poll()
    assert sorted(submgr.posted) == ["gnb_1", "gnb_2", "gnb_3"] and submgr.deleted == []
    e2mgr.nodes = []  # back, and gnb_2 has gone: its subscription is deleted, configured ones stay
    keeper.poll()
    assert sorted(keeper.book.snapshot()) == ["gnb_1", "gnb_3"]


def test_notification_for_a_configured_node_confirms_it_without_the_e2_manager() -> None:
    submgr = FakeSubmgr()
    states: list[bool] = []
    keeper = SubscriptionKeeper(submgr, lambda meid: {"Meid": meid}, MemorySubscriptionLog(),  # type: ignore[arg-type]
                                configured_nodes=("gnb_1",), e2mgr=FlakyE2Manager(), on_ready=states.append)
    keeper.poll()
    body = json.dumps({"SubscriptionId": "sub-1", "SubscriptionInstances": [
        {"XappEventInstanceId": 1, "E2EventInstanceId": 7}]}).encode()
    assert keeper.on_notification_body(body)[0] == 200
    assert keeper.book.node_of_instance(7) == "gnb_1"
    assert states == [False, True]


def test_subscription_state_in_ric_stats_and_prometheus() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from lighttune_xapp.app import build_runtime, local_config, read_descriptor
    from lighttune_xapp.transport.ric import RicMessageHandler, bind_subscription_gauges, ric_stats_response

    root = Path(__file__).resolve().parents[1]
    runtime = build_runtime(local_config(read_descriptor(root / "xapp-descriptor" / "config-file.json")),
                            serve_http=False)
    submgr = FakeSubmgr()
    e2mgr = FlakyE2Manager()
    e2mgr.nodes = ["gnb_2"]
    keeper = SubscriptionKeeper(submgr, lambda meid: {"Meid": meid}, MemorySubscriptionLog(),  # type: ignore[arg-type]
                                configured_nodes=("gnb_1",), e2mgr=e2mgr, on_ready=runtime.health.set_subscriptions_up)
    bind_subscription_gauges(runtime.metrics, keeper)
    handler = RicMessageHandler(runtime, 2, "lighttune-xapp")
    keeper.poll()
    keeper.on_notification_body(json.dumps({"SubscriptionId": "sub-1", "SubscriptionInstances": [
        {"XappEventInstanceId": 1, "E2EventInstanceId": 7}]}).encode())

    status, ctype, body = ric_stats_response(runtime, handler, keeper)
    stats = json.loads(body)
    assert status == 200 and ctype == "application/json"
    subs = stats["subscriptions"]
    assert (subs["up"], subs["wanted"], subs["requested"], subs["confirmed"]) == (False, 2, 1, 1)
    assert subs["nodes"]["gnb_1"]["e2_instance_id"] == 7 and subs["nodes"]["gnb_2"]["subscription_id"] == "sub-2"
    assert stats["health"]["subscriptions_up"] is False
    samples = {(s.name, tuple(s.labels.items())): s.value
               for f in text_string_to_metric_families(runtime.metrics.render().decode()) for s in f.samples}
    assert samples[("lighttune_subscriptions", (("state", "confirmed"),))] == 1
    assert samples[("lighttune_subscriptions", (("state", "requested"),))] == 1
    assert samples[("lighttune_subscriptions_up", ())] == 0
    keeper.on_notification_body(json.dumps({"SubscriptionId": "sub-2", "SubscriptionInstances": [
        {"XappEventInstanceId": 1, "E2EventInstanceId": 8}]}).encode())
    assert json.loads(ric_stats_response(runtime, handler, keeper)[2])["subscriptions"]["up"] is True
    assert b"lighttune_subscriptions_up 1.0" in runtime.metrics.render()
    runtime.close()
