"""RIC-mode node plans and the KPM path in process (no RMR): E2 manager records, plans,
subscription keys, and the handler's KPM indications (control, advisory, bad input)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ric_harness import StandInNode, synthetic_reports

from lighttune_e2 import e2ap, service_model
from lighttune_xapp.app import XappRuntime, build_runtime, local_config, read_descriptor
from lighttune_xapp.transport.ric import RicMessageHandler
from lighttune_xapp.transport.ric_kpm import (
    KpmRicService,
    parse_nodeb_functions,
    plan_ric_node,
    plmn_of_nodeb,
)
from lighttune_xapp.transport.submgr import (
    MemorySubscriptionLog,
    SubscriptionKeeper,
    node_of_key,
    subscription_key,
    subscription_params,
)

DESCRIPTOR = Path(__file__).resolve().parents[1] / "xapp-descriptor" / "config-file.json"
LT_ID = service_model.DEFAULT_RAN_FUNCTION_ID


def _record(node: StandInNode, plmn: str = "00F110") -> dict[str, Any]:
    """The E2 manager's record of ``node``; definitions as hex split by whitespace as XER may do."""
    functions = []
    for f in node.functions:
        text = f.definition.hex().upper()
        functions.append({"ranFunctionId": f.ran_function_id, "ranFunctionRevision": f.revision,
                          "ranFunctionOid": f.oid, "ranFunctionDefinition": text[:8] + "\n  " + text[8:]})
    return {"ranName": node.meid, "connectionStatus": "CONNECTED", "globalNbId": {"plmnId": plmn, "nbId": "1"},
            "gnb": {"ranFunctions": functions}}


class FakeE2Manager:
    """Node records by RAN name (None: 404)."""

    def __init__(self, records: dict[str, dict[str, Any] | None]) -> None:
        self.records = records
        self.asked: list[str] = []

    def nodeb(self, ran_name: str) -> dict[str, Any] | None:
        self.asked.append(ran_name)
        return self.records.get(ran_name)

    def connected_nodes(self) -> list[str]:
        return sorted(self.records)


class FakeSubmgr:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def subscribe(self, params: dict[str, Any]) -> str:
        self.posted.append(params)
        return f"sub-{len(self.posted)}"

    def unsubscribe(self, subscription_id: str) -> bool:
        self.deleted.append(subscription_id)
        return True


def test_subscription_keys_round_trip() -> None:
    assert subscription_key("gnb_1") == "gnb_1" and node_of_key("gnb_1") == "gnb_1"
    assert subscription_key("gnb_1", 2) == "gnb_1#2" and node_of_key("gnb_1#2") == "gnb_1"
    assert node_of_key("odd#name") == "odd#name"  # no function id after the separator: a plain name


def test_nodeb_record_functions_hex_and_bad_entries() -> None:
    node = StandInNode("gnb-x", LT_ID, {2: 5})
    record = _record(node)
    record["gnb"]["ranFunctions"] += [
        {"ranFunctionId": 5000, "ranFunctionDefinition": "00"},
        {"ranFunctionId": 7, "ranFunctionDefinition": "zz"},
        "junk",
    ]
    functions, problems = parse_nodeb_functions(record)
    assert [(f.ran_function_id, f.definition, f.oid) for f in functions] == [
        (f.ran_function_id, f.definition, f.oid) for f in node.functions
    ]
    assert len(problems) == 3 and "5000" in problems[0] and "function 7" in problems[1]
    assert plmn_of_nodeb(record) == b"\x00\xf1\x10"
    assert plmn_of_nodeb({"globalNbId": {"plmnId": "12"}}) is None
    assert parse_nodeb_functions({"ranName": "x"}) == ([], [])


