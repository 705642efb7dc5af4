"""The per-cell online calibration of the model's labels (lighttune_core.calibration)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lighttune_core.calibration import RankOffsetCalibration
from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import BLER_LABELS, FEATURE_NAMES, N_FEATURES
from lighttune_core.report import MAX_RANK, LinkReports
from lighttune_core.synthetic import random_reports
from lighttune_core.tuner import LightTuneModel
from lighttune_xapp.config import load_config
from lighttune_xapp.policy import LinkAdaptationPolicy
from lighttune_xapp.store import MemoryStore

_RANK = FEATURE_NAMES.index("candidate_rank")
_RI = FEATURE_NAMES.index("reported_ri")
_REPORTED_CQI = FEATURE_NAMES.index("reported_cqi")
_CANDIDATE_CQI = FEATURE_NAMES.index("candidate_cqi")
DESCRIPTOR = Path(__file__).resolve().parents[1] / "xapp-descriptor" / "config-file.json"


def _features(ri: int, rank: int, n: int = 1) -> np.ndarray:
    x = np.zeros((n, N_FEATURES))
    x[:, _RI] = ri / MAX_RANK
    x[:, _RANK] = rank / MAX_RANK
    return x


def test_without_outcomes_the_labels_pass_unchanged() -> None:
    cal = RankOffsetCalibration()
    for d in (-1, 0, 1):
        x = _features(2, 2 + d, n=BLER_LABELS.size)
        np.testing.assert_allclose(cal.apply(x, BLER_LABELS), BLER_LABELS)


def test_outcomes_move_only_their_rank_offset_and_label_bin() -> None:
    cal = RankOffsetCalibration(prior_weight=2.0, discount=1.0, borrow=False)
    up = _features(1, 2, n=8)
    cal.update(up, np.zeros(8), np.full(8, 0.5))  # rank-up predicted 0.0, true 0.5
    # (2 * 0.0 + 8 * 0.5) / (2 + 8) = 0.4
    assert cal.apply(_features(1, 2), np.array([0.0]))[0] == pytest.approx(0.4)
    assert cal.apply(_features(3, 4), np.array([0.0]))[0] == pytest.approx(0.4)  # any RI, offset +1
    assert cal.apply(_features(1, 1), np.array([0.0]))[0] == 0.0  # same label, offset 0
    assert cal.apply(_features(1, 2), np.array([0.1]))[0] == pytest.approx(0.1)  # other label


def test_the_discount_forgets_old_outcomes() -> None:
    cal = RankOffsetCalibration(prior_weight=1.0, discount=0.9)
    x = _features(2, 2)
    for _ in range(200):
        cal.update(x, np.array([0.2]), np.array([1.0]))
    for _ in range(200):
        cal.update(x, np.array([0.2]), np.array([0.0]))
    assert cal.apply(x, np.array([0.2]))[0] < 1e-6  # the channel changed: the old mean is gone


def test_state_round_trips_through_json() -> None:
    cal = RankOffsetCalibration()
    rng = np.random.default_rng(3)
    x = np.zeros((50, N_FEATURES))
    x[:, _RI] = rng.integers(1, 4, 50) / MAX_RANK
    x[:, _RANK] = x[:, _RI] + rng.integers(-1, 2, 50) / MAX_RANK
    cal.update(x, rng.choice(BLER_LABELS, 50), rng.uniform(0, 1, 50))
    again = RankOffsetCalibration.from_state_dict(json.loads(json.dumps(cal.state_dict())))
    np.testing.assert_array_equal(again.table, cal.table)


@pytest.mark.parametrize(
    "state",
    [
        {},
        [],
        {"prior_weight": 2.0, "discount": 0.99, "sum": [[0.0] * 11] * 2, "weight": [[1.0] * 11] * 2},
        {"prior_weight": 2.0, "discount": 0.99, "sum": [[0.0] * 11] * 3, "weight": [[0.0] * 11] * 3},
        {"prior_weight": 2.0, "discount": 0.99, "sum": [[5.0] * 11] * 3, "weight": [[1.0] * 11] * 3},
        {"prior_weight": 2.0, "discount": 1.5, "sum": [[0.0] * 11] * 3, "weight": [[1.0] * 11] * 3},
        {"version": 3, "prior_weight": 2.0, "discount": 0.99, "sum": [[0.0] * 11] * 3,
         "weight": [[1.0] * 11] * 3, "prior": [[1.0] * 11] * 3},
        {"version": 2, "prior_weight": 2.0, "discount": 0.99, "sum": [[0.0] * 11] * 3,
         "weight": [[1.0] * 11] * 3},
        {"version": 2, "prior_weight": 2.0, "discount": 0.99, "sum": [[0.0] * 11] * 3,
         "weight": [[1.0] * 11] * 3, "prior": [[-1.0] * 11] * 3},
        {"version": 2, "prior_weight": 2.0, "discount": 0.99, "sum": [[0.0] * 11] * 3,
         "weight": [[0.0] * 11] * 3, "prior": [[0.0] * 11] * 3},
        {"version": 2, "prior_weight": 2.0, "discount": 0.99, "borrow": "no", "sum": [[0.0] * 11] * 3,
         "weight": [[1.0] * 11] * 3, "prior": [[1.0] * 11] * 3},
    ],
)
def test_a_malformed_state_is_refused(state: object) -> None:
    with pytest.raises(ValueError):
        RankOffsetCalibration.from_state_dict(state)  # type: ignore[arg-type]


def test_out_of_range_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RankOffsetCalibration().update(_features(1, 1), np.array([0.0]), np.array([1.5]))


class _RankUpOptimist:
    """Predicts BLER 0.0 for rank-up candidates and 0.3 for the rest; never learns."""

    delta = 0.3

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        return np.where(x[:, _RANK] > x[:, _RI] + 1e-9, 0.0, 0.3)

    def learn_one(self, x: np.ndarray, y: float) -> bool:
        return False


def _rank_up_share(calibrate: bool, periods: int = 12) -> float:
    """Share of rank-up decisions in the last period on a channel where every rank-up fails
    (all NACK) and every other decision succeeds (all ACK)."""
    base = random_reports(64, 11, first_tx=(20, 21))
    base = replace(base, ri=np.minimum(base.ri, MAX_RANK - 1), rank=np.minimum(base.rank, MAX_RANK - 1))
    base = replace(base, sinr_layers_db=np.where(np.arange(MAX_RANK)[None, :] < base.ri[:, None],
                                                 np.nan_to_num(base.sinr_layers_db, nan=10.0), np.nan),
                   cqi=np.maximum(base.cqi, 4))
    tuner = CellTuner(_RankUpOptimist(), TuneMode.RI_CQI, learn=False, calibrate=calibrate, check_rank_changes=False)
    reports: LinkReports = base
    share = 0.0
    for _ in range(periods):
        decisions, _ = tuner.step(reports)
        up = decisions.rank > base.ri
        share = float(up.mean())
        reports = replace(base, n_ack=np.where(up, 0, 20).astype(np.int64), n_nack=np.where(up, 20, 0).astype(np.int64))
    return share


def test_an_unvisited_label_borrows_its_rank_offsets_evidence() -> None:
    """Decisions labelled 0.1 keep succeeding (true BLER 0.01): the label 0.3 that the search
    avoids is scaled by the same observed-to-label ratio; other rank offsets stay as labelled."""
    cal = RankOffsetCalibration(prior_weight=2.0, discount=1.0)
    plain = RankOffsetCalibration(prior_weight=2.0, discount=1.0, borrow=False)
    x = _features(2, 2, n=40)
    for c in (cal, plain):
        c.update(x, np.full(40, 0.1), np.full(40, 0.01))
    # rho = (40 * 0.01 + 0.2) / (40 * 0.1 + 0.2) = 0.6 / 4.2
    rho = 0.6 / 4.2
    assert cal.apply(x[:1], np.array([0.3]))[0] == pytest.approx(0.3 * rho)
    assert plain.apply(x[:1], np.array([0.3]))[0] == pytest.approx(0.3)  # no evidence of its own
    # the visited bin: (2 * 0.1 * rho + 40 * 0.01) / 42 with borrowing, (0.2 + 0.4) / 42 without
    assert cal.apply(x[:1], np.array([0.1]))[0] == pytest.approx((0.2 * rho + 0.4) / 42)
    assert plain.apply(x[:1], np.array([0.1]))[0] == pytest.approx(0.6 / 42)
    up = _features(2, 3, n=BLER_LABELS.size)
    np.testing.assert_allclose(cal.apply(up, BLER_LABELS), BLER_LABELS)


def test_an_over_optimistic_offset_scales_its_unvisited_labels_up_to_at_most_one() -> None:
    cal = RankOffsetCalibration(prior_weight=2.0, discount=1.0)
    x = _features(1, 2, n=20)
    cal.update(x, np.full(20, 0.1), np.full(20, 0.6))  # rank-ups labelled 0.1 fail 60 %
    got = cal.apply(_features(1, 2, n=BLER_LABELS.size), BLER_LABELS)
    assert got[3] > 0.6 and got[-1] == pytest.approx(1.0)
    assert np.all(np.diff(got[2:]) >= 0)


class _CautiousAtTheDuChoice:
    """Predicts BLER 0.6 for the DU's own CQI and 0.1 one CQI below it (1.0 for anything else)."""

    delta = 0.3

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        same_rank = np.abs(x[:, _RANK] - x[:, _RI]) < 1e-9
        step = np.rint((x[:, _REPORTED_CQI] - x[:, _CANDIDATE_CQI]) * 15)
        return np.where(same_rank & (step == 0), 0.6, np.where(same_rank & (step == 1), 0.1, 1.0))

    def learn_one(self, x: np.ndarray, y: float) -> bool:
        return False


