"""Scenario validation, serialisation and per-UE SNR draws."""

from __future__ import annotations

import numpy as np
import pytest

from e2sim.channel import Scenario, paper_scenario
from e2sim.channel.profiles import power_delay_profile


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"profile": "TDL-Z30"}, "unknown profile"),
        ({"profile": "Rayleigh"}, "unknown profile"),
        ({"doppler_hz": -1.0}, "doppler_hz"),
        ({"doppler_hz": 501.0}, "doppler_hz"),
        ({"csi_period_ms": 30}, "csi_period_ms"),
        ({"snr_db": (12.0, 0.0)}, "reversed"),
        ({"n_ue": 0}, "n_ue"),
        ({"correlation": "extreme"}, "correlation"),
        ({"n_tx": 3}, "n_tx"),
        ({"mcs_table": 4}, "mcs_table"),
        ({"csi_snr_error_db": -0.5}, "csi_snr_error_db"),
        ({"scs_khz": 45}, "scs_khz"),
    ],
)
def test_bad_parameters_are_rejected_with_the_field_named(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario(**overrides)


def test_round_trip_through_dict() -> None:
    scenario = Scenario(profile="TDL-B100", doppler_hz=50.0, correlation="high",
                        snr_db=(16.0, 24.0), csi_period_ms=10, n_ue=7, seed=42)
    again = Scenario.from_dict(scenario.to_dict())
    assert again == scenario
    with pytest.raises(ValueError, match="unknown scenario field"):
        Scenario.from_dict({**scenario.to_dict(), "speed": 3})


def test_ue_snr_is_seeded_uniform_in_range() -> None:
    scenario = Scenario(n_ue=2000, snr_db=(28.0, 40.0), seed=5)
    snr = scenario.ue_mean_snr_db()
    assert snr.shape == (2000,)
    assert np.all((snr >= 28.0) & (snr <= 40.0))
    assert abs(snr.mean() - 34.0) < 0.4
    np.testing.assert_array_equal(snr, Scenario(n_ue=2000, snr_db=(28.0, 40.0), seed=5).ue_mean_snr_db())
    assert not np.array_equal(snr, Scenario(n_ue=2000, snr_db=(28.0, 40.0), seed=6).ue_mean_snr_db())


def test_slot_timing_at_30_khz() -> None:
    scenario = Scenario(scs_khz=30, csi_period_ms=80)
    assert scenario.slot_s == pytest.approx(0.5e-3)
    assert scenario.csi_period_slots == 160


def test_paper_presets() -> None:
    scenario = paper_scenario("TDL-C200", snr="medium", doppler_hz=50.0, correlation="medium")
    assert scenario.snr_db == (16.0, 24.0)
    with pytest.raises(ValueError, match="snr"):
        paper_scenario(snr="huge")


@pytest.mark.parametrize("name", ["TDL-A30", "TDL-B100", "TDL-C300"])
def test_scaled_profile_has_the_named_rms_delay_spread(name: str) -> None:
    profile = power_delay_profile(name)
    assert profile.powers.sum() == pytest.approx(1.0)
    wanted = float(name[5:]) * 1e-9
    # 38.901 normalised profiles have unit RMS delay spread to within a few per cent.
    assert profile.rms_delay_spread_s() == pytest.approx(wanted, rel=0.05)
