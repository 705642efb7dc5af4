"""TS 38.214 CQI and MCS tables and the look-ups between them.

Numbers are those of 3GPP TS 38.214 (Rel-15 .. Rel-17, unchanged in these rows):

* CQI tables 1, 2, 3 = Tables 5.2.2.1-2 (up to 64QAM), 5.2.2.1-3 (up to 256QAM) and
  5.2.2.1-4 (low spectral efficiency, up to 64QAM); 16 rows each, CQI 0 = "out of range".
* MCS tables 1, 2, 3 = PDSCH Tables 5.1.3.1-1 (64QAM), 5.1.3.1-2 (256QAM) and 5.1.3.1-3
  (low spectral efficiency); 32 rows each (MCS 0 .. 31). The last rows of each table are
  *reserved* (used only for retransmissions): table 1 and 3 rows 29 .. 31, table 2 rows
  28 .. 31. They keep their modulation order Qm but carry NaN code rate and spectral
  efficiency.

Every table is float64 ``[rows, 3]`` with columns ``(Qm, R x 1024, SE)``:
``Qm`` bits per modulation symbol, ``R x 1024`` the target code rate times 1024 and
``SE = Qm · R`` the spectral efficiency in information bits per resource element per layer
(bit/s/Hz per layer), rounded to 4 decimals by the specification.
"""

from __future__ import annotations

import numpy as np

QM_COLUMN: int = 0
"""Column of the modulation order Qm (bits per symbol)."""
RATE_COLUMN: int = 1
"""Column of the target code rate x 1024."""
SE_COLUMN: int = 2
"""Column of the spectral efficiency (bit per RE per layer)."""

NO_TRANSMISSION: int = -1
"""MCS returned for CQI 0 ("out of range"): the UE should not be scheduled."""

_CQI_TABLE_1 = np.array(
    [
        [0, 0, 0.0],
        [2, 78, 0.1523],
        [2, 120, 0.2344],
        [2, 193, 0.3770],
        [2, 308, 0.6016],
        [2, 449, 0.8770],
        [2, 602, 1.1758],
        [4, 378, 1.4766],
        [4, 490, 1.9141],
        [4, 616, 2.4063],
        [6, 466, 2.7305],
        [6, 567, 3.3223],
        [6, 666, 3.9023],
        [6, 772, 4.5234],
        [6, 873, 5.1152],
        [6, 948, 5.5547],
    ],
    dtype=np.float64,
)

_CQI_TABLE_2 = np.array(
    [
        [0, 0, 0.0],
        [2, 78, 0.1523],
        [2, 193, 0.3770],
        [2, 449, 0.8770],
        [4, 378, 1.4766],
        [4, 490, 1.9141],
        [4, 616, 2.4063],
        [6, 466, 2.7305],
        [6, 567, 3.3223],
        [6, 666, 3.9023],
        [6, 772, 4.5234],
        [6, 873, 5.1152],
        [8, 711, 5.5547],
        [8, 797, 6.2266],
        [8, 885, 6.9141],
        [8, 948, 7.4063],
    ],
    dtype=np.float64,
)

_CQI_TABLE_3 = np.array(
    [
        [0, 0, 0.0],
        [2, 30, 0.0586],
        [2, 50, 0.0977],
        [2, 78, 0.1523],
        [2, 120, 0.2344],
        [2, 193, 0.3770],
        [2, 308, 0.6016],
        [2, 449, 0.8770],
        [2, 602, 1.1758],
        [4, 378, 1.4766],
        [4, 490, 1.9141],
        [4, 616, 2.4063],
        [6, 466, 2.7305],
        [6, 567, 3.3223],
        [6, 666, 3.9023],
        [6, 772, 4.5234],
    ],
    dtype=np.float64,
)

_NAN = np.nan

_MCS_TABLE_1 = np.array(
    [
        [2, 120, 0.2344],
        [2, 157, 0.3066],
        [2, 193, 0.3770],
        [2, 251, 0.4902],
        [2, 308, 0.6016],
        [2, 379, 0.7402],
        [2, 449, 0.8770],
        [2, 526, 1.0273],
        [2, 602, 1.1758],
        [2, 679, 1.3262],
        [4, 340, 1.3281],
        [4, 378, 1.4766],
        [4, 434, 1.6953],
        [4, 490, 1.9141],
        [4, 553, 2.1602],
        [4, 616, 2.4063],
        [4, 658, 2.5703],
        [6, 438, 2.5664],
        [6, 466, 2.7305],
        [6, 517, 3.0293],
        [6, 567, 3.3223],
        [6, 616, 3.6094],
        [6, 666, 3.9023],
        [6, 719, 4.2129],
        [6, 772, 4.5234],
        [6, 822, 4.8164],
        [6, 873, 5.1152],
        [6, 910, 5.3320],
        [6, 948, 5.5547],
        [2, _NAN, _NAN],
        [4, _NAN, _NAN],
        [6, _NAN, _NAN],
    ],
    dtype=np.float64,
)