def _share_at_the_du_choice(borrow: bool, periods: int = 15) -> float:
    """Share of UEs sent the DU's own CQI in the last period when every decision succeeds."""
    base = random_reports(64, 17, first_tx=(20, 21))
    base = replace(base, cqi=np.maximum(base.cqi, 8), olla_offset_db=np.zeros(len(base)))
    tuner = CellTuner(_CautiousAtTheDuChoice(), TuneMode.CQI, learn=False, probe_du_choice=False)
    tuner.calibration = RankOffsetCalibration(borrow=borrow)
    reports: LinkReports = base
    share = 0.0
    for _ in range(periods):
        decisions, _ = tuner.step(reports)
        share = float(np.mean(decisions.cqi == base.cqi))
        reports = replace(base, n_ack=np.full(len(base), 20, dtype=np.int64), n_nack=np.zeros(len(base), dtype=np.int64))
    return share


def test_borrowing_lets_an_over_cautious_model_return_to_the_du_choice() -> None:
    """Backing off keeps succeeding, so the label of the DU's own choice (never applied) is
    lowered by the evidence and the search goes back to it; the per-bin mean never learns."""
    assert _share_at_the_du_choice(borrow=False) < 0.2
    assert _share_at_the_du_choice(borrow=True) > 0.9


class _SureTheDuChoiceFails:
    """Predicts BLER 0.9 for the DU's own CQI and 0.0 for any back-off at the reported rank
    (1.0 for other ranks): the row-14 mistake of offline-v6, where the DU's choice was
    labelled up to 0.9 and OLLA ran it at 0.12."""

    delta = 0.3

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        same_rank = np.abs(x[:, _RANK] - x[:, _RI]) < 1e-9
        step = np.rint((x[:, _REPORTED_CQI] - x[:, _CANDIDATE_CQI]) * 15)
        return np.where(same_rank & (step == 0), 0.9, np.where(same_rank & (step >= 1), 0.0, 1.0))

    def learn_one(self, x: np.ndarray, y: float) -> bool:
        return False


