"""The search's prediction budget (``SearchBudget``, ``CellTuner(max_predictions=...)``):
within the cap the decisions are the exact search's; over it, the search predicts no more
rows than the cap, breadth first over the UEs, and every UE still gets a decision that is
the best of what it predicted."""

from __future__ import annotations

import numpy as np
import pytest
from test_core_linkadapt_tune import CountingPredictor, make_reports, synthetic_predictor
from test_kpm_advisory import config as _config

from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import build_features
from lighttune_core.linkadapt import SearchBudget, cqi_tune, ri_cqi_tune, spectral_efficiency
from lighttune_core.linkadapt.tune import SameRankBest
from lighttune_core.synthetic import random_reports
from lighttune_core.tuner import LightTuneModel
from lighttune_xapp.config import DEFAULT_MAX_PREDICTIONS, ConfigError
from lighttune_xapp.metrics import XappMetrics
from lighttune_xapp.policy import LinkAdaptationPolicy
from lighttune_xapp.store import MemoryStore


class _SyntheticModel:
    """Online-model stand-in: the synthetic predictor, no learning."""

    delta = 0.1

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        return synthetic_predictor(x)

    def learn_one(self, x: np.ndarray, y: float) -> bool:
        return False


def _objective(reports, rank: np.ndarray, cqi: np.ndarray) -> np.ndarray:
    """``r · SE(c) · (1 − BLER)`` of the given pairs under the synthetic predictor, float [N]."""
    bler = synthetic_predictor(build_features(reports, rank, cqi))
    return rank * spectral_efficiency(cqi, reports.cqi_table) * (1.0 - np.minimum(bler, 1.0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_budget_the_search_stays_within_changes_nothing(seed: int) -> None:
    reports = make_reports(200, seed)
    counted = CountingPredictor(synthetic_predictor)
    exact_same = SameRankBest()
    exact = ri_cqi_tune(counted, reports, prune=True, same_rank_out=exact_same)
    used = sum(counted.calls)
    assert used > len(reports)  # the second round predicts: the cap has something to cut
    budget = SearchBudget(used)
    capped_same = SameRankBest()
    capped = ri_cqi_tune(synthetic_predictor, reports, prune=True, same_rank_out=capped_same, budget=budget)
    for a, b in zip(exact, capped):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(exact_same.cqi, capped_same.cqi)
    np.testing.assert_array_equal(exact_same.score, capped_same.score)
    assert budget.rows == used and budget.cut_ues == 0


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("preset", [None, "srsran"])
def test_a_tight_budget_caps_the_rows_and_keeps_each_ue_on_its_best_predicted(seed: int, preset: str | None) -> None:
    reports = make_reports(300, seed)
    n = len(reports)
    exact = ri_cqi_tune(synthetic_predictor, reports, prune=True, du_preset=preset)
    for cap in (n // 2, n, n + n // 3, 2 * n):
        counted = CountingPredictor(synthetic_predictor)
        budget = SearchBudget(cap)
        got = ri_cqi_tune(counted, reports, prune=True, du_preset=preset, budget=budget, same_rank_out=SameRankBest())
        assert sum(counted.calls) == budget.rows <= max(cap, n)
        assert budget.cut_ues > 0
        cut = budget.cut
        # a UE the cap did not touch decides exactly; a cut one on a predicted candidate
        np.testing.assert_array_equal(got.rank[~cut], exact.rank[~cut])
        np.testing.assert_array_equal(got.cqi[~cut], exact.cqi[~cut])
        np.testing.assert_array_equal(got.predicted_bler, synthetic_predictor(build_features(reports, got.rank, got.cqi)))
        if preset is None:  # the objective the search maximises: never above the exact optimum
            assert np.all(_objective(reports, got.rank, got.cqi) <= _objective(reports, exact.rank, exact.cqi) + 1e-12)
    # more room never cuts more UEs
    cuts = []
    for cap in (n, 2 * n, 3 * n):
        budget = SearchBudget(cap)
        ri_cqi_tune(synthetic_predictor, reports, prune=True, du_preset=preset, budget=budget)
        cuts.append(budget.cut_ues)
    assert cuts == sorted(cuts, reverse=True)


def test_the_budget_goes_breadth_first_over_the_ues() -> None:
    budget = SearchBudget(10)
    budget.start(7)  # 3 rows of room
    ue = np.array([0, 0, 0, 1, 1, 4])
    bound = np.array([1.0, 3.0, 2.0, 0.5, 0.7, 0.1])
    keep = budget.take(ue, bound)
    # each UE's largest bound first: UE 0's 3.0, UE 1's 0.7, UE 4's 0.1
    np.testing.assert_array_equal(keep, [False, True, False, False, True, True])
    assert budget.rows == 10 and budget.remaining() == 0
    np.testing.assert_array_equal(np.flatnonzero(budget.cut), [0, 1])
    assert budget.cut_ues == 2
    assert not budget.take(np.array([2]), np.array([1.0])).any()  # spent: nothing more
    budget.start(3)
    assert budget.cut_ues == 0 and budget.remaining() == 7
    # a search of an empty cell leaves no count of an earlier call behind
    budget.start(7)
    budget.take(ue, bound)
    assert budget.cut_ues > 0
    empty = make_reports(5, 9).select(np.zeros(0, dtype=np.int64))
    ri_cqi_tune(synthetic_predictor, empty, prune=True, budget=budget)
    assert budget.cut_ues == 0 and budget.rows == 0


def test_cqi_tune_takes_the_budget_on_its_delivered_bits_search() -> None:
    reports = make_reports(150, 5)
    exact = cqi_tune(synthetic_predictor, reports, prune=True, du_preset="srsran")
    counted = CountingPredictor(synthetic_predictor)
    budget = SearchBudget(len(reports) + 20)
    got = cqi_tune(counted, reports, prune=True, du_preset="srsran", budget=budget)
    assert sum(counted.calls) <= len(reports) + 20 and budget.cut_ues > 0
    np.testing.assert_array_equal(got.cqi[~budget.cut], exact.cqi[~budget.cut])


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "100", None])
def test_bad_budgets_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        SearchBudget(bad)  # type: ignore[arg-type]


def test_a_budget_needs_the_pruned_delivered_bits_search() -> None:
    reports = make_reports(20, 6)
    with pytest.raises(ValueError, match="prune"):
        ri_cqi_tune(synthetic_predictor, reports, budget=SearchBudget(50))
    with pytest.raises(ValueError, match="du_preset"):
        cqi_tune(synthetic_predictor, reports, prune=True, budget=SearchBudget(50))


@pytest.mark.parametrize("mode", [TuneMode.RI_CQI, TuneMode.CQI])
def test_a_cell_with_a_budget_reports_the_ues_it_cut(mode: TuneMode) -> None:
    reports = make_reports(120, 7)
    reports = reports.select(np.flatnonzero(reports.cqi > 0))

    def decide(max_predictions: int | None):
        tuner = CellTuner(_SyntheticModel(), mode, learn=False, calibrate=False, check_rank_changes=False,
                          max_predictions=max_predictions)
        return tuner.decide(reports)

    free = decide(None)
    roomy = decide(10**6)
    tight = decide(len(reports))
    assert free.search_cut_ues == 0 and roomy.search_cut_ues == 0
    np.testing.assert_array_equal(free.cqi, roomy.cqi)
    np.testing.assert_array_equal(free.rank, roomy.rank)
    assert 0 < tight.search_cut_ues <= len(reports)
    with pytest.raises(ValueError, match="max_rows"):
        decide(0)


def test_rank_changes_whose_same_rank_candidates_were_cut_bypass_the_check() -> None:
    """The rank-change check needs a predicted same-rank candidate: with the budget spent by
    the first round, rank changes stand as the search chose them and every decision carries
    a finite prediction; with room, the check replaces some of them (its first samples
    alternate the arms)."""
    reports = make_reports(150, 8)
    reports = reports.select(np.flatnonzero(reports.cqi > 0))

    def decide(max_predictions: int | None):
        tuner = CellTuner(_SyntheticModel(), TuneMode.RI_CQI, learn=False, calibrate=False, max_predictions=max_predictions)
        return tuner.decide(reports)

    spent = decide(len(reports))
    free = decide(None)
    assert np.isfinite(spent.predicted_bler).all() and np.isfinite(free.predicted_bler).all()
    assert np.any(spent.rank != reports.ri)
    assert spent.rank_changes_withheld == 0 and spent.search_cut_ues > 0
    assert free.rank_changes_withheld > 0


def test_the_descriptor_sets_the_cap_and_zero_lifts_it() -> None:
    assert _config().max_predictions == DEFAULT_MAX_PREDICTIONS
    assert _config(maxPredictionsPerDecision=250).max_predictions == 250
    assert _config(maxPredictionsPerDecision=0).max_predictions is None
    for bad in (-1, 2.5, "many"):
        with pytest.raises(ConfigError, match="maxPredictionsPerDecision"):
            _config(maxPredictionsPerDecision=bad)


def test_the_xapp_caps_its_cells_counts_the_cut_ues_and_follows_a_new_config() -> None:
    metrics = XappMetrics()
    policy = LinkAdaptationPolicy(_config(maxPredictionsPerDecision=1), LightTuneModel(seed=4), MemoryStore(),
                                  metrics=metrics)
    reports = random_reports(40, 11, first_tx=(15, 40))
    cut = 0
    for period in range(3):
        pending = policy.decide("c1", reports)
        cut += pending.decisions.search_cut_ues
        policy.finish(pending, now=period * 0.08)
    assert cut > 0  # one row per UE: every UE with a second candidate worth predicting is cut
    assert f"lighttune_search_cut_ues_total {float(cut)}" in metrics.render().decode()
    policy.apply_config(_config(maxPredictionsPerDecision=0))
    assert policy.cells["c1"].budget is None
    assert policy.decide("c1", reports).decisions.search_cut_ues == 0
    policy.apply_config(_config(maxPredictionsPerDecision=300))
    budget = policy.cells["c1"].budget
    assert budget is not None and budget.max_rows == 300


def test_the_cell_search_is_the_decision_search_with_a_budget_of_the_callers_choice() -> None:
    reports = make_reports(120, 10)
    reports = reports.select(np.flatnonzero(reports.cqi > 0))
    tuner = CellTuner(_SyntheticModel(), TuneMode.RI_CQI, learn=False, calibrate=False, check_rank_changes=False,
                      max_predictions=len(reports))
    exact = tuner.search(reports)  # no budget: the exact search, whatever the cell's cap
    budget = SearchBudget(len(reports))
    capped = tuner.search(reports, budget)
    assert budget.cut_ues > 0 and budget.rows == len(reports)
    decided = tuner.decide(reports)  # the cell's own cap: the capped search's choices
    np.testing.assert_array_equal(decided.rank, capped.rank)
    np.testing.assert_array_equal(decided.cqi, capped.cqi)
    assert np.any((exact.rank != capped.rank) | (exact.cqi != capped.cqi))
    free = CellTuner(_SyntheticModel(), TuneMode.RI_CQI, learn=False, calibrate=False, check_rank_changes=False)
    np.testing.assert_array_equal(free.decide(reports).cqi, exact.cqi)
