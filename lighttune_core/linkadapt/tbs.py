"""Transport block size (TS 38.214 §5.1.3.2) and LDPC code-block segmentation
(TS 38.212 §7.2.2 base-graph choice, §5.2.2 segmentation), vectorised with numpy.

TBS procedure for PDSCH, per transport block, as implemented by
:func:`transport_block_size`:

1. REs per PRB: ``N'_RE = 12 · N_symb − N_DMRS − N_oh`` (``N_DMRS`` DM-RS REs per PRB
   incl. CDM-group overhead, ``N_oh`` = xOverhead 0/6/12/18);
   total: ``N_RE = min(156, N'_RE) · n_PRB``.
2. ``N_info = N_RE · R · Qm · v`` (R = target code rate, Qm = modulation order, v = layers).
3. ``N_info <= 3824``: ``n = max(3, ⌊log2 N_info⌋ − 6)``,
   ``N'_info = max(24, 2^n ⌊N_info / 2^n⌋)``, TBS = the smallest entry of Table 5.1.3.2-1
   that is ``>= N'_info``.
4. ``N_info > 3824``: ``n = ⌊log2(N_info − 24)⌋ − 5``,
   ``N'_info = max(3840, 2^n · round((N_info − 24) / 2^n))`` (ties rounded up), then

   * ``R <= 1/4``: ``C = ⌈(N'_info + 24) / 3816⌉``,
     ``TBS = 8C ⌈(N'_info + 24) / (8C)⌉ − 24``;
   * else if ``N'_info > 8424``: ``C = ⌈(N'_info + 24) / 8424⌉``, same formula;
   * else ``TBS = 8 ⌈(N'_info + 24) / 8⌉ − 24``.
"""

from __future__ import annotations

import numpy as np

from lighttune_core.linkadapt.tables import MAX_MCS_BY_TABLE, NO_TRANSMISSION, QM_COLUMN, RATE_COLUMN, _mcs_table

TBS_TABLE: np.ndarray = np.array(
    [
        24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160,
        168, 176, 184, 192, 208, 224, 240, 256, 272, 288, 304, 320, 336, 352, 368, 384,
        408, 432, 456, 480, 504, 528, 552, 576, 608, 640, 672, 704, 736, 768, 808, 848,
        888, 928, 984, 1032, 1064, 1128, 1160, 1192, 1224, 1256, 1288, 1320, 1352, 1416,
        1480, 1544, 1608, 1672, 1736, 1800, 1864, 1928, 2024, 2088, 2152, 2216, 2280,
        2408, 2472, 2536, 2600, 2664, 2728, 2792, 2856, 2976, 3104, 3240, 3368, 3496,
        3624, 3752, 3824,
    ],
    dtype=np.int64,
)
"""TS 38.214 Table 5.1.3.2-1: the 93 TBS values for ``N_info <= 3824``, bits."""
TBS_TABLE.setflags(write=False)

MAX_RE_PER_PRB: int = 156
"""Cap on REs per PRB in the TBS count (``min(156, N'_RE)``)."""

MAX_LAYERS_PER_TB: int = 4
"""One codeword (transport block) carries at most 4 layers (TS 38.211 Table 7.3.1.3-1)."""

SMALL_TBS_LIMIT: int = 3824
"""``N_info`` up to which the TBS comes from Table 5.1.3.2-1; also the TB CRC switch."""

LDPC_BG1_MAX_CB: int = 8448
"""Maximum code block size K_cb of LDPC base graph 1, bits."""
LDPC_BG2_MAX_CB: int = 3840
"""Maximum code block size K_cb of LDPC base graph 2, bits."""
CB_CRC_BITS: int = 24
"""CRC bits attached to each code block when a TB is segmented (C > 1)."""