def _du_choice_shares(probe: bool, du_bler: float, periods: int = 30) -> np.ndarray:
    """Per period, the share of UEs sent their reported CQI when the DU's choice fails
    ``du_bler`` of its 20 transmissions and a back-off 2 %."""
    base = random_reports(64, 17, first_tx=(20, 21))
    base = replace(base, cqi=np.clip(base.cqi, 8, 12), olla_offset_db=np.zeros(len(base)))
    tuner = CellTuner(_SureTheDuChoiceFails(), TuneMode.CQI, learn=False, probe_du_choice=probe)
    rng = np.random.default_rng(1)
    reports: LinkReports = base
    shares = []
    for _ in range(periods):
        decisions, _ = tuner.step(reports)
        at = decisions.cqi == base.cqi
        shares.append(at.mean())
        nack = rng.binomial(20, np.where(at, du_bler, 0.02))
        reports = replace(base, n_ack=(20 - nack).astype(np.int64), n_nack=nack.astype(np.int64))
    return np.array(shares)


def test_probes_of_the_du_choice_correct_a_label_the_search_avoids() -> None:
    """Back-offs labelled 0.0 succeed (borrowing scales the DU choice's 0.9 only to ~0.4,
    still a back-off); one in four back-offs applies the DU's choice, whose true BLER 0.1
    then replaces the label, and the search goes back to it."""
    without = _du_choice_shares(probe=False, du_bler=0.1)
    assert without.max() == 0.0  # never applied, never corrected
    probed = _du_choice_shares(probe=True, du_bler=0.1)
    assert 0.15 <= probed[0] <= 0.35  # the first period probes about one UE in four
    assert probed[5:].min() > 0.9


