"""DU link-adaptation presets (lighttune_core.linkadapt.presets): each preset's numbers as cited
in the module docstring, the MCS each loop transmits, the per-TB and windowed update rules
(with the freezing at the MCS bounds) and the simulated DU running them."""

from __future__ import annotations

import numpy as np
import pytest

from e2sim.channel import LinkChannel, Scenario
from e2sim.du import DU
from lighttune_core.linkadapt import cqi_to_mcs, olla_mcs
from lighttune_core.linkadapt.presets import (
    DEFAULT_PRESET,
    PRESET_NAMES,
    PRESETS,
    DuPreset,
    get_preset,
    per_tb_update,
    preset_mcs,
    window_update,
)
from lighttune_core.linkadapt.tables import MAX_MCS_BY_TABLE

TOP_MCS: int = MAX_MCS_BY_TABLE[1]
"""28, the top MCS of MCS table 1."""


# ----------------------------------------------------------------------------- parameters
def test_the_three_presets_and_the_default() -> None:
    """Three presets by name, srsran the default of the presets module and of Scenario."""
    assert PRESET_NAMES == ("srsran", "oai", "sionna")
    assert DEFAULT_PRESET == "srsran"
    assert Scenario().du_preset == "srsran"
    for name in PRESET_NAMES:
        assert PRESETS[name].name == name
        assert get_preset(name) is PRESETS[name]
        assert get_preset(PRESETS[name]) is PRESETS[name]


def test_srsran_parameters() -> None:
    """srsRAN_Project: ``olla_cqi_inc`` 0.001 CQI per ACK, NACK step ``(1 − t) inc / t`` at the
    10 % target, offset within ±``olla_max_cqi_offset`` = 4 CQI, frozen at the MCS bounds."""
    p = PRESETS["srsran"]
    assert (p.loop, p.unit, p.target_bler) == ("cqi_offset", "CQI", 0.1)
    assert p.step_ack == -0.001  # the offset grows by 0.001 per ACK: the back-off shrinks
    assert p.step_nack == pytest.approx(0.009, abs=1e-15)
    assert p.max_backoff == 4.0
    assert p.freeze_at_mcs_bounds is True
    # the steady state of the step rule is the target: t · step_nack = (1 − t) · |step_ack|
    assert p.target_bler * p.step_nack == pytest.approx((1.0 - p.target_bler) * -p.step_ack, abs=1e-15)


def test_oai_parameters() -> None:
    """OpenAirInterface: 100 ms window (10 frames), thresholds 0.05 / 0.15, filter 0.9."""
    p = PRESETS["oai"]
    assert (p.loop, p.unit) == ("mcs_window", "MCS")
    assert p.window_ms == 100.0
    assert (p.bler_lower, p.bler_upper, p.bler_filter) == (0.05, 0.15, 0.9)
    assert p.freeze_at_mcs_bounds is True


def test_sionna_parameters() -> None:
    """Sionna SYS: 1 dB per NACK, ``δ_up t / (1 − t)`` = 1/9 dB per ACK, ±20 dB, no freezing."""
    p = PRESETS["sionna"]
    assert (p.loop, p.unit, p.target_bler) == ("snr_offset", "dB", 0.1)
    assert p.step_nack == 1.0
    assert p.step_ack == pytest.approx(-1.0 / 9.0, rel=1e-12)
    assert p.max_backoff == 20.0
    assert p.freeze_at_mcs_bounds is False


@pytest.mark.parametrize("bad", ["srsRAN", "olla", "", None, 3])
def test_unknown_preset_names_raise_naming_the_choices(bad: object) -> None:
    """An unknown name is a ValueError that lists the known presets."""
    with pytest.raises(ValueError, match="srsran, oai, sionna"):
        get_preset(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="srsran, oai, sionna"):
        preset_mcs(bad, 10, 0.0)  # type: ignore[arg-type]


