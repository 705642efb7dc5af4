"""Outer-loop link adaptation: update rule, class/function agreement, MCS selection and
convergence of the achieved BLER to the 10 % target."""

from __future__ import annotations

import numpy as np
import pytest

from lighttune_core.linkadapt import (
    MAX_MCS_BY_TABLE,
    NO_TRANSMISSION,
    Olla,
    cqi_to_mcs,
    default_cqi_sinr_db,
    default_mcs_sinr_db,
    delta_down_db,
    olla_mcs,
    olla_update,
    shannon_sinr_threshold_db,
)


def test_update_rule_steps_and_clamp() -> None:
    down = 1.0 * 0.1 / 0.9
    assert delta_down_db() == pytest.approx(down)
    off = np.array([0.0, 0.0, 0.0, 19.5, -19.95, 2.0])
    ack = np.array([True, False, True, False, True, False])
    sent = np.array([True, True, False, True, True, False])
    new = olla_update(off, ack, sent)
    np.testing.assert_allclose(new, [-down, 1.0, 0.0, 20.0, -20.0, 2.0])
    np.testing.assert_array_equal(off, [0.0, 0.0, 0.0, 19.5, -19.95, 2.0])  # input untouched
    # other parameters: δ_up 0.5 dB, BLER_t 0.2 -> δ_down = 0.125 dB, clamp 1 dB
    np.testing.assert_allclose(
        olla_update(np.array([0.9, 0.0]), np.array([False, True]), np.array([True, True]), 0.5, 0.2, 1.0),
        [1.0, -0.125],
    )


def test_update_rejects_bad_input() -> None:
    one = np.zeros(2)
    with pytest.raises(ValueError, match="shape"):
        olla_update(one, np.array([True]), np.array([True, True]))
    with pytest.raises(ValueError, match="target_bler"):
        olla_update(one, np.ones(2, bool), np.ones(2, bool), target_bler=1.0)
    with pytest.raises(ValueError, match="delta_up_db"):
        olla_update(one, np.ones(2, bool), np.ones(2, bool), delta_up_db=0.0)
    with pytest.raises(ValueError, match="offset_db"):
        olla_update(np.array([np.nan, 0.0]), np.ones(2, bool), np.ones(2, bool))


def test_class_and_pure_function_agree() -> None:
    rng = np.random.default_rng(3)
    n = 50
    olla = Olla(n, delta_up_db=0.7, target_bler=0.15, clamp_db=5.0)
    off = np.zeros(n)
    cqi = rng.integers(0, 16, n)
    for _ in range(300):
        ack = rng.random(n) > 0.3
        sent = rng.random(n) > 0.2
        off = olla_update(off, ack, sent, 0.7, 0.15, 5.0)
        olla.update(ack, sent)
        np.testing.assert_array_equal(olla.offset_db, off)
        np.testing.assert_array_equal(olla.mcs(cqi, 2, 2), olla_mcs(cqi, off, 2, 2))
    assert olla.delta_down_db == pytest.approx(0.7 * 0.15 / 0.85)
    assert np.all(np.abs(off) <= 5.0)


@pytest.mark.parametrize("cqi_table", [1, 2, 3])
@pytest.mark.parametrize("mcs_table", [1, 2, 3])
def test_zero_offset_with_default_thresholds_is_the_table_mapping(cqi_table: int, mcs_table: int) -> None:
    cqi = np.arange(16)
    np.testing.assert_array_equal(olla_mcs(cqi, 0.0, cqi_table, mcs_table), cqi_to_mcs(cqi, cqi_table, mcs_table))


def test_offset_moves_the_mcs_the_right_way() -> None:
    cqi = np.repeat(np.arange(1, 16), 9)
    offsets = np.tile(np.linspace(-8.0, 8.0, 9), 15)
    mcs = olla_mcs(cqi, offsets).reshape(15, 9)
    # a larger offset (more NACKs seen) never raises the MCS; a negative one never lowers it
    assert np.all(np.diff(mcs, axis=1) <= 0)
    assert np.all(mcs[:, 0] >= cqi_to_mcs(np.arange(1, 16)))
    assert np.all((mcs >= 0) & (mcs <= MAX_MCS_BY_TABLE[1]))
    assert olla_mcs(0, -10.0) == NO_TRANSMISSION
    # 20 dB of back-off still serves the UE with MCS 0
    assert olla_mcs(5, 20.0) == 0


