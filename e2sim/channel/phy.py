"""Frequency response, eigen-precoding and linear-MMSE post-equaliser SINR, per subband.

Notation (U UEs, T taps, S subbands, n_rx UE antennas, n_tx gNB ports, r layers):

* Frequency response of subband s with centre frequency f_s (Hz, relative to the carrier):
  H_s = Σ_t √p_t g_t exp(−j 2π f_s τ_t), complex [U, S, n_rx, n_tx], where g_t are the tap
  fading coefficients and p_t the normalised tap powers (E‖H_s‖²_F = n_rx n_tx).
* Precoders (computed at CSI instants only): eigenvectors of the RB-weighted wideband
  covariance C = Σ_s w_s H_sᴴ H_s (Σ w_s = 1), sorted by decreasing eigenvalue; the rank-r
  precoder is W_r = the first r columns (unit-norm, orthogonal: the r dominant right
  singular directions of the wideband channel).
* SINR of layer k at rank r with total transmit SNR ρ split equally over layers:
  A = I_r + (ρ / r) (H W_r)ᴴ (H W_r),   SINR_k = 1 / [A⁻¹]_kk − 1   (linear MMSE).

Ranks above min(n_tx, n_rx) and layers k >= r are NaN.
"""

from __future__ import annotations

import numpy as np

MAX_RANK: int = 4
"""Number of ranks (and layers per rank) of the SINR output."""

SINR_FLOOR: float = 1e-6
"""Smallest SINR returned (−60 dB), so that dB values stay finite."""


def subband_layout(n_rb: int, subband_rb: int) -> tuple[np.ndarray, np.ndarray]:
    """Partition n_rb resource blocks into subbands of ``subband_rb`` RBs (last may be short).

    Returns:
        (first_rb int64 [S], n_rb_per_subband int64 [S]), S = ceil(n_rb / subband_rb).

    Raises:
        ValueError: n_rb or subband_rb < 1.
    """
    if n_rb < 1:
        raise ValueError(f"n_rb must be >= 1, got {n_rb}")
    if subband_rb < 1:
        raise ValueError(f"subband_rb must be >= 1, got {subband_rb}")
    first = np.arange(0, n_rb, subband_rb, dtype=np.int64)
    size = np.minimum(subband_rb, n_rb - first)
    return first, size


def subband_centre_frequencies_hz(n_rb: int, subband_rb: int, scs_khz: int) -> np.ndarray:
    """Centre frequency of each subband relative to the carrier centre, float64 [S] Hz.

    f_s = (first_rb_s + n_rb_s / 2 − n_rb / 2) · 12 · scs.
    """
    first, size = subband_layout(n_rb, subband_rb)
    rb_bandwidth_hz = 12.0 * scs_khz * 1e3
    return (first + size / 2.0 - n_rb / 2.0) * rb_bandwidth_hz


def tap_to_subband_matrix(
    delays_s: np.ndarray, powers: np.ndarray, frequencies_hz: np.ndarray
) -> np.ndarray:
    """F[s, t] = √p_t exp(−j 2π f_s τ_t), complex128 [S, T]."""
    phase = -2.0 * np.pi * np.outer(frequencies_hz, delays_s)
    return np.sqrt(powers)[None, :] * np.exp(1j * phase)


def frequency_response(taps: np.ndarray, tap_to_subband: np.ndarray) -> np.ndarray:
    """H_s = Σ_t F[s, t] g_t.

    Args:
        taps: complex [U, T, n_rx, n_tx] tap fading coefficients g.
        tap_to_subband: complex [S, T] from :func:`tap_to_subband_matrix`.

    Returns:
        complex [U, S, n_rx, n_tx] (dtype of the product).
    """
    n_ue, n_taps, n_rx, n_tx = taps.shape
    flat = taps.reshape(n_ue, n_taps, n_rx * n_tx)
    response = np.matmul(tap_to_subband.astype(taps.dtype), flat)
    return response.reshape(n_ue, tap_to_subband.shape[0], n_rx, n_tx)


def apply_correlation(
    channel: np.ndarray, ue_factor: np.ndarray, gnb_factor: np.ndarray
) -> np.ndarray:
    """Correlated channel H = L_UE · H_w · L_gNBᵀ, same shape [..., n_rx, n_tx] as H_w.

    Linear in H_w, so it may be applied per subband after :func:`frequency_response`.
    """
    dtype = channel.dtype
    return np.matmul(np.matmul(ue_factor.astype(dtype), channel), gnb_factor.T.astype(dtype))


def wideband_covariance(channel: np.ndarray, subband_weights: np.ndarray) -> np.ndarray:
    """C = Σ_s w_s H_sᴴ H_s, complex128 [U, n_tx, n_tx] (w normalised to sum 1).

    Args:
        channel: complex [U, S, n_rx, n_tx].
        subband_weights: float [S] (e.g. RBs per subband).
    """
    weights = np.asarray(subband_weights, dtype=np.float64)
    weights = weights / weights.sum()
    h = channel.astype(np.complex128)
    gram = np.matmul(np.conj(np.swapaxes(h, -1, -2)), h)
    return np.einsum("s,usij->uij", weights, gram)