_MCS_TABLE_2 = np.array(
    [
        [2, 120, 0.2344],
        [2, 193, 0.3770],
        [2, 308, 0.6016],
        [2, 449, 0.8770],
        [2, 602, 1.1758],
        [4, 378, 1.4766],
        [4, 434, 1.6953],
        [4, 490, 1.9141],
        [4, 553, 2.1602],
        [4, 616, 2.4063],
        [4, 658, 2.5703],
        [6, 466, 2.7305],
        [6, 517, 3.0293],
        [6, 567, 3.3223],
        [6, 616, 3.6094],
        [6, 666, 3.9023],
        [6, 719, 4.2129],
        [6, 772, 4.5234],
        [6, 822, 4.8164],
        [6, 873, 5.1152],
        [8, 682.5, 5.3320],
        [8, 711, 5.5547],
        [8, 754, 5.8906],
        [8, 797, 6.2266],
        [8, 841, 6.5703],
        [8, 885, 6.9141],
        [8, 916.5, 7.1602],
        [8, 948, 7.4063],
        [2, _NAN, _NAN],
        [4, _NAN, _NAN],
        [6, _NAN, _NAN],
        [8, _NAN, _NAN],
    ],
    dtype=np.float64,
)

_MCS_TABLE_3 = np.array(
    [
        [2, 30, 0.0586],
        [2, 40, 0.0781],
        [2, 50, 0.0977],
        [2, 64, 0.1250],
        [2, 78, 0.1523],
        [2, 99, 0.1934],
        [2, 120, 0.2344],
        [2, 157, 0.3066],
        [2, 193, 0.3770],
        [2, 251, 0.4902],
        [2, 308, 0.6016],
        [2, 379, 0.7402],
        [2, 449, 0.8770],
        [2, 526, 1.0273],
        [2, 602, 1.1758],
        [4, 340, 1.3281],
        [4, 378, 1.4766],
        [4, 434, 1.6953],
        [4, 490, 1.9141],
        [4, 553, 2.1602],
        [4, 616, 2.4063],
        [6, 438, 2.5664],
        [6, 466, 2.7305],
        [6, 517, 3.0293],
        [6, 567, 3.3223],
        [6, 616, 3.6094],
        [6, 666, 3.9023],
        [6, 719, 4.2129],
        [6, 772, 4.5234],
        [2, _NAN, _NAN],
        [4, _NAN, _NAN],
        [6, _NAN, _NAN],
    ],
    dtype=np.float64,
)

for _table in (_CQI_TABLE_1, _CQI_TABLE_2, _CQI_TABLE_3, _MCS_TABLE_1, _MCS_TABLE_2, _MCS_TABLE_3):
    _table.setflags(write=False)

CQI_TABLES: dict[int, np.ndarray] = {1: _CQI_TABLE_1, 2: _CQI_TABLE_2, 3: _CQI_TABLE_3}
"""CQI table ``t`` (1..3) -> read-only float64 [16, 3] of (Qm, R x 1024, SE); row 0 zeros."""

MCS_TABLES: dict[int, np.ndarray] = {1: _MCS_TABLE_1, 2: _MCS_TABLE_2, 3: _MCS_TABLE_3}
"""MCS table ``t`` (1..3) -> read-only float64 [32, 3] of (Qm, R x 1024, SE); reserved rows
keep Qm and carry NaN rate and SE."""

MAX_MCS_BY_TABLE: dict[int, int] = {1: 28, 2: 27, 3: 28}
"""Highest non-reserved MCS index of each MCS table."""

_SE_TOLERANCE: float = 1e-9
"""Slack in SE comparisons so that equal tabulated values compare equal."""


def _cqi_table(cqi_table: int) -> np.ndarray:
    if cqi_table not in CQI_TABLES:
        raise ValueError(f"cqi_table must be 1, 2 or 3, got {cqi_table!r}")
    return CQI_TABLES[cqi_table]


