"""The capacity plan's arithmetic (benchmarks/capacity_plan.py), checked against hand-computed values."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_plan_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capacity_plan", ROOT / "benchmarks" / "capacity_plan.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["capacity_plan"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


cp = _load_plan_module()


def _sdl(**overrides: float) -> Any:
    values = dict(
        checkpoint_wall_ms=2.0, checkpoint_requests=1.0, checkpoint_bytes_in=40_000.0, checkpoint_redis_cpu_ms=0.05,
        memory_bytes_per_cell=50_000.0, load_wall_ms=0.7, load_bytes_out=45_000.0, refresh_wall_ms=1.0,
        refresh_requests=1.0, refresh_bytes_in=100.0, refresh_redis_cpu_ms=0.01, measured_cells=10,
    )
    values.update(overrides)
    return cp.SdlCost(**values)


def _path(us_per_report: float = 100.0, updates_per_1000: float = 20.0) -> Any:
    return cp.PathCost(name="T", us_per_report=us_per_report, measured_cell_ues=64, decision_p99_ms=1.0,
                       updates_per_1000_reports=updates_per_1000, wire_bytes_per_report=50.0, source="test")


def test_workload_rates() -> None:
    work = cp.Workload(cells=10, ues_per_cell=50, period_s=0.1, cells_per_node=3)
    assert work.reports_per_s == pytest.approx(5000.0)
    assert work.nodes == 4  # ceil(10 / 3)
    assert cp.Workload(1000, 100, 0.08).reports_per_s == pytest.approx(1_250_000.0)
    with pytest.raises(ValueError):
        cp.Workload(10, 50, 0.0)


def test_replicas_rule_rounds_up_only_past_the_utilisation_limit() -> None:
    rules = cp.SizingRules(max_utilisation=0.6, spare_replicas=1)
    assert cp.replicas_needed(1.2, rules) == 3  # exactly 2 busy replicas at 60%, plus the spare
    assert cp.replicas_needed(1.2001, rules) == 4
    assert cp.replicas_needed(0.0, rules) == 2  # never fewer than one working replica
    assert cp.replicas_needed(0.3, cp.SizingRules(max_utilisation=1.0, spare_replicas=0)) == 1
    # each replica's own membership renewals shrink its room: 1.2 / (0.6 - 0.01) = 2.03 -> 3, + 1
    assert cp.replicas_needed(1.2, rules, per_replica_cores=0.01) == 4
    with pytest.raises(ValueError):
        cp.replicas_needed(1.0, rules, per_replica_cores=0.6)
    with pytest.raises(ValueError):
        cp.SizingRules(max_utilisation=0.0)


def test_default_rules_follow_the_ownership_code() -> None:
    """ownership.py: expiry 5 s, renewal every expiry / 4, tick min(renewal interval, 0.25 s)."""
    rules = cp.SizingRules()
    assert rules.lock_expiry_s == 5.0 and rules.renewals_per_expiry == 4.0
    assert rules.renewals_per_s_per_lock == pytest.approx(0.8)
    assert rules.tick_s == pytest.approx(0.25)
    assert rules.listings_per_s_per_replica == pytest.approx(4.0)
    # a short expiry ticks at its renewal interval: 0.8 s / 4 = 0.2 s
    fast = cp.SizingRules(lock_expiry_s=0.8)
    assert fast.tick_s == pytest.approx(0.2)
    assert fast.listings_per_s_per_replica == pytest.approx(5.0)


def test_plan_row_against_hand_computation() -> None:
    work = cp.Workload(cells=10, ues_per_cell=50, period_s=0.1, cells_per_node=5)
    rules = cp.SizingRules(max_utilisation=0.5, spare_replicas=1)  # expiry 5 s, 4 renewals, tick 0.25 s
    row = cp.plan_row(work, _path(), _sdl(), rules, interval_s=2.0)
    # 5,000 reports/s x 100 µs = 0.5 cores; 10 cells / 2 s = 5 saves/s x 2 ms = 0.01 cores;
    # 2 nodes x 0.8 renewal/s x 1 ms = 0.0016 cores; each replica's membership lock 0.8/s x 1 ms
    # = 0.0008 cores; 0.5116 / (0.5 - 0.0008) = 1.0248 -> 2, + 1 spare = 3 replicas;
    # 3 replicas x 0.8 = 2.4 membership renewals/s and 3 x 4 = 12 member listings/s
    assert row.reports_per_s == pytest.approx(5000.0)
    assert row.processing_cores == pytest.approx(0.5)
    assert row.checkpoints_per_s == pytest.approx(5.0)
    assert row.checkpoint_cores == pytest.approx(0.01)
    assert row.renewals_per_s == pytest.approx(1.6)
    assert row.replicas == 3
    assert row.member_renewals_per_s == pytest.approx(2.4)
    assert row.member_listings_per_s == pytest.approx(12.0)
    assert row.lock_cores == pytest.approx(0.0016 + 0.0024)
    assert row.total_cores == pytest.approx(0.514)
    # 5 saves + 1.6 node renewals + 2.4 membership renewals + 12 listings
    assert row.redis_requests_per_s == pytest.approx(21.0)
    assert row.redis_mbyte_per_s_in == pytest.approx((5 * 40_000 + 4.0 * 100) / 1e6)
    assert row.redis_cpu_cores == pytest.approx((5 * 0.05 + 4.0 * 0.01) / 1e3)
    assert row.redis_memory_mbyte == pytest.approx(0.5)
    assert row.checkpoint_round_ms == pytest.approx(10 / 3 * 2.0)
    # 500 reports/s per cell x 20 updates per 1,000 = 10 updates/s, x 2 s
    assert row.updates_at_risk_per_cell == pytest.approx(20.0)
    assert row.takeover_cells == pytest.approx(10 / 3)
    assert row.takeover_mbyte == pytest.approx(10 / 3 * 45_000 / 1e6)
    assert row.takeover_load_s == pytest.approx(10 / 3 * 0.7e-3)
    # the per-report override replaces the path's cost
    assert cp.plan_row(work, _path(), _sdl(), rules, 2.0, us_per_report=300.0).processing_cores == pytest.approx(1.5)


def _entry(n: int, rate: float, decode_us: float = 5.0, updates: float = 1.0) -> dict[str, Any]:
    return {"ues": n, "ue_reports_per_s": rate, "decision_latency_p99_ms": 2.0,
            "finetune_updates_per_1000_reports": updates, "indication_octets_mean": 100.0 * n,
            "indications_per_period": 1, "stage_us_per_ue": {"e2ap_decode": decode_us / 2, "report_decode": decode_us / 2}}


def test_cell_size_choice_and_interpolation() -> None:
    assert cp.pick_cell_size([64, 1000], 100) == 64
    assert cp.pick_cell_size([64, 1000], 32) == 64
    assert cp.pick_cell_size([64, 1000], 1000) == 1000
    # T(64) = 64 x 40 µs = 2,560 µs, T(1000) = 1000 x 10 µs = 10,000 µs; T(100) = 2,560 + 7,440 x 36/936
    expected = (2560 + 7440 * 36 / 936) / 100
    assert cp.interpolate_us_per_report({64: 40.0, 1000: 10.0}, 100) == pytest.approx(expected)
    assert cp.interpolate_us_per_report({64: 40.0}, 100) is None


def test_transport_costs_from_loop_results() -> None:
    now = {"sm_field_64_ues": _entry(64, 20_000.0, updates=190.0), "sm_field_1000_ues": _entry(1000, 100_000.0)}
    before = {"sm_field_64_ues": _entry(64, 25_000.0), "kpm_field_64_ues": _entry(64, 5_000.0, updates=2.0),
              "sm_field_1000_ues": _entry(1000, 200_000.0), "kpm_field_1000_ues": _entry(1000, 4_000.0)}
    sm = cp.sm_path_cost(now, 100)
    assert sm.us_per_report == pytest.approx(50.0)
    assert sm.reports_per_s_per_core == pytest.approx(20_000.0)
    assert sm.wire_bytes_per_report == pytest.approx(100.0)
    kpm = cp.kpm_path_cost(now, before, 100)
    # 200 µs (KPM, earlier model) + (50 - 40) µs the model change added on LT-LINKADAPT
    assert kpm.us_per_report == pytest.approx(210.0)
    assert kpm.updates_per_1000_reports == pytest.approx(190.0)
    # a faster current model is not credited to KPM
    faster = dict(now, sm_field_64_ues=_entry(64, 50_000.0))
    assert cp.kpm_path_cost(faster, before, 100).us_per_report == pytest.approx(200.0)
    with pytest.raises(ValueError):
        cp.kpm_path_cost({"sm_field_32_ues": _entry(32, 1.0)}, before, 100)
    # a KPM run on the current model is used as measured
    measured = cp.measured_path_cost(before, "kpm", 100, "x.json")
    assert measured.us_per_report == pytest.approx(200.0)
    assert measured.name == "E2SM-KPM" and measured.source.startswith("x.json")
    with pytest.raises(ValueError):
        cp.measured_path_cost(before, "rmr", 100, "x.json")


def test_saved_results_plan_counts_every_ownership_request() -> None:
    """The worked example (1,000 cells, one per node), LT-LINKADAPT at a 1 s checkpoint interval."""
    work = cp.Workload(1000, 100, 0.08)
    paths, sdl = cp.load_inputs(cp.RESULTS_DIR, work)
    row = cp.plan_row(work, paths[0], sdl, cp.SizingRules(), 1.0)
    assert row.renewals_per_s == pytest.approx(800.0)  # 1,000 node locks x 4 / 5 s
    assert row.member_renewals_per_s == pytest.approx(row.replicas * 0.8)
    assert row.member_listings_per_s == pytest.approx(row.replicas * 4.0)
    expected = (1000 * sdl.checkpoint_requests + (800 + row.replicas * 0.8) * sdl.refresh_requests
                + row.replicas * 4.0)
    assert row.redis_requests_per_s == pytest.approx(expected)


def test_docs_show_what_the_script_prints() -> None:
    """docs/capacity.md carries the plan computed from the saved results with the defaults."""
    text = cp.main([])
    doc = (ROOT / "docs" / "capacity.md").read_text()
    assert text in doc, "docs/capacity.md is stale: paste the output of `python benchmarks/capacity_plan.py`"