def test_unknown_preset_is_rejected_by_scenario_and_du() -> None:
    """Scenario and DU refuse an unknown preset name."""
    with pytest.raises(ValueError, match="srsran, oai, sionna"):
        Scenario(du_preset="bogus")
    with pytest.raises(ValueError, match="srsran, oai, sionna"):
        DU(Scenario(profile="AWGN", n_ue=2), preset="bogus")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(loop="bogus"),
        dict(loop="cqi_offset", step_ack=0.001, step_nack=0.009, max_backoff=4.0),  # ACK step must be < 0
        dict(loop="cqi_offset", step_ack=-0.001, step_nack=0.009, max_backoff=0.0),
        dict(loop="mcs_window", window_ms=100.0, bler_lower=0.15, bler_upper=0.05, bler_filter=0.9),
        dict(loop="mcs_window", window_ms=0.0, bler_lower=0.05, bler_upper=0.15, bler_filter=0.9),
        dict(loop="snr_offset", target_bler=1.0, step_ack=-0.1, step_nack=1.0, max_backoff=20.0),
    ],
)
def test_inconsistent_presets_are_rejected(kwargs: dict[str, object]) -> None:
    """DuPreset checks its loop kind, step signs, bounds and BLER window."""
    args: dict[str, object] = dict(name="x", unit="dB", target_bler=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError):
        DuPreset(**args)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- preset_mcs
@pytest.mark.parametrize(
    ("cqi", "backoff", "mcs"),
    [
        (10, 0.0, 18),  # the table MCS of CQI 10
        (10, 0.5, 16),  # c_eff 9.5: floor((15 + 18) / 2) = 16
        (10, 0.25, 17),  # c_eff 9.75: floor(15 · 0.25 + 18 · 0.75) = floor(17.25)
        (10, 1.0 / 3.0, 17),  # c_eff 9.667: 15/3 + 18 · 2/3 = 17 exactly (not 16.999...)
        (10, -0.5, 19),  # c_eff 10.5: floor((18 + 20) / 2)
        (10, 4.0, 8),  # c_eff 6: the table MCS of CQI 6
        (7, 0.1, 10),  # c_eff 6.9: floor(8 · 0.1 + 11 · 0.9) = floor(10.7)
        (15, -1.0, 28),  # c_eff clamped to 15
        (2, 3.0, 0),  # c_eff clamped to 1: MCS of CQI 1
        (0, 0.0, -1),  # CQI 0: no transmission
        (0, -3.0, -1),
    ],
)
def test_srsran_mcs_interpolates_between_the_table_mcs_and_rounds_down(cqi: int, backoff: float, mcs: int) -> None:
    """srsRAN: ``c_eff = clip(c − b, 1, 15)``, linear interpolation between the table MCS, rounded down."""
    assert int(preset_mcs("srsran", cqi, backoff)) == mcs


def test_srsran_mcs_on_a_grid_equals_the_cited_formula() -> None:
    """``c_eff = clip(c − b, 1, 15)``, ``m = floor(m(⌊c_eff⌋)(1 − f) + m(⌈c_eff⌉) f)``, computed
    here with exact fractions (back-offs on a 1/8 grid are exact in binary)."""
    table = cqi_to_mcs(np.arange(16), 1, 1)
    cqi = np.arange(1, 16)[:, None]
    backoff = np.arange(-40, 41)[None, :] / 8.0
    got = preset_mcs("srsran", cqi, backoff)
    assert got.shape == (15, 81) and got.dtype == np.int64
    for i, c in enumerate(cqi[:, 0]):
        for j, b in enumerate(backoff[0]):
            eff = min(max(c - b, 1.0), 15.0)
            lo, frac = int(np.floor(eff)), eff - np.floor(eff)
            hi = min(lo + (frac > 0), 15)
            want = int(np.floor(table[lo] * (1 - frac) + table[hi] * frac))
            assert got[i, j] == want, (c, b)
    # more back-off never gives a higher MCS
    assert np.all(np.diff(got, axis=1) <= 0)


def test_srsran_mcs_on_mcs_table_2_tops_at_27() -> None:
    """The top MCS follows the MCS table (27 for table 2)."""
    assert int(preset_mcs("srsran", 15, -2.0, cqi_table=2, mcs_table=2)) == 27 == MAX_MCS_BY_TABLE[2]


@pytest.mark.parametrize(
    ("cqi", "backoff", "mcs"),
    [
        (10, 0.0, 18),
        (10, 3.0, 15),  # the table MCS minus the MCS offset
        (10, -4.0, 22),
        (10, -20.0, 28),  # clipped to the top MCS
        (1, 2.0, 0),  # clipped to MCS 0
        (15, -1.0, 28),
        (0, 0.0, -1),
    ],
)
def test_oai_mcs_is_the_table_mcs_minus_the_offset_clipped(cqi: int, backoff: float, mcs: int) -> None:
    """OAI: ``clip(m(c) − b, 0, top)``."""
    assert int(preset_mcs("oai", cqi, backoff)) == mcs


