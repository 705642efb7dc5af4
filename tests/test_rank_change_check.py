"""The per-cell A/B check of RI-CQI-Tune's rank changes in delivered bits
(lighttune_core.calibration.RankChangeCheck, CellTuner, the xApp policy)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lighttune_core.calibration import RankChangeCheck
from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import FEATURE_NAMES
from lighttune_core.report import MAX_RANK, LinkReports
from lighttune_core.synthetic import random_reports
from lighttune_core.tuner import LightTuneModel
from lighttune_xapp.config import ConfigError, load_config
from lighttune_xapp.policy import LinkAdaptationPolicy
from lighttune_xapp.store import MemoryStore

_RANK = FEATURE_NAMES.index("candidate_rank")
_RI = FEATURE_NAMES.index("reported_ri")
DESCRIPTOR = Path(__file__).resolve().parents[1] / "xapp-descriptor" / "config-file.json"


def _fed(change_ratio: float, stay_ratio: float, n: int = 40, offset: int = -1) -> RankChangeCheck:
    """A check that saw ``n`` samples per arm delivering these fractions of the promise."""
    check = RankChangeCheck(discount=1.0)
    promised = np.full(n, 1000.0)
    check.update(np.full(n, offset), np.ones(n, dtype=bool), change_ratio * promised, promised)
    check.update(np.full(n, offset), np.zeros(n, dtype=bool), stay_ratio * promised, promised)
    return check


def test_an_undecided_check_alternates_the_arms() -> None:
    check = RankChangeCheck()
    got = check.choose(np.array([-1, -1, 1, 1]), np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(got, [True, False, True, False])
    # the UE id staggers the UEs: the same counters, the other arm for odd ids
    got = check.choose(np.array([-1, -1, 1, 1]), np.array([0, 1, 2, 3]), ue_id=np.array([1, 1, 4, 7]))
    np.testing.assert_array_equal(got, [False, True, True, True])


def test_the_arm_that_delivers_more_wins_and_the_other_is_probed_one_in_k() -> None:
    counters = np.arange(20)
    worse = _fed(change_ratio=0.8, stay_ratio=1.0)
    applied = worse.choose(np.full(20, -1), counters)
    np.testing.assert_array_equal(applied, counters % 5 == 4)  # stay, every 5th probes the change
    better = _fed(change_ratio=1.1, stay_ratio=1.0)
    np.testing.assert_array_equal(better.choose(np.full(20, -1), counters), counters % 5 != 4)
    # evidence on rank-downs says nothing about rank-ups, which still alternate
    np.testing.assert_array_equal(worse.choose(np.full(20, 1), counters), counters % 2 == 0)


def test_the_ratio_is_served_over_promised_and_old_evidence_fades() -> None:
    check = RankChangeCheck(discount=0.5)
    check.update(np.array([1, 1]), np.array([True, False]), np.array([300.0, 100.0]), np.array([100.0, 100.0]))
    np.testing.assert_allclose(check.ratio[1], [3.0, 1.0])
    assert np.isnan(check.ratio[0]).all()
    for _ in range(60):  # the channel changed: the change now delivers half its promise
        check.update(np.array([1]), np.array([True]), np.array([50.0]), np.array([100.0]))
    assert check.ratio[1, 0] == pytest.approx(0.5, abs=1e-6)


def test_state_round_trips_through_json() -> None:
    check = _fed(0.7, 1.2, n=7, offset=1)
    again = RankChangeCheck.from_state_dict(json.loads(json.dumps(check.state_dict())))
    np.testing.assert_array_equal(again.ratio, check.ratio)
    np.testing.assert_array_equal(again.count, check.count)
    assert again.choose(np.array([1] * 6), np.arange(6)).tolist() == check.choose(np.array([1] * 6), np.arange(6)).tolist()


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"probe_every": 1},
        {"probe_every": True},
        {"discount": 0.0},
        {"bits": [[1.0, 2.0]]},
        {"count": [[-1.0, 0.0], [0.0, 0.0]]},
        {"promised": [[float("nan"), 0.0], [0.0, 0.0]]},
        {"bits": None},
    ],
)
def test_a_malformed_state_is_refused(change: dict[str, object]) -> None:
    state = {**RankChangeCheck().state_dict(), **change}
    with pytest.raises(ValueError):
        RankChangeCheck.from_state_dict(state)


def test_bad_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="promised"):
        RankChangeCheck().update(np.array([1]), np.array([True]), np.array([10.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="served"):
        RankChangeCheck().update(np.array([1]), np.array([True]), np.array([-1.0]), np.array([5.0]))


class _PessimistAtTheReportedRank:
    """Predicts BLER 0.5 for every candidate at the reported rank and 0.0 for the others
    (the same-rank labels too cautious, as measured on the 1 dB loop); never learns."""

    delta = 0.3

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.abs(x[:, _RANK] - x[:, _RI]) < 1e-9, 0.5, 0.0)

    def learn_one(self, x: np.ndarray, y: float) -> bool:
        return False


def _rank_down_share(check: bool, calibrate: bool = True, periods: int = 30) -> float:
    """Share of UEs sent a rank-down in the last ten periods of a cell where every decision
    succeeds and the served bits are proportional to the applied rank (so a rank-down from
    RI 4 delivers 3/4 of staying), with the same-rank labels too cautious."""
    base = random_reports(48, 23, first_tx=(20, 21))
    base = replace(base, ri=np.full(48, MAX_RANK), rank=np.full(48, MAX_RANK), cqi=np.maximum(base.cqi, 9),
                   sinr_layers_db=np.tile([22.0, 21.0, 20.0, 19.0], (48, 1)), olla_offset_db=np.zeros(48))
    tuner = CellTuner(_PessimistAtTheReportedRank(), TuneMode.RI_CQI, learn=False, calibrate=calibrate,
                      check_rank_changes=check)
    reports: LinkReports = base
    shares = []
    for _ in range(periods):
        decisions, _ = tuner.step(reports)
        shares.append(float(np.mean(decisions.rank < base.ri)))
        reports = replace(base, n_ack=np.full(48, 20), n_nack=np.zeros(48, dtype=np.int64),
                          served_bits=20 * 1000 * decisions.rank.astype(np.int64))
    return float(np.mean(shares[-10:]))


def test_the_check_stops_rank_downs_that_deliver_fewer_bits() -> None:
    assert _rank_down_share(check=False) == 1.0  # the calibrated labels alone keep buying rank-downs
    # on its own (raw labels) the check leaves only its probes, one in five wanted changes
    assert 0.0 < _rank_down_share(check=True, calibrate=False) <= 0.25
    # with the calibration, the applied stay decisions correct the same-rank labels: the
    # search stops wanting the rank-downs at all
    assert _rank_down_share(check=True) == 0.0


def test_the_decisions_and_the_metrics_count_the_withheld_rank_changes() -> None:
    """Operators see what the check does: each period's decisions say how many wanted rank
    changes were replaced, and the xApp adds them to lighttune_rank_changes_withheld_total."""
    from lighttune_xapp.metrics import XappMetrics

    base = random_reports(48, 31, first_tx=(20, 21))
    base = replace(base, ri=np.full(48, MAX_RANK), rank=np.full(48, MAX_RANK), cqi=np.maximum(base.cqi, 9),
                   sinr_layers_db=np.tile([22.0, 21.0, 20.0, 19.0], (48, 1)), olla_offset_db=np.zeros(48),
                   served_bits=np.full(48, 50_000))
    tuner = CellTuner(_PessimistAtTheReportedRank(), TuneMode.RI_CQI, learn=False, calibrate=False)
    # undecided: the arms alternate, staggered by UE id so that every period has both
    first, _ = tuner.step(base)
    second, _ = tuner.step(replace(base, n_ack=np.full(48, 20), n_nack=np.zeros(48, dtype=np.int64)))
    odd = base.ue_id % 2 == 1
    assert 0 < odd.sum() < 48
    np.testing.assert_array_equal(first.rank == base.ri, odd)
    assert first.rank_changes_withheld == int(odd.sum())
    # (24 samples per arm: from the second period on the check has taken a side)
    assert second.rank_changes_withheld == int(np.sum(second.rank == base.ri)) > 0
    metrics = XappMetrics()
    policy = LinkAdaptationPolicy(_config(), LightTuneModel(seed=2), MemoryStore(), metrics=metrics)
    policy.cell("c1").model = _PessimistAtTheReportedRank()  # type: ignore[assignment]
    policy.cell("c1").calibration = None
    total = 0
    for period in range(3):
        pending = policy.decide("c1", replace(base, n_ack=np.full(48, 20), n_nack=np.zeros(48, dtype=np.int64)))
        total += pending.decisions.rank_changes_withheld
        policy.finish(pending)
    assert total > 0
    assert f"lighttune_rank_changes_withheld_total {float(total)}" in metrics.render().decode()


def test_without_served_bits_the_check_stands_aside() -> None:
    """A KPM node without DRB.UEThpDl reports 0 served bits for ACKed blocks: the check then
    neither changes a decision nor learns, the cell decides as without it."""
    base = random_reports(48, 29, first_tx=(20, 21))
    base = replace(base, ri=np.full(48, MAX_RANK), rank=np.full(48, MAX_RANK), cqi=np.maximum(base.cqi, 9),
                   sinr_layers_db=np.tile([22.0, 21.0, 20.0, 19.0], (48, 1)), olla_offset_db=np.zeros(48),
                   n_ack=np.full(48, 20), n_nack=np.zeros(48, dtype=np.int64), served_bits=np.zeros(48, dtype=np.int64))
    checked = CellTuner(_PessimistAtTheReportedRank(), TuneMode.RI_CQI, learn=False, calibrate=False)
    plain = CellTuner(_PessimistAtTheReportedRank(), TuneMode.RI_CQI, learn=False, calibrate=False,
                      check_rank_changes=False)
    reports: LinkReports = base
    for _ in range(8):
        a, _ = checked.step(reports)
        b, _ = plain.step(reports)
        np.testing.assert_array_equal(a.rank, b.rank)
        np.testing.assert_array_equal(a.cqi, b.cqi)
        reports = replace(base, n_ack=np.full(48, 20), n_nack=np.zeros(48, dtype=np.int64),
                          served_bits=np.zeros(48, dtype=np.int64))
    assert np.all(b.rank < base.ri)  # the pessimistic labels want rank-downs, and get them
    assert checked.rank_check is not None and float(checked.rank_check.count.sum()) == 0.0


def _config(**controls: object):
    descriptor = json.loads(DESCRIPTOR.read_text())
    descriptor["controls"].update(controls)
    return load_config(descriptor)


def test_the_policy_saves_restores_and_switches_the_check() -> None:
    cfg = _config()
    store = MemoryStore()
    offline = LightTuneModel(seed=2)
    policy = LinkAdaptationPolicy(cfg, offline, store)
    policy.cell("c1").rank_check = _fed(0.6, 1.0)  # as if learnt
    for period in range(3):
        policy.on_reports("c1", random_reports(24, 300 + period, first_tx=(15, 40)), now=period * 0.08)
    saved = policy.cells["c1"].rank_check
    assert saved is not None
    policy.close()
    restarted = LinkAdaptationPolicy(cfg, offline, store)
    got = restarted.cell("c1").rank_check
    assert got is not None
    np.testing.assert_array_equal(got.ratio, saved.ratio)
    np.testing.assert_array_equal(got.count, saved.count)
    restarted.apply_config(_config(checkRankChanges=False))
    assert restarted.cells["c1"].rank_check is None
    restarted.apply_config(_config(checkRankChanges=True))
    assert restarted.cells["c1"].rank_check is not None


def test_an_unusable_stored_check_starts_fresh_and_keeps_the_model() -> None:
    store = MemoryStore()
    model = LightTuneModel(seed=5)
    store.save("c1", model.to_bytes(), {"kind": "x", "rank_check": {"version": 1, "bits": "bad"}})
    policy = LinkAdaptationPolicy(_config(), LightTuneModel(seed=6), store)
    tuner = policy.cell("c1")
    assert policy.restore_status["c1"] == "ok"
    for got, stored in zip(tuner.model.params.weights, model.params.weights):
        np.testing.assert_array_equal(got, stored)
    assert tuner.rank_check is not None and float(tuner.rank_check.count.sum()) == 0.0


def test_a_non_boolean_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="checkRankChanges"):
        _config(checkRankChanges="yes")
