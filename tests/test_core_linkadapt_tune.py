"""CQI-Tune and RI-CQI-Tune: batched decisions equal a slow per-UE reference, and the
search respects its bounds (CQI never above the table CQI, ranks in [1, max_rank])."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from lighttune_core.features import FEATURE_NAMES, build_features
from lighttune_core.linkadapt import cqi_tune, rank_cqi_anchor, ri_cqi_tune, spectral_efficiency
from lighttune_core.linkadapt.tune import SameRankBest, _sorted_columns_descending
from lighttune_core.report import LinkReports

Predictor = Callable[[np.ndarray], np.ndarray]


def make_reports(n: int, seed: int, cqi_table: int = 1) -> LinkReports:
    rng = np.random.default_rng(seed)
    ri = rng.integers(1, 5, n)
    sinr = rng.uniform(-5.0, 30.0, (n, 4))
    sinr[np.arange(4)[None, :] >= ri[:, None]] = np.nan
    n_ack = rng.integers(0, 50, n)
    n_nack = rng.integers(0, 10, n)
    return LinkReports(
        ue_id=np.arange(n),
        ri=ri,
        cqi=rng.integers(0, 16, n),
        sinr_layers_db=sinr,
        csirs_snr_db=rng.uniform(0.0, 30.0, n),
        rank=rng.integers(1, 5, n),
        mcs=rng.integers(0, 29, n),
        olla_offset_db=rng.uniform(-5.0, 5.0, n),
        n_ack=n_ack,
        n_nack=n_nack,
        served_bits=n_ack * 1000,
        csi_age_ms=rng.uniform(0.0, 80.0, n),
        cqi_table=cqi_table,
    )


def quantised(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and quantise to the model's 11 labels (so ties do occur)."""
    return np.round(np.clip(x, 0.0, 1.0) * 10.0) / 10.0


def synthetic_predictor(features: np.ndarray) -> np.ndarray:
    """Row-wise deterministic BLER: rises with the candidate CQI above the reported one,
    with the candidate rank above RI, and wiggles with the other features."""
    d_cqi = 15.0 * (features[:, 7] - features[:, 4])
    d_rank = 4.0 * (features[:, 6] - features[:, 5])
    wiggle = 0.3 * np.sin(17.0 * features[:, 11] + 5.0 * features[:, 8] + 3.0 * features[:, 0])
    return quantised(0.35 + 0.12 * d_cqi + 0.25 * d_rank + wiggle)


class CountingPredictor:
    """Wraps a predictor and records the batch sizes it was called with."""

    def __init__(self, fn: Predictor) -> None:
        self.fn = fn
        self.calls: list[int] = []

    def __call__(self, features: np.ndarray) -> np.ndarray:
        assert features.ndim == 2 and features.shape[1] == 12
        self.calls.append(features.shape[0])
        return self.fn(features)


def reference_cqi_tune(predict: Predictor, reports: LinkReports, target: float, max_backoff: int) -> tuple[np.ndarray, np.ndarray]:
    """Slow per-UE loop: back off one step at a time, one prediction per candidate."""
    cqis, blers = [], []
    for i in range(len(reports)):
        one = reports.select(np.array([i]))
        c0, r0 = int(one.cqi[0]), int(one.ri[0])
        if c0 == 0:
            candidates = [0]
        else:
            candidates = [max(c0 - k, 1) for k in range(max_backoff + 1)]
        best_c, best_b, chosen = None, np.inf, None
        for c in candidates:
            b = float(predict(build_features(one, np.array([r0]), np.array([c])))[0])
            if b <= target + 1e-9:
                chosen = (c, b)
                break
            if b < best_b:
                best_c, best_b = c, b
        if chosen is None:
            chosen = (best_c, best_b)
        cqis.append(chosen[0])
        blers.append(chosen[1])
    return np.array(cqis), np.array(blers)


