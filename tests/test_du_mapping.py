"""The sionna (SINR-offset) DU maps CQI and back-off to MCS with the simulator's own SINR
thresholds; the xApp's delivered-bits score must use the same mapping, in-process
(``e2sim.du.du_link_preset``) and over E2 (``controls.duSinrThresholds``, printed by
``e2sim du-mapping``)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from e2sim.channel import Scenario
from e2sim.cli import main as e2sim_main
from e2sim.du import DU, du_link_preset, xapp_du_controls
from lighttune_core.linkadapt.presets import PRESETS, preset_mcs, with_sinr_thresholds
from lighttune_core.linkadapt.tables import mcs_spectral_efficiency
from lighttune_core.linkadapt.tune import candidate_rate
from lighttune_core.synthetic import random_reports
from lighttune_xapp.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
CQI = np.arange(1, 16)[:, None]
BACKOFF_DB = np.linspace(-3.0, 3.0, 25)[None, :]


@pytest.fixture
def descriptor() -> dict[str, Any]:
    return json.loads((REPO / "xapp-descriptor" / "config-file.json").read_text())


def test_the_sionna_du_maps_unlike_the_gap_to_capacity_default() -> None:
    """Why this matters: the simulator's thresholds and the gap-to-capacity defaults give
    different MCS for some (CQI, back-off) pairs, so scoring with the bare preset is wrong."""
    du = DU(Scenario(profile="AWGN", n_ue=2, du_preset="sionna"))
    own = du.du_mcs(np.broadcast_to(CQI, (15, 25)), np.broadcast_to(BACKOFF_DB, (15, 25)))
    default = preset_mcs("sionna", CQI, BACKOFF_DB)
    assert np.count_nonzero(own != default) > 10


@pytest.mark.parametrize("mcs_table", [1, 2])
def test_the_score_maps_with_the_du_preset(mcs_table: int) -> None:
    """``candidate_rate`` with the DU's preset is r · SE(the MCS the DU transmits)."""
    scenario = Scenario(profile="AWGN", n_ue=2, du_preset="sionna", mcs_table=mcs_table,
                        cqi_table=mcs_table)
    du = DU(scenario)
    reports = random_reports(40, 5, cqi_table=mcs_table)
    reports = dataclasses.replace(reports, olla_offset_db=np.random.default_rng(2).uniform(-3, 3, 40))
    rank = np.tile([1, 2, 3], (40, 5))
    cqi = np.random.default_rng(3).integers(1, 16, (40, 15))
    want = rank * mcs_spectral_efficiency(du.du_mcs(cqi, np.repeat(reports.olla_offset_db[:, None], 15, 1)),
                                          mcs_table)
    got = candidate_rate(reports, rank, cqi, du.preset, mcs_table)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_du_mapping_controls_give_the_xapp_the_du_preset(descriptor: dict[str, Any],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`e2sim du-mapping --du sionna` prints controls with which the xApp's preset equals the
    DU's exactly (JSON keeps every float), so both ends pick the same MCS."""
    assert e2sim_main(["du-mapping", "--du", "sionna"]) == 0
    controls = json.loads(capsys.readouterr().out)
    descriptor["controls"].update(controls)
    config = load_config(descriptor)
    du_preset = DU(Scenario(profile="AWGN", n_ue=2, du_preset="sionna")).preset
    assert config.link_preset() == du_preset
    np.testing.assert_array_equal(preset_mcs(config.link_preset(), CQI, BACKOFF_DB),
                                  preset_mcs(du_preset, CQI, BACKOFF_DB))
    # srsRAN's and OAI's mappings need no thresholds
    assert e2sim_main(["du-mapping", "--du", "srsran"]) == 0
    assert json.loads(capsys.readouterr().out) == {"duPreset": "srsran"}
    assert xapp_du_controls(du_link_preset(Scenario(du_preset="oai"))) == {"duPreset": "oai"}


def test_without_thresholds_the_xapp_keeps_the_named_preset(descriptor: dict[str, Any]) -> None:
    descriptor["controls"]["duPreset"] = "sionna"
    assert load_config(descriptor).link_preset() is PRESETS["sionna"]


def _with(descriptor: dict[str, Any], preset: str, cqi: list[float], mcs: list[float]) -> dict[str, Any]:
    d = copy.deepcopy(descriptor)
    d["controls"]["duPreset"] = preset
    d["controls"]["duSinrThresholds"] = {"cqiDb": cqi, "mcsDb": mcs}
    return d


def test_bad_thresholds_are_refused_naming_the_field(descriptor: dict[str, Any]) -> None:
    cqi = list(np.linspace(-6.0, 20.0, 15))
    mcs = list(np.linspace(-7.0, 22.0, 29))
    assert load_config(_with(descriptor, "sionna", cqi, mcs)).du_sinr_thresholds is not None
    with pytest.raises(ConfigError, match="duSinrThresholds.*sionna"):
        load_config(_with(descriptor, "srsran", cqi, mcs))  # a CQI-offset DU has no thresholds
    with pytest.raises(ConfigError, match="duSinrThresholds.*non-decreasing"):
        load_config(_with(descriptor, "sionna", cqi, mcs[::-1]))
    with pytest.raises(ConfigError, match="duSinrThresholds"):
        load_config(_with(descriptor, "sionna", cqi[:14], mcs))  # 14 CQIs


def test_thresholds_belong_to_an_snr_offset_preset() -> None:
    with pytest.raises(ValueError, match="snr_offset"):
        with_sinr_thresholds("srsran", np.zeros(16), np.zeros(29))
    with pytest.raises(ValueError, match="16 values"):
        with_sinr_thresholds("sionna", np.zeros(15), None)
    with pytest.raises(ValueError, match="non-decreasing"):
        with_sinr_thresholds("sionna", None, np.array([1.0, 0.0]))


def test_e2sim_du_mapping_refuses_a_bad_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert e2sim_main(["du-mapping", "--du", "sionna", "--mcs-table", "5"]) == 2
    assert "mcs_table" in capsys.readouterr().err