def test_caller_thresholds_are_used() -> None:
    # Thresholds of the caller's own BLER curves: MCS m works from m dB, CQI c stands for c dB.
    mcs_thr = np.arange(32, dtype=np.float64)
    cqi_thr = np.arange(16, dtype=np.float64)
    got = olla_mcs(np.array([10, 10, 10, 3]), np.array([0.0, 2.5, -4.0, 5.0]), cqi_sinr_db=cqi_thr, mcs_sinr_db=mcs_thr)
    np.testing.assert_array_equal(got, [10, 7, 14, 0])
    # per-UE threshold rows broadcast against the UE axis
    per_ue = np.stack([mcs_thr, mcs_thr + 3.0])
    np.testing.assert_array_equal(olla_mcs(np.array([10, 10]), 0.0, cqi_sinr_db=cqi_thr, mcs_sinr_db=per_ue), [10, 7])
    with pytest.raises(ValueError, match="cqi_sinr_db"):
        olla_mcs(3, 0.0, cqi_sinr_db=np.zeros(15))
    with pytest.raises(ValueError, match="mcs_sinr_db"):
        olla_mcs(3, 0.0, mcs_sinr_db=np.zeros(10))


def test_default_thresholds_follow_the_gap_formula() -> None:
    # γ = 10 log10(2^SE - 1) + Γ: CQI 15 of table 1 (SE 5.5547) at Γ = 1.5 dB
    expected = 10 * np.log10(2**5.5547 - 1) + 1.5
    assert default_cqi_sinr_db(1)[15] == pytest.approx(expected)
    assert default_cqi_sinr_db(1)[0] == -np.inf
    assert np.isnan(default_mcs_sinr_db(2)[28])
    assert shannon_sinr_threshold_db(1.0, gap_db=0.0) == pytest.approx(0.0)


def _simulate(bias_db: float, freeze_offset: bool, slots: int = 3000, n_ue: int = 200) -> tuple[float, np.ndarray, np.ndarray]:
    """Link with a CQI that is ``bias_db`` too optimistic; BLER rises with the SINR shortfall.

    BLER of MCS m at true SINR s: 1 / (1 + 9 exp(1.5 (s - γ_m))) — 10 % exactly at the
    MCS threshold γ_m, more below it. Returns (achieved BLER over the second half, final
    offsets [N], the SINR error each UE's CQI carries [N]).
    """
    rng = np.random.default_rng(11)
    cqi_thr = default_cqi_sinr_db(1)
    mcs_thr = default_mcs_sinr_db(1)
    s_true = rng.uniform(-2.0, 16.0, n_ue)
    reported = s_true + bias_db
    cqi = np.maximum(np.sum(cqi_thr[None, 1:] <= reported[:, None], axis=1), 1)
    cqi_error = cqi_thr[cqi] - s_true
    olla = Olla(n_ue)
    nacks = sent = 0
    for t in range(slots):
        mcs = olla.mcs(cqi)
        s = s_true + rng.normal(0.0, 0.5, n_ue)
        bler = 1.0 / (1.0 + 9.0 * np.exp(1.5 * (s - mcs_thr[mcs])))
        ack = rng.random(n_ue) >= bler
        if not freeze_offset:
            olla.update(ack, np.ones(n_ue, dtype=bool))
        if t >= slots // 2:
            nacks += int(np.sum(~ack))
            sent += n_ue
    return nacks / sent, olla.offset_db, cqi_error


def test_achieved_bler_converges_to_target_despite_cqi_bias() -> None:
    bler, offset, cqi_error = _simulate(bias_db=3.0, freeze_offset=False)
    assert abs(bler - 0.10) < 0.01
    # the offset learns the CQI's optimism (up to the MCS grid and the fading jitter)
    assert abs(np.mean(offset - cqi_error)) < 1.0
    assert np.mean(offset) > 1.0
    # without the outer loop the same biased CQIs give a far higher BLER
    frozen_bler, _, _ = _simulate(bias_db=3.0, freeze_offset=True, slots=400)
    assert frozen_bler > 0.3
