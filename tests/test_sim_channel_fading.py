"""Statistics of the fading, correlation and the live link model (ensembles, seeded)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j0

from e2sim.channel import LinkChannel, Scenario
from e2sim.channel.correlation import (
    cholesky_factors,
    correlation_factors,
    side_correlation_matrix,
    spatial_correlation_matrix,
)
from e2sim.channel.fading import SumOfSinusoidsFading
from e2sim.channel.phy import (
    apply_correlation,
    eigen_precoders,
    frequency_response,
    mmse_sinr,
    subband_centre_frequencies_hz,
    tap_to_subband_matrix,
)
from e2sim.channel.profiles import power_delay_profile

# kernels vs exact evaluation and replay: run again under a second CPU-feature setting (.ci/run)
pytestmark = pytest.mark.float_sensitive


def test_tap_powers_average_to_the_profile() -> None:
    profile = power_delay_profile("TDL-A30")
    fading = SumOfSinusoidsFading(400, profile.n_taps, 2, 2, 30.0, 0.5e-3, seed=1)
    power = np.zeros(profile.n_taps)
    n_slots = 40
    for _ in range(n_slots):
        g = fading.advance()
        power += np.mean(np.abs(g) ** 2, axis=(0, 2, 3))
    power /= n_slots
    # Each tap process has unit power: ensemble over 1,600 processes x 40 slots.
    np.testing.assert_allclose(power, 1.0, atol=0.08)
    # The frequency response then carries the profile's powers: E|H_s|^2 = sum p_t = 1.
    freq = tap_to_subband_matrix(profile.delays_s, profile.powers, np.array([0.0, 5e6]))
    h = frequency_response(fading.advance(), freq)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, abs=0.08)


def test_doppler_autocorrelation_follows_bessel_j0() -> None:
    doppler_hz, slot_s = 50.0, 0.5e-3
    fading = SumOfSinusoidsFading(500, 1, 2, 2, doppler_hz, slot_s, seed=3)
    lags = np.arange(0, 41, 4)
    start_times = np.array([0.0, 0.37, 1.1])
    acf = np.zeros(lags.size)
    for t0 in start_times:
        g = fading.exact_coefficients_at(t0 + lags * slot_s).reshape(lags.size, -1)
        acf += np.real(np.mean(g * np.conj(g[0]), axis=1))
    acf /= start_times.size
    expected = j0(2.0 * np.pi * doppler_hz * lags * slot_s)
    np.testing.assert_allclose(acf, expected, atol=0.07)


def test_rotation_matches_exact_evaluation_and_replay() -> None:
    fading = SumOfSinusoidsFading(3, 4, 2, 2, 100.0, 0.5e-3, seed=9, anchor_interval=64)
    steps = [fading.advance() for _ in range(130)]
    exact = fading.exact_coefficients_at(np.array([10, 63, 129]) * 0.5e-3)
    for k, slot in enumerate((10, 63, 129)):
        np.testing.assert_allclose(steps[slot], exact[k], atol=2e-4)
        np.testing.assert_array_equal(fading.coefficients_at(slot), steps[slot])


@pytest.mark.parametrize(
    ("level", "alpha", "beta"), [("low", 0.0, 0.0), ("medium", 0.3, 0.9), ("high", 0.9, 0.9)]
)
def test_correlation_matrices_follow_alpha_beta(level: str, alpha: float, beta: float) -> None:
    r_gnb, r_ue = correlation_factors(level, 4, 4)
    expected_gnb = side_correlation_matrix(alpha, 4)
    np.testing.assert_allclose(expected_gnb[0], [1.0, alpha ** (1 / 9), alpha ** (4 / 9), alpha])
    np.testing.assert_allclose(r_gnb, expected_gnb, atol=1e-4)
    np.testing.assert_allclose(r_ue, side_correlation_matrix(beta, 4), atol=1e-4)
    full = spatial_correlation_matrix(level, 4, 4)
    np.testing.assert_allclose(full, np.kron(r_gnb, r_ue))
    assert np.all(np.linalg.eigvalsh(full) > 0.0)
    np.testing.assert_allclose(np.diag(full), 1.0)


def test_empirical_antenna_covariance_matches_kronecker_model() -> None:
    rng = np.random.default_rng(4)
    l_gnb, l_ue = cholesky_factors("medium", 4, 4)
    white = (rng.standard_normal((40000, 4, 4)) + 1j * rng.standard_normal((40000, 4, 4))) / np.sqrt(2)
    h = apply_correlation(white, l_ue, l_gnb)
    vec = np.swapaxes(h, -1, -2).reshape(-1, 16)  # column stacking: UE index fastest
    empirical = vec.T @ np.conj(vec) / vec.shape[0]
    np.testing.assert_allclose(empirical, spatial_correlation_matrix("medium", 4, 4), atol=0.03)


def test_live_channel_covariance_matches_kronecker_model() -> None:
    link = LinkChannel(Scenario(profile="TDL-B100", correlation="high", doppler_hz=100.0,
                                n_ue=300, n_rb=24, seed=2))
    acc = np.zeros((16, 16), dtype=np.complex128)
    count = 0
    for _ in range(30):
        h = link.channel()
        vec = np.swapaxes(h, -1, -2).reshape(-1, 16).astype(np.complex128)
        acc += vec.T @ np.conj(vec)
        count += vec.shape[0]
    np.testing.assert_allclose(acc / count, spatial_correlation_matrix("high", 4, 4), atol=0.12)


def test_same_seed_gives_same_numbers_and_other_seed_differs() -> None:
    scenario = Scenario(profile="TDL-C300", doppler_hz=50.0, n_ue=5, csi_period_ms=5,
                        csi_snr_error_db=1.0, seed=11)
    a, b = LinkChannel(scenario), LinkChannel(scenario)
    c = LinkChannel(Scenario(**{**scenario.to_dict(), "snr_db": (0.0, 12.0), "seed": 12}))
    for _ in range(12):
        sa, sb, sc = a.step(), b.step(), c.step()
        np.testing.assert_array_equal(sa.sinr_db, sb.sinr_db)
        np.testing.assert_array_equal(sa.csirs_snr_db, sb.csirs_snr_db)
    assert not np.allclose(np.nan_to_num(sa.sinr_db), np.nan_to_num(sc.sinr_db))


def test_slot_output_shapes_nan_layout_and_csi_instants() -> None:
    scenario = Scenario(n_ue=6, csi_period_ms=5, seed=1)
    link = LinkChannel(scenario)
    instants = []
    for _ in range(25):
        out = link.step()
        instants.append(out.csi_instant)
        assert out.sinr_db.dtype == np.float32
        assert out.sinr_db.shape == (6, 4, 4, link.n_subbands)
        assert out.csirs_snr_db.shape == (6,)
        for rank in range(1, 5):
            assert np.all(np.isfinite(out.sinr_db[:, rank - 1, :rank]))
            assert np.all(np.isnan(out.sinr_db[:, rank - 1, rank:]))
    assert [k for k, flag in enumerate(instants) if flag] == [0, 10, 20]


def test_precoders_are_kept_between_csi_instants_so_csi_ages() -> None:
    scenario = Scenario(profile="TDL-A30", doppler_hz=100.0, n_ue=64, snr_db=(20.0, 20.0),
                        csi_period_ms=40, seed=6)
    link = LinkChannel(scenario)
    first = link.step()
    w0 = link.precoders
    rank1 = [first.sinr_db[:, 0, 0].mean()]
    for _ in range(40):
        rank1.append(link.step().sinr_db[:, 0, 0].mean())
        np.testing.assert_array_equal(link.precoders, w0)
    # Beamforming gain fades as the channel decorrelates from the CSI instant (2 ms Doppler
    # coherence at 100 Hz): the aged precoder is clearly worse than a fresh one.
    assert rank1[-1] < rank1[0] - 1.0


def test_awgn_profile_is_flat_with_receive_array_gain() -> None:
    scenario = Scenario(profile="AWGN", n_ue=3, snr_db=(10.0, 10.0))
    out = LinkChannel(scenario).step()
    for rank in range(1, 5):
        expected = 10.0 + 10.0 * np.log10(4.0 / rank)
        np.testing.assert_allclose(out.sinr_db[:, rank - 1, :rank], expected, atol=1e-4)
    np.testing.assert_allclose(out.csirs_snr_db, 10.0, atol=1e-4)


def test_class_agrees_with_the_pure_functions() -> None:
    scenario = Scenario(profile="TDL-B50", correlation="medium", n_ue=4, n_rb=52, seed=8)
    link = LinkChannel(scenario)
    out = link.step()
    replay = SumOfSinusoidsFading(4, power_delay_profile("TDL-B50").n_taps, 4, 4, 10.0, 0.5e-3, seed=8)
    profile = power_delay_profile("TDL-B50")
    freq = tap_to_subband_matrix(profile.delays_s, profile.powers,
                                 subband_centre_frequencies_hz(52, link.subband_rb, 30)).astype(np.complex64)
    l_gnb, l_ue = cholesky_factors("medium", 4, 4)
    h = apply_correlation(frequency_response(replay.advance(), freq), l_ue, l_gnb)
    w = eigen_precoders(h, link.subband_n_rb)
    sinr = mmse_sinr(h, w, 10.0 ** (link.ue_snr_db / 10.0))
    np.testing.assert_allclose(out.sinr_db, 10.0 * np.log10(sinr), atol=1e-3)


def test_mmse_sinr_matches_direct_formula_for_one_matrix() -> None:
    rng = np.random.default_rng(0)
    h = (rng.standard_normal((1, 1, 4, 4)) + 1j * rng.standard_normal((1, 1, 4, 4))) / np.sqrt(2)
    w = eigen_precoders(h, np.ones(1))
    sinr = mmse_sinr(h, w, np.array([10.0]))
    for rank in range(1, 5):
        g = h[0, 0] @ w[0, :, :rank] * np.sqrt(10.0 / rank)
        for k in range(rank):
            others = np.delete(g, k, axis=1)
            cov = np.eye(4) + others @ others.conj().T
            direct = np.real(g[:, k].conj() @ np.linalg.solve(cov, g[:, k]))
            assert sinr[0, rank - 1, k, 0] == pytest.approx(direct, rel=1e-9)


def test_subband_size_follows_the_delay_spread() -> None:
    from e2sim.channel import auto_subband_rb

    sizes = [auto_subband_rb(Scenario(profile=p)) for p in ("TDL-A30", "TDL-B50", "TDL-B100", "TDL-C300")]
    assert sizes == [8, 4, 2, 1]
    link = LinkChannel(Scenario(profile="TDL-C300", n_ue=2, n_rb=106))
    assert link.n_subbands == 106 and link.step().sinr_db.shape == (2, 4, 4, 106)
    assert int(LinkChannel(Scenario(n_ue=2)).subband_n_rb.sum()) == 106