@pytest.mark.parametrize(
    ("lt", "report_path", "kinds", "advisory"),
    [
        (None, "kpm", {"kpm-only#2": "kpm"}, True),
        (None, "service_model", {"kpm-only#2": "kpm"}, True),
        (LT_ID, "kpm", {"both#200": "lt_control", "both#2": "kpm"}, False),
        (LT_ID, "service_model", {"both": "lt_report"}, False),
    ],
)
def test_plans_follow_what_the_node_offers(lt: int | None, report_path: str, kinds: dict[str, str],
                                           advisory: bool) -> None:
    meid = "kpm-only" if lt is None else "both"
    node = StandInNode(meid, lt, {2: 9})
    functions, _ = parse_nodeb_functions(_record(node))
    plan = plan_ric_node(meid, functions, report_path, "ri_cqi", 80, b"\x00\xf1\x10")
    assert {s.key: s.kind for s in plan.subscriptions} == kinds
    assert plan.advisory is advisory and plan.problems == ()
    for sub in plan.subscriptions:  # what the node would answer to each request
        body = subscription_params(
            meid=meid, ran_function_id=sub.ran_function_id, client_host="h", http_port=1, rmr_port=2,
            event_trigger=sub.event_trigger, action_definition=sub.action_definition, action_type=sub.action_type,
            action_id=sub.action_id, subsequent_action=sub.subsequent_action,
        )
        assert node.admit(body) is None
    if plan.kpm:
        assert plan.kpm[2].cell == f"{meid}/9"


def test_unusable_functions_are_problems_not_errors() -> None:
    node = StandInNode("gnb-y", None, {2: 9})
    functions, _ = parse_nodeb_functions(_record(node))
    broken = [type(f)(f.ran_function_id, b"\x01\x02\x03", f.revision, f.oid) for f in functions]
    plan = plan_ric_node("gnb-y", broken, "kpm", "ri_cqi")
    assert plan.plan is None and plan.subscriptions == ()
    assert any("KPM function 2" in p for p in plan.problems)
    other = type(functions[0])(9, b"\x00\x01", 0, "1.3.6.1.4.1.53148.1.1.2.3")  # E2SM-RC: ignored
    plan = plan_ric_node("gnb-y", functions + [other], "kpm", "ri_cqi")
    assert [s.ran_function_id for s in plan.subscriptions] == [2]
    # with LT-LINKADAPT beside a KPM function without a UE-level style (only style 1),
    # reports come through LT-LINKADAPT rather than not at all
    both = StandInNode("gnb-w", LT_ID, {2: 9})
    kpm = both.kpm[2]
    cell_level = kpm.codec.encode_ran_function_definition(
        dataclasses.replace(kpm.definition, report_styles=kpm.definition.report_styles[:1]))
    functions, _ = parse_nodeb_functions(_record(both))
    broken = [f if f.ran_function_id == LT_ID else type(f)(f.ran_function_id, cell_level, f.revision, f.oid)
              for f in functions]
    plan = plan_ric_node("gnb-w", broken, "kpm", "ri_cqi")
    assert {s.key: s.kind for s in plan.subscriptions} == {"gnb-w": "lt_report"}
    assert plan.lt_report_functions == {LT_ID} and plan.control_function is None and not plan.advisory
    assert any("no usable KPM function" in p for p in plan.problems)


def _runtime(**controls: Any) -> XappRuntime:
    descriptor = read_descriptor(DESCRIPTOR)
    descriptor["controls"].update(controls)
    return build_runtime(local_config(descriptor), serve_http=False)


def _service(runtime: XappRuntime, e2mgr: FakeE2Manager) -> tuple[RicMessageHandler, KpmRicService]:
    handler = RicMessageHandler(runtime, LT_ID, "lighttune-xapp")
    kpm = KpmRicService(runtime, handler.lock, handler.cell_cap, handler._first_sight, e2mgr=e2mgr)  # type: ignore[arg-type]
    handler.kpm = kpm
    return handler, kpm


def test_keys_change_when_the_e2_manager_describes_a_node_and_the_old_subscription_goes() -> None:
    runtime = _runtime(reportPath="kpm")
    node = StandInNode("gnb-z", None, {2: 3})
    e2mgr = FakeE2Manager({"gnb-z": None})  # not described yet: LT-LINKADAPT assumed
    _handler, kpm = _service(runtime, e2mgr)
    submgr = FakeSubmgr()
    keeper = SubscriptionKeeper(submgr, lambda key: {"key": key}, MemorySubscriptionLog(),  # type: ignore[arg-type]
                                e2mgr=e2mgr, expand=kpm.expand)  # type: ignore[arg-type]
    keeper.poll()
    assert [p["key"] for p in submgr.posted] == ["gnb-z"] and kpm.plans["gnb-z"].source == "assumed"
    e2mgr.records["gnb-z"] = _record(node)
    keeper.poll()
    assert [p["key"] for p in submgr.posted] == ["gnb-z", "gnb-z#2"] and submgr.deleted == ["sub-1"]
    assert kpm.plans["gnb-z"].source == "e2mgr"
    keeper.poll()  # described: not asked again
    assert e2mgr.asked.count("gnb-z") == 2
    del e2mgr.records["gnb-z"]  # gone from the node list: plan forgotten, subscription deleted
    keeper.poll()
    assert "gnb-z" not in kpm.plans and submgr.deleted == ["sub-1", "sub-2"]
    runtime.close()


