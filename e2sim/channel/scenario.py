"""The radio scenario of one simulated cell: channel profile, mobility, antennas, SNRs.

A :class:`Scenario` is a frozen, validated value object. Everything random in the radio
model (fading phases, Doppler angles, per-UE mean SNR, CSI-RS measurement error) derives
from its ``seed``, so one scenario gives the same numbers on every run.

Profile names are ``"AWGN"`` (flat, static, unit-gain i.i.d. MIMO channel) or
``"TDL-<A|B|C><delay spread in ns>"``, e.g. ``"TDL-A30"``. TDL profiles are the **scaled
TR 38.901 §7.7.2 profiles** (normalised delays × the RMS delay spread), not the fixed
TS 38.101-4 Annex B.2.1 tap tables of the same name; see :mod:`e2sim.channel.profiles`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from e2sim.channel.bler import DEFAULT_CURVES, LEGACY_CURVES, check_curves
from lighttune_core.linkadapt.presets import DEFAULT_PRESET, get_preset

AWGN_PROFILE: str = "AWGN"
"""Name of the non-fading profile."""

PROFILE_PATTERN: re.Pattern[str] = re.compile(r"^TDL-([ABC])(\d+(?:\.\d+)?)$")
"""TDL profile names: family letter, then the RMS delay spread in ns."""

CORRELATION_LEVELS: tuple[str, ...] = ("low", "medium", "high")
"""Antenna correlation levels of TS 36.101 / 38.101-4 Annex B."""

CSI_PERIODS_MS: tuple[int, ...] = (5, 10, 20, 40, 80, 160)
"""Allowed CSI-RS periodicities, ms."""

MAX_DOPPLER_HZ: float = 500.0
"""Largest supported maximum Doppler shift, Hz."""

SUPPORTED_SCS_KHZ: tuple[int, ...] = (15, 30, 60)
"""Supported subcarrier spacings, kHz (slot = 1 ms · 15 / scs)."""

MAX_ANTENNAS: int = 4
"""Largest number of antennas per side (4x4 MIMO)."""

MAX_DELAY_SPREAD_NS: float = 5000.0
"""Largest accepted RMS delay spread of a TDL profile, ns."""

MAX_SCHED_INTERVAL_SLOTS: int = 1024
"""Largest round-robin scheduling interval of the DU, slots."""


def parse_profile(profile: str) -> tuple[str, float]:
    """Split a profile name into ``(family, rms_delay_spread_ns)``.

    ``"AWGN"`` gives ``("AWGN", 0.0)``; ``"TDL-B100"`` gives ``("B", 100.0)``.

    Raises:
        ValueError: the name is neither ``"AWGN"`` nor ``"TDL-<A|B|C><ns>"`` with a delay
            spread in (0, 5000] ns.
    """
    if not isinstance(profile, str):
        raise ValueError(f"profile must be a string, got {type(profile).__name__}")
    if profile == AWGN_PROFILE:
        return AWGN_PROFILE, 0.0
    match = PROFILE_PATTERN.match(profile)
    if match is None:
        raise ValueError(
            f"unknown profile {profile!r}: expected 'AWGN' or 'TDL-<A|B|C><delay spread ns>'"
            " such as 'TDL-A30'"
        )
    delay_spread_ns = float(match.group(2))
    if not 0.0 < delay_spread_ns <= MAX_DELAY_SPREAD_NS:
        raise ValueError(
            f"profile {profile!r}: delay spread must be in (0, {MAX_DELAY_SPREAD_NS:g}] ns"
        )
    return match.group(1), delay_spread_ns


DU_FIELDS: tuple[str, ...] = ("sched_interval_slots", "du_preset", "bler_curves")
"""The :class:`Scenario` fields that shape the DU (scheduler, link-adaptation preset, BLER
curves) and not the channel: a trace records them but replays under the caller's."""


