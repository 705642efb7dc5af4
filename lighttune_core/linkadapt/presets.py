"""DU link-adaptation presets modelled on real gNBs: how a DU turns a CQI and its OLLA state
into an MCS, and how that state moves with HARQ feedback.

The xApp's gain is measured against the DU's own link adaptation, so the simulated DU must
move like real ones, not like the fastest textbook loop. Three presets, each number cited
to the source file it was read from (facts only; no code was taken):

``srsran`` (the default) — srsRAN_Project, the gNB most often paired with the OSC RIC
    * ``include/srsran/scheduler/config/scheduler_expert_config.h``: ``olla_cqi_inc`` 0.001
      (CQI units per ACK), ``olla_max_cqi_offset`` 4.0 (CQI units); its default target
      ``olla_dl_target_bler`` is 0.01, we run the same step rule at our 10 % target.
    * ``lib/scheduler/support/outer_loop_link_adaptation.h`` (``olla_algorithm``, Sampath et
      al. 1997): the offset ``o`` is *added* to the estimate; ACK: ``o += inc``, NACK:
      ``o -= (1 − t) · inc / t``; clipped to ``± max``; it does not grow while the used MCS
      is the top MCS and does not shrink while it is the bottom MCS. At ``t = 0.1``: +0.001
      CQI per ACK, −0.009 CQI per NACK.
    * ``lib/scheduler/ue_context/ue_link_adaptation_controller.cpp``: effective CQI
      ``c_eff = clamp(c + o, 1, 15)`` (a float), MCS by linear interpolation between the MCS
      of ``floor(c_eff)`` and ``ceil(c_eff)``, rounded down:
      ``m = floor(m(⌊c⌋) (1 − f) + m(⌈c⌉) f)``, ``f = c_eff − ⌊c_eff⌋``; CQI 0: no MCS.

``oai`` — OpenAirInterface gNB
    * ``openair2/LAYER2/NR_MAC_gNB/gNB_scheduler_primitives.c`` (``get_mcs_from_bler``):
      every ``BLER_UPDATE_FRAME`` = 10 frames (100 ms) the window BLER
      ``retx / tx`` (the previous filtered value if nothing was sent) is filtered
      ``b ← 0.9 b + 0.1 b_window`` (``BLER_FILTER`` 0.9); ``b < lower`` → MCS + 1 (below the
      max MCS), ``b > upper`` → MCS − 1 (above the min MCS); ``b`` starts at
      ``(lower + upper) / 2``.
    * ``openair2/GNB_APP/MACRLC_nr_paramdef.h``, ``doc/MAC/mac-usage.md``:
      ``dl_bler_target_upper`` 0.15, ``dl_bler_target_lower`` 0.05.
    * Deviation: OAI's MCS is a state of its own; ours is the table MCS of the CQI in use
      plus an MCS offset that moves by that rule, so that a CQI (the report's or the xApp's)
      still means something to this DU.

``sionna`` — Sionna SYS ``OuterLoopLinkAdaptation`` (a simulator, the fast end)
    * ``bler_target`` 0.1, ``delta_up`` 1.0 dB per NACK (``δ_down = δ_up t / (1 − t)`` per
      ACK), offset within ±20 dB, no freezing at the MCS bounds: the loop e2sim's DU ran
      before the presets existed (:mod:`lighttune_core.linkadapt.olla`).

The OLLA state reported per UE (``LinkReports.olla_offset_db``) is the DU's **back-off** in
the preset's own unit, positive = more conservative than the table: dB for ``sionna``,
CQI steps for ``srsran`` (``−o``), MCS steps for ``oai`` (minus the MCS offset). Both ends
know the preset (the simulator's ``Scenario.du_preset``, the xApp's ``du_preset`` control),
so :func:`preset_mcs` gives the MCS the DU will transmit for any candidate CQI. A
``snr_offset`` DU maps an SINR to an MCS with its own BLER tables: the preset then carries
those SINR thresholds (:func:`with_sinr_thresholds`; e2sim's DU passes the simulator's
curves, the xApp takes them from ``controls.duSinrThresholds``), without them
the gap-to-capacity defaults of :mod:`~lighttune_core.linkadapt.olla` stand in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from lighttune_core.linkadapt.olla import olla_mcs
from lighttune_core.linkadapt.tables import MAX_MCS_BY_TABLE, NO_TRANSMISSION, _as_index, cqi_to_mcs

LOOP_KINDS: tuple[str, ...] = ("cqi_offset", "mcs_window", "snr_offset")


@dataclass(frozen=True)
class DuPreset:
    """One DU's link-adaptation loop (see the module docstring for the sources).

    Attributes:
        name: ``"srsran"``, ``"oai"`` or ``"sionna"``.
        loop: ``"cqi_offset"`` (per-TB CQI offset), ``"mcs_window"`` (±1 MCS per BLER
            window) or ``"snr_offset"`` (per-TB SINR offset in dB).
        unit: unit of the back-off: ``"CQI"``, ``"MCS"`` or ``"dB"``.
        target_bler: first-transmission BLER the per-TB loops steer to.
        step_ack: per-TB loops: back-off change on an ACK (< 0: more aggressive), in ``unit``.
        step_nack: per-TB loops: back-off change on a NACK (> 0), in ``unit``.
        max_backoff: per-TB loops: the back-off stays in ``[−max, +max]``.
        freeze_at_mcs_bounds: the back-off does not fall while the used MCS is the top
            MCS and does not rise while it is MCS 0.
        window_ms: ``mcs_window``: BLER window, ms.
        bler_lower, bler_upper: ``mcs_window``: thresholds of the filtered BLER.
        bler_filter: ``mcs_window``: weight of the old filtered BLER.
        cqi_sinr_db: ``snr_offset``: the SINR (dB) each CQI 0 .. 15 stands for in this DU's
            mapping (16 values, CQI 0 may be −inf), or None for the gap-to-capacity default.
        mcs_sinr_db: ``snr_offset``: the SINR (dB) at which each MCS of the DU's table meets
            its target (non-decreasing, finite), or None for the gap-to-capacity default.
    """

    name: str
    loop: str
    unit: str
    target_bler: float
    step_ack: float = 0.0
    step_nack: float = 0.0
    max_backoff: float = 0.0
    freeze_at_mcs_bounds: bool = False
    window_ms: float = 0.0
    bler_lower: float = 0.0
    bler_upper: float = 0.0
    bler_filter: float = 0.0
    cqi_sinr_db: tuple[float, ...] | None = None
    mcs_sinr_db: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.loop not in LOOP_KINDS:
            raise ValueError(f"loop must be one of {LOOP_KINDS}, got {self.loop!r}")
        if not 0.0 < self.target_bler < 1.0:
            raise ValueError(f"target_bler must be in (0, 1), got {self.target_bler!r}")
        if self.loop == "mcs_window":
            if not (self.window_ms > 0 and 0.0 <= self.bler_lower < self.bler_upper <= 1.0
                    and 0.0 <= self.bler_filter < 1.0):
                raise ValueError(f"preset {self.name}: bad BLER window parameters")
        elif not (self.step_ack < 0.0 < self.step_nack and self.max_backoff > 0.0):
            raise ValueError(f"preset {self.name}: need step_ack < 0 < step_nack and max_backoff > 0")
        if (self.cqi_sinr_db is not None or self.mcs_sinr_db is not None) and self.loop != "snr_offset":
            raise ValueError(f"preset {self.name}: SINR thresholds belong to an snr_offset loop, not {self.loop}")
        if self.cqi_sinr_db is not None:
            cqi = np.asarray(self.cqi_sinr_db, dtype=np.float64)
            if cqi.shape != (16,) or not np.all(np.isfinite(cqi[1:])) or np.isnan(cqi[0]):
                raise ValueError(f"preset {self.name}: cqi_sinr_db needs 16 values, finite for CQI 1 .. 15")
        if self.mcs_sinr_db is not None:
            mcs = np.asarray(self.mcs_sinr_db, dtype=np.float64)
            if mcs.ndim != 1 or mcs.size < 1 or not np.all(np.isfinite(mcs)) or np.any(np.diff(mcs) < 0):
                raise ValueError(f"preset {self.name}: mcs_sinr_db must be finite and non-decreasing")


SRSRAN_OLLA_CQI_INC: float = 0.001
"""srsRAN_Project ``olla_cqi_inc`` (scheduler_expert_config.h), CQI per ACK."""
SRSRAN_OLLA_MAX_CQI_OFFSET: float = 4.0
"""srsRAN_Project ``olla_max_cqi_offset`` (scheduler_expert_config.h), CQI."""
OAI_BLER_UPDATE_MS: float = 100.0
"""OpenAirInterface ``BLER_UPDATE_FRAME`` = 10 frames of 10 ms."""
OAI_BLER_FILTER: float = 0.9
"""OpenAirInterface ``BLER_FILTER``."""
OAI_BLER_LOWER: float = 0.05
"""OpenAirInterface ``dl_bler_target_lower``."""
OAI_BLER_UPPER: float = 0.15
"""OpenAirInterface ``dl_bler_target_upper``."""
SIONNA_DELTA_UP_DB: float = 1.0
"""Sionna SYS ``OuterLoopLinkAdaptation`` ``delta_up``, dB per NACK."""
SIONNA_OFFSET_MAX_DB: float = 20.0
"""Sionna SYS ``OuterLoopLinkAdaptation`` ``offset_max`` (and ``−offset_min``), dB."""
OLLA_TARGET_BLER: float = 0.1
"""The OLLA target of every preset here (srsRAN's step rule run at 10 %)."""

PRESETS: dict[str, DuPreset] = {
    "srsran": DuPreset(
        name="srsran",
        loop="cqi_offset",
        unit="CQI",
        target_bler=OLLA_TARGET_BLER,
        step_ack=-SRSRAN_OLLA_CQI_INC,
        step_nack=(1.0 - OLLA_TARGET_BLER) * SRSRAN_OLLA_CQI_INC / OLLA_TARGET_BLER,
        max_backoff=SRSRAN_OLLA_MAX_CQI_OFFSET,
        freeze_at_mcs_bounds=True,
    ),
    "oai": DuPreset(
        name="oai",
        loop="mcs_window",
        unit="MCS",
        target_bler=OLLA_TARGET_BLER,
        window_ms=OAI_BLER_UPDATE_MS,
        bler_lower=OAI_BLER_LOWER,
        bler_upper=OAI_BLER_UPPER,
        bler_filter=OAI_BLER_FILTER,
        freeze_at_mcs_bounds=True,
    ),
    "sionna": DuPreset(
        name="sionna",
        loop="snr_offset",
        unit="dB",
        target_bler=OLLA_TARGET_BLER,
        step_ack=-SIONNA_DELTA_UP_DB * OLLA_TARGET_BLER / (1.0 - OLLA_TARGET_BLER),
        step_nack=SIONNA_DELTA_UP_DB,
        max_backoff=SIONNA_OFFSET_MAX_DB,
        freeze_at_mcs_bounds=False,
    ),
}
"""The DU presets by name."""
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
DEFAULT_PRESET: str = "srsran"


def get_preset(preset: DuPreset | str) -> DuPreset:
    """The :class:`DuPreset` named ``preset`` (or ``preset`` itself).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if isinstance(preset, DuPreset):
        return preset
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ValueError(f"unknown DU preset {preset!r}; choose from {', '.join(PRESET_NAMES)}") from None


def with_sinr_thresholds(
    preset: DuPreset | str, cqi_sinr_db: np.ndarray | None, mcs_sinr_db: np.ndarray | None
) -> DuPreset:
    """The ``snr_offset`` preset ``preset`` mapping with the DU's own SINR thresholds.

    Args:
        preset: an ``snr_offset`` preset or its name (``"sionna"``).
        cqi_sinr_db: float [16], dB, or None (gap-to-capacity default).
        mcs_sinr_db: float [M] (at least the table's non-reserved MCS), dB, or None.

    Raises:
        ValueError: another loop kind or malformed thresholds (see :class:`DuPreset`).
    """
    def as_tuple(v: np.ndarray | None) -> tuple[float, ...] | None:
        return None if v is None else tuple(float(t) for t in np.asarray(v, dtype=np.float64).ravel())

    return replace(get_preset(preset), cqi_sinr_db=as_tuple(cqi_sinr_db), mcs_sinr_db=as_tuple(mcs_sinr_db))


@lru_cache(maxsize=64)
def _threshold_arrays(preset: DuPreset) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Read-only arrays of a preset's SINR thresholds (None where it has none)."""
    out = []
    for v in (preset.cqi_sinr_db, preset.mcs_sinr_db):
        a = None if v is None else np.array(v, dtype=np.float64)
        if a is not None:
            a.setflags(write=False)
        out.append(a)
    return out[0], out[1]


@lru_cache(maxsize=None)
def _table_mcs(cqi_table: int, mcs_table: int) -> np.ndarray:
    """int64 [16] table MCS of every CQI (CQI 0 → MCS 0; it is never transmitted)."""
    out = np.maximum(cqi_to_mcs(np.arange(16), cqi_table, mcs_table), 0).astype(np.int64)
    out.setflags(write=False)
    return out


def preset_mcs(
    preset: DuPreset | str,
    cqi: np.ndarray | int,
    backoff: np.ndarray | float,
    cqi_table: int = 1,
    mcs_table: int = 1,
    cqi_sinr_db: np.ndarray | None = None,
    mcs_sinr_db: np.ndarray | None = None,
) -> np.ndarray:
    """The MCS a DU of this preset transmits for CQI ``c`` at back-off ``b``.

    * ``cqi_offset`` (srsRAN): ``c_eff = clip(c − b, 1, 15)``,
      ``m = floor(m(⌊c_eff⌋)(1 − f) + m(⌈c_eff⌉) f)``, ``f = c_eff − ⌊c_eff⌋``.
    * ``mcs_window`` (OAI): ``m = clip(m(c) − b, 0, top)``.
    * ``snr_offset`` (Sionna): :func:`~lighttune_core.linkadapt.olla.olla_mcs` (``b`` in dB,
      the given SINR thresholds, else the preset's own, else the gap-to-capacity defaults).

    ``m(c)`` is the table MCS of CQI ``c`` (:func:`~lighttune_core.linkadapt.tables.cqi_to_mcs`).

    Args:
        preset: a :class:`DuPreset` or its name.
        cqi: int, any shape, 0 .. 15.
        backoff: float, broadcastable to ``cqi``, in the preset's unit.
        cqi_table, mcs_table: 1 .. 3.
        cqi_sinr_db, mcs_sinr_db: thresholds of the ``snr_offset`` loop (see ``olla_mcs``).

    Returns:
        int64, the broadcast shape: MCS 0 .. top, ``NO_TRANSMISSION`` (-1) where CQI is 0.
    """
    p = get_preset(preset)
    if p.loop == "snr_offset":
        own_cqi, own_mcs = _threshold_arrays(p)
        return olla_mcs(cqi, backoff, cqi_table, mcs_table,
                        own_cqi if cqi_sinr_db is None else cqi_sinr_db,
                        own_mcs if mcs_sinr_db is None else mcs_sinr_db)
    c = _as_index(cqi, "cqi", 15)
    b = np.asarray(backoff, dtype=np.float64)
    if not np.all(np.isfinite(b)):
        raise ValueError("backoff must be finite")
    table = _table_mcs(cqi_table, mcs_table)
    top = MAX_MCS_BY_TABLE[mcs_table]
    if p.loop == "mcs_window":
        mcs = np.clip(table[c] - np.round(b).astype(np.int64), 0, top)
    else:
        eff = np.clip(c - b, 1.0, 15.0)
        lo = np.floor(eff)
        frac = eff - lo
        lo_i = lo.astype(np.int64)
        hi_i = np.minimum(lo_i + (frac > 0), 15)
        # + 1e-9: an interpolated value that is an integer up to float rounding floors to it
        mcs = np.floor(table[lo_i] * (1.0 - frac) + table[hi_i] * frac + 1e-9).astype(np.int64)
        mcs = np.clip(mcs, 0, top)
    return np.where(np.broadcast_to(c, mcs.shape) == 0, NO_TRANSMISSION, mcs).astype(np.int64)


def per_tb_update(
    preset: DuPreset,
    backoff: np.ndarray,
    ack: np.ndarray,
    transmitted: np.ndarray,
    used_mcs: np.ndarray,
    top_mcs: int,
) -> np.ndarray:
    """One slot of a per-TB loop (``cqi_offset`` or ``snr_offset``); pure function.

    ``b' = clip(b + t · (a · step_ack + ¬a · step_nack), −max, +max)``, except that with
    ``freeze_at_mcs_bounds`` an ACK at the top MCS leaves ``b`` (no growth of the offset)
    and a NACK at MCS 0 leaves ``b``.

    Args:
        preset: a per-TB preset.
        backoff: float [U], in the preset's unit.
        ack: bool [U]; transmitted: bool [U]; used_mcs: int [U], the MCS of the TB.
        top_mcs: the table's top MCS.

    Returns:
        float64 [U], the new back-offs.
    """
    if preset.loop == "mcs_window":
        raise ValueError("per_tb_update is for the per-TB loops; the OAI loop is windowed")
    step = np.where(ack, preset.step_ack, preset.step_nack)
    move = transmitted
    if preset.freeze_at_mcs_bounds:
        move = move & ~(ack & (used_mcs >= top_mcs)) & ~(~ack & (used_mcs <= 0))
    return np.clip(backoff + np.where(move, step, 0.0), -preset.max_backoff, preset.max_backoff)


def window_update(
    preset: DuPreset,
    backoff: np.ndarray,
    filtered_bler: np.ndarray,
    window_tx: np.ndarray,
    window_nack: np.ndarray,
    current_mcs: np.ndarray,
    top_mcs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """End of one BLER window of the ``mcs_window`` (OAI) loop; pure function.

    ``b_w = nack / tx`` (the old filtered BLER where ``tx = 0``),
    ``f' = φ f + (1 − φ) b_w``; ``f' < lower`` and ``m < top`` → back-off − 1;
    ``f' > upper`` and ``m > 0`` → back-off + 1.

    Args:
        backoff: float [U], MCS steps; filtered_bler: float [U].
        window_tx, window_nack: int [U], first transmissions and NACKs in the window.
        current_mcs: int [U], the MCS the UE is at now (−1 without a CQI: no move).

    Returns:
        ``(backoff', filtered_bler')`` float64 [U] each.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        window = np.where(window_tx > 0, window_nack / np.maximum(window_tx, 1), filtered_bler)
    filt = preset.bler_filter * filtered_bler + (1.0 - preset.bler_filter) * window
    valid = current_mcs >= 0
    up = valid & (filt < preset.bler_lower) & (current_mcs < top_mcs)
    down = valid & (filt > preset.bler_upper) & (current_mcs > 0)
    return backoff - up + down, filt