def _confirmed(kpm: KpmRicService, node: StandInNode) -> dict[str, int]:
    """Plan ``node``, let it accept every planned request; returns key -> E2 instance id."""
    kpm.expand([node.meid])
    instances = {}
    for i, sub in enumerate(kpm.plans[node.meid].subscriptions):
        body = subscription_params(
            meid=node.meid, ran_function_id=sub.ran_function_id, client_host="h", http_port=1, rmr_port=2,
            event_trigger=sub.event_trigger, action_definition=sub.action_definition, action_type=sub.action_type,
            action_id=sub.action_id, subsequent_action=sub.subsequent_action,
        )
        assert node.admit(body) is None
        instances[sub.key] = 100 + i
    return instances


def test_kpm_reports_of_an_lt_node_become_lt_linkadapt_controls_once_its_control_subscription_is_up() -> None:
    runtime = _runtime(reportPath="kpm")
    node = StandInNode("gnb-c", LT_ID, {2: 4})
    handler, kpm = _service(runtime, FakeE2Manager({"gnb-c": _record(node)}))
    instances = _confirmed(kpm, node)
    reports = synthetic_reports(5, np.random.default_rng(3))
    (pdu,) = node.kpm_indication_pdus(2, instances["gnb-c#2"], reports, time.time())
    assert handler.on_indication(pdu, "gnb-c", instances["gnb-c#2"]) is None  # control subscription not up
    assert runtime.metrics.control_failures.labels(reason="no_control_subscription")._value.get() == 1
    kpm.instance_of = lambda key: instances.get(key, 0)
    out = handler.on_indication(pdu, "gnb-c", instances["gnb-c#2"])
    assert out is not None and out.meid == "gnb-c"
    request = e2ap.decode(out.payload)
    assert isinstance(request, e2ap.RicControlRequest)
    assert request.ran_function_id == LT_ID and request.request_id.instance_id == instances["gnb-c#200"]
    header, accepted, _rejected = service_model.decode_control(request.header, request.message)
    assert header.cell_id == 4 and sorted(accepted.ue_id.tolist()) == list(range(5))
    assert kpm.advisories == {}
    runtime.close()


def test_kpm_only_node_is_advised_and_bad_input_is_counted() -> None:
    runtime = _runtime()
    node = StandInNode("gnb-k", None, {2: 6})
    handler, kpm = _service(runtime, FakeE2Manager({"gnb-k": _record(node)}))
    instances = _confirmed(kpm, node)
    reports = synthetic_reports(4, np.random.default_rng(4))
    (pdu,) = node.kpm_indication_pdus(2, instances["gnb-k#2"], reports, time.time())
    assert handler.on_indication(pdu, "gnb-k", instances["gnb-k#2"]) is None  # advice, no control
    table = kpm.advisories["gnb-k"].table["gnb-k/6"]
    assert table["n_ues"] == 4
    errors = runtime.metrics.decode_errors
    indication = e2ap.decode(pdu)
    assert isinstance(indication, e2ap.RicIndication)
    garbage = e2ap.encode(dataclasses.replace(indication, message=b"\x40\x00\x01"))
    assert handler.on_indication(garbage, "gnb-k", 1) is None
    assert errors.labels(kind="indication")._value.get() == 1
    unknown = e2ap.encode(dataclasses.replace(indication, ran_function_id=9))
    assert handler.on_indication(unknown, "gnb-k", 1) is None
    assert errors.labels(kind="ran_function")._value.get() == 1
    lt_report = e2ap.encode(dataclasses.replace(indication, ran_function_id=LT_ID))
    assert handler.on_indication(lt_report, "gnb-k", 1) is None  # not subscribed to LT-LINKADAPT
    assert errors.labels(kind="ran_function")._value.get() == 2
    runtime.close()
