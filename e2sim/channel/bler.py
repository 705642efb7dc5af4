"""AWGN BLER curves per MCS, EESM effective SINR and transport-block BLER, vectorised.

Code-block BLER (fitted to NVIDIA Sionna 2.2.0's PDSCH tables by
:mod:`e2sim.channel.bler_fit`; parameters, source, licence and residuals in
``data/bler_curves.json``):

    BLER_cb(γ) = 1 / (1 + exp((γ − γ50(mcs, K)) / s(K)))      γ in dB (Es/N0 per RE),

with γ50 and s linearly interpolated in log K between the tabulated code-block sizes
K ∈ {24, 100, 500, 1000, 2000} information bits and clamped outside (blocks longer than 2000
bits use the 2000-bit curve, as Sionna does). That is the curve set ``sionna-tables``. The
default set, ``ldpc-mc`` (``data/bler_curves_ldpc.json``, built by
:mod:`e2sim.channel.bler_ldpc_curves`), takes MCS tables 1–2 from LDPC Monte-Carlo at the DU's
code-block sizes: per MCS γ50 and s at K ∈ {256 … 8448}, ``s`` per MCS too. Every function
below takes ``curves`` (:data:`CURVE_SETS`); a scenario picks its set with
``Scenario.bler_curves``.

EESM over the N resource units (layers × subbands, weights w, Σw = 1) of a transmission:

    γ_eff = −β ln( Σ_k w_k exp(−γ_k / β) )     (γ linear; NaN entries are ignored),

β per MCS from Sionna's table (a starting point without calibration provenance).

Transport block: TBS and the number C of LDPC code blocks from
:mod:`lighttune_core.linkadapt`, code-block size K' = TBS share + CRC, and

    BLER_TB = 1 − (1 − BLER_cb(γ_eff, K'))^C.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from lighttune_core.linkadapt import (
    CQI_TABLES,
    MAX_MCS_BY_TABLE,
    MCS_TABLES,
    code_block_size,
    mcs_spectral_efficiency,
    n_code_blocks,
    spectral_efficiency,
    transport_block_size,
)

DATA_FILE: str = "bler_curves.json"
"""Fitted curve parameters inside ``e2sim/channel/data`` (the ``sionna-tables`` set)."""

CURVE_SETS: dict[str, str] = {"sionna-tables": DATA_FILE, "ldpc-mc": "bler_curves_ldpc.json"}
"""Code-block BLER curve sets by name, each a file inside ``e2sim/channel/data``:
``sionna-tables`` (fitted to Sionna's PDSCH tables, blocks up to 2000 bits) and ``ldpc-mc``
(default; MCS tables 1–2 from LDPC Monte-Carlo at the DU's code-block sizes,
:mod:`e2sim.channel.bler_ldpc_curves`; table 3 and the EESM β as in ``sionna-tables``)."""
DEFAULT_CURVES: str = "ldpc-mc"
"""The link model's curve set unless a scenario names one: the LDPC Monte-Carlo curves, which
reproduce every measured point of the chain within 0.19 dB (``sionna-tables``: up to 0.83 dB)."""
LEGACY_CURVES: str = "sionna-tables"
"""The set of every record (trace, dataset, result) that does not name one: the only set, and
so the default, before ``Scenario.bler_curves`` existed; results up to the fifth session."""


def check_curves(curves: str) -> str:
    """``curves`` if it names a curve set, else ValueError listing them."""
    if curves not in CURVE_SETS:
        raise ValueError(f"BLER curve set must be one of {', '.join(CURVE_SETS)}, got {curves!r}")
    return curves

DEFAULT_CODE_BLOCK_BITS: int = 2000
"""Code-block size used for thresholds when no allocation is given (longest tabulated)."""


@lru_cache(maxsize=len(CURVE_SETS))
def curve_data(curves: str = DEFAULT_CURVES) -> dict[str, Any]:
    """The parsed document of a curve set (source, model, fits): the file :data:`CURVE_SETS`
    names for ``curves``."""
    text = resources.files("e2sim.channel").joinpath("data", CURVE_SETS[check_curves(curves)]).read_text()
    return json.loads(text)


@lru_cache(maxsize=4 * len(CURVE_SETS))
def _table_arrays(mcs_table: int, curves: str = DEFAULT_CURVES) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(log K [B], γ50 [B, M] dB, s [B, M] dB, β [M]) of one MCS table of a curve set (a
    file's ``scale_db`` per block size only, [B], is the same for every MCS)."""
    if mcs_table not in (1, 2, 3):
        raise ValueError(f"mcs_table must be 1, 2 or 3, got {mcs_table!r}")
    doc = curve_data(curves)
    entry = doc["tables"][str(mcs_table)]
    log_k = np.log(np.asarray(entry["code_block_sizes"], dtype=np.float64))
    snr50 = np.asarray(entry["snr50_db"], dtype=np.float64)
    scale = np.asarray(entry["scale_db"], dtype=np.float64)
    if scale.ndim == 1:
        scale = np.repeat(scale[:, None], snr50.shape[1], axis=1)
    beta = np.asarray(doc["eesm_beta"][str(mcs_table)], dtype=np.float64)
    return log_k, snr50, scale, beta


def _check_mcs(mcs: np.ndarray | int, mcs_table: int) -> np.ndarray:
    """int64 MCS array, ValueError naming the field if outside 0 .. max of the table."""
    _table_arrays(mcs_table)
    arr = np.asarray(mcs)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or np.any(arr != np.round(arr)):
            raise ValueError("mcs must hold integers")
    arr = arr.astype(np.int64)
    top = MAX_MCS_BY_TABLE[mcs_table]
    if np.any((arr < 0) | (arr > top)):
        raise ValueError(f"mcs must be in 0 .. {top} for MCS table {mcs_table}")
    return arr


def eesm_beta(mcs: np.ndarray | int, mcs_table: int = 1, curves: str = DEFAULT_CURVES) -> np.ndarray:
    """EESM β (linear) per MCS, float64 with the shape of ``mcs``."""
    mcs_arr = _check_mcs(mcs, mcs_table)
    return _table_arrays(mcs_table, curves)[3][mcs_arr]


def curve_parameters(
    mcs: np.ndarray | int, mcs_table: int = 1, cb_bits: np.ndarray | float = DEFAULT_CODE_BLOCK_BITS,
    curves: str = DEFAULT_CURVES,
) -> tuple[np.ndarray, np.ndarray]:
    """(γ50 dB, s dB) of the code-block BLER curve, broadcast over ``mcs`` and ``cb_bits``.

    Interpolated linearly in log K between the curve set's tabulated code-block sizes,
    clamped outside.

    Raises:
        ValueError: MCS out of the table's range, cb_bits not > 0, or an unknown curve set.
    """
    mcs_arr = _check_mcs(mcs, mcs_table)
    bits = np.asarray(cb_bits, dtype=np.float64)
    if np.any(~(bits > 0)):
        raise ValueError("cb_bits must be > 0")
    log_k, snr50, scale, _ = _table_arrays(mcs_table, curves)
    mcs_arr, bits = np.broadcast_arrays(mcs_arr, bits)
    x = np.clip(np.log(bits), log_k[0], log_k[-1])
    upper = np.clip(np.searchsorted(log_k, x, side="right"), 1, log_k.size - 1)
    lower = upper - 1
    frac = (x - log_k[lower]) / (log_k[upper] - log_k[lower])
    snr50_mcs = (1.0 - frac) * snr50[lower, mcs_arr] + frac * snr50[upper, mcs_arr]
    scale_mcs = (1.0 - frac) * scale[lower, mcs_arr] + frac * scale[upper, mcs_arr]
    return snr50_mcs, scale_mcs


def code_block_bler(
    eff_sinr_db: np.ndarray | float,
    mcs: np.ndarray | int,
    mcs_table: int = 1,
    cb_bits: np.ndarray | float = DEFAULT_CODE_BLOCK_BITS,
    curves: str = DEFAULT_CURVES,
) -> np.ndarray:
    """AWGN BLER of one LDPC code block at SINR γ (dB), broadcast over all arguments.

    BLER_cb = 1 / (1 + exp((γ − γ50(mcs, K)) / s(mcs, K))); NaN SINR gives NaN.
    """
    snr50, scale = curve_parameters(mcs, mcs_table, cb_bits, curves)
    z = np.clip((np.asarray(eff_sinr_db, dtype=np.float64) - snr50) / scale, -700.0, 700.0)
    return 1.0 / (1.0 + np.exp(z))


def effective_sinr_db(
    sinr_db: np.ndarray,
    mcs: np.ndarray | int,
    mcs_table: int = 1,
    subband_weights: np.ndarray | None = None,
    curves: str = DEFAULT_CURVES,
) -> np.ndarray:
    """EESM effective SINR over layers and subbands, dB (β of the curve set ``curves``).

    γ_eff = −β ln(Σ_{l,s} w_s exp(−γ_{l,s}/β) / Σ_{l,s valid} w_s), γ linear; NaN layers
    (beyond the rank) are left out. Computed in log-sum-exp form so high SINRs do not
    underflow.

    Args:
        sinr_db: float [..., L, S] per-layer, per-subband SINR, dB.
        mcs: int broadcastable to ``sinr_db.shape[:-2]``.
        mcs_table: 1 .. 3.
        subband_weights: float [S] (e.g. RBs per subband); equal if None.

    Returns:
        float64 [...]; NaN where every entry is NaN.
    """
    sinr = np.asarray(sinr_db, dtype=np.float64)
    if sinr.ndim < 2:
        raise ValueError("sinr_db must have shape [..., layers, subbands]")
    n_sub = sinr.shape[-1]
    weights = np.ones(n_sub) if subband_weights is None else np.asarray(subband_weights, float)
    if weights.shape != (n_sub,) or np.any(weights < 0) or not np.any(weights > 0):
        raise ValueError(f"subband_weights must be {n_sub} non-negative values, not all 0")
    beta = eesm_beta(mcs, mcs_table, curves)[..., None, None]
    valid = ~np.isnan(sinr)
    linear = np.where(valid, 10.0 ** (np.where(valid, sinr, 0.0) / 10.0), 0.0)
    w = np.where(valid, weights, 0.0)
    total_weight = w.sum(axis=(-2, -1))
    exponent = np.where(valid, -linear / beta, -np.inf)
    peak = np.max(exponent, axis=(-2, -1), keepdims=True)
    peak_safe = np.where(np.isfinite(peak), peak, 0.0)
    mixture = np.sum(w * np.exp(exponent - peak_safe), axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mean = np.log(mixture / total_weight) + peak_safe[..., 0, 0]
        eff_linear = -beta[..., 0, 0] * log_mean
        out = 10.0 * np.log10(np.maximum(eff_linear, 1e-30))
    return np.where(total_weight > 0, out, np.nan)


def transport_block_bler(
    sinr_db: np.ndarray,
    mcs: np.ndarray | int,
    n_layers: np.ndarray | int,
    n_prb: np.ndarray | int,
    mcs_table: int = 1,
    subband_weights: np.ndarray | None = None,
    curves: str = DEFAULT_CURVES,
) -> np.ndarray:
    """Transport-block BLER of a transmission, float64 [...].

    EESM over the layers and subbands of ``sinr_db`` [..., L, S] (NaN layers ignored), then
    BLER_TB = 1 − (1 − BLER_cb(γ_eff, K'))^C with TBS, C and K' from
    :mod:`lighttune_core.linkadapt` for (mcs, n_layers, n_prb). A zero TBS gives BLER 0.

    Args:
        sinr_db: float [..., L, S] dB; pass the layers of the rank used.
        mcs, n_layers, n_prb: int, broadcastable to ``sinr_db.shape[:-2]``.
        mcs_table: 1 .. 3.
        subband_weights: float [S] for the EESM average (e.g. RBs per subband).
        curves: the BLER curve set (:data:`CURVE_SETS`).
    """
    mcs_arr = _check_mcs(mcs, mcs_table)
    tbs = transport_block_size(mcs_arr, n_layers, n_prb, mcs_table)
    rate = MCS_TABLES[mcs_table][mcs_arr, 1] / 1024.0
    blocks = n_code_blocks(tbs, rate)
    cb_bits = np.maximum(code_block_size(tbs, rate), 1)
    eff = effective_sinr_db(sinr_db, mcs_arr, mcs_table, subband_weights, curves)
    cb_bler = code_block_bler(eff, mcs_arr, mcs_table, cb_bits, curves)
    return 1.0 - (1.0 - cb_bler) ** blocks


def _code_block_target(
    target_bler: float, mcs: np.ndarray, mcs_table: int, n_layers: int, n_prb: int | None,
    cb_bits: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(per-code-block target BLER, code-block bits) for each MCS."""
    if not 0.0 < target_bler < 1.0:
        raise ValueError(f"target_bler must be in (0, 1), got {target_bler!r}")
    if n_prb is None:
        return np.full(mcs.shape, target_bler), np.full(mcs.shape, float(cb_bits))
    tbs = transport_block_size(mcs, n_layers, n_prb, mcs_table)
    rate = MCS_TABLES[mcs_table][mcs, 1] / 1024.0
    blocks = np.maximum(n_code_blocks(tbs, rate), 1)
    per_block = 1.0 - (1.0 - target_bler) ** (1.0 / blocks)
    return per_block, np.maximum(code_block_size(tbs, rate), 1).astype(np.float64)


def mcs_sinr_threshold_db(
    mcs_table: int = 1,
    target_bler: float = 0.1,
    n_layers: int = 1,
    n_prb: int | None = None,
    cb_bits: float = DEFAULT_CODE_BLOCK_BITS,
    curves: str = DEFAULT_CURVES,
) -> np.ndarray:
    """AWGN SINR (dB) at which each MCS of the table reaches ``target_bler``, float64 [M].

    Without ``n_prb`` the target applies to one code block of ``cb_bits`` bits; with
    ``n_prb`` it applies to the transport block of (mcs, n_layers, n_prb), whose C code
    blocks each get 1 − (1 − target)^(1/C). Inverting the logistic:
    γ = γ50 + s ln((1 − p)/p). Non-decreasing in MCS.
    """
    mcs = np.arange(MAX_MCS_BY_TABLE[mcs_table] + 1) if mcs_table in MAX_MCS_BY_TABLE else None
    if mcs is None:
        raise ValueError(f"mcs_table must be 1, 2 or 3, got {mcs_table!r}")
    per_block, bits = _code_block_target(target_bler, mcs, mcs_table, n_layers, n_prb, cb_bits)
    snr50, scale = curve_parameters(mcs, mcs_table, bits, curves)
    return snr50 + scale * np.log((1.0 - per_block) / per_block)


def cqi_sinr_threshold_db(
    cqi_table: int = 1,
    target_bler: float = 0.1,
    mcs_table: int | None = None,
    n_layers: int = 1,
    n_prb: int | None = None,
    cb_bits: float = DEFAULT_CODE_BLOCK_BITS,
    curves: str = DEFAULT_CURVES,
) -> np.ndarray:
    """AWGN SINR (dB) at which each CQI 1..15 reaches ``target_bler``, float64 [16].

    A CQI's threshold is interpolated (linearly in spectral efficiency) between the
    thresholds of the MCS of ``mcs_table`` (default: the MCS table of the same modulation
    range, 1→1, 2→2, 3→3) and extended linearly beyond the table's SE range;
    CQI 0 ("out of range") gets −inf.
    """
    if cqi_table not in CQI_TABLES:
        raise ValueError(f"cqi_table must be 1, 2 or 3, got {cqi_table!r}")
    table = cqi_table if mcs_table is None else mcs_table
    thresholds = mcs_sinr_threshold_db(table, target_bler, n_layers, n_prb, cb_bits, curves)
    mcs_se = mcs_spectral_efficiency(np.arange(thresholds.size), table)
    order = np.argsort(mcs_se, kind="stable")
    cqi_se = spectral_efficiency(np.arange(1, 16), cqi_table)
    out = np.full(16, -np.inf)
    out[1:] = np.interp(cqi_se, mcs_se[order], thresholds[order])
    # Outside the table's SE range: extend with the slope of its two end MCS.
    ends = (
        (order[:2], order[0], cqi_se < mcs_se.min()),
        (order[-2:], order[-1], cqi_se > mcs_se.max()),
    )
    for pair, anchor, outside in ends:
        if np.any(outside):
            slope = (thresholds[pair[1]] - thresholds[pair[0]]) / (mcs_se[pair[1]] - mcs_se[pair[0]])
            out[1:][outside] = thresholds[anchor] + slope * (cqi_se[outside] - mcs_se[anchor])
    return out