def test_probes_stop_once_the_du_choice_has_evidence() -> None:
    """Where the label is right (the DU's choice fails 90 %), the first probes give its bin
    the evidence and no UE is probed again: the back-offs stand."""
    shares = _du_choice_shares(probe=True, du_bler=0.9)
    assert shares[0] > 0.0
    assert shares[2:].max() == 0.0


def test_the_decisions_and_the_metrics_count_the_probes() -> None:
    """Operators see what the probes cost: each period's decisions count the UEs sent the
    DU's choice in place of a back-off, and the xApp adds them to
    lighttune_du_choice_probes_total."""
    from lighttune_xapp.metrics import XappMetrics

    base = random_reports(64, 17, first_tx=(20, 21))
    base = replace(base, cqi=np.clip(base.cqi, 8, 12), olla_offset_db=np.zeros(len(base)))
    tuner = CellTuner(_SureTheDuChoiceFails(), TuneMode.CQI, learn=False)
    first, _ = tuner.step(base)
    assert first.du_choice_probes == int(np.sum(first.cqi == base.cqi)) > 0  # the model never picks it
    metrics = XappMetrics()

    class _SureModel(LightTuneModel):
        """A real, saveable model that labels like :class:`_SureTheDuChoiceFails`."""

        def predict_many(self, x: np.ndarray) -> np.ndarray:
            return _SureTheDuChoiceFails().predict_many(x)

        def predict_many_unchecked(self, x: np.ndarray, dtype: type = np.float64) -> np.ndarray:
            return _SureTheDuChoiceFails().predict_many(x)

    policy = LinkAdaptationPolicy(_config(tunerMode="cqi"), LightTuneModel(seed=2), MemoryStore(), metrics=metrics)
    policy.cell("c1").model = _SureModel(seed=2)  # (the policy gives each cell a copy of the offline model)
    total = 0
    for _ in range(3):
        # every transmission fails: the probes give the DU choice's bin its evidence at once
        pending = policy.decide("c1", replace(base, n_ack=np.zeros(len(base), dtype=np.int64),
                                              n_nack=np.full(len(base), 20)))
        total += pending.decisions.du_choice_probes
        policy.finish(pending)
    # the xApp fits a period's outcomes after deciding the next one (lighttune_core.cell), so
    # two rounds of probes go out before the bin has its evidence; none after
    assert total == 2 * first.du_choice_probes
    assert f"lighttune_du_choice_probes_total {float(total)}" in metrics.render().decode()


def test_a_cell_with_evidence_for_every_label_predicts_nothing_more() -> None:
    """The probes' extra prediction (the DU's choice of each backed-off UE) is skipped once
    every label at the reported rank has its evidence: no UE could be probed."""
    base = random_reports(64, 17, first_tx=(20, 21))
    base = replace(base, cqi=np.clip(base.cqi, 8, 12), olla_offset_db=np.zeros(len(base)))
    rows_predicted: list[int] = []

    class _Counting(_SureTheDuChoiceFails):
        def predict_many(self, x: np.ndarray) -> np.ndarray:
            rows_predicted.append(x.shape[0])
            return super().predict_many(x)

    def rows_of_a_decision(probe: bool, evidence: bool) -> tuple[int, int]:
        tuner = CellTuner(_Counting(), TuneMode.CQI, learn=False, probe_du_choice=probe)
        if evidence:  # 6 outcomes (BLER 0.5) in every bin of rank offset 0: weight 5.85 after discounting
            x = np.zeros((BLER_LABELS.size, N_FEATURES))
            for _ in range(6):
                tuner.calibration.update(x, BLER_LABELS, np.full(BLER_LABELS.size, 0.5))  # type: ignore[union-attr]
        rows_predicted.clear()
        decisions = tuner.decide(base)
        return sum(rows_predicted), decisions.du_choice_probes

    searched, _ = rows_of_a_decision(probe=False, evidence=False)
    rows, probes = rows_of_a_decision(probe=True, evidence=False)
    assert rows > searched and probes > 0  # the DU choices of the backed-off UEs
    searched, _ = rows_of_a_decision(probe=False, evidence=True)
    assert rows_of_a_decision(probe=True, evidence=True) == (searched, 0)


