"""Candidates scored by delivered bits: ``J = r · SE(MCS_DU(c, b)) · (1 − BLER_pred)`` with the
MCS the DU's preset transmits for CQI ``c`` at the UE's reported back-off ``b``
(lighttune_core.linkadapt.tune: ``candidate_rate``, ``ri_cqi_tune`` / ``cqi_tune`` with
``du_preset``)."""

from __future__ import annotations

import dataclasses

from typing import Callable

import numpy as np

from lighttune_core.synthetic import random_reports
import pytest

from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import FEATURE_NAMES, build_features
from lighttune_core.linkadapt import cqi_tune, rank_cqi_anchor, ri_cqi_tune, spectral_efficiency
from lighttune_core.linkadapt.presets import PRESET_NAMES, preset_mcs
from lighttune_core.linkadapt.tables import mcs_spectral_efficiency
from lighttune_core.linkadapt.tune import candidate_rate
from lighttune_core.report import LinkReports
from lighttune_core.tuner import LightTuneModel

Predictor = Callable[[np.ndarray], np.ndarray]
RANK_COLUMN: int = FEATURE_NAMES.index("candidate_rank")
CQI_COLUMN: int = FEATURE_NAMES.index("candidate_cqi")


def make_reports(n: int, seed: int, cqi_table: int = 1, backoff: tuple[float, float] = (-4.0, 4.0)) -> LinkReports:
    """The project's seeded random reports (:func:`lighttune_core.synthetic.random_reports`) with
    back-offs uniform in ``backoff`` (within every preset's range)."""
    reports = random_reports(n, seed, cqi_table=cqi_table)
    return dataclasses.replace(reports, olla_offset_db=np.random.default_rng([seed, 7]).uniform(*backoff, n))


def one_ue(ri: int, cqi: int, backoff: float) -> LinkReports:
    """One UE reporting rank ``ri``, CQI ``cqi`` and back-off ``backoff``."""
    sinr = np.full((1, 4), np.nan)
    sinr[0, :ri] = 12.0
    return LinkReports(
        ue_id=np.array([0]), ri=np.array([ri]), cqi=np.array([cqi]), sinr_layers_db=sinr,
        csirs_snr_db=np.array([12.0]), rank=np.array([ri]), mcs=np.array([10]),
        olla_offset_db=np.array([backoff]), n_ack=np.array([10]), n_nack=np.array([1]),
        served_bits=np.array([10_000]), csi_age_ms=np.array([10.0]),
    )


def candidates_of(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rank, cqi)`` int [M] of candidate feature rows."""
    return (np.rint(features[:, RANK_COLUMN] * 4).astype(np.int64),
            np.rint(features[:, CQI_COLUMN] * 15).astype(np.int64))


def wiggly_predictor(features: np.ndarray) -> np.ndarray:
    """Row-wise deterministic BLER on the 11 labels (so ties occur), rising with the
    candidate CQI and rank above the report's."""
    d_cqi = 15.0 * (features[:, CQI_COLUMN] - features[:, 4])
    d_rank = 4.0 * (features[:, RANK_COLUMN] - features[:, 5])
    wiggle = 0.3 * np.sin(17.0 * features[:, 11] + 5.0 * features[:, 8] + 3.0 * features[:, 0])
    return np.round(np.clip(0.35 + 0.12 * d_cqi + 0.25 * d_rank + wiggle, 0.0, 1.0) * 10.0) / 10.0


def delivered_se(preset: str, cqi: int, backoff: float, cqi_table: int, mcs_table: int) -> float:
    """SE (bit per RE per layer) of the MCS the DU transmits for ``cqi``; 0 for no transmission."""
    mcs = int(preset_mcs(preset, cqi, backoff, cqi_table, mcs_table))
    return 0.0 if mcs < 0 else float(mcs_spectral_efficiency(mcs, mcs_table))