def _mcs_table(mcs_table: int) -> np.ndarray:
    if mcs_table not in MCS_TABLES:
        raise ValueError(f"mcs_table must be 1, 2 or 3, got {mcs_table!r}")
    return MCS_TABLES[mcs_table]


def _as_index(values: np.ndarray | int, name: str, high: int) -> np.ndarray:
    """Integer index array with every entry in ``0 .. high`` or a ValueError naming ``name``."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integers, got {arr.dtype} values")
    idx = arr.astype(np.int64)
    if np.any((idx < 0) | (idx > high)):
        raise ValueError(f"{name} must be in 0..{high}")
    return idx


def spectral_efficiency(cqi: np.ndarray | int, cqi_table: int = 1) -> np.ndarray:
    """Spectral efficiency of CQI index/indices, ``SE = Qm · R`` (bit per RE per layer).

    Args:
        cqi: int, any shape, 0 .. 15. CQI 0 ("out of range") has SE 0.
        cqi_table: 1, 2 or 3 (TS 38.214 Table 5.2.2.1-2, -3, -4).

    Returns:
        float64, same shape as ``cqi``.

    Raises:
        ValueError: unknown table or CQI outside 0..15.
    """
    table = _cqi_table(cqi_table)
    return table[_as_index(cqi, "cqi", 15), SE_COLUMN]


def mcs_spectral_efficiency(mcs: np.ndarray | int, mcs_table: int = 1) -> np.ndarray:
    """Spectral efficiency of MCS index/indices, ``SE = Qm · R`` (bit per RE per layer).

    Args:
        mcs: int, any shape, 0 .. 31; reserved indices give NaN.
        mcs_table: 1, 2 or 3 (TS 38.214 Table 5.1.3.1-1, -2, -3).

    Returns:
        float64, same shape as ``mcs``.

    Raises:
        ValueError: unknown table or MCS outside 0..31.
    """
    table = _mcs_table(mcs_table)
    return table[_as_index(mcs, "mcs", table.shape[0] - 1), SE_COLUMN]


def cqi_to_mcs(cqi: np.ndarray | int, cqi_table: int = 1, mcs_table: int = 1) -> np.ndarray:
    """Table link adaptation: the highest MCS whose SE does not exceed the CQI's SE.

    ``mcs(c) = max{m : SE_mcs(m) <= SE_cqi(c)}`` over the non-reserved MCS rows. Two
    rules cover the edges:

    * CQI 0 means "out of range": no transmission, returned as ``NO_TRANSMISSION`` (-1).
    * A CQI below the lowest MCS's SE (possible for CQI table 3 with MCS table 1 or 2)
      maps to MCS 0, the most robust scheme the table offers.

    Args:
        cqi: int, any shape, 0 .. 15.
        cqi_table: 1, 2 or 3.
        mcs_table: 1, 2 or 3.

    Returns:
        int64, same shape as ``cqi``: MCS index, or -1 for CQI 0.

    Raises:
        ValueError: unknown table or CQI outside 0..15.
    """
    se = spectral_efficiency(cqi, cqi_table)
    mcs_se = _mcs_table(mcs_table)[: MAX_MCS_BY_TABLE[mcs_table] + 1, SE_COLUMN]
    return np.where(np.asarray(cqi) == 0, NO_TRANSMISSION, highest_index_at_most(mcs_se, se))


def highest_index_at_most(values: np.ndarray, limit: np.ndarray | float) -> np.ndarray:
    """Highest index ``m`` with ``values[m] <= limit`` (0 where there is none), vectorised.

    The MCS tables are not monotone in SE (MCS table 1: MCS 16 = 2.5703 > MCS 17 =
    2.5664), so this is a masked arg-max over all rows, not a sorted search.

    Args:
        values: float ``[M]`` (or ``[..., M]`` broadcasting against ``limit``), e.g. the SE
            or SINR threshold of each MCS; NaN entries never fit.
        limit: float, any shape ``S``.

    Returns:
        int64 ``S`` (broadcast with ``values[..., 0]``).
    """
    lim = np.asarray(limit, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    fits = vals <= lim[..., None] + _SE_TOLERANCE
    m = vals.shape[-1]
    last = m - 1 - np.argmax(fits[..., ::-1], axis=-1)
    return np.where(fits.any(axis=-1), last, 0).astype(np.int64)