def eigen_precoders(channel: np.ndarray, subband_weights: np.ndarray) -> np.ndarray:
    """Eigenvectors of the wideband covariance, decreasing eigenvalue order.

    Returns:
        complex128 [U, n_tx, n_tx]; column k is the k-th dominant direction; the rank-r
        precoder is ``W[..., :r]``.
    """
    _, vectors = np.linalg.eigh(wideband_covariance(channel, subband_weights))
    return vectors[..., ::-1]


def inverse_diagonal_hpd(matrix: np.ndarray) -> np.ndarray:
    """Diagonal of A⁻¹ for a stack of small Hermitian positive-definite matrices.

    Cholesky A = L Lᴴ and M = L⁻¹ (both lower triangular) written out element by element
    for the fixed small size r, each element vectorised over the stack (much faster than a
    batched ``np.linalg.inv`` for r <= 4); then [A⁻¹]_kk = Σ_{i>=k} |M_ik|².

    Args:
        matrix: complex [..., r, r] Hermitian positive definite.

    Returns:
        float64 [..., r].
    """
    size = matrix.shape[-1]
    lower: list[list[np.ndarray]] = [[np.zeros(0)] * size for _ in range(size)]
    for j in range(size):
        pivot = matrix[..., j, j].real.copy()
        for k in range(j):
            pivot -= np.abs(lower[j][k]) ** 2
        root = np.sqrt(np.maximum(pivot, 1e-300))
        lower[j][j] = root
        for i in range(j + 1, size):
            value = matrix[..., i, j].copy()
            for k in range(j):
                value -= lower[i][k] * np.conj(lower[j][k])
            lower[i][j] = value / root
    inverse: list[list[np.ndarray]] = [[np.zeros(0)] * size for _ in range(size)]
    for i in range(size):
        inverse[i][i] = 1.0 / lower[i][i]
        for j in range(i - 1, -1, -1):
            acc = lower[i][j] * inverse[j][j]
            for k in range(j + 1, i):
                acc = acc + lower[i][k] * inverse[k][j]
            inverse[i][j] = -acc / lower[i][i]
    diagonal = [
        sum(np.abs(inverse[i][k]) ** 2 for i in range(k, size)) for k in range(size)
    ]
    return np.stack(diagonal, axis=-1)


def mmse_sinr(channel: np.ndarray, precoders: np.ndarray, snr_linear: np.ndarray) -> np.ndarray:
    """Linear-MMSE post-equaliser SINR per rank, layer and subband (linear).

    Args:
        channel: complex [U, S, n_rx, n_tx] current channel H_s.
        precoders: complex [U, n_tx, n_tx] from :func:`eigen_precoders` (possibly aged).
        snr_linear: float [U] total transmit SNR ρ per UE (linear).

    Returns:
        float64 [U, 4, 4, S]: entry [u, r−1, k, s] is SINR_k of rank r on subband s;
        NaN for k >= r and for r > min(n_tx, n_rx).
    """
    n_ue, n_sub, n_rx, n_tx = channel.shape
    # H W and its Gram in the channel's precision (complex64 in the live link: half the
    # time of complex128), the r x r systems in float64.
    effective = np.matmul(channel, precoders[:, None, :, :].astype(channel.dtype))
    gram = np.matmul(np.conj(np.swapaxes(effective, -1, -2)), effective).astype(np.complex128)
    rho = np.asarray(snr_linear, dtype=np.float64)[:, None, None, None]
    out = np.full((n_ue, MAX_RANK, MAX_RANK, n_sub), np.nan)
    for rank in range(1, min(n_tx, n_rx, MAX_RANK) + 1):
        system = np.eye(rank) + (rho / rank) * gram[..., :rank, :rank]
        diag = inverse_diagonal_hpd(system)  # [U, S, rank]
        sinr = 1.0 / np.maximum(diag, 1e-30) - 1.0
        out[:, rank - 1, :rank, :] = np.swapaxes(np.maximum(sinr, SINR_FLOOR), -1, -2)
    return out


def wideband_snr(channel: np.ndarray, snr_linear: np.ndarray, subband_weights: np.ndarray) -> np.ndarray:
    """CSI-RS wideband SNR per antenna pair, float64 [U]: ρ Σ_s w_s ‖H_s‖²_F / (n_rx n_tx)."""
    weights = np.asarray(subband_weights, dtype=np.float64)
    weights = weights / weights.sum()
    power = np.einsum("s,us->u", weights, np.sum(np.abs(channel) ** 2, axis=(-2, -1)))
    n_rx, n_tx = channel.shape[-2:]
    return np.asarray(snr_linear, dtype=np.float64) * power / (n_rx * n_tx)
