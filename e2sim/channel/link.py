"""The live radio link of a cell: per-slot, per-rank post-MMSE SINR of every UE.

:class:`LinkChannel` ties the pieces together, vectorised over UEs (no per-UE loop):

1. tap fading g (:mod:`e2sim.channel.fading`), one slot per :meth:`LinkChannel.step`;
2. subband frequency response H_s and Kronecker correlation (:mod:`e2sim.channel.phy`,
   :mod:`e2sim.channel.correlation`);
3. at CSI instants (slot 0, then every ``csi_period_slots``) new eigen-precoders, kept
   until the next CSI instant so the CSI ages in between;
4. linear-MMSE SINR per rank, layer and subband at the UE's mean SNR, equal power per layer.

Frequency granularity: one SINR sample per subband of ``subband_rb`` RBs, at the subband's
centre frequency. By default it follows the delay spread (:func:`auto_subband_rb`): the
largest of 8, 4, 2, 1 RBs whose width is at most half the coherence bandwidth
B_c ≈ 1 / (5 τ_rms) — 8 RBs (14 subbands of 106 RBs) for TDL-A10/A30, 4 for TDL-B50,
2 for TDL-B100, 1 (per RB) for TDL-B200/C200/C300. Coarser sampling of a strongly
frequency-selective channel misrepresents its frequency diversity: at TDL-C300 the EESM
effective SINR with 8-RB subbands differs from per-RB by ~1 dB rms, while per-RB costs
about 3–4× the time of 8-RB at 64 UEs (``benchmarks/channel_speed.py``).

The ``"AWGN"`` profile has no fading: H_s = the n_rx × n_tx DFT matrix (unit-modulus
entries, orthogonal columns) on every subband and slot, so each layer of rank r sees
SINR = n_rx ρ / r.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from e2sim.channel.correlation import cholesky_factors
from e2sim.channel.fading import DEFAULT_SINUSOIDS, SumOfSinusoidsFading
from e2sim.channel.phy import (
    MAX_RANK,
    apply_correlation,
    eigen_precoders,
    frequency_response,
    mmse_sinr,
    subband_centre_frequencies_hz,
    subband_layout,
    tap_to_subband_matrix,
    wideband_snr,
)
from e2sim.channel.profiles import power_delay_profile
from e2sim.channel.scenario import AWGN_PROFILE, Scenario

DEFAULT_SUBBAND_RB: int = 8
"""Largest (and, for flat or short-delay channels, the default) RBs per SINR subband."""

COHERENCE_FRACTION: float = 0.5
"""Largest subband width as a fraction of the coherence bandwidth 1 / (5 τ_rms)."""


def auto_subband_rb(scenario: Scenario) -> int:
    """Subband size in RBs for a scenario: the largest of 8, 4, 2, 1 with
    subband_rb · 12 · scs <= 0.5 / (5 τ_rms); 8 for AWGN."""
    if scenario.family == AWGN_PROFILE:
        return DEFAULT_SUBBAND_RB
    coherence_hz = 1.0 / (5.0 * scenario.delay_spread_ns * 1e-9)
    rb_hz = 12.0 * scenario.scs_khz * 1e3
    size = DEFAULT_SUBBAND_RB
    while size > 1 and size * rb_hz > COHERENCE_FRACTION * coherence_hz:
        size //= 2
    return size


@dataclass(frozen=True)
class SlotSINR:
    """The radio state of all UEs in one slot.

    Attributes:
        slot: slot index n (0-based; time = n · slot duration).
        sinr_db: float32 [U, 4 ranks, 4 layers, S subbands] post-MMSE SINR, dB; entry
            [u, r − 1, k, s] is layer k of rank r; NaN for k >= r or r > min(n_tx, n_rx).
            Precoders are those fixed at the last CSI instant.
        csi_instant: whether the precoders were refreshed in this slot.
        csirs_snr_db: float32 [U] wideband CSI-RS SNR estimate, dB (true value plus the
            scenario's Gaussian measurement error).
    """

    slot: int
    sinr_db: np.ndarray
    csi_instant: bool
    csirs_snr_db: np.ndarray


def _dft_channel(n_rx: int, n_tx: int) -> np.ndarray:
    """Static AWGN channel: DFT matrix [n_rx, n_tx], entries exp(−j2π i k / max(n_rx, n_tx))."""
    size = max(n_rx, n_tx)
    i = np.arange(n_rx)[:, None]
    k = np.arange(n_tx)[None, :]
    return np.exp(-2j * np.pi * i * k / size)


class LinkChannel:
    """Live per-slot link model of one cell.

    Args:
        scenario: the cell's radio scenario.
        subband_rb: RBs per subband (S = ceil(n_rb / subband_rb)); None picks
            :func:`auto_subband_rb`.
        n_sinusoids: sinusoids per tap fading process.

    Attributes:
        scenario: the scenario.
        ue_snr_db: float64 [U] per-UE mean SNR ρ, dB (drawn once from the scenario seed).
        subband_n_rb: int64 [S] RBs per subband (weights for wideband averages/EESM).
    """

    def __init__(
        self,
        scenario: Scenario,
        subband_rb: int | None = None,
        n_sinusoids: int = DEFAULT_SINUSOIDS,
    ) -> None:
        self.scenario = scenario
        self.ue_snr_db: np.ndarray = scenario.ue_mean_snr_db()
        self._snr_linear = 10.0 ** (self.ue_snr_db / 10.0)
        if subband_rb is None:
            subband_rb = auto_subband_rb(scenario)
        _, self.subband_n_rb = subband_layout(scenario.n_rb, subband_rb)
        self.subband_rb = int(subband_rb)
        n_sub = self.subband_n_rb.shape[0]
        self._static = scenario.family == AWGN_PROFILE
        if self._static:
            flat = _dft_channel(scenario.n_rx, scenario.n_tx).astype(np.complex64)
            self._static_channel = np.broadcast_to(
                flat, (scenario.n_ue, n_sub, scenario.n_rx, scenario.n_tx)
            )
            self._fading: SumOfSinusoidsFading | None = None
        else:
            profile = power_delay_profile(scenario.profile)
            frequencies = subband_centre_frequencies_hz(
                scenario.n_rb, subband_rb, scenario.scs_khz
            )
            self._tap_to_subband = tap_to_subband_matrix(
                profile.delays_s, profile.powers, frequencies
            ).astype(np.complex64)
            self._fading = SumOfSinusoidsFading(
                scenario.n_ue,
                profile.n_taps,
                scenario.n_rx,
                scenario.n_tx,
                scenario.doppler_hz,
                scenario.slot_s,
                scenario.seed,
                n_sinusoids=n_sinusoids,
            )
            gnb_factor, ue_factor = cholesky_factors(
                scenario.correlation, scenario.n_tx, scenario.n_rx
            )
            self._correlated = scenario.correlation != "low"
            self._gnb_factor = gnb_factor
            self._ue_factor = ue_factor
        self._measurement_rng = np.random.default_rng([scenario.seed, 3])
        self._precoders = np.zeros(
            (scenario.n_ue, scenario.n_tx, scenario.n_tx), dtype=np.complex128
        )
        self._slot = -1

    @property
    def n_subbands(self) -> int:
        """Number of subbands S."""
        return int(self.subband_n_rb.shape[0])

    @property
    def slot(self) -> int:
        """Index of the last slot returned by :meth:`step` (-1 before the first)."""
        return self._slot

    @property
    def precoders(self) -> np.ndarray:
        """Current precoders, complex128 [U, n_tx, n_tx] (columns by decreasing gain)."""
        return self._precoders.copy()

    def channel(self) -> np.ndarray:
        """Advance the fading by one slot and return H, complex64 [U, S, n_rx, n_tx]."""
        if self._fading is None:
            return self._static_channel
        response = frequency_response(self._fading.advance(), self._tap_to_subband)
        if self._correlated:
            response = apply_correlation(response, self._ue_factor, self._gnb_factor)
        return response

    def step(self) -> SlotSINR:
        """Advance one slot; refresh precoders at CSI instants; return the slot's SINRs."""
        channel = self.channel()
        self._slot += 1
        csi_instant = self._slot % self.scenario.csi_period_slots == 0
        if csi_instant:
            self._precoders = eigen_precoders(channel, self.subband_n_rb)
        sinr = mmse_sinr(channel, self._precoders, self._snr_linear)
        with np.errstate(divide="ignore"):
            sinr_db = (10.0 * np.log10(sinr)).astype(np.float32)
        snr = wideband_snr(channel, self._snr_linear, self.subband_n_rb)
        snr_db = 10.0 * np.log10(np.maximum(snr, 1e-30))
        error = self._measurement_rng.standard_normal(self.scenario.n_ue)
        snr_db = snr_db + self.scenario.csi_snr_error_db * error
        return SlotSINR(
            slot=self._slot,
            sinr_db=sinr_db,
            csi_instant=bool(csi_instant),
            csirs_snr_db=snr_db.astype(np.float32),
        )


__all__ = ["LinkChannel", "SlotSINR", "MAX_RANK", "DEFAULT_SUBBAND_RB", "auto_subband_rb"]
