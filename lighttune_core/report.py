"""The per-UE link report record shared by every report path.

Both E2 report paths (our protobuf service model and standard E2SM-KPM) and the
simulator produce a :class:`LinkReports`; features, prediction, decisions and learning
consume it and never know where it came from.

The record is a *struct of arrays*: every field has a leading UE axis of length ``N`` so
that all per-report work is vectorised with numpy (no Python loop per UE).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

MAX_RANK: int = 4
"""Largest rank (number of MIMO layers) a report may carry: 4x4 MIMO."""

SINR_RANGE_DB: tuple[float, float] = (-30.0, 60.0)
"""Accepted range of per-layer SINR and CSI-RS SNR, dB."""

OLLA_RANGE_DB: tuple[float, float] = (-20.0, 20.0)
"""Accepted range of the DU's OLLA offset, dB."""

MAX_CQI: int = 15
MAX_MCS: int = 28

_INT_FIELDS = ("ue_id", "ri", "cqi", "rank", "mcs", "n_ack", "n_nack", "served_bits")
_FLOAT_FIELDS = ("csirs_snr_db", "olla_offset_db", "csi_age_ms")

_LAYER_INDEX = np.arange(MAX_RANK)[None, :]


@dataclass(frozen=True)
class LinkReports:
    """Per-UE reports of one cell for one CSI-RS period (``N`` UEs).

    Attributes:
        ue_id: int64 [N], UE identifier inside the cell, 0 .. 2**32 - 1.
        ri: int64 [N], rank indicator of the latest CSI report, 1 .. 4.
        cqi: int64 [N], wideband CQI of the latest CSI report, 0 .. 15.
        sinr_layers_db: float64 [N, 4], per-layer post-equaliser SINR (dB) for the reported
            rank; NaN for layers ``>= ri``.
        csirs_snr_db: float64 [N], wideband CSI-RS SNR, dB.
        rank: int64 [N], rank the DU used in the period that just ended, 1 .. 4.
        mcs: int64 [N], MCS index the DU used most in that period, 0 .. 28.
        olla_offset_db: float64 [N], the DU's OLLA offset at the end of the period, dB.
        n_ack: int64 [N], first-transmission HARQ ACKs of the period.
        n_nack: int64 [N], first-transmission HARQ NACKs of the period.
        served_bits: int64 [N], bits of ACKed transport blocks in the period.
        csi_age_ms: float64 [N], age of the CSI report at the start of the period, ms.
        cqi_table: CQI table (TS 38.214 5.2.2.1-2/3/4 = 1/2/3) of the cell's reports.
    """

    ue_id: np.ndarray
    ri: np.ndarray
    cqi: np.ndarray
    sinr_layers_db: np.ndarray
    csirs_snr_db: np.ndarray
    rank: np.ndarray
    mcs: np.ndarray
    olla_offset_db: np.ndarray
    n_ack: np.ndarray
    n_nack: np.ndarray
    served_bits: np.ndarray
    csi_age_ms: np.ndarray
    cqi_table: int = 1

    def __post_init__(self) -> None:
        n = np.shape(self.ue_id)[0] if np.ndim(self.ue_id) == 1 else -1
        if n < 0:
            raise ValueError("LinkReports.ue_id must be a 1-D array")
        for name in _INT_FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.shape != (n,):
                raise ValueError(f"LinkReports.{name} must have shape ({n},), got {arr.shape}")
            if arr.dtype.kind not in "iu" and not (
                arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
            ):
                raise ValueError(f"LinkReports.{name} must hold integers, got {arr.dtype}")
            object.__setattr__(self, name, arr.astype(np.int64, copy=False))
        for name in _FLOAT_FIELDS:
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise ValueError(f"LinkReports.{name} must have shape ({n},), got {arr.shape}")
            object.__setattr__(self, name, arr)
        sinr = np.asarray(self.sinr_layers_db, dtype=np.float64)
        if sinr.shape != (n, MAX_RANK):
            raise ValueError(
                f"LinkReports.sinr_layers_db must have shape ({n}, {MAX_RANK}), got {sinr.shape}"
            )
        object.__setattr__(self, "sinr_layers_db", sinr)
        if self.cqi_table not in (1, 2, 3):
            raise ValueError(f"LinkReports.cqi_table must be 1, 2 or 3, got {self.cqi_table!r}")

    def __len__(self) -> int:
        return int(self.ue_id.shape[0])

    def validate(self) -> np.ndarray:
        """Mask of UEs whose every field is present and in range.

        Few numpy calls per field (the cost is per call, not per UE, for a cell's size):
        ``lo <= a <= hi`` of an integer field is one unsigned comparison
        ``uint64(a − lo) <= hi − lo``, the three ``>= 0`` counts share one bitwise or (a
        negative value sets the sign bit), NaN and ±inf fail the float range comparisons, and
        the per-layer SINR is checked only for the layers ``l < ri`` the report uses.

        Returns:
            bool [N]; ``False`` where a UE must be dropped (and counted) by the caller.
        """
        u64 = np.uint64
        ok = self.ue_id.view(u64) <= u64(2**32 - 1)
        ok &= (self.ri - 1).view(u64) <= u64(MAX_RANK - 1)
        ok &= self.cqi.view(u64) <= u64(MAX_CQI)
        ok &= (self.rank - 1).view(u64) <= u64(MAX_RANK - 1)
        ok &= self.mcs.view(u64) <= u64(MAX_MCS)
        ok &= (self.n_ack | self.n_nack | self.served_bits) >= 0
        lo, hi = SINR_RANGE_DB
        olo, ohi = OLLA_RANGE_DB
        ok &= (self.csirs_snr_db >= lo) & (self.csirs_snr_db <= hi)
        ok &= (self.olla_offset_db >= olo) & (self.olla_offset_db <= ohi)
        ok &= (self.csi_age_ms >= 0.0) & (self.csi_age_ms < np.inf)
        s = self.sinr_layers_db
        in_range = (s >= lo) & (s <= hi)
        ok &= np.all(in_range >= (_LAYER_INDEX < self.ri[:, None]), axis=1)  # used layer => in range
        return ok

    def first_of_each_ue(self) -> np.ndarray:
        """Mask of the first row of every UE id: bool [N], False on a repeated id.

        One stable sort: a row is a repeat when its id equals the previous one in id order
        (rows of one id keep their report order, so the first row of each id stays).
        """
        order = np.argsort(self.ue_id, kind="stable")
        ids = self.ue_id[order]
        repeat = np.zeros(ids.shape[0], dtype=bool)
        repeat[1:] = ids[1:] == ids[:-1]
        keep = np.ones(ids.shape[0], dtype=bool)
        keep[order[repeat]] = False
        return keep

    def select(self, mask: np.ndarray) -> "LinkReports":
        """The reports of the UEs where ``mask`` (bool [N] or int indices) selects."""
        kw: dict[str, Any] = {f.name: getattr(self, f.name)[mask] for f in fields(self) if f.name != "cqi_table"}
        return replace(self, **kw)

    @classmethod
    def concat(cls, parts: list["LinkReports"]) -> "LinkReports":
        """Join reports of the same cell (same CQI table) along the UE axis."""
        if not parts:
            raise ValueError("LinkReports.concat needs at least one part")
        tables = {p.cqi_table for p in parts}
        if len(tables) != 1:
            raise ValueError(f"cannot join reports with different CQI tables {sorted(tables)}")
        kw = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(cls)
            if f.name != "cqi_table"
        }
        return cls(**kw, cqi_table=parts[0].cqi_table)

    @property
    def true_bler(self) -> np.ndarray:
        """nNACK / (nACK + nNACK) per UE, float64 [N]; NaN where no TB was sent."""
        total = self.n_ack + self.n_nack
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, self.n_nack / np.maximum(total, 1), np.nan)