def test_sionna_mcs_is_olla_mcs() -> None:
    """Sionna: the SINR-offset MCS of ``olla_mcs``, with default and given thresholds."""
    rng = np.random.default_rng(3)
    cqi = rng.integers(0, 16, 500)
    backoff = rng.uniform(-20.0, 20.0, 500)
    np.testing.assert_array_equal(preset_mcs("sionna", cqi, backoff), olla_mcs(cqi, backoff))
    # with the simulator's own thresholds too
    cqi_thr = np.linspace(-8.0, 22.0, 16)
    mcs_thr = np.linspace(-9.0, 24.0, 29)
    np.testing.assert_array_equal(
        preset_mcs("sionna", cqi, backoff, cqi_sinr_db=cqi_thr, mcs_sinr_db=mcs_thr),
        olla_mcs(cqi, backoff, cqi_sinr_db=cqi_thr, mcs_sinr_db=mcs_thr),
    )


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_zero_backoff_gives_the_table_mcs(name: str) -> None:
    """Every preset sends the table MCS of the CQI at back-off 0."""
    cqi = np.arange(16)
    np.testing.assert_array_equal(preset_mcs(name, cqi, 0.0), cqi_to_mcs(cqi, 1, 1))


@pytest.mark.parametrize("name", ["srsran", "oai"])
def test_non_finite_backoff_raises(name: str) -> None:
    """NaN back-offs are refused."""
    with pytest.raises(ValueError, match="finite"):
        preset_mcs(name, np.array([5, 6]), np.array([0.0, np.nan]))


# ----------------------------------------------------------------------------- per-TB rule
def test_srsran_per_tb_update_steps_and_freezes_at_the_mcs_bounds() -> None:
    """An ACK at the top MCS and a NACK at MCS 0 leave the back-off; everything else steps."""
    p = PRESETS["srsran"]
    backoff = np.full(8, 0.5)
    ack = np.array([True, False, True, False, True, False, True, False])
    transmitted = np.array([True, True, True, True, True, True, False, False])
    used_mcs = np.array([TOP_MCS, 0, 10, 10, 0, TOP_MCS, 10, 10])
    got = per_tb_update(p, backoff, ack, transmitted, used_mcs, TOP_MCS)
    want = [
        0.5,  # ACK at the top MCS: the offset does not grow
        0.5,  # NACK at MCS 0: the offset does not shrink
        0.5 - 0.001,  # ACK
        0.5 + 0.009,  # NACK
        0.5 - 0.001,  # ACK at MCS 0 still steps
        0.5 + 0.009,  # NACK at the top MCS still steps
        0.5,  # nothing sent
        0.5,
    ]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(backoff, 0.5)  # pure: the input is untouched


def test_per_tb_update_clips_to_the_max_backoff() -> None:
    """The back-off stays within ±``olla_max_cqi_offset``."""
    p = PRESETS["srsran"]
    got = per_tb_update(p, np.array([3.995, -3.9995]), np.array([False, True]), np.array([True, True]),
                        np.array([10, 10]), TOP_MCS)
    np.testing.assert_array_equal(got, [4.0, -4.0])


def test_sionna_per_tb_update_does_not_freeze() -> None:
    """The 1 dB loop steps at the MCS bounds too and clips at ±20 dB."""
    p = PRESETS["sionna"]
    got = per_tb_update(p, np.zeros(3), np.array([True, False, True]), np.ones(3, bool),
                        np.array([TOP_MCS, 0, 5]), TOP_MCS)
    np.testing.assert_allclose(got, [-1.0 / 9.0, 1.0, -1.0 / 9.0], rtol=1e-12)
    assert per_tb_update(p, np.array([19.5]), np.array([False]), np.array([True]), np.array([3]), TOP_MCS)[0] == 20.0


def test_per_tb_update_refuses_the_windowed_loop() -> None:
    """OAI's loop is windowed: per_tb_update refuses it."""
    with pytest.raises(ValueError, match="windowed"):
        per_tb_update(PRESETS["oai"], np.zeros(1), np.ones(1, bool), np.ones(1, bool), np.zeros(1, np.int64), TOP_MCS)