def reference_ri_cqi_tune(predict: Predictor, reports: LinkReports, max_rank: int, window: int) -> tuple[np.ndarray, ...]:
    """Slow per-UE loop over the (rank, CQI) grid maximising r · SE(c) · (1 − BLER)."""
    ranks, cqis, blers = [], [], []
    for i in range(len(reports)):
        one = reports.select(np.array([i]))
        c0, r0 = int(one.cqi[0]), int(one.ri[0])
        rank_set = [r for r in (r0, r0 - 1, r0 + 1) if 1 <= r <= max_rank] or [max_rank]
        if c0 == 0:
            grid = [(rank_set[0], 0)]
        else:
            anchors = {r: int(rank_cqi_anchor(one, np.array([[r]]))[0, 0]) for r in rank_set}
            grid = [(r, c) for r in rank_set for c in range(anchors[r], anchors[r] - window, -1) if c >= 1]
        scored = []
        for r, c in grid:
            b = float(predict(build_features(one, np.array([r]), np.array([c])))[0])
            se = float(spectral_efficiency(c, one.cqi_table))
            scored.append((r * se * (1.0 - min(b, 1.0)), b, r, c))
        best = max(scored, key=lambda s: s[0])  # first maximum, like argmax
        if best[0] <= 0.0:
            best = min(scored, key=lambda s: s[1])  # first minimum BLER
        ranks.append(best[2])
        cqis.append(best[3])
        blers.append(best[1])
    return np.array(ranks), np.array(cqis), np.array(blers)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("target", "max_backoff"), [(0.1, 14), (0.3, 3), (0.0, 6)])
def test_cqi_tune_equals_per_ue_reference(seed: int, target: float, max_backoff: int) -> None:
    reports = make_reports(40, seed, cqi_table=1 + seed % 3)
    predict = CountingPredictor(synthetic_predictor)
    cqi, bler = cqi_tune(predict, reports, target_bler=target, max_backoff=max_backoff)
    assert len(predict.calls) == 1  # one batched call for all UEs x candidates
    ref_cqi, ref_bler = reference_cqi_tune(synthetic_predictor, reports, target, max_backoff)
    np.testing.assert_array_equal(cqi, ref_cqi)
    np.testing.assert_array_equal(bler, ref_bler)
    assert cqi.dtype == np.int64 and bler.dtype == np.float64
    # never above the table CQI; CQI 0 stays 0, everyone else stays >= 1
    assert np.all(cqi <= reports.cqi)
    assert np.all((cqi >= 1) | (reports.cqi == 0))
    assert np.all(cqi >= reports.cqi - max_backoff)


@pytest.mark.parametrize("seed", [3, 4, 5])
@pytest.mark.parametrize(("max_rank", "window"), [(4, 5), (2, 3), (1, 1), (3, 15)])
def test_ri_cqi_tune_equals_per_ue_reference(seed: int, max_rank: int, window: int) -> None:
    reports = make_reports(40, seed, cqi_table=1 + seed % 3)
    predict = CountingPredictor(synthetic_predictor)
    rank, cqi, bler = ri_cqi_tune(predict, reports, max_rank=max_rank, cqi_window=window)
    assert len(predict.calls) == 1
    ref_rank, ref_cqi, ref_bler = reference_ri_cqi_tune(synthetic_predictor, reports, max_rank, window)
    np.testing.assert_array_equal(rank, ref_rank)
    np.testing.assert_array_equal(cqi, ref_cqi)
    np.testing.assert_array_equal(bler, ref_bler)
    assert rank.dtype == np.int64 and cqi.dtype == np.int64
    assert np.all((rank >= 1) & (rank <= max_rank))
    anchor = rank_cqi_anchor(reports, rank[:, None])[:, 0]  # the table CQI of the chosen rank
    assert np.all(cqi <= anchor) and np.all(cqi >= anchor - window + 1)


