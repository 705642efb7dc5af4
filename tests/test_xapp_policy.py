"""The per-cell decision loop (CellTuner) and the xApp policy on top of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import build_features
from lighttune_core.report import LinkReports
from lighttune_core.tuner import LightTuneModel
from lighttune_xapp.config import load_config
from lighttune_xapp.metrics import XappMetrics
from lighttune_xapp.policy import LinkAdaptationPolicy
from lighttune_xapp.store import FileStore, MemoryStore

DESCRIPTOR = Path(__file__).resolve().parents[1] / "xapp-descriptor" / "config-file.json"


def make_reports(n: int, seed: int, n_ack: int = 150, ue_offset: int = 0) -> LinkReports:
    """Plausible reports of ``n`` UEs: HARQ counts with ~30% NACKs."""
    rng = np.random.default_rng(seed)
    ri = rng.integers(1, 5, n)
    sinr = rng.uniform(0, 25, (n, 4))
    sinr[np.arange(4)[None, :] >= ri[:, None]] = np.nan
    total = np.full(n, n_ack)
    nack = rng.binomial(total, 0.3)
    return LinkReports(
        ue_id=np.arange(n) + ue_offset,
        ri=ri,
        cqi=rng.integers(3, 16, n),
        sinr_layers_db=sinr,
        csirs_snr_db=rng.uniform(0, 30, n),
        rank=ri,
        mcs=rng.integers(0, 28, n),
        olla_offset_db=rng.uniform(-3, 3, n),
        n_ack=total - nack,
        n_nack=nack,
        served_bits=rng.integers(0, 10**6, n),
        csi_age_ms=np.zeros(n),
    )


def config(**controls: object):
    descriptor = json.loads(DESCRIPTOR.read_text())
    descriptor["controls"].update(controls)
    return load_config(descriptor)


def test_off_mode_keeps_table_choice_and_still_learns() -> None:
    model = LightTuneModel(seed=3)
    tuner = CellTuner(model, TuneMode.OFF)
    r0 = make_reports(16, 0)
    d0, learned0 = tuner.step(r0)
    assert not d0.control
    np.testing.assert_array_equal(d0.rank, r0.ri)
    np.testing.assert_array_equal(d0.cqi, r0.cqi)
    assert learned0.n_samples == 0  # nothing was pending yet
    # The model predicts the BLER of the applied (table) decision.
    np.testing.assert_allclose(d0.predicted_bler, model.predict_many(build_features(r0, r0.ri, r0.cqi)))
    _, learned1 = tuner.step(make_reports(16, 1))
    assert learned1.n_samples == 16
    assert learned1.abs_error.shape == (16,)


@pytest.mark.float_sensitive  # learn_many vs one learn_one per sample, bit for bit
def test_learning_uses_pending_features_and_label_of_next_period() -> None:
    model = LightTuneModel(seed=5)
    frozen = LightTuneModel.from_bytes(model.to_bytes())
    tuner = CellTuner(model, TuneMode.RI_CQI)
    r0 = make_reports(8, 2)
    d0 = tuner.decide(r0)
    r1 = make_reports(8, 3)
    outcome = tuner.learn(r1)
    y = np.round(r1.n_nack / (r1.n_ack + r1.n_nack), 1)
    np.testing.assert_allclose(outcome.abs_error, np.abs(d0.predicted_bler - y), atol=1e-9)
    # Reference: the same samples fed one by one through learn_one of a copy.
    x = build_features(r0, d0.rank, d0.cqi)
    updates = 0
    for i in np.flatnonzero(np.abs(frozen.predict_many(x) - y) >= frozen.delta - 1e-9):
        updates += frozen.learn_one(x[i], float(y[i]))
    assert outcome.n_updates == updates > 0
    assert model.to_bytes() == frozen.to_bytes()
    # A period without transmissions teaches nothing.
    tuner.decide(r1)
    empty = make_reports(8, 4, n_ack=0)
    assert tuner.learn(empty).n_samples == 0


def test_frozen_tuner_never_changes_model() -> None:
    model = LightTuneModel(seed=1)
    before = model.to_bytes()
    tuner = CellTuner(model, TuneMode.CQI, learn=False)
    for seed in range(4):
        d, _ = tuner.step(make_reports(10, seed))
        assert np.all(d.cqi <= make_reports(10, seed).cqi)
    assert model.to_bytes() == before


def test_new_and_departed_ues() -> None:
    tuner = CellTuner(LightTuneModel(seed=2), TuneMode.RI_CQI)
    tuner.decide(make_reports(4, 0))
    assert tuner.n_ues == 4
    out = tuner.learn(make_reports(6, 1, ue_offset=2))  # UEs 2..7: 2 and 3 had decisions
    assert sorted(out.ue_id.tolist()) == [2, 3]
    tuner.forget(np.array([0, 1, 99]))
    assert tuner.n_ues == 6
    with pytest.raises(ValueError, match="twice"):
        dup = make_reports(2, 0)
        tuner.learn(LinkReports.concat([dup, dup]))
    assert tuner.n_ues == 6  # refused before the unseen ids 0 and 1 got state


def test_policy_modes_allow_list_and_a1_override() -> None:
    policy = LinkAdaptationPolicy(config(cellAllowList=["cell-1"]), LightTuneModel(seed=0), MemoryStore())
    r = make_reports(5, 0)
    assert policy.on_reports("cell-1", r, now=0.0).decisions.control
    assert not policy.on_reports("cell-2", r, now=0.0).decisions.control
    policy.set_cell_mode("cell-2", "cqi")
    res = policy.on_reports("cell-2", r, now=0.0)
    assert res.mode is TuneMode.CQI and res.decisions.control
    np.testing.assert_array_equal(res.decisions.rank, r.ri)
    policy.set_cell_mode("cell-2", None)
    assert policy.mode_of("cell-2") is TuneMode.OFF
    with pytest.raises(ValueError):
        policy.set_cell_mode("cell-1", "turbo")


def test_policy_persists_fine_tuning_across_restart(tmp_path: Path) -> None:
    offline = LightTuneModel(seed=0)
    cfg = config(checkpointIntervalS=1.0)
    store = FileStore(tmp_path)
    clock = [0.0]
    policy = LinkAdaptationPolicy(cfg, offline, store, XappMetrics(), clock=lambda: clock[0])
    for period in range(6):
        clock[0] = period * 0.08
        policy.on_reports("c1", make_reports(12, period), now=clock[0])
    model = policy.cells["c1"].model
    assert model.n_updates > 0
    policy.close()  # saves what the 1 s checkpoint policy had not saved yet
    restarted = LinkAdaptationPolicy(cfg, offline, FileStore(tmp_path))
    again = restarted.cell("c1").model
    assert restarted.restore_status["c1"] == "ok"
    assert again.to_bytes() == model.to_bytes()
    assert again.n_updates == model.n_updates


def test_policy_checkpoint_bound_and_corrupt_store(tmp_path: Path) -> None:
    # the learning rate the policy sets from the controls: a cell started afresh has these bytes
    offline = LightTuneModel(seed=0, lr=config().learning_rate)
    store = FileStore(tmp_path)
    policy = LinkAdaptationPolicy(config(checkpointIntervalS=1.0), offline, store)
    policy.on_reports("c1", make_reports(12, 0), now=0.0)
    policy.on_reports("c1", make_reports(12, 1), now=0.1)  # updates; first save round
    saved_first = store.load("c1")
    assert saved_first is not None
    policy.on_reports("c1", make_reports(12, 2), now=0.5)  # within 1 s: not saved yet
    assert store.load("c1")[0] == saved_first[0]
    policy.on_reports("c1", make_reports(12, 3), now=1.2)  # due: saved
    assert store.load("c1")[0] == policy.cells["c1"].model.to_bytes()
    # Corrupt the stored record: a restart reports it and starts from the offline model.
    path = store.path_of("c1")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    metrics = XappMetrics()
    restarted = LinkAdaptationPolicy(config(), offline, FileStore(tmp_path), metrics)
    model = restarted.cell("c1").model
    assert restarted.restore_status["c1"] == "corrupt"
    assert model.to_bytes() == offline.to_bytes()  # the offline model, untouched by fine-tuning
    assert b'lighttune_model_restore_total{status="corrupt"} 1.0' in metrics.render()


def test_policy_applies_new_config_to_running_cells() -> None:
    policy = LinkAdaptationPolicy(config(), LightTuneModel(seed=0), MemoryStore())
    policy.on_reports("c", make_reports(3, 0), now=0.0)
    policy.apply_config(config(tunerMode="off", delta=0.5, learningRate=0.01))
    tuner = policy.cells["c"]
    assert tuner.mode is TuneMode.OFF
    assert tuner.model.delta == 0.5 and tuner.model.lr == 0.01
    assert policy.stats()["c"]["mode"] == "off"


def test_policy_decides_before_it_learns_so_control_can_leave_first() -> None:
    store = MemoryStore()
    policy = LinkAdaptationPolicy(config(), LightTuneModel(seed=7), store, metrics=XappMetrics())
    policy.on_reports("c", make_reports(40, 0), now=0.0)
    model = policy.cells["c"].model
    updates_before = model.n_updates
    pending = policy.decide("c", make_reports(40, 1))
    # decided, nothing learned yet: the model is the one of the previous period
    assert model.n_updates == updates_before and pending.samples.y.shape == (40,)
    assert pending.decisions.control and pending.decision_s >= 0.0
    result = policy.finish(pending, now=0.1)
    assert result.learned.n_samples == 40 and result.learned.n_updates == model.n_updates - updates_before > 0
    assert result.decisions is pending.decisions and result.learn_s >= 0.0
    # repeated UE ids: the first row of each UE is served, the repeats are dropped and counted
    pending = policy.decide("c", make_reports(3, 2).select(np.array([0, 0, 1, 0])))
    assert pending.decisions.ue_id.tolist() == [0, 1] and pending.reports.ue_id.tolist() == [0, 1]
    assert policy.stats()["c"]["duplicate_ue_reports"] == 2
    assert policy.metrics is not None
    assert policy.metrics.ue_reports_dropped.labels(reason="duplicate_ue")._value.get() == 2


def test_repeated_ue_rows_keep_the_first_and_serve_the_rest() -> None:
    reports = make_reports(5, 3)
    # UE 2 twice (second row with other HARQ counts), UE 4 three times
    rows = np.array([0, 2, 1, 2, 3, 4, 4, 4])
    altered = LinkReports(**{**{f: getattr(reports, f)[rows] for f in reports.__dataclass_fields__ if f != "cqi_table"},
                             "n_nack": reports.n_nack[rows] + np.arange(8)})
    assert altered.first_of_each_ue().tolist() == [True, True, True, False, True, True, False, False]
    metrics = XappMetrics()
    policy = LinkAdaptationPolicy(config(), LightTuneModel(seed=7), MemoryStore(), metrics=metrics)
    policy.on_reports("c", reports, now=0.0)
    twin = LinkAdaptationPolicy(config(), LightTuneModel(seed=7), MemoryStore())
    twin.on_reports("c", reports, now=0.0)
    got = policy.on_reports("c", altered, now=0.1)
    first = altered.select(altered.first_of_each_ue())
    want = twin.on_reports("c", first, now=0.1)  # the same period without the repeats
    assert got.decisions.ue_id.tolist() == [0, 2, 1, 3, 4]
    np.testing.assert_array_equal(got.decisions.cqi, want.decisions.cqi)
    np.testing.assert_array_equal(got.learned.abs_error, want.learned.abs_error)
    assert got.learned.n_samples == 5
    assert policy.stats()["c"]["duplicate_ue_reports"] == 3
    assert metrics.ue_reports_dropped.labels(reason="duplicate_ue")._value.get() == 3
    # the advisory (KPM) path drops them the same way
    from lighttune_xapp.advisory import AdvisoryMode

    advisory = AdvisoryMode(policy, "n", metrics)
    assert len(advisory.on_reports("c", altered, now=0.2).recommended.ue_id) == 5
    assert policy.stats()["c"]["duplicate_ue_reports"] == 6


def test_startup_objects_leave_the_garbage_collectors_scans() -> None:
    import gc

    from lighttune_xapp.app import freeze_startup_objects

    try:
        kept = [{"codec": i} for i in range(1000)]  # long-lived, GC-tracked objects
        frozen = freeze_startup_objects()
        assert frozen == gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0


def test_freed_heap_memory_is_reused_without_page_faults() -> None:
    # the 1,000-UE decision's temporaries (0.1-0.5 MB) must not be faulted in afresh on every
    # indication: after the start-up setting, allocating and freeing arrays of that size
    # again and again costs (almost) no minor page faults
    import resource

    from lighttune_xapp.app import keep_freed_heap_memory

    assert keep_freed_heap_memory() is True  # glibc (Debian, the Docker image)
    sizes = (15_000, 40_000, 64_000)  # 120 kB .. 512 kB of float64
    for n in sizes:  # warm-up: the heap grows once
        np.ones(n).sum()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        arrays = [np.ones(n) for n in sizes]
        assert sum(float(a[-1]) for a in arrays) == 3.0
        del arrays
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 1000  # glibc defaults: ~200 faults per round, ~40,000 in all


def test_ric_indication_with_a_repeated_ue_is_served_and_counted() -> None:
    """Through the RIC-mode handler: E2AP + LT-LINKADAPT decode, policy, control encode."""
    from ric_harness import indication_pdu, synthetic_reports

    from lighttune_e2 import e2ap, service_model
    from lighttune_xapp.app import build_runtime, local_config, read_descriptor
    from lighttune_xapp.transport.ric import RicMessageHandler

    runtime = build_runtime(local_config(read_descriptor(DESCRIPTOR)), serve_http=False)
    handler = RicMessageHandler(runtime, service_model.DEFAULT_RAN_FUNCTION_ID, "lighttune-xapp")
    reports = synthetic_reports(6, np.random.default_rng(1))
    dup = reports.select(np.array([0, 1, 2, 3, 3, 4, 5, 0]))
    for period in (1, 2):
        out = handler.on_indication(indication_pdu(5, 7, period, dup), "gnb-a", 5)
        assert out is not None and out.meid == "gnb-a"
        control = e2ap.decode(out.payload)
        assert isinstance(control, e2ap.RicControlRequest)
        _hdr, decisions, _rejected = service_model.decode_control(control.header, control.message)
        assert sorted(decisions.ue_id.tolist()) == [0, 1, 2, 3, 4, 5]
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, tuple(s.labels.items())): s.value
               for f in text_string_to_metric_families(runtime.metrics.render().decode()) for s in f.samples}
    assert samples[("lighttune_ue_reports_dropped_total", (("reason", "duplicate_ue"),))] == 4
    assert runtime.policy.stats()["gnb-a/7"]["duplicate_ue_reports"] == 4
    assert runtime.policy.stats()["gnb-a/7"]["n_seen"] > 0  # the second period was learned from
    runtime.close()


def test_cells_per_node_are_capped_and_refusals_counted() -> None:
    from ric_harness import indication_pdu, synthetic_reports

    from lighttune_e2 import service_model
    from lighttune_xapp.app import build_runtime, local_config, read_descriptor
    from lighttune_xapp.transport.ric import RicMessageHandler

    descriptor = read_descriptor(DESCRIPTOR)
    descriptor["controls"]["maxCellsPerNode"] = 2
    runtime = build_runtime(local_config(descriptor), serve_http=False)
    handler = RicMessageHandler(runtime, service_model.DEFAULT_RAN_FUNCTION_ID, "lighttune-xapp")
    reports = synthetic_reports(4, np.random.default_rng(2))
    served = {cell: handler.on_indication(indication_pdu(5, cell, 1, reports), "gnb-a", 5) is not None
              for cell in (10, 11, 12, 2**36 - 1)}
    assert served == {10: True, 11: True, 12: False, 2**36 - 1: False}
    assert handler.on_indication(indication_pdu(5, 12, 1, reports), "gnb-b", 5) is not None  # per node
    assert handler.on_indication(indication_pdu(5, 10, 2, reports), "gnb-a", 5) is not None  # known cell
    assert sorted(runtime.policy.cells) == ["gnb-a/10", "gnb-a/11", "gnb-b/12"]  # no model for refused cells
    assert handler.cell_cap.refused == {"gnb-a": 2}
    assert runtime.metrics.cell_refusals.labels(reason="cells_per_node")._value.get() == 2
    # a configuration change applies at once
    descriptor["controls"]["maxCellsPerNode"] = 3
    assert runtime.watcher.apply(descriptor) is None
    assert handler.on_indication(indication_pdu(5, 12, 3, reports), "gnb-a", 5) is not None
    runtime.close()
