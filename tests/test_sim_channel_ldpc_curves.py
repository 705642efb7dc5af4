"""The ``ldpc-mc`` BLER curve set: built from the committed LDPC Monte-Carlo runs, it
reproduces their points, and a scenario, the DU and the command line can select it."""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np
import pytest

from e2sim.channel import Scenario, bler
from e2sim.channel.bler_ldpc_curves import ANCHOR_FILE, OTHER_SIZE_FILES, build
from e2sim.cli import main as e2sim_main
from e2sim.du import DU, du_link_preset

pytestmark = pytest.mark.float_sensitive


def _pairs(name: str) -> list[dict]:
    return json.loads(resources.files("e2sim.channel").joinpath("data", name).read_text())["pairs"]


def test_committed_curve_file_is_what_the_generator_makes_from_the_committed_runs() -> None:
    """``python -m e2sim.channel.bler_ldpc_curves --check`` in test form: the shipped file is
    derived from the Monte-Carlo data in the repository, nothing else (floats to 1e-4 dB)."""
    built = build()
    shipped = bler.curve_data("ldpc-mc")
    assert shipped["block_length_scaling"]["n_pairs"] == built["block_length_scaling"]["n_pairs"] >= 15
    for table in ("1", "2", "3"):
        for key in ("code_block_sizes", "snr50_db", "scale_db"):
            np.testing.assert_allclose(shipped["tables"][table][key], built["tables"][table][key], atol=1e-4)
    assert shipped["tables"]["3"] == bler.curve_data()["tables"]["3"]  # not simulated: the default set's
    assert shipped["eesm_beta"] == bler.curve_data()["eesm_beta"]


@pytest.mark.parametrize("name", [ANCHOR_FILE, *OTHER_SIZE_FILES])
def test_curves_reproduce_the_monte_carlo_waterfalls(name: str) -> None:
    """At every run's code-block size: the curve's 10 % point is within 0.15 dB of the
    Monte-Carlo fit (0.01 dB at the 26-RB anchors), and each measured point with 5 … 95
    errors in 100 blocks lies within 0.25 dB of the curve (in SNR at the measured BLER; the
    sionna-tables curves are up to 0.83 dB off, tests/test_sim_channel_bler_mc.py)."""
    anchor = name == ANCHOR_FILE
    for pair in _pairs(name):
        table, mcs, k = pair["mcs_table"], pair["mcs"], pair["cb_bits"]
        snr50, scale = (float(v) for v in bler.curve_parameters(mcs, table, k, curves="ldpc-mc"))
        gamma10 = snr50 + scale * math.log(9.0)
        assert abs(gamma10 - pair["fit_snr10_db"]) <= (0.01 if anchor else 0.15), (table, mcs, k)
        errors = np.asarray(pair["errors"])
        inside = (errors >= 5) & (errors <= pair["blocks"] - 5)
        measured = errors[inside] / pair["blocks"]
        curve_snr = snr50 + scale * np.log(1.0 / measured - 1.0)
        assert np.all(np.abs(np.asarray(pair["snr_db"])[inside] - curve_snr) <= 0.25), (table, mcs, k)


def test_longer_blocks_have_steeper_waterfalls_and_the_thresholds_stay_ordered() -> None:
    """s falls with K (about 1/sqrt(K)); at the DU's transport blocks the 10 % SINR thresholds
    rise with MCS, which the sionna preset's mapping and the xApp's duSinrThresholds need."""
    sc = bler.curve_data("ldpc-mc")["block_length_scaling"]
    assert -0.7 < sc["b"] < -0.3 and abs(sc["a_db"]) < 0.2
    for table in (1, 2):
        _, s_small = bler.curve_parameters(np.arange(10), table, 300, curves="ldpc-mc")
        _, s_large = bler.curve_parameters(np.arange(10), table, 8000, curves="ldpc-mc")
        assert np.all(s_large < s_small)
        for n_prb in (8, 26, 106):
            thresholds = bler.mcs_sinr_threshold_db(table, 0.1, 1, n_prb, curves="ldpc-mc")
            assert np.all(np.diff(thresholds) > 0), (table, n_prb)


def test_unknown_curve_set_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="sionna-tables, ldpc-mc"):
        bler.code_block_bler(5.0, 10, 1, 2000, curves="awgn")
    with pytest.raises(ValueError, match="bler_curves"):
        Scenario(bler_curves=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="BLER curve set"):
        Scenario(bler_curves="ldpc")


