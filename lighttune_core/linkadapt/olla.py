"""Outer-loop link adaptation (OLLA) and MCS selection on top of a CQI.

OLLA keeps, per UE, an offset ``Δ`` (dB) that is subtracted from the SINR the reported CQI
stands for. After each first transmission of a transport block:

    NACK: Δ ← Δ + δ_up          ACK: Δ ← Δ − δ_down,   δ_down = δ_up · BLER_t / (1 − BLER_t)

and Δ is clipped to ``[−clamp, +clamp]``. In steady state the expected step is zero,
``P(NACK) · δ_up = (1 − P(NACK)) · δ_down``, hence ``P(NACK) = BLER_t``: the first-
transmission BLER converges to the target whatever the bias of the CQI.

Our choices (DESIGN leaves them open): ``BLER_t = 0.1``, ``δ_up = 1 dB`` (so
``δ_down = 0.111 dB``), ``clamp = 20 dB`` (the ±20 dB range a ``LinkReports`` accepts). All
three are arguments.

MCS selection (:func:`olla_mcs`): the CQI is mapped to an SINR estimate ``γ_cqi(c)`` (dB),
the offset is subtracted, and the highest MCS ``m`` with threshold ``γ_mcs(m) <= γ_cqi(c) − Δ``
is used (MCS 0 if none fits; no transmission for CQI 0). The default thresholds come from
the gap-to-capacity relation ``SE = log2(1 + γ / Γ)``, i.e.

    γ(SE) [dB] = 10 log10(2^SE − 1) + Γ_dB,   Γ_dB = DEFAULT_SHANNON_GAP_DB = 1.5 dB,

applied to the tabulated SE of each CQI and MCS. With these defaults Γ cancels in the
comparison and ``olla_mcs(c, 0)`` equals :func:`cqi_to_mcs`. A simulator with its own BLER
curves passes its own ``cqi_sinr_db`` / ``mcs_sinr_db``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lighttune_core.linkadapt.tables import (
    CQI_TABLES,
    MAX_MCS_BY_TABLE,
    NO_TRANSMISSION,
    SE_COLUMN,
    _as_index,
    _cqi_table,
    _mcs_table,
    highest_index_at_most,
)

DEFAULT_TARGET_BLER: float = 0.1
"""OLLA target first-transmission BLER."""
DEFAULT_DELTA_UP_DB: float = 1.0
"""Offset step on a NACK, dB."""
DEFAULT_CLAMP_DB: float = 20.0
"""The offset is kept in ``[−clamp, +clamp]``, dB."""
DEFAULT_SHANNON_GAP_DB: float = 1.5
"""Gap Γ to Shannon capacity of the default SINR thresholds, dB."""


def _check_params(delta_up_db: float, target_bler: float, clamp_db: float) -> None:
    if not np.isfinite(delta_up_db) or delta_up_db <= 0:
        raise ValueError(f"delta_up_db must be > 0, got {delta_up_db!r}")
    if not 0.0 < target_bler < 1.0:
        raise ValueError(f"target_bler must be in (0, 1), got {target_bler!r}")
    if not np.isfinite(clamp_db) or clamp_db <= 0:
        raise ValueError(f"clamp_db must be > 0, got {clamp_db!r}")


def delta_down_db(delta_up_db: float = DEFAULT_DELTA_UP_DB, target_bler: float = DEFAULT_TARGET_BLER) -> float:
    """Offset step on an ACK, ``δ_down = δ_up · BLER_t / (1 − BLER_t)`` (dB)."""
    _check_params(delta_up_db, target_bler, DEFAULT_CLAMP_DB)
    return delta_up_db * target_bler / (1.0 - target_bler)


def olla_update(
    offset_db: np.ndarray,
    ack: np.ndarray,
    transmitted: np.ndarray,
    delta_up_db: float = DEFAULT_DELTA_UP_DB,
    target_bler: float = DEFAULT_TARGET_BLER,
    clamp_db: float = DEFAULT_CLAMP_DB,
) -> np.ndarray:
    """One OLLA step for every UE (pure function; the input is not modified).

    ``Δ' = clip(Δ + t · (¬a · δ_up − a · δ_down), −clamp, +clamp)`` with ``a`` = ACK and
    ``t`` = a first transmission was sent (UEs with ``t = False`` keep their offset).

    Args:
        offset_db: float [N], current offsets, dB.
        ack: bool [N], True = ACK, False = NACK (ignored where not transmitted).
        transmitted: bool [N], whether the UE had a first transmission this slot.
        delta_up_db: NACK step δ_up, dB, > 0.
        target_bler: BLER_t in (0, 1).
        clamp_db: clip bound, dB, > 0.

    Returns:
        float64 [N], the new offsets, dB.

    Raises:
        ValueError: bad parameters, non-finite offsets or shapes that differ.
    """
    _check_params(delta_up_db, target_bler, clamp_db)
    off = np.asarray(offset_db, dtype=np.float64)
    a = np.asarray(ack, dtype=bool)
    t = np.asarray(transmitted, dtype=bool)
    if a.shape != off.shape or t.shape != off.shape:
        raise ValueError(
            f"offset_db {off.shape}, ack {a.shape} and transmitted {t.shape} must have the same shape"
        )
    if not np.all(np.isfinite(off)):
        raise ValueError("offset_db must be finite")
    down = delta_up_db * target_bler / (1.0 - target_bler)
    step = np.where(a, -down, delta_up_db)
    return np.clip(off + np.where(t, step, 0.0), -clamp_db, clamp_db)


def shannon_sinr_threshold_db(se: np.ndarray | float, gap_db: float = DEFAULT_SHANNON_GAP_DB) -> np.ndarray:
    """SINR at which a scheme of spectral efficiency ``se`` works, gap-to-capacity model.

    ``γ [dB] = 10 log10(2^SE − 1) + Γ_dB``; SE 0 gives −inf, NaN stays NaN.

    Args:
        se: float, any shape, bit per RE per layer.
        gap_db: Γ, dB.

    Returns:
        float64 thresholds in dB, same shape.
    """
    s = np.asarray(se, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.exp2(s) - 1.0) + gap_db


def default_cqi_sinr_db(cqi_table: int = 1, gap_db: float = DEFAULT_SHANNON_GAP_DB) -> np.ndarray:
    """SINR each CQI stands for, float64 [16] dB (CQI 0: −inf), gap-to-capacity model."""
    return shannon_sinr_threshold_db(_cqi_table(cqi_table)[:, SE_COLUMN], gap_db)


def default_mcs_sinr_db(mcs_table: int = 1, gap_db: float = DEFAULT_SHANNON_GAP_DB) -> np.ndarray:
    """SINR threshold of each MCS, float64 [32] dB (reserved rows NaN), gap-to-capacity model."""
    return shannon_sinr_threshold_db(_mcs_table(mcs_table)[:, SE_COLUMN], gap_db)


@lru_cache(maxsize=None)
def _cached_default_thresholds(cqi_table: int, mcs_table: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only default (CQI [16], valid-MCS [M_valid]) thresholds, computed once per pair."""
    cqi_thr = default_cqi_sinr_db(cqi_table)
    mcs_thr = default_mcs_sinr_db(mcs_table)[: MAX_MCS_BY_TABLE[mcs_table] + 1].copy()
    cqi_thr.setflags(write=False)
    mcs_thr.setflags(write=False)
    return cqi_thr, mcs_thr


