"""Advisory mode: KPM-only node -> predictions, fine-tuning and published recommendations,
never a control."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from e2sim.kpm_function import KpmPeriod, KpmRanFunction
from lighttune_core.features import build_features
from lighttune_core.tuner import LightTuneModel
from lighttune_e2.kpm.reports import KpmNodeDecoder
from lighttune_e2.kpm.subscription import plan_kpm_subscription
from lighttune_xapp.advisory import (
    RECOMMENDATION_KINDS,
    RECOMMENDATIONS_PATH,
    AdvisoryMode,
    plan_node,
)
from lighttune_xapp.config import XappConfig, load_config
from lighttune_xapp.health import HealthServer, HealthState
from lighttune_xapp.metrics import XappMetrics
from lighttune_xapp.policy import LinkAdaptationPolicy
from lighttune_xapp.store import MemoryStore
from tests.test_kpm_function import CELL, run_du

DESCRIPTOR = Path(__file__).resolve().parents[1] / "xapp-descriptor" / "config-file.json"


def config(**controls: object) -> XappConfig:
    """The packaged descriptor's configuration with some controls changed."""
    descriptor = json.loads(DESCRIPTOR.read_text())
    descriptor["controls"].update(controls)
    return load_config(descriptor)


def test_plan_node_paths() -> None:
    both = plan_node("gnb-1", True, True, "kpm", "ri_cqi")
    assert both.report_path == "kpm" and both.control and not both.advisory
    assert plan_node("gnb-1", True, True).report_path == "service_model"
    kpm_only = plan_node("gnb-2", False, True, "service_model", "ri_cqi")
    assert kpm_only.advisory and not kpm_only.control and kpm_only.report_path == "kpm"
    assert "gnb-2" in kpm_only.message and "LT-LINKADAPT" in kpm_only.message
    assert not plan_node("gnb-3", True, False, "service_model", "off").control
    with pytest.raises(ValueError, match="reportPath"):
        plan_node("gnb-1", True, True, "rmr")
    with pytest.raises(ValueError, match="neither"):
        plan_node("gnb-1", False, False)


def test_advisory_recommends_learns_and_publishes(caplog: pytest.LogCaptureFixture) -> None:
    du, outs = run_du(n_ue=24, periods=6, seed=11)
    fn = KpmRanFunction(CELL)
    plan = plan_kpm_subscription(fn.definition, 10)
    sub = fn.handle_subscription(plan.event_trigger, plan.action_definition).subscription
    decoder = KpmNodeDecoder("gnb-kpm", plan.codec, plan.measurements, 10)
    metrics = XappMetrics()
    store = MemoryStore()
    # 10 ms periods (2-3 transmissions per UE): learn from every one to see fine-tuning here
    policy = LinkAdaptationPolicy(config(tunerMode="ri_cqi", reportPath="kpm", minLabelTx=1), LightTuneModel(seed=3), store,
                                  metrics, clock=lambda: 0.0)
    advisory = AdvisoryMode(policy, "gnb-kpm", metrics, max_ues_per_cell=10)
    with caplog.at_level(logging.INFO):
        assert "gnb-kpm" in advisory.startup_message()
        results = []
        for out in outs:
            for header, message in fn.build_indications(sub, KpmPeriod.from_outcome(out, du, 1.7e9)):
                decoded = decoder.decode(header, message)
                assert decoded is not None
                results.append(advisory.on_reports("cell-1", decoded.reports, decoded.imputed_features))
    assert "advisory mode" in caplog.text and "advisory node gnb-kpm cell cell-1" in caplog.text
    # decisions computed, never control; the DU never got one
    assert all(not r.recommended.control for r in results)
    assert not du.control_active.any()
    # learning from the KPM TB counts happened through the policy's tuner
    assert sum(r.learned.n_samples for r in results) > 0
    assert sum(r.learned.n_updates for r in results) > 0
    # the pending decision is the node's own choice (what the HARQ counts will measure)
    tuner = policy.cell("cell-1")
    last = outs[-1].reports
    own = build_features(last, last.ri, last.cqi)
    assert tuner.calibration is not None  # on by default: the published BLER is the calibrated label
    expected = tuner.calibration.adjust(np.zeros(len(last), dtype=np.int64), tuner.model.predict_many(own))
    np.testing.assert_allclose(expected, results[-1].node_choice_bler)
    # published: bounded counters by kind, a bounded table on the health server
    text = metrics.render().decode()
    assert "lighttune_advisory_recommendations_total" in text
    kinds_seen = {line.split('"')[1] for line in text.splitlines()
                  if line.startswith("lighttune_advisory_recommendations_total{")}
    assert kinds_seen <= set(RECOMMENDATION_KINDS) and kinds_seen
    server = HealthServer(HealthState(metrics), metrics, port=0, host="127.0.0.1")
    server.add_route("GET", RECOMMENDATIONS_PATH, advisory.route)
    status, ctype, body = server.dispatch("GET", RECOMMENDATIONS_PATH, b"")
    table = json.loads(body)
    assert status == 200 and ctype == "application/json"
    cell = table["cells"]["cell-1"]
    assert len(cell["ues"]) == 10 and cell["truncated"] and cell["n_ues"] == 24
    row = cell["ues"][0]
    assert {"ue_id", "recommended_rank", "recommended_cqi", "predicted_bler", "kind"} <= set(row)
    assert table["node"] == "gnb-kpm" and table["missing_function"] == "LT-LINKADAPT"
    # store meta carries the advisory summary
    assert advisory.checkpoint() == ["cell-1"]
    _blob, meta = store.load("cell-1")
    assert meta["advisory"]["node"] == "gnb-kpm"
    assert sum(meta["advisory"]["recommendations"].values()) == 24 * len(outs)


def test_table_bounded_in_cells() -> None:
    du, outs = run_du(n_ue=4, periods=1)
    metrics = XappMetrics()
    policy = LinkAdaptationPolicy(config(tunerMode="cqi"), LightTuneModel(seed=1), MemoryStore(), metrics,
                                  clock=lambda: 0.0)
    advisory = AdvisoryMode(policy, "n", metrics, max_cells=2)
    for cell in ("a", "b", "c"):
        advisory.on_reports(cell, outs[0].reports)
    assert list(json.loads(advisory.table_json())["cells"]) == ["b", "c"]


def test_period_split_over_indications_fills_one_table() -> None:
    du, outs = run_du(n_ue=6, periods=2)
    metrics = XappMetrics()
    policy = LinkAdaptationPolicy(config(tunerMode="ri_cqi"), LightTuneModel(seed=1), MemoryStore(), metrics,
                                  clock=lambda: 0.0)
    advisory = AdvisoryMode(policy, "n", metrics, max_ues_per_cell=5)
    reports = outs[-1].reports
    advisory.on_reports("c", reports.select(np.arange(3)))
    advisory.on_reports("c", reports.select(np.arange(3, 6)))
    cell = json.loads(advisory.table_json())["cells"]["c"]
    assert len(cell["ues"]) == 5 and cell["truncated"]
    assert {row["ue_id"] for row in cell["ues"]} <= set(reports.ue_id.tolist())
    assert {3, 4, 5} <= {row["ue_id"] for row in cell["ues"]}  # the newest part is kept
