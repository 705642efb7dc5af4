"""Kronecker antenna-correlation model of TS 36.101 / TS 38.101-4 Annex B.

Per side, the correlation matrix of a uniform array with 1, 2 or 4 elements is built from a
single coefficient c (α at the gNB, β at the UE):

    2 ports:  [[1, c], [c*, 1]]
    4 ports:  R_ij = c^(|i−j|²/9) above the diagonal — i.e. rows
              [1, c^(1/9), c^(4/9), c], Hermitian below the diagonal.

The channel spatial correlation is R = R_gNB ⊗ R_UE. Levels (α, β): low (0, 0), medium
(0.3, 0.9) ("medium correlation A"), high (0.9, 0.9). For the high level the annex makes R
safely positive definite by R_high = (R + a·I) / (1 + a) with a = 1.2e-4 for 4x4 and
1e-4 when one side has 4 antennas and the other 2 (a = 0 for 2x2); we apply the same
scaling as a small identity loading split evenly between the two Kronecker factors
((R_gNB + a_g I)/(1 + a_g), a_g = a/2 and likewise at the UE), which keeps the Kronecker
structure and differs from the annex's matrix by less than a (≈ 1e-4) in every entry.

The fading is correlated as H = L_UE · H_w · L_gNBᵀ with L the lower Cholesky factors
(R = L Lᴴ) and H_w i.i.d. CN(0, 1) entries [n_rx, n_tx]; then
E[vec(H) vec(H)ᴴ] = R_gNB ⊗ R_UE with vec stacking columns (UE index fastest).
All coefficients are real, so conjugates make no difference.
"""

from __future__ import annotations

import numpy as np

CORRELATION_COEFFICIENTS: dict[str, tuple[float, float]] = {
    "low": (0.0, 0.0),
    "medium": (0.3, 0.9),
    "high": (0.9, 0.9),
}
"""(α at the gNB, β at the UE) per correlation level."""

HIGH_CORRELATION_LOADING: dict[tuple[int, int], float] = {
    (4, 4): 1.2e-4,
    (4, 2): 1e-4,
    (2, 4): 1e-4,
}
"""Annex B identity loading a of the high level, keyed by (n_tx, n_rx); 0 otherwise."""


def side_correlation_matrix(coefficient: float, n_antennas: int) -> np.ndarray:
    """Correlation matrix of one side, float64 [n, n], n in {1, 2, 4}.

    R_ij = c^(((j − i)/(n − 1))²) for n = 4 exponents (0, 1/9, 4/9, 1); for n = 2, c.

    Raises:
        ValueError: n_antennas not in {1, 2, 4} or coefficient outside [0, 1].
    """
    if n_antennas not in (1, 2, 4):
        raise ValueError(f"n_antennas must be 1, 2 or 4, got {n_antennas!r}")
    if not 0.0 <= coefficient <= 1.0:
        raise ValueError(f"correlation coefficient must be in [0, 1], got {coefficient!r}")
    if n_antennas == 1:
        return np.ones((1, 1))
    index = np.arange(n_antennas, dtype=np.float64)
    exponent = ((index[None, :] - index[:, None]) / (n_antennas - 1)) ** 2
    # 0 ** 0 = 1 on the diagonal, as wanted for c = 0 (uncorrelated).
    return np.power(coefficient, exponent)


def correlation_factors(level: str, n_tx: int, n_rx: int) -> tuple[np.ndarray, np.ndarray]:
    """Side correlation matrices (R_gNB [n_tx, n_tx], R_UE [n_rx, n_rx]) of a level.

    Includes the high-level identity loading (see module docstring).

    Raises:
        ValueError: unknown level.
    """
    if level not in CORRELATION_COEFFICIENTS:
        raise ValueError(
            f"correlation must be one of {tuple(CORRELATION_COEFFICIENTS)}, got {level!r}"
        )
    alpha, beta = CORRELATION_COEFFICIENTS[level]
    r_gnb = side_correlation_matrix(alpha, n_tx)
    r_ue = side_correlation_matrix(beta, n_rx)
    if level == "high":
        side_loading = HIGH_CORRELATION_LOADING.get((n_tx, n_rx), 0.0) / 2.0
        r_gnb = (r_gnb + side_loading * np.eye(n_tx)) / (1.0 + side_loading)
        r_ue = (r_ue + side_loading * np.eye(n_rx)) / (1.0 + side_loading)
    return r_gnb, r_ue


def spatial_correlation_matrix(level: str, n_tx: int, n_rx: int) -> np.ndarray:
    """R = R_gNB ⊗ R_UE, float64 [n_tx·n_rx, n_tx·n_rx] (covariance of vec(H))."""
    r_gnb, r_ue = correlation_factors(level, n_tx, n_rx)
    return np.kron(r_gnb, r_ue)


def cholesky_factors(level: str, n_tx: int, n_rx: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors (L_gNB [n_tx, n_tx], L_UE [n_rx, n_rx]) with R = L Lᵀ.

    Apply as H = L_UE · H_w · L_gNBᵀ.
    """
    r_gnb, r_ue = correlation_factors(level, n_tx, n_rx)
    return np.linalg.cholesky(r_gnb), np.linalg.cholesky(r_ue)