def _ceil_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``⌈a / b⌉`` for positive int64 arrays, exact."""
    return -(-a // b)


def _as_int(values: np.ndarray | int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integers")
    return arr.astype(np.int64)


def transport_block_size(
    mcs: np.ndarray | int,
    n_layers: np.ndarray | int,
    n_prb: np.ndarray | int,
    mcs_table: int = 1,
    n_symbols: np.ndarray | int = 12,
    n_dmrs_per_prb: np.ndarray | int = 12,
    x_overhead: np.ndarray | int = 0,
) -> np.ndarray:
    """Transport block size in bits per TS 38.214 §5.1.3.2 (see the module docstring).

    All array arguments broadcast against each other (e.g. ``mcs`` [N] per UE with scalar
    ``n_prb``).

    Args:
        mcs: MCS index, 0 .. highest non-reserved index of ``mcs_table`` (28, 27, 28), or
            ``NO_TRANSMISSION`` (-1) which gives TBS 0.
        n_layers: layers v of the codeword, 1 .. 4.
        n_prb: allocated PRBs, >= 0 (0 gives TBS 0).
        mcs_table: 1, 2 or 3 (TS 38.214 Table 5.1.3.1-1, -2, -3).
        n_symbols: PDSCH OFDM symbols in the slot N_symb, 1 .. 14.
        n_dmrs_per_prb: DM-RS REs per PRB N_DMRS (incl. CDM groups without data), >= 0.
        x_overhead: xOverhead N_oh, REs per PRB, >= 0 (0, 6, 12 or 18 in the spec).

    Returns:
        int64 TBS in bits, broadcast shape of the inputs.

    Raises:
        ValueError: unknown table, reserved/out-of-range MCS, bad layers, PRBs or symbols,
            or a negative RE count per PRB; the message names the field.
    """
    table = _mcs_table(mcs_table)
    mcs_a = _as_int(mcs, "mcs")
    top = MAX_MCS_BY_TABLE[mcs_table]
    if np.any((mcs_a < NO_TRANSMISSION) | (mcs_a > top)):
        raise ValueError(
            f"mcs must be in 0..{top} for MCS table {mcs_table} (or -1 for no transmission); "
            "reserved indices have no TBS of their own"
        )
    layers = _as_int(n_layers, "n_layers")
    if np.any((layers < 1) | (layers > MAX_LAYERS_PER_TB)):
        raise ValueError(f"n_layers must be in 1..{MAX_LAYERS_PER_TB}")
    prb = _as_int(n_prb, "n_prb")
    if np.any(prb < 0):
        raise ValueError("n_prb must be >= 0")
    symbols = _as_int(n_symbols, "n_symbols")
    if np.any((symbols < 1) | (symbols > 14)):
        raise ValueError("n_symbols must be in 1..14")
    dmrs = _as_int(n_dmrs_per_prb, "n_dmrs_per_prb")
    overhead = _as_int(x_overhead, "x_overhead")
    if np.any(dmrs < 0) or np.any(overhead < 0):
        raise ValueError("n_dmrs_per_prb and x_overhead must be >= 0")
    re_per_prb = 12 * symbols - dmrs - overhead
    if np.any(re_per_prb < 0):
        raise ValueError("12 * n_symbols - n_dmrs_per_prb - x_overhead must be >= 0")

    mcs_b, layers_b, prb_b, re_b = np.broadcast_arrays(mcs_a, layers, prb, re_per_prb)
    row = np.maximum(mcs_b, 0)
    qm = table[row, QM_COLUMN]
    rate_x1024 = table[row, RATE_COLUMN]
    n_re = np.minimum(MAX_RE_PER_PRB, re_b) * prb_b
    # N_RE · (R·1024) · Qm · v is an integer (R·1024 has at most a .5 part and Qm is even),
    # so the float64 product is exact and the division by 1024 stays exact.
    n_info = n_re * rate_x1024 * qm * layers_b / 1024.0
    live = (mcs_b != NO_TRANSMISSION) & (n_info > 0)
    tbs = np.zeros(n_info.shape, dtype=np.int64)

    small = live & (n_info <= SMALL_TBS_LIMIT)
    if np.any(small):
        ni = n_info[small]
        step = 2.0 ** np.maximum(3, np.floor(np.log2(ni)) - 6)
        quantised = np.maximum(24.0, step * np.floor(ni / step))
        tbs[small] = TBS_TABLE[np.searchsorted(TBS_TABLE, quantised, side="left")]

    large = live & (n_info > SMALL_TBS_LIMIT)
    if np.any(large):
        ni = n_info[large]
        step = 2.0 ** (np.floor(np.log2(ni - 24.0)) - 5)
        quantised = np.maximum(3840.0, step * np.floor((ni - 24.0) / step + 0.5)).astype(np.int64)
        low_rate = rate_x1024[large] <= 256.0
        cb_max = np.where(low_rate, LDPC_BG2_MAX_CB - CB_CRC_BITS, LDPC_BG1_MAX_CB - CB_CRC_BITS)
        segmented = low_rate | (quantised > LDPC_BG1_MAX_CB - CB_CRC_BITS)
        c = np.where(segmented, _ceil_div(quantised + 24, cb_max), 1)
        tbs[large] = 8 * c * _ceil_div(quantised + 24, 8 * c) - 24
    return tbs


def ldpc_base_graph(tbs: np.ndarray | int, code_rate: np.ndarray | float) -> np.ndarray:
    """LDPC base graph of a transport block, TS 38.212 §7.2.2.

    Base graph 2 if ``A <= 292``, or ``A <= 3824`` and ``R <= 0.67``, or ``R <= 0.25``;
    base graph 1 otherwise (A = TBS in bits, R = target code rate as a fraction).

    Args:
        tbs: int >= 0, any shape, bits.
        code_rate: float in (0, 1], broadcastable to ``tbs`` (R, not R x 1024).

    Returns:
        int64 1 or 2, broadcast shape.
    """
    a, r = _check_tbs_rate(tbs, code_rate)
    bg2 = (a <= 292) | ((a <= SMALL_TBS_LIMIT) & (r <= 0.67)) | (r <= 0.25)
    return np.where(bg2, 2, 1).astype(np.int64)


def n_code_blocks(tbs: np.ndarray | int, code_rate: np.ndarray | float) -> np.ndarray:
    """Number C of LDPC code blocks of a transport block, TS 38.212 §5.2.2.

    ``B = A + L`` with the TB CRC ``L = 24`` if ``A > 3824`` else 16; ``K_cb`` = 8448 (base
    graph 1) or 3840 (base graph 2, see :func:`ldpc_base_graph`);
    ``C = 1`` if ``B <= K_cb`` else ``C = ⌈B / (K_cb − 24)⌉``. A TBS of 0 (nothing sent) has
    ``C = 0``. The TB BLER follows from the code-block BLER as
    ``1 − (1 − BLER_cb)^C``.

    Args:
        tbs: int >= 0, any shape, bits.
        code_rate: float in (0, 1], broadcastable to ``tbs`` (R, not R x 1024).

    Returns:
        int64 C, broadcast shape.
    """
    a, r = _check_tbs_rate(tbs, code_rate)
    b = a + np.where(a > SMALL_TBS_LIMIT, 24, 16)
    k_cb = np.where(ldpc_base_graph(a, r) == 1, LDPC_BG1_MAX_CB, LDPC_BG2_MAX_CB)
    c = np.where(b <= k_cb, 1, _ceil_div(b, k_cb - CB_CRC_BITS))
    return np.where(a > 0, c, 0).astype(np.int64)


def code_block_size(tbs: np.ndarray | int, code_rate: np.ndarray | float) -> np.ndarray:
    """Bits per code block before filler bits, ``K' = B' / C`` (TS 38.212 §5.2.2).

    ``B' = B`` if ``C = 1`` else ``B + 24 C`` (each block then carries its own CRC), so ``K'``
    counts the TB payload share plus CRC bits. This is the block length that selects a
    code-block BLER curve. TBS 0 gives 0.

    Args:
        tbs: int >= 0, any shape, bits.
        code_rate: float in (0, 1], broadcastable to ``tbs``.

    Returns:
        int64 K' in bits (rounded up where B' is not a multiple of C), broadcast shape.
    """
    a, r = _check_tbs_rate(tbs, code_rate)
    c = n_code_blocks(a, r)
    b = a + np.where(a > SMALL_TBS_LIMIT, 24, 16)
    b_prime = np.where(c > 1, b + CB_CRC_BITS * c, b)
    return np.where(c > 0, _ceil_div(b_prime, np.maximum(c, 1)), 0).astype(np.int64)


def _check_tbs_rate(tbs: np.ndarray | int, code_rate: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    a = _as_int(tbs, "tbs")
    if np.any(a < 0):
        raise ValueError("tbs must be >= 0")
    r = np.asarray(code_rate, dtype=np.float64)
    if np.any(~np.isfinite(r) | (r <= 0) | (r > 1)):
        raise ValueError("code_rate must be a fraction in (0, 1] (divide R x 1024 by 1024)")
    return np.broadcast_arrays(a, r)