def olla_mcs(
    cqi: np.ndarray | int,
    offset_db: np.ndarray | float,
    cqi_table: int = 1,
    mcs_table: int = 1,
    cqi_sinr_db: np.ndarray | None = None,
    mcs_sinr_db: np.ndarray | None = None,
) -> np.ndarray:
    """MCS chosen from a CQI and an OLLA offset.

    ``m = max{m : γ_mcs(m) <= γ_cqi(c) − Δ}`` over the non-reserved MCS rows; MCS 0 when no
    row fits (the DU still serves the UE with its most robust MCS); ``NO_TRANSMISSION``
    (-1) for CQI 0.

    Args:
        cqi: int [N] (any shape), 0 .. 15.
        offset_db: float, broadcastable to ``cqi``, OLLA offset Δ in dB.
        cqi_table: 1, 2 or 3.
        mcs_table: 1, 2 or 3.
        cqi_sinr_db: float [16], SINR (dB) each CQI stands for; default
            :func:`default_cqi_sinr_db`.
        mcs_sinr_db: float [32] or [M_valid] (or ``[..., M]`` per UE), SINR threshold (dB)
            of each MCS; default :func:`default_mcs_sinr_db`. Rows past the last non-reserved
            MCS are ignored.

    Returns:
        int64, broadcast shape of ``cqi`` and ``offset_db``.

    Raises:
        ValueError: unknown table, CQI out of range, non-finite offsets or wrong threshold
            shapes.
    """
    c = _as_index(cqi, "cqi", 15)
    off = np.asarray(offset_db, dtype=np.float64)
    if not np.all(np.isfinite(off)):
        raise ValueError("offset_db must be finite")
    _cqi_table(cqi_table)
    _mcs_table(mcs_table)
    n_valid = MAX_MCS_BY_TABLE[mcs_table] + 1
    default_cqi_thr, default_mcs_thr = _cached_default_thresholds(cqi_table, mcs_table)
    if cqi_sinr_db is None:
        cqi_thr = default_cqi_thr
    else:
        cqi_thr = np.asarray(cqi_sinr_db, dtype=np.float64)
        if cqi_thr.shape != (CQI_TABLES[cqi_table].shape[0],):
            raise ValueError(f"cqi_sinr_db must have shape (16,), got {cqi_thr.shape}")
    if mcs_sinr_db is None:
        mcs_thr = default_mcs_thr
    else:
        mcs_thr = np.asarray(mcs_sinr_db, dtype=np.float64)
        if mcs_thr.ndim < 1 or mcs_thr.shape[-1] < n_valid:
            raise ValueError(f"mcs_sinr_db must have at least {n_valid} entries on its last axis")
        mcs_thr = mcs_thr[..., :n_valid]
    estimate = cqi_thr[c] - off
    mcs = highest_index_at_most(mcs_thr, estimate)
    return np.where(np.broadcast_to(c, mcs.shape) == 0, NO_TRANSMISSION, mcs).astype(np.int64)


