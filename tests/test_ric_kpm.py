"""KPM in RIC mode for real: the unmodified xApp process against RMR, the stand-in platform and Redis.

Two E2 nodes, each behind its own E2 Termination endpoint, described by the stand-in E2
manager (``GET /v1/nodeb/{ranName}``, RAN function definitions as hex):

- ``gnb-kpm`` offers E2SM-KPM only (function 2, cell 11): advisory mode;
- ``gnb-both`` offers LT-LINKADAPT (function 200) and E2SM-KPM (function 2, cell 21); with
  ``reportPath: kpm`` its reports come through KPM and its control through LT-LINKADAPT.

The stand-in nodes judge the subscriptions submgr forwards with the simulator's own KPM RAN
function (a wrong action definition is refused, and the xApp never gets its indications).
The tests run in file order on one xApp process (module fixture) and end with its SIGTERM
shutdown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from ric_harness import (
    SUBMGR_REQUESTOR_ID,
    RicTestbed,
    StandInNode,
    skip_reason,
    synthetic_reports,
    wait_until,
)

from e2sim.kpm_function import KpmSubscription
from lighttune_e2 import e2ap, service_model
from lighttune_e2.kpm.codec import DEFAULT_CODEC
from lighttune_e2.kpm.reports import WB_CQI_DIST
from lighttune_xapp.advisory import RECOMMENDATIONS_PATH
from lighttune_xapp.transport import rmr_types

_reason = skip_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

LT_ID = service_model.DEFAULT_RAN_FUNCTION_ID
KPM_ID = 2
KPM_ONLY, BOTH = "gnb-kpm", "gnb-both"
KPM_ONLY_CELL, BOTH_CELL = 11, 21


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RicTestbed]:
    nodes = (StandInNode(KPM_ONLY, None, {KPM_ID: KPM_ONLY_CELL}), StandInNode(BOTH, LT_ID, {KPM_ID: BOTH_CELL}))
    testbed = RicTestbed(tmp_path_factory.mktemp("ric-kpm"), nodes=(), stand_ins=nodes, reportPath="kpm",
                         checkpointIntervalS=0.5)
    try:
        testbed.start_xapp()
        yield testbed
    finally:
        testbed.close()


def _recommendations(bed: RicTestbed) -> dict[str, Any]:
    status, body = bed.xapp.http_get(RECOMMENDATIONS_PATH)
    assert status == 200
    return dict(json.loads(body)["nodes"])


def _sdl_table(bed: RicTestbed, meid: str) -> dict[str, Any] | None:
    """The advisory table of ``meid`` as the xApp wrote it to SDL (the test's own SDL client)."""
    from ricsdl.syncstorage import SyncStorage

    with pytest.MonkeyPatch.context() as env:  # ricsdl reads the Redis address from the environment
        for name, value in bed.redis.env().items():
            env.setenv(name, value)
        storage = SyncStorage()
    try:
        key = f"advisory/{meid}"
        value = storage.get("lighttune", {key}).get(key)
    finally:
        storage.close()
    return None if value is None else dict(json.loads(bytes(value)))


def _control_sends(bed: RicTestbed) -> float:
    return bed.xapp.metric("lighttune_control_sends_total")


def _controls_to(bed: RicTestbed, meid: str) -> list[Any]:
    return [m for m in bed.e2t[meid].drain() if m.mtype == rmr_types.RIC_CONTROL_REQ]


def test_each_node_is_subscribed_to_what_it_offers(bed: RicTestbed) -> None:
    posts = {(p["Meid"], p["RANFunctionID"]): p for p in bed.platform.posts}
    assert set(posts) == {(KPM_ONLY, KPM_ID), (BOTH, LT_ID), (BOTH, KPM_ID)}
    assert bed.platform.refused == []  # every node accepted what the xApp asked for
    # LT-LINKADAPT on the KPM + LT node: a control subscription (one policy action, no reports)
    (details,) = posts[(BOTH, LT_ID)]["SubscriptionDetails"]
    (action,) = details["ActionToBeSetupList"]
    assert action["ActionType"] == "policy" and "SubsequentAction" not in action
    assert bed.stand_ins[BOTH].accepted[LT_ID] == "policy"
    # KPM: style 4 with the node's CQI distribution, every CSI-RS period (10 ms) / --kpm-period (80 ms)
    for meid, period_ms in ((KPM_ONLY, 80), (BOTH, 10)):
        (details,) = posts[(meid, KPM_ID)]["SubscriptionDetails"]
        (action,) = details["ActionToBeSetupList"]
        assert action["ActionType"] == "report"
        assert set(posts[(meid, KPM_ID)]) == {"ClientEndpoint", "Meid", "RANFunctionID", "SubscriptionDetails"}
        assert DEFAULT_CODEC.decode_event_trigger(bytes(details["EventTriggers"])).reporting_period_ms == period_ms
        assert DEFAULT_CODEC.decode_action_definition(bytes(action["ActionDefinition"])).style_type == 4
        accepted = bed.stand_ins[meid].accepted[KPM_ID]
        assert isinstance(accepted, KpmSubscription)
        assert accepted.style == 4 and accepted.granularity_period_ms == period_ms
        assert WB_CQI_DIST in accepted.measurements
    stats = json.loads(bed.xapp.http_get("/ric/v1/stats")[1])
    assert stats["subscriptions"]["up"] and stats["subscriptions"]["confirmed"] == 3
    assert stats["nodes"][KPM_ONLY]["advisory"] and not stats["nodes"][KPM_ONLY]["control"]
    assert stats["nodes"][BOTH]["control"] and not stats["nodes"][BOTH]["advisory"]
    assert stats["nodes"][BOTH]["report_path"] == "kpm"


def test_kpm_only_node_gets_advisory_recommendations_on_rest_and_in_sdl_and_no_control(bed: RicTestbed) -> None:
    sends_before = _control_sends(bed)
    rng = np.random.default_rng(11)
    start = time.time() - 1.0
    for period in range(2):  # the second period's HARQ counts label the first one's predictions
        assert bed.send_kpm_period(KPM_ONLY, KPM_ID, synthetic_reports(8, rng), start + 0.08 * period, period) >= 1
    cell = f"{KPM_ONLY}/{KPM_ONLY_CELL}"

    def served() -> dict[str, Any] | None:
        table = _recommendations(bed).get(KPM_ONLY)
        stats = json.loads(bed.xapp.http_get("/ric/v1/stats")[1])
        fed = stats["nodes"][KPM_ONLY]["kpm"][str(KPM_ID)]["indications"]
        return table if table is not None and fed >= 2 else None

    table = wait_until(served, 60, "the advisory table of both periods")
    assert table["node"] == KPM_ONLY and table["missing_function"] == "LT-LINKADAPT"
    rows = table["cells"][cell]["ues"]
    assert table["cells"][cell]["n_ues"] == 8 and sorted(r["ue_id"] for r in rows) == list(range(8))
    for row in rows:
        assert 1 <= row["recommended_rank"] <= 4 and 0 <= row["recommended_cqi"] <= 15
        assert 0.0 <= row["predicted_bler"] <= 1.0
    assert sum(table["cells"][cell]["counts"].values()) == 8
    # the same table reaches SDL (written at most once a second, the latest by the main loop)
    wait_until(lambda: _sdl_table(bed, KPM_ONLY) == _recommendations(bed)[KPM_ONLY], 30, "the table in SDL")
    kinds = ("keep", "cqi_backoff", "cqi_raise", "rank_down", "rank_up")
    assert sum(bed.xapp.metric(f'lighttune_advisory_recommendations_total{{kind="{k}"}}') for k in kinds) == 16
    assert bed.xapp.metric('lighttune_advisory_sdl_writes_total{result="ok"}') >= 1
    # advisory: never a control, to this node or any other
    time.sleep(1.0)
    assert _controls_to(bed, KPM_ONLY) == []
    assert _control_sends(bed) == sends_before
    assert BOTH not in _recommendations(bed)


def test_kpm_and_lt_node_is_controlled_through_lt_linkadapt(bed: RicTestbed) -> None:
    sends_before = _control_sends(bed)
    reports = synthetic_reports(6, np.random.default_rng(21), ue_offset=100)
    start = time.time()
    assert bed.send_kpm_period(BOTH, KPM_ID, reports, start) == 1
    received = bed.e2t[BOTH].expect(rmr_types.RIC_CONTROL_REQ, 60)
    assert received.meid == BOTH
    request = e2ap.decode(received.payload)
    assert isinstance(request, e2ap.RicControlRequest)
    # on the LT-LINKADAPT control subscription, not the KPM one the report came through
    assert request.ran_function_id == LT_ID
    assert request.request_id == e2ap.RicRequestId(SUBMGR_REQUESTOR_ID, bed.instance(BOTH, LT_ID))
    assert request.request_id.instance_id != bed.instance(BOTH, KPM_ID)
    header, accepted, rejected = service_model.decode_control(request.header, request.message)
    assert header.cell_id == BOTH_CELL
    assert abs(header.period_index - round(start * 1e3)) <= 1  # the KPM report's collection start, ms
    assert len(rejected) == 0
    np.testing.assert_array_equal(np.sort(accepted.ue_id), reports.ue_id)
    assert np.all((accepted.ri >= 1) & (accepted.ri <= 4)) and np.all(accepted.cqi <= 15)
    wait_until(lambda: _control_sends(bed) == sends_before + 1, 30, "the control to be counted")
    assert bed.xapp.metric('lighttune_reports_received_total{path="kpm"}') >= 1
    stats = json.loads(bed.xapp.http_get("/ric/v1/stats")[1])
    assert f"{BOTH}/{BOTH_CELL}" in stats["cells"]
    assert BOTH not in _recommendations(bed)
    assert _controls_to(bed, KPM_ONLY) == []


def test_malformed_kpm_indication_and_unknown_ran_function_are_counted_and_dropped(bed: RicTestbed) -> None:
    node = bed.stand_ins[KPM_ONLY]
    instance = bed.instance(KPM_ONLY, KPM_ID)
    undecodable = bed.xapp.metric('lighttune_decode_errors_total{kind="indication"}')
    unknown = bed.xapp.metric('lighttune_decode_errors_total{kind="ran_function"}')

    def indication(fid: int, message: bytes) -> bytes:
        return e2ap.encode(e2ap.RicIndication(
            request_id=e2ap.RicRequestId(SUBMGR_REQUESTOR_ID, instance), ran_function_id=fid, action_id=1, sn=7,
            indication_type="report", header=node.kpm[KPM_ID].header_bytes(time.time()), message=message,
        ))

    # a valid E2AP PDU carrying a KPM message that is not one
    bed.e2t[KPM_ONLY].send(rmr_types.RIC_INDICATION, indication(KPM_ID, b"\x40\x01\xff\xfe garbage"),
                           sub_id=instance, meid=KPM_ONLY)
    wait_until(lambda: bed.xapp.metric('lighttune_decode_errors_total{kind="indication"}') == undecodable + 1,
               30, "the undecodable KPM indication to be counted")
    bed.xapp.wait_log(f"node {KPM_ONLY}: KPM indication dropped")
    # a RAN function the node was never subscribed to
    bed.e2t[KPM_ONLY].send(rmr_types.RIC_INDICATION, indication(77, b"\x00"), sub_id=instance, meid=KPM_ONLY)
    wait_until(lambda: bed.xapp.metric('lighttune_decode_errors_total{kind="ran_function"}') == unknown + 1,
               30, "the unknown RAN function to be counted")
    # nothing was served from either, and the node's next report is served as before
    stats = json.loads(bed.xapp.http_get("/ric/v1/stats")[1])
    feed = stats["nodes"][KPM_ONLY]["kpm"][str(KPM_ID)]
    assert feed["decode_errors"] == 1 and feed["indications"] == 2
    bed.send_kpm_period(KPM_ONLY, KPM_ID, synthetic_reports(3, np.random.default_rng(5), ue_offset=50), time.time())
    wait_until(lambda: 50 in {r["ue_id"] for r in _recommendations(bed)[KPM_ONLY]["cells"][f"{KPM_ONLY}/11"]["ues"]},
               30, "the next KPM report to be advised on")
    bed.xapp.assert_running()


def test_sigterm_deletes_every_subscription_and_leaves_the_table_in_sdl(bed: RicTestbed) -> None:
    live = set(bed.platform.live)
    assert len(live) == 3
    rest = _recommendations(bed)[KPM_ONLY]
    assert bed.xapp.terminate(120) == 0
    assert live <= set(bed.platform.deletes) and not bed.platform.live
    assert _sdl_table(bed, KPM_ONLY) == rest