# ----------------------------------------------------------------------------- OAI window
def test_window_update_moves_one_mcs_by_the_filtered_bler() -> None:
    """One window: filter the BLER, then ±1 MCS outside [0.05, 0.15], frozen at the MCS bounds."""
    p = PRESETS["oai"]
    backoff = np.array([0.0, 0.0, 2.0, 0.0, 0.0, 0.0])
    filtered = np.array([0.04, 0.2, 0.1, 0.04, 0.2, 0.04])
    tx = np.array([50, 10, 0, 50, 10, 50])
    nack = np.array([0, 5, 0, 0, 5, 0])
    current = np.array([18, 18, 18, TOP_MCS, 0, -1])
    new_b, new_f = window_update(p, backoff, filtered, tx, nack, current, TOP_MCS)
    # f' = 0.9 f + 0.1 nack / tx (the old f where nothing was sent)
    np.testing.assert_allclose(new_f, [0.036, 0.23, 0.1, 0.036, 0.23, 0.036], rtol=1e-12)
    np.testing.assert_array_equal(
        new_b,
        [
            -1.0,  # f' < 0.05: one MCS up (the back-off falls)
            1.0,  # f' > 0.15: one MCS down
            2.0,  # 0.05 <= f' <= 0.15: no move
            0.0,  # would go up, but already at the top MCS
            0.0,  # would go down, but already at MCS 0
            0.0,  # no CQI (MCS -1): no move
        ],
    )


def test_window_update_first_moves_up_after_seven_clean_windows() -> None:
    """From the DU's start value ``(0.05 + 0.15) / 2`` a NACK-free window multiplies the
    filtered BLER by 0.9: below 0.05 after the 7th window (0.9^6 = 0.53, 0.9^7 = 0.48)."""
    p = PRESETS["oai"]
    backoff, filtered = np.zeros(1), np.full(1, 0.1)
    moves = []
    for _ in range(8):
        new_b, filtered = window_update(p, backoff, filtered, np.array([40]), np.array([0]), np.array([18]), TOP_MCS)
        moves.append(float(new_b[0] - backoff[0]))
        backoff = new_b
    assert moves == [0.0] * 6 + [-1.0, -1.0]


# ----------------------------------------------------------------------------- the DU
def _run_du(preset: str, n_slots: int) -> tuple[DU, list]:
    """A 4-UE, 40 dB AWGN cell (every UE on the whole band every slot) run for ``n_slots``."""
    scenario = Scenario(profile="AWGN", n_ue=4, snr_db=(40.0, 40.0), csi_period_ms=10, seed=1,
                        du_preset=preset, sched_interval_slots=1)
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    outs = []
    for _ in range(n_slots):
        out = du.step(channel.step())
        if out is not None:
            outs.append(out)
    return du, outs


@pytest.mark.parametrize("preset", ["srsran", "oai"])
def test_du_at_the_top_mcs_keeps_its_backoff(preset: str) -> None:
    """High-SNR AWGN: every TB is ACKed at MCS 28; the offset is frozen at the MCS bound
    (without the freeze srsRAN's back-off would fall by 0.001 per ACK, to about −0.38)."""
    du, outs = _run_du(preset, 400)
    assert du.preset.name == preset
    assert sum(int(o.reports.n_nack.sum()) for o in outs) == 0
    acks = sum(o.reports.n_ack for o in outs)
    assert np.all(acks > 300)
    for out in outs[1:]:
        np.testing.assert_array_equal(out.reports.mcs, TOP_MCS)
        np.testing.assert_array_equal(out.reports.olla_offset_db, 0.0)
    np.testing.assert_array_equal(du.olla_offset_db, 0.0)


def test_sionna_du_winds_its_backoff_down_at_the_top_mcs() -> None:
    """The same channel with the unfrozen 1 dB loop: 1/9 dB per ACK down to the −20 dB bound."""
    du, outs = _run_du("sionna", 400)
    assert sum(int(o.reports.n_nack.sum()) for o in outs) == 0
    np.testing.assert_array_equal(du.olla_offset_db, -20.0)
    assert np.all(outs[1].reports.olla_offset_db < 0.0)


def test_du_preset_argument_overrides_the_scenario() -> None:
    """DU(preset=...) wins over Scenario.du_preset."""
    scenario = Scenario(profile="AWGN", n_ue=2, du_preset="oai")
    assert DU(scenario).preset is PRESETS["oai"]
    sionna = DU(scenario, preset="sionna").preset
    # the SINR-offset DU's preset carries the simulator's own thresholds, the loop is Sionna's
    assert sionna.name == "sionna" and sionna.step_nack == PRESETS["sionna"].step_nack
    assert sionna.cqi_sinr_db is not None and sionna.mcs_sinr_db is not None
    assert DU(scenario, preset=PRESETS["srsran"]).preset is PRESETS["srsran"]