def test_cqi_tune_backs_off_exactly_as_far_as_needed() -> None:
    reports = make_reports(30, 8)
    reports = reports.select(reports.cqi >= 4)
    # BLER 0.4 at the table CQI, falling 0.1 per step back: three steps reach 0.1
    cqi, bler = cqi_tune(lambda x: quantised(0.4 + 1.5 * (x[:, 7] - x[:, 4])), reports)
    np.testing.assert_array_equal(cqi, reports.cqi - 3)
    np.testing.assert_allclose(bler, 0.1)
    # a predictor that is happy everywhere keeps the table CQI
    cqi, bler = cqi_tune(lambda x: np.zeros(len(x)), reports)
    np.testing.assert_array_equal(cqi, reports.cqi)
    # hopeless everywhere except CQI 2: fallback to the lowest predicted BLER
    cqi, _ = cqi_tune(lambda x: np.where(np.isclose(x[:, 7] * 15, 2), 0.5, 0.9), reports)
    np.testing.assert_array_equal(cqi, np.full(len(reports), 2))


def test_cqi_tune_uses_the_given_table_cqi() -> None:
    reports = make_reports(20, 9)
    table = np.clip(reports.cqi - 2, 0, 15)
    cqi, _ = cqi_tune(lambda x: np.zeros(len(x)), reports, table_cqi=table)
    np.testing.assert_array_equal(cqi, table)
    with pytest.raises(ValueError, match="table_cqi"):
        cqi_tune(lambda x: np.zeros(len(x)), reports, table_cqi=table[:-1])


def _bler_by_rank(good_rank_delta: int) -> Predictor:
    """BLER 0 for candidates at RI + good_rank_delta (any CQI), 0.9 elsewhere."""

    def predict(x: np.ndarray) -> np.ndarray:
        delta = np.round(4.0 * (x[:, 6] - x[:, 5]))
        return np.where(delta == good_rank_delta, 0.0, 0.9)

    return predict


def test_ri_cqi_tune_moves_the_rank_when_the_predictor_says_so() -> None:
    reports = make_reports(60, 10)
    reports = reports.select(reports.cqi >= 1)
    up = reports.select(reports.ri <= 3)
    # only UEs for which rank r0+1 has a CQI at all (r0+1)·SE(c) <= r0·SE(c0) can move up
    up = up.select(rank_cqi_anchor(up, (up.ri + 1)[:, None])[:, 0] >= 1)
    rank, cqi, bler = ri_cqi_tune(_bler_by_rank(+1), up)
    np.testing.assert_array_equal(rank, up.ri + 1)
    anchor_up = rank_cqi_anchor(up, (up.ri + 1)[:, None])[:, 0]
    np.testing.assert_array_equal(cqi, anchor_up)  # no BLER penalty: rank r0+1's table CQI wins
    np.testing.assert_array_equal(bler, 0.0)
    down = reports.select(reports.ri >= 2)
    rank, _, _ = ri_cqi_tune(_bler_by_rank(-1), down)
    np.testing.assert_array_equal(rank, down.ri - 1)
    # objective trade-off: one more layer at 30 % BLER (at its own, lower table CQI) would
    # beat r0 at 0 % only if (r0 + 1) * SE(c_up) * 0.7 > r0 * SE(c0)
    rank, _, _ = ri_cqi_tune(lambda x: np.where(np.round(4 * (x[:, 6] - x[:, 5])) == 1, 0.3, 0.0), up)
    # (r0 - 1 competes at its own, higher table CQI and 0 % BLER; ties keep r0, then r0 - 1)
    down_rank = np.maximum(up.ri - 1, 1)
    anchor_down = rank_cqi_anchor(up, down_rank[:, None])[:, 0]
    j = np.stack([
        up.ri * spectral_efficiency(up.cqi),
        np.where(up.ri >= 2, down_rank * spectral_efficiency(anchor_down), -1.0),
        (up.ri + 1) * spectral_efficiency(anchor_up) * 0.7,
    ])
    expected = np.choose(np.argmax(j, axis=0), [up.ri, down_rank, up.ri + 1])
    np.testing.assert_array_equal(rank, expected)
    # rate consistency: r0+1 never promises more than r0, so at 30 % BLER it never wins
    assert not np.any(rank == up.ri + 1)