@dataclass(frozen=True)
class Scenario:
    """Radio scenario of one cell (all UEs share it; each UE has its own mean SNR).

    Attributes:
        profile: channel profile, ``"AWGN"`` or ``"TDL-<A|B|C><ns>"``.
        doppler_hz: maximum Doppler shift f_D = v · f_c / c, Hz, 0 .. 500.
        correlation: antenna correlation level, ``"low"``, ``"medium"`` or ``"high"``.
        snr_db: (low, high) range of the per-UE mean SNR, dB; each UE draws its mean
            SNR uniformly in it once (seeded) and keeps it.
        csi_period_ms: CSI-RS periodicity, ms, one of 5, 10, 20, 40, 80, 160.
        n_ue: number of UEs, >= 1.
        n_rb: carrier bandwidth in resource blocks, 1 .. 275.
        scs_khz: subcarrier spacing, kHz (15, 30 or 60).
        n_tx: gNB antenna ports, 1, 2 or 4.
        n_rx: UE antennas, 1, 2 or 4.
        cqi_table: CQI table the UEs report with, 1 .. 3.
        mcs_table: MCS table the DU schedules with, 1 .. 3.
        csi_snr_error_db: standard deviation of the Gaussian error on the CSI-RS SNR
            estimate, dB, >= 0.
        seed: seed of every random draw of the radio model.
        sched_interval_slots: round-robin interval ``I`` of the DU's scheduler, slots,
            1 .. 1024: UE ``u`` is scheduled in slot ``t`` when ``(t + u) mod I == 0``
            and the UEs of a slot share the ``n_rb`` RBs (see :mod:`e2sim.du`). Default
            8 (4 ms at 30 kHz); 1 schedules every UE on the whole band in every slot
            (the DU's behaviour before the scheduler existed).
        du_preset: the DU's link-adaptation loop, named after the gNB it follows
            (:mod:`lighttune_core.linkadapt.presets`): ``"srsran"`` (default, srsRAN_Project's
            slow CQI-offset OLLA), ``"oai"`` (OpenAirInterface's ±1 MCS per BLER window) or
            ``"sionna"`` (Sionna SYS's 1 dB-per-NACK loop). It shapes the DU, not the channel.
        bler_curves: the code-block BLER curve set the DU's HARQ outcomes and the UEs' CQI
            follow (:data:`e2sim.channel.bler.CURVE_SETS`): ``"ldpc-mc"`` (default, LDPC
            Monte-Carlo at the DU's code-block sizes) or ``"sionna-tables"`` (fitted to
            Sionna's PDSCH tables). It shapes the link model, not the channel's SINR.
    """

    profile: str = "TDL-A30"
    doppler_hz: float = 10.0
    correlation: str = "low"
    snr_db: tuple[float, float] = (0.0, 12.0)
    csi_period_ms: int = 80
    n_ue: int = 32
    n_rb: int = 106
    scs_khz: int = 30
    n_tx: int = 4
    n_rx: int = 4
    cqi_table: int = 1
    mcs_table: int = 1
    csi_snr_error_db: float = 0.0
    seed: int = 0
    sched_interval_slots: int = 8
    du_preset: str = DEFAULT_PRESET
    bler_curves: str = DEFAULT_CURVES

    def __post_init__(self) -> None:
        parse_profile(self.profile)
        if not np.isfinite(self.doppler_hz) or not 0.0 <= self.doppler_hz <= MAX_DOPPLER_HZ:
            raise ValueError(
                f"doppler_hz must be in 0 .. {MAX_DOPPLER_HZ:g} Hz, got {self.doppler_hz!r}"
            )
        if self.correlation not in CORRELATION_LEVELS:
            raise ValueError(
                f"correlation must be one of {CORRELATION_LEVELS}, got {self.correlation!r}"
            )
        if len(self.snr_db) != 2:
            raise ValueError(f"snr_db must be a (low, high) pair in dB, got {self.snr_db!r}")
        low, high = (float(v) for v in self.snr_db)
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"snr_db must be finite, got {self.snr_db!r}")
        if low > high:
            raise ValueError(f"snr_db range is reversed: low {low:g} dB > high {high:g} dB")
        if not (-30.0 <= low and high <= 60.0):
            raise ValueError(f"snr_db must lie within -30 .. 60 dB, got {self.snr_db!r}")
        object.__setattr__(self, "snr_db", (low, high))
        if self.csi_period_ms not in CSI_PERIODS_MS:
            raise ValueError(
                f"csi_period_ms must be one of {CSI_PERIODS_MS}, got {self.csi_period_ms!r}"
            )
        _require_int(self.n_ue, "n_ue", 1, 1_000_000)
        _require_int(self.n_rb, "n_rb", 1, 275)
        if self.scs_khz not in SUPPORTED_SCS_KHZ:
            raise ValueError(f"scs_khz must be one of {SUPPORTED_SCS_KHZ}, got {self.scs_khz!r}")
        for name in ("n_tx", "n_rx"):
            value = getattr(self, name)
            if value not in (1, 2, 4):
                raise ValueError(f"{name} must be 1, 2 or 4 antennas, got {value!r}")
        _require_int(self.cqi_table, "cqi_table", 1, 3)
        _require_int(self.mcs_table, "mcs_table", 1, 3)
        if not np.isfinite(self.csi_snr_error_db) or self.csi_snr_error_db < 0.0:
            raise ValueError(
                f"csi_snr_error_db must be a finite value >= 0 dB, got {self.csi_snr_error_db!r}"
            )
        _require_int(self.seed, "seed", 0, 2**63 - 1)
        _require_int(self.sched_interval_slots, "sched_interval_slots", 1, MAX_SCHED_INTERVAL_SLOTS)
        get_preset(self.du_preset)
        if not isinstance(self.du_preset, str):
            raise ValueError(f"du_preset must be a preset name, got {self.du_preset!r}")
        if not isinstance(self.bler_curves, str):
            raise ValueError(f"bler_curves must be a curve set name, got {self.bler_curves!r}")
        check_curves(self.bler_curves)
        if (self.csi_period_ms * self.scs_khz) % 15 != 0:
            raise ValueError(
                f"csi_period_ms {self.csi_period_ms} is not a whole number of slots at "
                f"{self.scs_khz} kHz"
            )

    @property
    def family(self) -> str:
        """Profile family: ``"AWGN"``, ``"A"``, ``"B"`` or ``"C"``."""
        return parse_profile(self.profile)[0]

    @property
    def delay_spread_ns(self) -> float:
        """RMS delay spread of the TDL profile, ns (0 for AWGN)."""
        return parse_profile(self.profile)[1]

    @property
    def slot_s(self) -> float:
        """Slot duration, s: 1 ms · 15 kHz / scs (0.5 ms at 30 kHz)."""
        return 1e-3 * 15.0 / self.scs_khz

    @property
    def slots_per_ms(self) -> int:
        """Slots per millisecond (2 at 30 kHz)."""
        return self.scs_khz // 15

    @property
    def csi_period_slots(self) -> int:
        """CSI-RS period in slots: csi_period_ms · scs / 15 kHz."""
        return self.csi_period_ms * self.scs_khz // 15

    @property
    def max_rank(self) -> int:
        """Largest possible rank, min(n_tx, n_rx)."""
        return min(self.n_tx, self.n_rx)

    def ue_mean_snr_db(self) -> np.ndarray:
        """Per-UE mean SNR, float64 [n_ue] dB, uniform in ``snr_db`` (seeded, fixed).

        Drawn from its own stream (seed, 1) so adding other random draws never moves it.
        """
        rng = np.random.default_rng([self.seed, 1])
        low, high = self.snr_db
        return rng.uniform(low, high, size=self.n_ue)

    def with_du_of(self, other: "Scenario") -> "Scenario":
        """This scenario's channel with ``other``'s DU-only fields (:data:`DU_FIELDS`): how a
        recorded trace, which holds the channel only, meets the DU the caller asked for."""
        return replace(self, **{name: getattr(other, name) for name in DU_FIELDS})

    def du_free(self) -> "Scenario":
        """This scenario with the DU-only fields (:data:`DU_FIELDS`) at their defaults: two
        scenarios whose ``du_free()`` are equal have the same channel."""
        return self.with_du_of(Scenario())

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``snr_db`` as a list)."""
        out = asdict(self)
        out["snr_db"] = list(self.snr_db)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        """Build from :meth:`to_dict` output; unknown keys are rejected by name. A record
        without ``bler_curves`` was made before the field existed and gets
        :data:`~e2sim.channel.bler.LEGACY_CURVES` (``sionna-tables``), not today's default, so
        old traces and datasets replay on the curves they were made with."""
        if not isinstance(data, dict):
            raise ValueError(f"scenario must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown scenario field(s): {', '.join(unknown)}")
        kwargs = dict(data)
        kwargs.setdefault("bler_curves", LEGACY_CURVES)
        if "snr_db" in kwargs:
            snr = kwargs["snr_db"]
            if not isinstance(snr, (list, tuple)):
                raise ValueError(f"snr_db must be a (low, high) pair, got {snr!r}")
            kwargs["snr_db"] = tuple(float(v) for v in snr)
        return cls(**kwargs)


def _require_int(value: object, name: str, low: int, high: int) -> None:
    """Raise ValueError unless ``value`` is an int (not bool) in ``low .. high``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be in {low} .. {high}, got {value!r}")


SNR_RANGES_DB: dict[str, tuple[float, float]] = {
    "low": (0.0, 12.0),
    "medium": (16.0, 24.0),
    "high": (28.0, 40.0),
}
"""The paper's SNR ranges, dB."""

TRAINING_SCENARIO: Scenario = Scenario()
"""The paper's training scenario: TDL-A30, 10 Hz, 0–12 dB, low correlation, CSI every 80 ms."""


def paper_scenario(
    profile: str = "TDL-A30",
    snr: str = "low",
    doppler_hz: float = 10.0,
    correlation: str = "low",
    csi_period_ms: int = 80,
    **overrides: Any,
) -> Scenario:
    """A scenario of the paper's test grid, SNR given by name (``low``/``medium``/``high``).

    Raises:
        ValueError: unknown SNR range name or any invalid scenario field.
    """
    if snr not in SNR_RANGES_DB:
        raise ValueError(f"snr must be one of {tuple(SNR_RANGES_DB)}, got {snr!r}")
    return Scenario(
        profile=profile,
        doppler_hz=doppler_hz,
        correlation=correlation,
        snr_db=SNR_RANGES_DB[snr],
        csi_period_ms=csi_period_ms,
        **overrides,
    )