class Olla:
    """Per-UE OLLA state: a thin stateful wrapper over :func:`olla_update` / :func:`olla_mcs`.

    Attributes:
        offset_db: float64 [N], current offsets, dB.
        delta_up_db, target_bler, clamp_db: the update parameters (see module docstring).
    """

    def __init__(
        self,
        n_ue: int,
        delta_up_db: float = DEFAULT_DELTA_UP_DB,
        target_bler: float = DEFAULT_TARGET_BLER,
        clamp_db: float = DEFAULT_CLAMP_DB,
        initial_offset_db: float = 0.0,
    ) -> None:
        if int(n_ue) != n_ue or n_ue < 0:
            raise ValueError(f"n_ue must be a non-negative integer, got {n_ue!r}")
        _check_params(delta_up_db, target_bler, clamp_db)
        if not np.isfinite(initial_offset_db):
            raise ValueError("initial_offset_db must be finite")
        self.delta_up_db = float(delta_up_db)
        self.target_bler = float(target_bler)
        self.clamp_db = float(clamp_db)
        self.offset_db: np.ndarray = np.full(int(n_ue), np.clip(initial_offset_db, -clamp_db, clamp_db))

    @property
    def delta_down_db(self) -> float:
        """ACK step δ_down = δ_up · BLER_t / (1 − BLER_t), dB."""
        return delta_down_db(self.delta_up_db, self.target_bler)

    def update(self, ack: np.ndarray, transmitted: np.ndarray) -> np.ndarray:
        """Apply one slot's HARQ feedback (bool [N] each); returns the new offsets [N]."""
        self.offset_db = olla_update(
            self.offset_db, ack, transmitted, self.delta_up_db, self.target_bler, self.clamp_db
        )
        return self.offset_db

    def mcs(
        self,
        cqi: np.ndarray,
        cqi_table: int = 1,
        mcs_table: int = 1,
        cqi_sinr_db: np.ndarray | None = None,
        mcs_sinr_db: np.ndarray | None = None,
    ) -> np.ndarray:
        """MCS per UE (int64 [N]) for CQIs [N] under the current offsets (:func:`olla_mcs`)."""
        return olla_mcs(cqi, self.offset_db, cqi_table, mcs_table, cqi_sinr_db, mcs_sinr_db)
