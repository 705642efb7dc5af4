"""Time-varying Rayleigh fading of every tap and antenna pair by a sum of sinusoids.

Each tap t of each antenna pair (rx, tx) of each UE u carries an independent unit-power
complex process (the classical Jakes / Clarke model with random arrival angles):

    g(t) = (1 / √M) Σ_{m=1..M} exp(j (ω_m t + φ_m)),   ω_m = 2π f_D cos(α_m),

with α_m, φ_m i.i.d. uniform on [0, 2π) (M sinusoids, default 16). Over the ensemble,
E[g(t)] = 0, E|g|² = 1 and E[g(t + τ) g*(t)] = J0(2π f_D τ); a single realisation only
approaches this for large M.

Time is the slot index n (t = n · slot duration): the channel is a deterministic function
of n and the seed, continuous across CSI periods. To be cheap per slot it is evaluated
exactly (float64 phase) at every anchor slot (multiples of ``anchor_interval``) and advanced
between anchors by a complex64 phasor rotation z ← z · exp(j ω Δt), whose round-off over
64 slots stays below 1e-5 (:meth:`SumOfSinusoidsFading.coefficients_at` reproduces the same
numbers for any slot).

Memory: 24 bytes per sinusoid (float32 ω and φ, complex64 state and rotation), i.e.
U · T · n_rx · n_tx · M · 24 B (about 150 MB for 1,000 UEs of TDL-C 4x4 with M = 16).
"""

from __future__ import annotations

import numpy as np

DEFAULT_SINUSOIDS: int = 16
"""Sinusoids per tap and antenna pair."""

DEFAULT_ANCHOR_INTERVAL: int = 64
"""Slots between exact (re-anchored) evaluations of the phasors."""


class SumOfSinusoidsFading:
    """Independent sum-of-sinusoids Rayleigh processes, shape [U, T, n_rx, n_tx].

    Args:
        n_ue: number of UEs U.
        n_taps: taps per antenna pair T.
        n_rx: UE antennas.
        n_tx: gNB antennas.
        doppler_hz: maximum Doppler shift f_D, Hz (0 gives a static random channel).
        slot_s: slot duration, s.
        seed: seed of the angles and phases (stream ``[seed, 2]``).
        n_sinusoids: sinusoids per process M.
        anchor_interval: slots between exact evaluations.
    """

    def __init__(
        self,
        n_ue: int,
        n_taps: int,
        n_rx: int,
        n_tx: int,
        doppler_hz: float,
        slot_s: float,
        seed: int,
        n_sinusoids: int = DEFAULT_SINUSOIDS,
        anchor_interval: int = DEFAULT_ANCHOR_INTERVAL,
    ) -> None:
        if n_sinusoids < 1:
            raise ValueError(f"n_sinusoids must be >= 1, got {n_sinusoids}")
        if anchor_interval < 1:
            raise ValueError(f"anchor_interval must be >= 1, got {anchor_interval}")
        if doppler_hz < 0.0:
            raise ValueError(f"doppler_hz must be >= 0, got {doppler_hz}")
        if slot_s <= 0.0:
            raise ValueError(f"slot_s must be > 0, got {slot_s}")
        self.shape: tuple[int, int, int, int] = (n_ue, n_taps, n_rx, n_tx)
        self.doppler_hz = float(doppler_hz)
        self.slot_s = float(slot_s)
        self.n_sinusoids = int(n_sinusoids)
        self.anchor_interval = int(anchor_interval)
        rng = np.random.default_rng([seed, 2])
        full = (*self.shape, self.n_sinusoids)
        arrival_angle = rng.uniform(0.0, 2.0 * np.pi, size=full)
        self._omega = (2.0 * np.pi * self.doppler_hz * np.cos(arrival_angle)).astype(np.float32)
        self._phase = rng.uniform(0.0, 2.0 * np.pi, size=full).astype(np.float32)
        self._rotation = np.exp(1j * self._omega.astype(np.float64) * self.slot_s).astype(
            np.complex64
        )
        self._state = np.empty(full, dtype=np.complex64)
        self._slot = -1

    @property
    def slot(self) -> int:
        """Slot of the current state (-1 before the first :meth:`advance`)."""
        return self._slot

    def _exact_phasors(self, slot: int) -> np.ndarray:
        """exp(j(ω n Δt + φ)) at slot n, complex64 [U, T, n_rx, n_tx, M] (float64 phase)."""
        phase = self._omega.astype(np.float64) * (slot * self.slot_s) + self._phase
        np.mod(phase, 2.0 * np.pi, out=phase)
        return np.exp(1j * phase).astype(np.complex64)

    def advance(self) -> np.ndarray:
        """Move to the next slot and return its coefficients, complex64 [U, T, n_rx, n_tx].

        Each coefficient is (1/√M) Σ_m exp(j(ω_m n Δt + φ_m)).
        """
        self._slot += 1
        if self._slot % self.anchor_interval == 0:
            self._state = self._exact_phasors(self._slot)
        else:
            np.multiply(self._state, self._rotation, out=self._state)
        return self._state.sum(axis=-1) * np.float32(1.0 / np.sqrt(self.n_sinusoids))

    def coefficients_at(self, slot: int) -> np.ndarray:
        """Coefficients at any slot n >= 0, identical to what :meth:`advance` gives there.

        Complex64 [U, T, n_rx, n_tx]; does not change the current state.
        """
        if slot < 0:
            raise ValueError(f"slot must be >= 0, got {slot}")
        anchor = slot - slot % self.anchor_interval
        state = self._exact_phasors(anchor)
        for _ in range(slot - anchor):
            np.multiply(state, self._rotation, out=state)
        return state.sum(axis=-1) * np.float32(1.0 / np.sqrt(self.n_sinusoids))

    def exact_coefficients_at(self, time_s: np.ndarray | float) -> np.ndarray:
        """Coefficients at arbitrary times (float64 phase, no rotation round-off).

        Args:
            time_s: float64 [K] times, s.

        Returns:
            complex128 [K, U, T, n_rx, n_tx].
        """
        times = np.atleast_1d(np.asarray(time_s, dtype=np.float64))
        omega = self._omega.astype(np.float64)
        phase = self._phase.astype(np.float64)
        out = np.empty((times.shape[0], *self.shape), dtype=np.complex128)
        for k, t in enumerate(times):
            out[k] = np.exp(1j * (omega * t + phase)).sum(axis=-1) / np.sqrt(self.n_sinusoids)
        return out