def reference_ri_cqi_tune(
    predict: Predictor, reports: LinkReports, preset: str, mcs_table: int, max_rank: int, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow per-UE loop over the (rank, CQI) grid maximising ``r · SE(MCS_DU(c, b)) · (1 − p)``
    (first maximum; the lowest predicted BLER if every objective is 0)."""
    ranks, cqis, blers = [], [], []
    for i in range(len(reports)):
        one = reports.select(np.array([i]))
        c0, r0, b = int(one.cqi[0]), int(one.ri[0]), float(one.olla_offset_db[0])
        rank_set = [r for r in (r0, r0 - 1, r0 + 1) if 1 <= r <= max_rank] or [max_rank]
        if c0 == 0:
            grid = [(rank_set[0], 0)]
        else:
            anchors = {r: int(rank_cqi_anchor(one, np.array([[r]]))[0, 0]) for r in rank_set}
            grid = [(r, c) for r in rank_set for c in range(anchors[r], anchors[r] - window, -1) if c >= 1]
        scored = []
        for r, c in grid:
            p = float(predict(build_features(one, np.array([r]), np.array([c])))[0])
            se = delivered_se(preset, c, b, one.cqi_table, mcs_table)
            scored.append((r * se * (1.0 - min(p, 1.0)), p, r, c))
        best = max(scored, key=lambda s: s[0])
        if best[0] <= 0.0:
            best = min(scored, key=lambda s: s[1])
        ranks.append(best[2])
        cqis.append(best[3])
        blers.append(best[1])
    return np.array(ranks), np.array(cqis), np.array(blers)


# ----------------------------------------------------------------------------- candidate_rate
@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize(("cqi_table", "mcs_table"), [(1, 1), (2, 2), (1, 3)])
def test_candidate_rate_is_rank_times_the_se_of_the_du_mcs(preset: str, cqi_table: int, mcs_table: int) -> None:
    """``candidate_rate`` = ``r · SE_mcs(preset_mcs(c, b))`` element by element, 0 for CQI 0."""
    reports = make_reports(60, 1, cqi_table=cqi_table)
    rng = np.random.default_rng(2)
    rank = rng.integers(1, 5, (60, 7))
    cqi = rng.integers(0, 16, (60, 7))
    got = candidate_rate(reports, rank, cqi, preset, mcs_table)
    assert got.shape == (60, 7) and got.dtype == np.float64
    for i in range(60):
        for k in range(7):
            want = rank[i, k] * delivered_se(preset, int(cqi[i, k]), float(reports.olla_offset_db[i]),
                                             cqi_table, mcs_table)
            assert got[i, k] == pytest.approx(want, rel=1e-15, abs=0.0), (i, k)
    assert np.all(got[cqi == 0] == 0.0)


def test_candidate_rate_without_a_preset_is_the_cqi_rate() -> None:
    """Without a preset the rate is the legacy ``r · SE(c)``."""
    reports = make_reports(30, 3, cqi_table=2)
    rank = np.tile(np.arange(1, 5), (30, 4))
    cqi = np.tile(np.arange(16), (30, 1))
    np.testing.assert_allclose(candidate_rate(reports, rank, cqi), rank * spectral_efficiency(cqi, 2), rtol=1e-15)


def test_candidate_rate_follows_the_backoff() -> None:
    """srsRAN back-off 0.5 CQI: CQI 10 is sent at MCS 16 (not the table's 18)."""
    reports = one_ue(2, 10, 0.5)
    got = candidate_rate(reports, np.array([[2]]), np.array([[10]]), "srsran")
    assert got[0, 0] == pytest.approx(2 * float(mcs_spectral_efficiency(16, 1)), rel=1e-15)
    assert got[0, 0] < candidate_rate(one_ue(2, 10, 0.0), np.array([[2]]), np.array([[10]]), "srsran")[0, 0]


def test_candidate_rate_rejects_unknown_presets() -> None:
    """An unknown preset name is a ValueError listing the presets."""
    with pytest.raises(ValueError, match="srsran, oai, sionna"):
        candidate_rate(one_ue(1, 5, 0.0), np.array([[1]]), np.array([[5]]), "bogus")


# ----------------------------------------------------------------------------- the search
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_a_constant_predictor_picks_the_largest_delivered_rate(preset: str) -> None:
    """Same BLER for every candidate: the objective is the rate, so the choice is the first
    candidate (in the search's order) of largest ``r · SE(MCS_DU(c, b))``."""
    reports = make_reports(80, 4)
    for i in range(len(reports)):
        one = reports.select(np.array([i]))
        seen: list[np.ndarray] = []

        def constant(features: np.ndarray) -> np.ndarray:
            seen.append(features.copy())
            return np.full(features.shape[0], 0.2)

        rank, cqi, bler = ri_cqi_tune(constant, one, du_preset=preset)
        cand_rank, cand_cqi = candidates_of(np.concatenate(seen))  # prune=False: one call, all candidates
        rates = candidate_rate(one, cand_rank[None, :], cand_cqi[None, :], preset)[0]
        best = int(np.argmax(rates))
        assert (int(rank[0]), int(cqi[0])) == (cand_rank[best], cand_cqi[best]), i
        assert bler[0] == 0.2
        # the pruned search (what CellTuner runs) agrees
        pruned = ri_cqi_tune(lambda f: np.full(f.shape[0], 0.2), one, du_preset=preset, prune=True)
        assert (int(pruned.rank[0]), int(pruned.cqi[0])) == (int(rank[0]), int(cqi[0]))


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize(("max_rank", "window", "mcs_table"), [(4, 5, 1), (2, 3, 2), (4, 15, 1)])
def test_ri_cqi_tune_by_delivered_bits_equals_a_per_ue_reference(
    preset: str, max_rank: int, window: int, mcs_table: int
) -> None:
    """Batched search (pruned or not) = slow per-UE loop scoring delivered bits."""
    reports = make_reports(50, 5)
    ref = reference_ri_cqi_tune(wiggly_predictor, reports, preset, mcs_table, max_rank, window)
    for prune in (False, True):
        got = ri_cqi_tune(wiggly_predictor, reports, max_rank=max_rank, cqi_window=window, prune=prune,
                          du_preset=preset, mcs_table=mcs_table)
        np.testing.assert_array_equal(got.rank, ref[0])
        np.testing.assert_array_equal(got.cqi, ref[1])
        np.testing.assert_array_equal(got.predicted_bler, ref[2])


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_cqi_tune_by_delivered_bits_keeps_the_rank_and_maximises_delivered_bits(preset: str) -> None:
    """With ``du_preset``, CQI-Tune is the search at the reported rank over ``c0 .. c0 − max_backoff``."""
    reports = make_reports(50, 6)
    cqi, bler = cqi_tune(wiggly_predictor, reports, max_backoff=4, du_preset=preset)
    for i in range(len(reports)):
        one = reports.select(np.array([i]))
        c0, r0, b = int(one.cqi[0]), int(one.ri[0]), float(one.olla_offset_db[0])
        grid = [0] if c0 == 0 else [c for c in range(c0, c0 - 5, -1) if c >= 1]
        p = {c: float(wiggly_predictor(build_features(one, np.array([r0]), np.array([c])))[0]) for c in grid}
        scored = [(r0 * delivered_se(preset, c, b, 1, 1) * (1.0 - min(p[c], 1.0)), c) for c in grid]
        best = max(scored, key=lambda s: s[0])[1]
        if max(s[0] for s in scored) <= 0.0:
            best = min(grid, key=lambda c: (p[c], grid.index(c)))
        assert (int(cqi[i]), float(bler[i])) == (best, p[best]), i


def test_delivered_bits_and_the_cqi_rate_choose_differently_under_a_large_backoff() -> None:
    """srsRAN back-off 4 CQI (its maximum) and reported CQI 5: every candidate CQI 5 .. 1 has
    ``c_eff = 1`` and is sent at MCS 0, so they deliver the same bits per TB and the one with
    the lowest predicted BLER wins (CQI 1). The legacy ``r · SE(c)`` score pays for CQI 5's
    nominal SE, which the DU never transmits."""
    reports = one_ue(1, 5, 4.0)
    np.testing.assert_array_equal(preset_mcs("srsran", np.arange(1, 6), 4.0), 0)

    def predict(features: np.ndarray) -> np.ndarray:
        return 0.05 * candidates_of(features)[1]  # BLER 0.25 at CQI 5 .. 0.05 at CQI 1

    for prune in (False, True):
        delivered = ri_cqi_tune(predict, reports, max_rank=1, prune=prune, du_preset="srsran")
        legacy = ri_cqi_tune(predict, reports, max_rank=1, prune=prune)
        assert (int(delivered.rank[0]), int(delivered.cqi[0])) == (1, 1)
        assert delivered.predicted_bler[0] == pytest.approx(0.05)
        assert (int(legacy.rank[0]), int(legacy.cqi[0])) == (1, 5)
    assert int(cqi_tune(predict, reports, du_preset="srsran").cqi[0]) == 1


def test_the_same_cqi_pair_under_the_oai_window_loop() -> None:
    """OAI back-off 20 MCS steps: every CQI is clipped to MCS 0; delivered bits prefer the
    candidate of lowest predicted BLER, the legacy score the highest CQI."""
    reports = one_ue(1, 9, 20.0)

    def predict(features: np.ndarray) -> np.ndarray:
        return np.where(candidates_of(features)[1] == 7, 0.0, 0.3)

    assert int(ri_cqi_tune(predict, reports, max_rank=1, du_preset="oai").cqi[0]) == 7
    assert int(ri_cqi_tune(predict, reports, max_rank=1).cqi[0]) == 9


def test_cell_tuner_scores_with_its_du_preset() -> None:
    """CellTuner passes its preset to the search: the decisions equal ``ri_cqi_tune`` with
    the model's predictions and that preset (and differ between presets somewhere).

    The rank-change check is off here: its stay arm would replace some of the search's rank
    changes on the first period (tests/test_rank_change_check.py covers it)."""
    model = LightTuneModel(seed=3)
    reports = make_reports(200, 7)
    reports = reports.select(reports.validate())
    decisions = {}
    for preset in PRESET_NAMES:
        d = CellTuner(LightTuneModel.from_bytes(model.to_bytes()), TuneMode.RI_CQI, learn=False,
                      du_preset=preset, check_rank_changes=False).decide(reports)
        want = ri_cqi_tune(model.predict_many, reports, du_preset=preset)
        np.testing.assert_array_equal(d.rank, want.rank)
        np.testing.assert_array_equal(d.cqi, want.cqi)
        decisions[preset] = (d.rank.copy(), d.cqi.copy())
    assert any(not np.array_equal(decisions["srsran"][1], decisions[p][1]) for p in ("oai", "sionna"))
    with pytest.raises(ValueError, match="srsran, oai, sionna"):
        CellTuner(model, TuneMode.RI_CQI, du_preset="bogus")