def test_no_probes_without_calibration_or_in_off_mode() -> None:
    base = random_reports(64, 17, first_tx=(20, 21))
    base = replace(base, cqi=np.clip(base.cqi, 8, 12), olla_offset_db=np.zeros(len(base)))
    uncalibrated = CellTuner(_SureTheDuChoiceFails(), TuneMode.CQI, learn=False, calibrate=False)
    for _ in range(4):
        decisions, _ = uncalibrated.step(base)
        assert not (decisions.cqi == base.cqi).any() and decisions.du_choice_probes == 0
    off = CellTuner(_SureTheDuChoiceFails(), TuneMode.OFF, learn=False)
    decisions, _ = off.step(base)
    np.testing.assert_array_equal(decisions.cqi, base.cqi)
    assert not decisions.control


def test_the_calibration_reports_each_bins_evidence() -> None:
    cal = RankOffsetCalibration(prior_weight=2.0, discount=1.0)
    cal.update(_features(2, 2, n=3), np.full(3, 0.3), np.full(3, 0.1), np.array([1.0, 0.5, 0.25]))
    np.testing.assert_allclose(cal.evidence(np.array([0, 0, 1, 5]), np.array([0.3, 0.31, 0.3, 0.3])),
                               [1.75, 1.75, 0.0, 0.0])


def test_the_probes_are_a_setting_and_can_be_switched_at_run_time() -> None:
    from lighttune_xapp.config import ConfigError

    policy = LinkAdaptationPolicy(_config(probeDuChoice=False), LightTuneModel(seed=1), MemoryStore())
    policy.on_reports("c1", _policy_reports(0))
    assert policy.cells["c1"].probe_du_choice is False
    policy.apply_config(_config(probeDuChoice=True))
    assert policy.cells["c1"].probe_du_choice is True
    assert _config().probe_du_choice is True  # the shipped descriptor's default
    with pytest.raises(ConfigError, match="probeDuChoice"):
        _config(probeDuChoice="yes")


def test_a_version_1_state_is_read_as_prior_plus_outcomes() -> None:
    """State written before version 2 (prior and outcomes in one sum) restores the same
    per-bin means with borrowing off, and is split at most w0 of prior per bin."""
    old = {"prior_weight": 2.0, "discount": 0.99, "sum": [[0.2 * k for k in range(11)]] * 3,
           "weight": [[2.0] * 11] * 3}
    old["sum"] = [[2.0 * v for v in BLER_LABELS]] * 2 + [[2.0 * v + 0.5 for v in BLER_LABELS[:10]] + [2.0]]
    old["weight"] = [[2.0] * 11] * 2 + [[3.0] * 11]
    cal = RankOffsetCalibration.from_state_dict(old)
    state = cal.state_dict()
    assert state["version"] == 2
    np.testing.assert_allclose(state["prior"], [[2.0] * 11] * 3)
    np.testing.assert_allclose(np.array(state["weight"]), [[0.0] * 11] * 2 + [[1.0] * 11])
    plain = RankOffsetCalibration.from_state_dict({**state, "borrow": False})
    np.testing.assert_allclose(plain.table, np.array(old["sum"]) / np.array(old["weight"]))


def test_calibration_stops_rank_ups_that_fail() -> None:
    assert _rank_up_share(calibrate=False) > 0.2  # the raw labels keep buying failing rank-ups
    assert _rank_up_share(calibrate=True) == 0.0


def _policy_reports(period: int) -> LinkReports:
    return random_reports(24, 100 + period, first_tx=(15, 40))


def test_the_policy_saves_and_restores_each_cells_calibration() -> None:
    cfg = load_config(json.loads(DESCRIPTOR.read_text()))
    store = MemoryStore()
    offline = LightTuneModel(seed=2)
    policy = LinkAdaptationPolicy(cfg, offline, store)
    for period in range(5):
        policy.on_reports("c1", _policy_reports(period), now=period * 0.08)
    table = policy.cells["c1"].calibration.table  # type: ignore[union-attr]
    assert not np.allclose(table, np.tile(BLER_LABELS, (3, 1)))  # outcomes moved it
    policy.close()
    restarted = LinkAdaptationPolicy(cfg, offline, store)
    np.testing.assert_array_equal(restarted.cell("c1").calibration.table, table)  # type: ignore[union-attr]