def test_ri_cqi_tune_without_rank_changes_searches_the_reported_rank_window() -> None:
    """``change_rank=False`` (the rank-change check's stay arm): the reported rank's window
    only, chosen as the full search chooses when every other rank is predicted to fail."""
    reports = make_reports(60, 12)
    down = reports.select((reports.cqi >= 1) & (reports.ri >= 2))
    np.testing.assert_array_equal(ri_cqi_tune(_bler_by_rank(-1), down).rank, down.ri - 1)
    np.testing.assert_array_equal(ri_cqi_tune(_bler_by_rank(-1), down, change_rank=False).rank, down.ri)
    ri = FEATURE_NAMES.index("reported_ri")
    r = FEATURE_NAMES.index("candidate_rank")

    def others_fail(x: np.ndarray) -> np.ndarray:
        return np.where(np.abs(x[:, r] - x[:, ri]) < 1e-9, synthetic_predictor(x), 1.0)

    for prune in (False, True):
        got = ri_cqi_tune(synthetic_predictor, reports, change_rank=False, prune=prune)
        want = ri_cqi_tune(others_fail, reports, prune=prune)
        fine = want.rank == reports.ri  # (UEs whose r0 candidates all fail fall back elsewhere)
        assert fine.mean() > 0.8
        np.testing.assert_array_equal(got.rank, reports.ri)
        np.testing.assert_array_equal(got.cqi[fine], want.cqi[fine])
        np.testing.assert_array_equal(got.predicted_bler[fine], want.predicted_bler[fine])


