"""TR 38.901 §7.7.2 tapped-delay-line (TDL) power-delay profiles, NLOS families A, B, C.

Numbers: 3GPP TR 38.901 Tables 7.7.2-1 (TDL-A), 7.7.2-2 (TDL-B) and 7.7.2-3 (TDL-C):
normalised tap delays (multiply by the wanted RMS delay spread) and tap powers in dB.
The delays are kept in the specification's row order (in TDL-A and TDL-B they are not
monotone); nothing relies on order.

We use these *scaled* 38.901 profiles for every ``TDL-<family><ns>`` name, including
``TDL-A30``, ``TDL-B100`` and ``TDL-C300`` which TS 38.101-4 Annex B.2.1 also defines as
fixed (slightly different, fewer-tap) tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from e2sim.channel.scenario import AWGN_PROFILE, parse_profile

_NORMALISED_DELAYS: dict[str, tuple[float, ...]] = {
    "A": (
        0.0000, 0.3819, 0.4025, 0.5868, 0.4610, 0.5375, 0.6708, 0.5750, 0.7618, 1.5375,
        1.8978, 2.2242, 2.1718, 2.4942, 2.5119, 3.0582, 4.0810, 4.4579, 4.5695, 4.7966,
        5.0066, 5.3043, 9.6586,
    ),
    "B": (
        0.0000, 0.1072, 0.2155, 0.2095, 0.2870, 0.2986, 0.3752, 0.5055, 0.3681, 0.3697,
        0.5700, 0.5283, 1.1021, 1.2756, 1.5474, 1.7842, 2.0169, 2.8294, 3.0219, 3.6187,
        4.1067, 4.2790, 4.7834,
    ),
    "C": (
        0.0000, 0.2099, 0.2219, 0.2329, 0.2176, 0.6366, 0.6448, 0.6560, 0.6584, 0.7935,
        0.8213, 0.9336, 1.2285, 1.3083, 2.1704, 2.7105, 4.2589, 4.6003, 5.4902, 5.6077,
        6.3065, 6.6374, 7.0427, 8.6523,
    ),
}

_POWERS_DB: dict[str, tuple[float, ...]] = {
    "A": (
        -13.4, 0.0, -2.2, -4.0, -6.0, -8.2, -9.9, -10.5, -7.5, -15.9, -6.6, -16.7, -12.4,
        -15.2, -10.8, -11.3, -12.7, -16.2, -18.3, -18.9, -16.6, -19.9, -29.7,
    ),
    "B": (
        0.0, -2.2, -4.0, -3.2, -9.8, -1.2, -3.4, -5.2, -7.6, -3.0, -8.9, -9.0, -4.8, -5.7,
        -7.5, -1.9, -7.6, -12.2, -9.8, -11.4, -14.9, -9.2, -11.3,
    ),
    "C": (
        -4.4, -1.2, -3.5, -5.2, -2.5, 0.0, -2.2, -3.9, -7.4, -7.1, -10.7, -11.1, -5.1,
        -6.8, -8.7, -13.2, -13.9, -13.9, -15.8, -17.1, -16.0, -15.7, -21.6, -22.8,
    ),
}


@dataclass(frozen=True)
class PowerDelayProfile:
    """Tap delays and normalised tap powers of one profile.

    Attributes:
        name: profile name, e.g. ``"TDL-A30"`` or ``"AWGN"``.
        delays_s: float64 [T] tap delays, s (normalised delay × RMS delay spread).
        powers: float64 [T] linear tap powers, normalised so that sum(powers) = 1
            (unit mean channel gain per antenna pair).
    """

    name: str
    delays_s: np.ndarray
    powers: np.ndarray

    @property
    def n_taps(self) -> int:
        """Number of taps T."""
        return int(self.delays_s.shape[0])

    def rms_delay_spread_s(self) -> float:
        """Power-weighted RMS delay spread, s: sqrt(Σ p τ² − (Σ p τ)²) with Σ p = 1."""
        mean = float(np.sum(self.powers * self.delays_s))
        return float(np.sqrt(max(np.sum(self.powers * self.delays_s**2) - mean**2, 0.0)))


def power_delay_profile(profile: str) -> PowerDelayProfile:
    """The power-delay profile of a scenario profile name.

    ``"AWGN"`` is one tap of unit power at delay 0 (a flat channel). ``"TDL-X<ns>"`` is the
    38.901 family X with delays scaled by ``<ns>`` nanoseconds and powers normalised to a
    total of 1.

    Raises:
        ValueError: unknown profile name.
    """
    family, delay_spread_ns = parse_profile(profile)
    if family == AWGN_PROFILE:
        return PowerDelayProfile(profile, np.zeros(1), np.ones(1))
    delays = np.asarray(_NORMALISED_DELAYS[family], dtype=np.float64) * delay_spread_ns * 1e-9
    powers = 10.0 ** (np.asarray(_POWERS_DB[family], dtype=np.float64) / 10.0)
    return PowerDelayProfile(profile, delays, powers / powers.sum())