def test_an_unusable_stored_calibration_keeps_the_model() -> None:
    cfg = load_config(json.loads(DESCRIPTOR.read_text()))
    store = MemoryStore()
    model = LightTuneModel(seed=5)
    store.save("c1", model.to_bytes(), {"kind": "x", "calibration": {"sum": "bad"}})
    policy = LinkAdaptationPolicy(cfg, LightTuneModel(seed=6), store)
    tuner = policy.cell("c1")
    assert policy.restore_status["c1"] == "ok"
    for got, stored in zip(tuner.model.params.weights, model.params.weights):
        np.testing.assert_array_equal(got, stored)  # the stored model, not the offline one
    np.testing.assert_array_equal(tuner.calibration.table, np.tile(BLER_LABELS, (3, 1)))  # type: ignore[union-attr]


def _config(**controls: object):
    descriptor = json.loads(DESCRIPTOR.read_text())
    descriptor["controls"].update(controls)
    return load_config(descriptor)


def test_the_calibration_is_a_setting_and_can_be_switched_at_run_time() -> None:
    policy = LinkAdaptationPolicy(_config(calibrate=False), LightTuneModel(seed=1), MemoryStore())
    policy.on_reports("c1", _policy_reports(0))
    assert policy.cells["c1"].calibration is None
    policy.apply_config(_config(calibrate=True))
    assert policy.cells["c1"].calibration is not None
    policy.apply_config(_config(calibrate=False))
    assert policy.cells["c1"].calibration is None


def test_a_non_boolean_setting_is_refused() -> None:
    from lighttune_xapp.config import ConfigError

    with pytest.raises(ConfigError, match="calibrate"):
        _config(calibrate="yes")


def test_weighted_outcomes_give_the_weighted_mean_and_decay_by_their_weight() -> None:
    cal = RankOffsetCalibration(prior_weight=2.0, discount=1.0, borrow=False)
    x = _features(2, 2, n=3)
    cal.update(x, np.full(3, 0.2), np.array([1.0, 0.0, 0.5]), np.array([0.2, 1.0, 0.4]))
    # (2 * 0.2 + 0.2 * 1.0 + 1.0 * 0.0 + 0.4 * 0.5) / (2 + 1.6) = 0.8 / 3.6
    assert cal.apply(x[:1], np.array([0.2]))[0] == pytest.approx(0.8 / 3.6)
    decayed = RankOffsetCalibration(prior_weight=1.0, discount=0.5, borrow=False)
    decayed.update(x[:1], np.array([0.2]), np.array([1.0]), np.array([0.5]))
    # the prior decays by 0.5 ** 0.5: (0.2 * 0.7071 + 0.5) / (0.7071 + 0.5)
    assert decayed.apply(x[:1], np.array([0.2]))[0] == pytest.approx((0.2 * 0.5**0.5 + 0.5) / (0.5**0.5 + 0.5))


@pytest.mark.parametrize("weight", [[0.0], [1.5], [np.nan], [0.5, 0.5]])
def test_bad_sample_weights_are_refused(weight: list[float]) -> None:
    with pytest.raises(ValueError, match="weights"):
        RankOffsetCalibration().update(_features(1, 1), np.array([0.0]), np.array([0.5]), np.array(weight))


class _Constant:
    """Predicts one label for every candidate; counts fine-tuning calls."""

    delta = 0.1

    def __init__(self, label: float) -> None:
        self.label = label
        self.learned = 0

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        return np.full(x.shape[0], self.label)

    def learn_one(self, x: np.ndarray, y: float) -> bool:
        self.learned += 1
        return True


def test_periods_too_short_for_a_label_still_calibrate_by_their_transmissions() -> None:
    """The 10 ms CSI-RS period gives 2-3 transmissions per UE: no period is a label for
    LightTune (fewer than 10), but together they give the calibration the true mean BLER."""
    base = random_reports(40, 21, first_tx=(2, 4))
    rng = np.random.default_rng(8)
    model = _Constant(0.1)
    tuner = CellTuner(model, TuneMode.CQI, learn=True)
    reports: LinkReports = base
    nack = ntx = 0
    for _ in range(60):
        tuner.step(reports)
        n = rng.integers(2, 4, len(base))
        fail = rng.binomial(n, 0.4)  # every decision fails 40 % of its transmissions
        nack, ntx = nack + fail.sum(), ntx + n.sum()
        reports = replace(base, n_ack=(n - fail).astype(np.int64), n_nack=fail.astype(np.int64))
    assert model.learned == 0  # never a LightTune label
    got = tuner.calibration.table[1, 1]  # type: ignore[union-attr]  # rank offset 0, label 0.1
    assert got == pytest.approx(nack / ntx, abs=0.03)
    assert got == pytest.approx(0.4, abs=0.03)
