"""The LDPC Monte-Carlo check of the BLER curves: its helpers and the committed run's data."""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pytest

from e2sim.channel import bler
from e2sim.channel.bler_mc import (
    LN9,
    block_geometry,
    fit_logistic,
    full_selection,
    parse_selection,
    scan_waterfall,
)
from lighttune_core.linkadapt import MCS_TABLES, code_block_size, transport_block_size

pytestmark = pytest.mark.float_sensitive

MC_FILE = "ldpc_monte_carlo.json"

GAMMA10_BOUND_DB = 0.6
"""Largest |shipped γ10 − LDPC γ10| the committed run found (0.51 dB), rounded up
(docs/results.md, "BLER curves against LDPC Monte-Carlo")."""

HORIZONTAL_BOUND_DB = 0.7
"""Largest SNR distance between a measured point and the shipped curve at the same BLER
that the committed run found (0.63 dB over 264 points), rounded up."""


def _mc_data() -> dict:
    return json.loads(resources.files("e2sim.channel").joinpath("data", MC_FILE).read_text())


def test_selection_is_parsed_and_bad_parts_are_named() -> None:
    assert parse_selection("1:3,28; 2:27") == [(1, 3), (1, 28), (2, 27)]
    for bad, word in [("3:5", "table must be 1 or 2"), ("1:", "no MCS"), ("1:x", "TABLE:MCS"),
                      ("1:29", "outside"), ("1:1", "below 1/5"), ("1:10", "repetition"), ("", "empty")]:
        with pytest.raises(ValueError, match=word):
            parse_selection(bad)


def test_block_geometry_is_the_du_code_block_at_the_mcs_rate() -> None:
    for table, mcs in [(1, 3), (1, 16), (2, 27)]:
        geo = block_geometry(table, mcs, 26)
        qm, rate = int(MCS_TABLES[table][mcs, 0]), MCS_TABLES[table][mcs, 1] / 1024.0
        tbs = transport_block_size(mcs, 1, 26, mcs_table=table)
        assert geo["cb_bits"] == int(code_block_size(tbs, rate))
        assert geo["qm"] == qm and geo["coded_bits"] % qm == 0
        assert abs(geo["cb_bits"] / geo["coded_bits"] - rate) < 0.01


def test_maximum_likelihood_fit_recovers_a_known_curve() -> None:
    rng = np.random.default_rng(3)
    snr = np.round(np.arange(4.0, 5.61, 0.1), 3)
    truth = 1.0 / (1.0 + np.exp((snr - 4.8) / 0.12))
    errors = rng.binomial(400, truth)
    snr50, scale = fit_logistic(snr, errors, np.full(snr.size, 400))
    assert snr50 == pytest.approx(4.8, abs=0.03)
    assert scale == pytest.approx(0.12, rel=0.15)
    with pytest.raises(ValueError):
        fit_logistic(snr[:1], errors[:1], np.array([400]))


def test_scan_extends_below_a_late_waterfall_and_stops_after_two_clean_points() -> None:
    calls: list[float] = []

    def errors_at(snr: float) -> int:  # waterfall at 9.0 dB, step 0.3 dB wide
        calls.append(snr)
        return int(round(100 / (1.0 + math.exp((snr - 9.0) / 0.05))))

    snr, errors = scan_waterfall(errors_at, centre_db=9.5, n_blocks=100)
    assert snr == sorted(snr) and len(set(snr)) == len(snr) == len(calls)
    assert errors[0] >= 95 and errors[-1] == errors[-2] == 0
    assert snr[0] < 9.0 - 0.1 and snr[-1] < 9.5 + 0.6  # extended below, stopped early above
    assert np.allclose(np.diff(snr), 0.1)


def test_committed_run_covers_both_tables_with_fine_steps_around_the_waterfall() -> None:
    doc = _mc_data()
    assert doc["settings"]["step_db"] <= 0.1 and doc["settings"]["blocks_per_point"] >= 100
    done = [(p["mcs_table"], p["mcs"]) for p in doc["pairs"]]
    assert sorted(done) == sorted(parse_selection(full_selection(doc["settings"]["n_prb"])))
    for pair in doc["pairs"]:
        ratio = np.asarray(pair["errors"]) / pair["blocks"]
        assert ratio[0] >= 0.9 and ratio[-1] <= 0.02, (pair["mcs_table"], pair["mcs"])
        assert np.allclose(np.diff(pair["snr_db"]), doc["settings"]["step_db"], atol=1e-6)
        assert pair["cb_bits"] == block_geometry(pair["mcs_table"], pair["mcs"], doc["settings"]["n_prb"])["cb_bits"]


def test_the_fits_in_the_file_follow_from_its_counts() -> None:
    for pair in _mc_data()["pairs"]:
        snr50, scale = fit_logistic(np.asarray(pair["snr_db"]), np.asarray(pair["errors"]),
                                    np.full(len(pair["snr_db"]), pair["blocks"]))
        assert snr50 == pytest.approx(pair["fit_snr50_db"], abs=0.01)
        assert snr50 + scale * LN9 == pytest.approx(pair["fit_snr10_db"], abs=0.01)


def test_shipped_curves_sit_within_the_stated_bounds_of_ldpc_monte_carlo() -> None:
    """At each pair's 10 % point the shipped curve's γ10 is within GAMMA10_BOUND_DB of the
    LDPC fit; at every measured point with 5 … 95 errors in 100 blocks, the SNR at which the
    shipped curve gives the measured BLER is within HORIZONTAL_BOUND_DB of the point's SNR
    (the curves agree in dB along the waterfall, not only at one point)."""
    n_checked = 0
    for pair in _mc_data()["pairs"]:
        table, mcs, k = pair["mcs_table"], pair["mcs"], pair["cb_bits"]
        snr50, scale = (float(v) for v in bler.curve_parameters(mcs, table, k))
        assert pair["shipped_snr10_db"] == pytest.approx(snr50 + scale * LN9, abs=1e-3)
        assert pair["shipped_snr10_db"] == pytest.approx(
            bler.mcs_sinr_threshold_db(table, 0.1, cb_bits=k)[mcs], abs=1e-3)  # the simulator's own inverse
        assert abs(pair["snr10_shift_db"]) <= GAMMA10_BOUND_DB, (table, mcs, pair["snr10_shift_db"])
        errors = np.asarray(pair["errors"])
        inside = (errors >= 5) & (errors <= pair["blocks"] - 5)
        measured = errors[inside] / pair["blocks"]
        shipped_snr = snr50 + scale * np.log(1.0 / measured - 1.0)
        distance = np.abs(np.asarray(pair["snr_db"])[inside] - shipped_snr)
        assert np.all(distance <= HORIZONTAL_BOUND_DB), (table, mcs, distance.max())
        n_checked += int(inside.sum())
    assert n_checked >= 200
