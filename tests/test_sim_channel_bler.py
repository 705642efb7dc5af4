"""BLER curves, EESM, transport-block BLER and SINR thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from e2sim.channel import bler
from lighttune_core.linkadapt import MAX_MCS_BY_TABLE, n_code_blocks, code_block_size, transport_block_size, MCS_TABLES

# fits against stored source points: run again under a second CPU-feature setting (.ci/run)
pytestmark = pytest.mark.float_sensitive


@pytest.mark.parametrize("curve_set", list(bler.CURVE_SETS))
@pytest.mark.parametrize("table", [1, 2, 3])
@pytest.mark.parametrize("cb_bits", [24, 300, 2000, 8000])
def test_bler_decreases_with_sinr_and_increases_with_mcs(table: int, cb_bits: int, curve_set: str) -> None:
    """Every set falls with SINR. ``sionna-tables`` rises with MCS everywhere; ``ldpc-mc``,
    whose waterfall slopes are measured per MCS, rises with MCS wherever the lower MCS's BLER
    is in 1e-3 … 0.99 and may cross in the tails: e.g. table 1 MCS 9 / 10 (QPSK r 0.66 and
    16QAM r 0.33, equal spectral efficiency) differ by 2e-4 at BLER 0.999."""
    sinr = np.linspace(-15.0, 35.0, 401)[:, None]
    mcs = np.arange(MAX_MCS_BY_TABLE[table] + 1)[None, :]
    curves = bler.code_block_bler(sinr, mcs, table, cb_bits, curves=curve_set)
    assert np.all(np.diff(curves, axis=0) <= 1e-12)
    rise = np.diff(curves, axis=1)
    if curve_set == "sionna-tables" or table == 3:  # table 3 is copied from sionna-tables in every set
        assert np.all(rise >= -1e-12)
    else:
        band = (curves[:, :-1] >= 1e-3) & (curves[:, :-1] <= 0.99)
        assert band.sum() > 100 and np.all(rise[band] > 0.0)
    assert np.all((curves >= 0.0) & (curves <= 1.0))


def test_fit_matches_the_source_points_reported_in_the_data_file() -> None:
    doc = bler.curve_data("sionna-tables")
    assert "Sionna" in doc["source"] and "Apache-2.0" in doc["licence"]
    for entry in doc["tables"].values():
        assert max(entry["rms_residual"]) < 0.03
        assert max(entry["max_abs_residual"]) < 0.15


def test_flat_awgn_sinr_reproduces_the_curve() -> None:
    # A flat channel (equal SINR on every layer and subband) has effective SINR = SINR,
    # so the transport-block BLER is the fitted code-block curve combined over C blocks.
    mcs, n_layers, n_prb = 15, 2, 106
    sinr = np.linspace(0.0, 15.0, 31)
    flat = np.broadcast_to(sinr[:, None, None], (31, n_layers, 14))
    eff = bler.effective_sinr_db(flat, mcs)
    np.testing.assert_allclose(eff, sinr, atol=1e-9)
    tbs = transport_block_size(mcs, n_layers, n_prb)
    rate = MCS_TABLES[1][mcs, 1] / 1024
    blocks = n_code_blocks(tbs, rate)
    cb = bler.code_block_bler(sinr, mcs, 1, code_block_size(tbs, rate))
    np.testing.assert_allclose(
        bler.transport_block_bler(flat, mcs, n_layers, n_prb), 1 - (1 - cb) ** blocks, atol=1e-12
    )


def test_threshold_gives_target_bler() -> None:
    thresholds = bler.mcs_sinr_threshold_db(1, target_bler=0.1)
    assert np.all(np.diff(thresholds) >= 0)
    mcs = np.arange(thresholds.size)
    np.testing.assert_allclose(bler.code_block_bler(thresholds, mcs, 1), 0.1, rtol=1e-9)
    tb_thresholds = bler.mcs_sinr_threshold_db(1, target_bler=0.1, n_layers=1, n_prb=50)
    flat = np.broadcast_to(tb_thresholds[:, None, None], (mcs.size, 1, 4))
    np.testing.assert_allclose(bler.transport_block_bler(flat, mcs, 1, 50), 0.1, rtol=1e-6)


@pytest.mark.parametrize("table", [1, 2, 3])
def test_cqi_thresholds_increase_with_cqi(table: int) -> None:
    thresholds = bler.cqi_sinr_threshold_db(table)
    assert thresholds.shape == (16,)
    assert thresholds[0] == -np.inf
    assert np.all(np.diff(thresholds[1:]) > 0)


def test_eesm_ignores_nan_layers_and_is_dominated_by_weak_units() -> None:
    sinr = np.array([[[20.0, 0.0], [np.nan, np.nan]]])
    eff = bler.effective_sinr_db(sinr, 10)
    assert eff.shape == (1,)
    assert 0.0 < eff[0] < 10.0 * np.log10((100.0 + 1.0) / 2.0)
    only_valid = bler.effective_sinr_db(sinr[:, :1], 10)
    np.testing.assert_allclose(eff, only_valid)
    assert np.isnan(bler.effective_sinr_db(np.full((1, 2, 3), np.nan), 10)[0])


def test_eesm_is_stable_at_very_high_sinr() -> None:
    eff = bler.effective_sinr_db(np.full((2, 4, 14), 60.0), 0)
    np.testing.assert_allclose(eff, 60.0, atol=1e-6)


def test_bad_mcs_is_rejected() -> None:
    with pytest.raises(ValueError, match="mcs"):
        bler.code_block_bler(5.0, 29, 1)
    with pytest.raises(ValueError, match="mcs_table"):
        bler.code_block_bler(5.0, 3, 4)