@pytest.mark.parametrize("seed", [13, 14, 15])
@pytest.mark.parametrize("prune", [False, True])
def test_the_same_rank_best_of_a_search_equals_the_same_rank_search(seed: int, prune: bool) -> None:
    """``same_rank_out``: the choice the ``change_rank=False`` search makes, with its
    objective, from the full search's predictions plus (pruned) one call for the same-rank
    candidates of rank-changing UEs that the pruning left out."""
    reports = make_reports(80, seed, cqi_table=1 + seed % 3)

    def adjust(d: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.clip(b * (1.0 + 0.5 * d), 0.0, 1.0)

    for adj in (None, adjust):
        same = SameRankBest()
        predict = CountingPredictor(synthetic_predictor)
        full = ri_cqi_tune(predict, reports, prune=prune, adjust=adj, same_rank_out=same)
        assert len(predict.calls) <= (4 if prune else 1)
        assert np.any(full.rank != reports.ri)  # rank-changing UEs are part of the case
        alone = ri_cqi_tune(synthetic_predictor, reports, prune=prune, adjust=adj, change_rank=False)
        np.testing.assert_array_equal(same.rank, alone.rank)
        np.testing.assert_array_equal(same.cqi, alone.cqi)
        np.testing.assert_array_equal(same.predicted_bler, alone.predicted_bler)
        bler = alone.predicted_bler if adj is None else adj(np.zeros(len(reports), dtype=np.int64), alone.predicted_bler)
        rate = spectral_efficiency(alone.cqi, reports.cqi_table) * alone.rank
        np.testing.assert_allclose(same.score, np.maximum(rate * (1.0 - bler), 0.0), rtol=1e-12)


def test_ri_cqi_tune_ranks_stay_in_bounds_even_for_a_high_reported_ri() -> None:
    reports = make_reports(50, 12)
    for max_rank in (1, 2, 3, 4):
        rank, cqi, _ = ri_cqi_tune(_bler_by_rank(+1), reports, max_rank=max_rank)
        assert np.all((rank >= 1) & (rank <= max_rank))
        assert np.all(cqi <= rank_cqi_anchor(reports, rank[:, None])[:, 0])
    rank, _, _ = ri_cqi_tune(lambda x: np.zeros(len(x)), reports.select(reports.ri == 4), max_rank=2)
    np.testing.assert_array_equal(rank, 2)


def test_tune_handles_empty_cells_and_cqi_zero() -> None:
    empty = make_reports(5, 13).select(np.zeros(5, dtype=bool))
    never = CountingPredictor(synthetic_predictor)
    cqi, bler = cqi_tune(never, empty)
    assert cqi.shape == (0,) and bler.shape == (0,)
    rank, cqi, bler = ri_cqi_tune(never, empty)
    assert rank.shape == cqi.shape == bler.shape == (0,)
    assert never.calls == []
    reports = make_reports(20, 14)
    zero = reports.select(reports.cqi == 0)
    assert len(zero) > 0
    rank, cqi, _ = ri_cqi_tune(synthetic_predictor, zero)
    np.testing.assert_array_equal(cqi, 0)
    np.testing.assert_array_equal(rank, zero.ri)


def test_bad_predictor_answers_and_arguments_raise_clear_errors() -> None:
    reports = make_reports(10, 15)
    with pytest.raises(ValueError, match="predict"):
        cqi_tune(lambda x: np.zeros(len(x) - 1), reports)
    with pytest.raises(ValueError, match="predict"):
        ri_cqi_tune(lambda x: np.full(len(x), np.nan), reports)
    with pytest.raises(ValueError, match="max_rank"):
        ri_cqi_tune(synthetic_predictor, reports, max_rank=5)
    with pytest.raises(ValueError, match="cqi_window"):
        ri_cqi_tune(synthetic_predictor, reports, cqi_window=0)
    with pytest.raises(ValueError, match="max_backoff"):
        cqi_tune(synthetic_predictor, reports, max_backoff=-1)
    bad = LinkReports(**{**{f: getattr(reports, f) for f in reports.__dataclass_fields__}, "ri": np.zeros(10, dtype=np.int64)})
    with pytest.raises(ValueError, match="ri"):
        cqi_tune(synthetic_predictor, bad)


def test_rank_cqi_anchor_follows_the_layer_sinrs() -> None:
    """Worked example, CQI table 1 (gap-to-capacity thresholds, Γ = 1.5 dB).

    UE with r0 = 2, layers 20 dB and 10 dB, reported CQI 9:
    - rank 2: mean 15.0 dB -> Q(2); rank 1: strongest layer 20 dB + 10log10(2) = 23.0 dB -> higher CQI;
    - rank 3: layers 20, 10, 7 dB (extra layer 3 dB below the weakest), mean 12.33 dB,
      + 10log10(2/3) = -1.76 dB -> 10.57 dB -> lower CQI.
    The anchor moves the reported CQI by the difference of the CQIs these SINRs stand for.
    """
    from lighttune_core.linkadapt import default_cqi_sinr_db

    reports = make_reports(1, 0, cqi_table=1)
    reports = LinkReports(
        **{**{f: getattr(reports, f) for f in reports.__dataclass_fields__ if f != "cqi_table"},
           "ri": np.array([2]), "cqi": np.array([9]),
           "sinr_layers_db": np.array([[20.0, 10.0, np.nan, np.nan]])},
        cqi_table=1,
    )
    thr = default_cqi_sinr_db(1)
    q = lambda db: int(np.searchsorted(thr, db, side="right") - 1)  # noqa: E731
    q2, q1, q3 = q(15.0), q(20.0 + 10 * np.log10(2)), q((20 + 10 + 7) / 3 + 10 * np.log10(2 / 3))
    se = spectral_efficiency(np.arange(16), 1)
    cap = lambda r: int(np.searchsorted(se, 2 * se[9] / r * (1 + 1e-12), side="right") - 1)  # noqa: E731
    got = rank_cqi_anchor(reports, np.array([[2, 1, 3]]))[0]
    assert got.tolist() == [9, min(15, 9 + q1 - q2, cap(1)), min(max(1, 9 + q3 - q2), cap(3))]
    assert got[1] > 9 > got[2]
    # rate consistency: neither other rank promises more than the reported pair
    assert 1 * se[got[1]] <= 2 * se[9] and 3 * se[got[2]] <= 2 * se[9]


def test_ri_cqi_tune_keeps_reported_rank_when_bler_is_flat() -> None:
    """A predictor that sees no BLER difference must not buy rank with r0's CQI."""
    reports = make_reports(200, 7)
    flat = lambda x: np.full(x.shape[0], 0.1)  # noqa: E731
    rank, cqi, _ = ri_cqi_tune(flat, reports)
    np.testing.assert_array_equal(rank, reports.ri)
    np.testing.assert_array_equal(cqi, reports.cqi)


def test_column_sorting_network_sorts_rows_like_numpy() -> None:
    rng = np.random.default_rng(12)
    v = rng.integers(-3, 4, (5000, 4)).astype(float)  # many ties
    v[rng.random((5000, 4)) < 0.2] = -np.inf
    out = np.full((5000, 5), np.nan)  # into the first 4 columns of a wider array, as the anchor does
    assert _sorted_columns_descending(v, out=out[:, :4]).base is out
    np.testing.assert_array_equal(out[:, :4], np.sort(v, axis=1)[:, ::-1])
    assert np.isnan(out[:, 4]).all()
    w = rng.normal(size=(50, 3))
    np.testing.assert_array_equal(_sorted_columns_descending(w, out=np.empty((50, 3))), np.sort(w, axis=1)[:, ::-1])


def _offset_penalty(offset: np.ndarray, bler: np.ndarray) -> np.ndarray:
    """An ``adjust`` that makes every rank change look 0.4 worse (capped at 1)."""
    return np.minimum(bler + 0.4 * (offset != 0), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adjusted_searches_prune_exactly_and_score_by_the_adjusted_bler(seed: int) -> None:
    reports = make_reports(300, seed)
    valid = reports.cqi > 0
    for preset in (None, "srsran"):
        full = ri_cqi_tune(synthetic_predictor, reports, du_preset=preset, adjust=_offset_penalty)
        pruned = ri_cqi_tune(synthetic_predictor, reports, du_preset=preset, adjust=_offset_penalty, prune=True)
        for a, b in zip(full, pruned):
            np.testing.assert_array_equal(a, b)
        plain = ri_cqi_tune(synthetic_predictor, reports, du_preset=preset)
        # penalising rank changes can only make the search keep the reported rank more often
        kept_adjusted = np.mean((full.rank == reports.ri)[valid])
        kept_plain = np.mean((plain.rank == reports.ri)[valid])
        assert kept_adjusted >= kept_plain and kept_adjusted > 0.9
        # the result carries the predictor's own answer for the chosen pair
        x = build_features(reports, full.rank, full.cqi)
        np.testing.assert_array_equal(full.predicted_bler, synthetic_predictor(x))
    identity = ri_cqi_tune(synthetic_predictor, reports, du_preset="srsran", adjust=lambda d, b: b, prune=True)
    for a, b in zip(identity, ri_cqi_tune(synthetic_predictor, reports, du_preset="srsran", prune=True)):
        np.testing.assert_array_equal(a, b)
    staged = cqi_tune(synthetic_predictor, reports, prune=True, adjust=lambda d, b: np.minimum(b + 0.2, 1.0))
    flat = cqi_tune(synthetic_predictor, reports, adjust=lambda d, b: np.minimum(b + 0.2, 1.0))
    np.testing.assert_array_equal(staged.cqi, flat.cqi)
    assert (flat.cqi <= cqi_tune(synthetic_predictor, reports).cqi).all()  # a worse BLER backs off further


def test_an_adjust_answer_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="adjust"):
        ri_cqi_tune(synthetic_predictor, make_reports(20, 3), adjust=lambda d, b: b + 2.0)