def test_scenario_carries_the_curve_set_through_dict_and_du_free() -> None:
    """A trace or dataset records the set; the channel does not depend on it, so du_free()
    resets it like the DU preset (a trace made with one set replays with the other)."""
    s = Scenario(bler_curves="sionna-tables", seed=3)
    assert Scenario.from_dict(s.to_dict()) == s and s.to_dict()["bler_curves"] == "sionna-tables"
    assert s.du_free() == Scenario(seed=3).du_free() and Scenario().bler_curves == "ldpc-mc"
    # a trace's channel under the caller's DU: every DU field taken, the channel kept
    caller = Scenario(profile="TDL-C300", sched_interval_slots=1, du_preset="oai", bler_curves="ldpc-mc")
    met = s.with_du_of(caller)
    assert (met.sched_interval_slots, met.du_preset, met.bler_curves) == (1, "oai", "ldpc-mc")
    assert met.du_free() == s.du_free() and met.profile == s.profile
    # a record without the field was made before it existed, on sionna-tables, not today's default
    legacy = {k: v for k, v in Scenario(seed=3).to_dict().items() if k != "bler_curves"}
    assert Scenario.from_dict(legacy).bler_curves == "sionna-tables"


def test_the_du_draws_its_harq_outcomes_from_the_selected_curves() -> None:
    """The DU's first-transmission TB BLER is transport_block_bler of its scenario's set, and
    the two sets give different BLERs on the same SINR (so the option reaches the link)."""
    mcs, rank = np.array([16]), np.array([1])
    got = {}
    for curves in bler.CURVE_SETS:
        weights = np.array([8.0, 8.0, 10.0])  # RBs per subband, the EESM weights
        du = DU(Scenario(n_ue=1, n_rb=26, sched_interval_slots=1, bler_curves=curves), subband_n_rb=weights)
        sinr = np.full((1, 4, weights.size), np.nan)
        sinr[0, 0, :] = 8.2 + 0.2 * np.arange(weights.size)  # a frequency-selective layer at MCS 16's waterfall
        got[curves] = du._tb_bler(sinr, mcs, rank)
        expected = bler.transport_block_bler(sinr[:, :1], mcs, 1, 26, 1, weights, curves=curves)
        np.testing.assert_allclose(got[curves], expected, rtol=1e-9, atol=1e-12)
    assert abs(float(got["ldpc-mc"][0] - got["sionna-tables"][0])) > 1e-3


def test_sionna_preset_thresholds_follow_the_curve_set(capsys: pytest.CaptureFixture[str]) -> None:
    """`e2sim du-mapping --du sionna --bler-curves sionna-tables` prints the thresholds of that
    set, and without the option those of the default ldpc-mc."""
    assert e2sim_main(["du-mapping", "--du", "sionna", "--bler-curves", "sionna-tables"]) == 0
    printed = json.loads(capsys.readouterr().out)
    preset = du_link_preset(Scenario(du_preset="sionna", bler_curves="sionna-tables"))
    np.testing.assert_allclose(printed["duSinrThresholds"]["mcsDb"], preset.mcs_sinr_db, atol=1e-3)
    default = du_link_preset(Scenario(du_preset="sionna", bler_curves="ldpc-mc"))
    assert not np.allclose(preset.mcs_sinr_db, default.mcs_sinr_db, atol=0.05)
    assert e2sim_main(["du-mapping", "--du", "sionna"]) == 0
    printed = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(printed["duSinrThresholds"]["mcsDb"], default.mcs_sinr_db, atol=1e-3)


def test_e2_node_cells_use_the_curve_set_of_the_command_line() -> None:
    """`e2sim run --bler-curves sionna-tables`: every cell's DU (also in --compare mode, where
    the scenario comes from the shared source) links with that set; ldpc-mc without it."""
    import argparse

    from e2sim.node import add_run_arguments, build_cells, scenario_from_args

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    scenario = scenario_from_args(parser.parse_args(["--bler-curves", "sionna-tables", "--ues", "2"]))
    assert scenario.bler_curves == "sionna-tables"
    assert scenario_from_args(parser.parse_args([])).bler_curves == "ldpc-mc"
    for compare in ((), ("olla", "ri_cqi")):
        cells, _, _ = build_cells(scenario, 2 if not compare else 1, compare=compare)
        assert {c.du.scenario.bler_curves for c in cells} == {"sionna-tables"}
