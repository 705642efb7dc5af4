"""The perfect BLER predictor by replay (e2sim.headroom) and its schemes in run_experiment."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from e2sim.channel import LinkChannel, Scenario
from e2sim.channel.scenario import SNR_RANGES_DB
from e2sim.du import DU, DuRandomness
from e2sim.experiment import (
    ModelSource,
    headroom_markdown,
    run_experiment,
    run_table6,
    table6_markdown,
)
from e2sim.headroom import (
    FeatureIndex,
    PerfectPredictor,
    policy_candidates,
    replay_candidates,
)
from lighttune_core.cell import CellTuner
from lighttune_core.features import build_features
from lighttune_core.tuner import LightTuneModel


def _scenario(preset: str, n_ue: int = 6, csi_period_ms: int = 20, seed: int = 3) -> Scenario:
    return Scenario(
        profile="TDL-A10", doppler_hz=20.0, correlation="low", snr_db=SNR_RANGES_DB["medium"],
        csi_period_ms=csi_period_ms, n_ue=n_ue, seed=seed, du_preset=preset,
    )


def _first_period(scenario: Scenario) -> tuple[LinkChannel, DU, DuRandomness, object]:
    """A channel, a DU that has just closed its first CSI period, the HARQ draws and the outcome."""
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    harq = DuRandomness(scenario.seed + 100, scenario.n_ue, 0.0)
    while True:
        out = du.step(channel.step(), harq.harq_uniforms())
        if out is not None:
            return channel, du, harq, out


@pytest.mark.parametrize("preset,mode", [("srsran", "ri_cqi"), ("oai", "ri_cqi"), ("sionna", "cqi")])
def test_replay_reproduces_the_du_for_any_chosen_candidates(preset: str, mode: str) -> None:
    """Period after period, the DU applying one candidate per UE (drawn at random among the
    replayed ones) delivers exactly the replay's ACKs, NACKs and bits for that candidate."""
    scenario = _scenario(preset)
    channel, du, harq, out = _first_period(scenario)
    tuner = CellTuner(LightTuneModel(seed=1), mode, learn=False, du_preset=preset, mcs_table=scenario.mcs_table)
    rng = np.random.default_rng(0)
    period = scenario.csi_period_slots
    n_candidates = []
    loop_start = (du.olla_offset_db.copy(), du._filtered_bler.copy())
    for _ in range(8):  # 160 ms: the OAI loop's 100 ms window closes inside
        rep = out.reports
        ue, rank, cqi = policy_candidates(rep, tuner)
        n_candidates.append(ue.size)
        slots = [channel.step() for _ in range(period)]
        uniforms = [harq.harq_uniforms() for _ in range(period)]
        before = copy.deepcopy(du.__dict__)
        replay = replay_candidates(du, ue, rank, cqi, slots, uniforms)
        # the replay leaves the DU untouched
        assert du.slot_index == before["slot_index"]
        np.testing.assert_array_equal(du.olla_offset_db, before["olla_offset_db"])
        pick = np.array([rng.choice(np.flatnonzero(ue == u)) for u in range(scenario.n_ue)])
        du.apply_control(rep.ue_id, rank[pick], cqi[pick])
        out = None
        for slot, u in zip(slots, uniforms):
            out = du.step(slot, u)
        assert out is not None, "the period must close after csi_period_slots slots"
        expected = replay.outcome(rank[pick], cqi[pick])
        np.testing.assert_array_equal(out.reports.n_ack, expected[0])
        np.testing.assert_array_equal(out.reports.n_nack, expected[1])
        np.testing.assert_array_equal(out.reports.served_bits, expected[2])
        assert (expected[0] + expected[1]).sum() > 0
        # the expected BLER of the applied candidate is the DU's mean block error probability
        rows = replay.rows_of(np.arange(scenario.n_ue), rank[pick], cqi[pick])
        np.testing.assert_allclose(replay.expected_bler[rows], out.mean_tb_bler, rtol=1e-12, equal_nan=True)
    # the loop's state (OLLA back-off; the OAI loop's filtered window BLER) evolved meanwhile
    changed = [not np.array_equal(a, b) for a, b in zip(loop_start, (du.olla_offset_db, du._filtered_bler))]
    assert any(changed), "the link-adaptation state must evolve during the test, or it tests little"
    # every UE gets several candidates (ranks x CQIs), each UE its own
    assert min(n_candidates) > 2 * scenario.n_ue


@pytest.mark.parametrize("preset", ["srsran", "sionna"])
def test_perfect_schemes_deliver_what_the_replay_forecast(preset: str) -> None:
    scenario = _scenario(preset, n_ue=8, csi_period_ms=20)
    model = ModelSource(LightTuneModel(seed=1), "untrained test model")
    res = run_experiment(scenario, 0.4, model, schemes=("olla", "cqi_perfect", "ri_cqi_perfect"))
    for s in ("cqi_perfect", "ri_cqi_perfect"):
        log = res.headroom[s]
        assert len(log.replayed) >= 15
        assert log.n_mismatched == 0
        np.testing.assert_array_equal(np.stack(log.replayed), np.stack(log.delivered))
        # the perfect predictor's forecast of its own decisions is exact (quantised labels)
        assert res.schemes[s].error_tuned == 0.0
        # the oracle takes the best candidate of each period: never below the scheme's bits
        bits = np.rint(res.schemes[s].throughput_bps * res.duration_s).astype(np.int64)
        assert (log.oracle_bits >= bits).all()
    # OLLA has no headroom log; the real-model schemes are unchanged by the extra schemes
    assert set(res.headroom) == {"cqi_perfect", "ri_cqi_perfect"}
    alone = run_experiment(scenario, 0.4, model, schemes=("olla",))
    np.testing.assert_array_equal(alone.schemes["olla"].throughput_bps, res.schemes["olla"].throughput_bps)


def test_perfect_ri_cqi_tune_is_not_below_olla() -> None:
    """On a small seeded cell the perfect-predictor RI-CQI-Tune is not below OLLA beyond noise."""
    for preset in ("sionna", "srsran"):
        scenario = _scenario(preset, n_ue=12, csi_period_ms=80, seed=5)
        model = ModelSource(LightTuneModel(seed=1), "untrained test model")
        res = run_experiment(scenario, 1.0, model, schemes=("olla", "ri_cqi_perfect"))
        g = res.gain("ri_cqi_perfect")
        assert g.gain > -0.01 and g.ci_high > 0.0, (preset, g)
        assert res.oracle_gain("ri_cqi_perfect").gain >= g.gain


def test_table6_with_perfect_predictor_and_markdown() -> None:
    model = ModelSource(LightTuneModel(seed=1), "untrained test model")
    results = run_table6(model, n_ue=4, duration_s=0.2, seed=1, workers=1, rows=[12], perfect=True,
                         snrs=("high",), du_preset="sionna")
    assert len(results) == 1
    d = results[0]
    for key in ("cqi", "ri_cqi", "olla_bler"):  # the keys of earlier results stay
        assert key in d
    assert d["du_preset"] == "sionna" and d["replay_mismatches"] == 0
    assert len(d["ri_cqi_perfect"]) == 3 and d["oracle"][0] >= d["ri_cqi_perfect"][0]
    assert d["olla_mbps"] > 0 and d["ri_cqi_perfect_mbps"] > 0
    g_perfect = d["ri_cqi_perfect"][0]
    if g_perfect > 0:
        assert d["recovered"] == pytest.approx(d["ri_cqi"][0] / g_perfect)
    else:
        assert d["recovered"] is None
    md = table6_markdown(results, "test model", 4, 0.2)
    assert md == headroom_markdown(results, "test model", 4, 0.2)
    assert "perfect RI-CQI-Tune" in md and "| high |" in md and "sionna" in md
    plain = run_table6(model, n_ue=4, duration_s=0.2, seed=1, workers=1, rows=[12], snrs=("high",),
                       du_preset="sionna")
    assert "ri_cqi_perfect" not in plain[0]
    assert plain[0]["ri_cqi"] == pytest.approx(d["ri_cqi"])  # same common random numbers
    assert "perfect" not in table6_markdown(plain, "test model", 4, 0.2)
    assert plain[0]["calibrate"] is True and "- Calibration: on" in md
    raw = run_table6(model, n_ue=4, duration_s=0.2, seed=1, workers=1, rows=[12], snrs=("high",),
                     du_preset="sionna", calibrate=False)
    assert raw[0]["calibrate"] is False and "- Calibration: off" in table6_markdown(raw, "test model", 4, 0.2)
    assert plain[0]["rank_check"] is True and "- Rank-change check: on" in md
    unchecked = run_table6(model, n_ue=4, duration_s=0.2, seed=1, workers=1, rows=[12], snrs=("high",),
                           du_preset="sionna", check_rank_changes=False)
    assert unchecked[0]["rank_check"] is False
    assert "- Rank-change check: off" in table6_markdown(unchecked, "test model", 4, 0.2)
    assert plain[0]["probe_du_choice"] is True and "- DU-choice probes: on" in md
    assert raw[0]["probe_du_choice"] is False  # no calibration, nothing to probe for
    unprobed = run_table6(model, n_ue=4, duration_s=0.2, seed=1, workers=1, rows=[12], snrs=("high",),
                          du_preset="sionna", probe_du_choice=False)
    assert unprobed[0]["probe_du_choice"] is False
    assert "- DU-choice probes: off" in table6_markdown(unprobed, "test model", 4, 0.2)


def test_feature_index_and_perfect_predictor() -> None:
    scenario = _scenario("srsran")
    channel, du, harq, out = _first_period(scenario)
    rep = out.reports
    index = FeatureIndex(rep)
    x = build_features(rep, np.full(len(rep), 2), np.arange(len(rep)) + 3)
    ue, rank, cqi = index.locate(x[::-1])
    np.testing.assert_array_equal(ue, np.arange(len(rep))[::-1])
    np.testing.assert_array_equal(rank, 2)
    np.testing.assert_array_equal(cqi, (np.arange(len(rep)) + 3)[::-1])
    bad = x.copy()
    bad[0, 0] += 1e-3
    with pytest.raises(ValueError, match="belongs to no UE"):
        index.locate(bad)
    with pytest.raises(ValueError, match=r"\[M, 12\]"):
        index.locate(x[:, :5])

    tuner = CellTuner(LightTuneModel(seed=1), "ri_cqi", du_preset="srsran")
    cand = policy_candidates(rep, tuner)
    period = scenario.csi_period_slots
    slots = [channel.step() for _ in range(period)]
    uniforms = [harq.harq_uniforms() for _ in range(period)]
    replay = replay_candidates(du, *cand, slots, uniforms)
    perfect = PerfectPredictor()
    with pytest.raises(ValueError, match="set_period"):
        perfect.predict_many(x)
    perfect.set_period(rep, replay)
    rows = build_features(rep, rep.ri, rep.cqi)[cand[0]]
    rows[:, 6] = cand[1] / 4
    rows[:, 7] = cand[2] / 15
    lab = replay.label
    np.testing.assert_array_equal(perfect.predict_many(rows), np.where(np.isnan(lab), 0.0, lab))
    # a candidate outside the replayed grid is refused
    missing = [(u, r, c) for u in range(len(rep)) for r in (1, 2, 3, 4) for c in range(16)
               if replay.rows_of(np.array([u]), np.array([r]), np.array([c]))[0] < 0]
    u, r, c = missing[0]
    one = build_features(rep, rep.ri, rep.cqi)[[u]]
    one[:, 6], one[:, 7] = r / 4, c / 15
    with pytest.raises(ValueError, match="not replayed"):
        perfect.predict_many(one)
    assert perfect.learn_one(one[0], 0.0) is False
    # the perfect tuner decides with these labels and its decision's forecast is exact
    perfect_tuner = CellTuner(perfect, "ri_cqi", learn=False, du_preset="srsran")
    decisions = perfect_tuner.decide(rep)
    rows_chosen = replay.rows_of(np.arange(len(rep)), decisions.rank, decisions.cqi)
    assert (rows_chosen >= 0).all()
    np.testing.assert_array_equal(decisions.predicted_bler, perfect._label[rows_chosen])


def test_bad_arguments_raise_value_errors() -> None:
    scenario = _scenario("srsran")
    channel, du, harq, out = _first_period(scenario)
    rep = out.reports
    tuner = CellTuner(LightTuneModel(seed=1), "ri_cqi", du_preset="srsran")
    ue, rank, cqi = policy_candidates(rep, tuner)
    slots = [channel.step() for _ in range(4)]
    uniforms = [harq.harq_uniforms() for _ in range(4)]
    with pytest.raises(ValueError, match="one length"):
        replay_candidates(du, ue, rank[:-1], cqi, slots, uniforms)
    with pytest.raises(ValueError, match="HARQ uniform"):
        replay_candidates(du, ue, rank, cqi, slots, uniforms[:-1])
    with pytest.raises(ValueError, match="sorted"):
        replay_candidates(du, ue[::-1], rank[::-1], cqi[::-1], slots, uniforms)
    with pytest.raises(ValueError, match="ranks"):
        replay_candidates(du, ue, rank + 4, cqi, slots, uniforms)
    with pytest.raises(ValueError, match="CQIs"):
        replay_candidates(du, ue, rank, cqi + 16, slots, uniforms)
    with pytest.raises(ValueError, match="UEs"):
        replay_candidates(du, ue + 100, rank, cqi, slots, uniforms)
    with pytest.raises(ValueError, match="shape"):
        replay_candidates(du, ue, rank, cqi, slots, [u[:-1] for u in uniforms])
    # a DU whose report takes effect 2 slots after its CSI-RS slot has one pending in between
    fresh = LinkChannel(scenario)
    mid = DU(scenario, csi_delay_slots=2, subband_n_rb=fresh.subband_n_rb)
    for _ in range(scenario.csi_period_slots):
        mid.step(fresh.step())
        if mid._pending is not None:
            break
    assert mid._pending is not None
    with pytest.raises(ValueError, match="period starts"):
        replay_candidates(mid, ue, rank, cqi, slots, uniforms)
    with pytest.raises(ValueError, match="mode"):
        policy_candidates(rep, CellTuner(LightTuneModel(seed=1), "off"))
    replay = replay_candidates(du, ue, rank, cqi, slots, uniforms)
    with pytest.raises(ValueError, match="not replayed"):
        replay.outcome(np.ones(len(rep), dtype=np.int64), np.zeros(len(rep), dtype=np.int64) + 16)
    perfect = PerfectPredictor()
    with pytest.raises(ValueError, match="covers"):
        perfect.set_period(rep, dataclasses.replace(replay, n_ue=replay.n_ue + 1))
    model = ModelSource(LightTuneModel(seed=1), "untrained test model")
    with pytest.raises(ValueError, match="unknown scheme"):
        run_experiment(scenario, 0.1, model, schemes=("olla", "ri_cqi_oracle"))
    with pytest.raises(ValueError, match="snrs"):
        run_table6(model, n_ue=4, duration_s=0.1, workers=1, rows=[0], snrs=("low",))
    with pytest.raises(ValueError, match="unknown DU preset"):
        run_table6(model, n_ue=4, duration_s=0.1, workers=1, rows=[0], du_preset="nokia")


def test_headroom_study_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from e2sim.cli import main

    model_path = tmp_path / "m.ltm"
    model_path.write_bytes(LightTuneModel(seed=1).to_bytes())
    with pytest.raises(SystemExit):
        main(["study", "headroom", "--model", str(model_path), "--du", "nokia"])
    assert main(["study", "headroom", "--model", str(model_path), "--only", "16", "--out-dir", str(tmp_path)]) != 0
    assert "Table 6 has rows 0 .. 15" in capsys.readouterr().err
    assert main(["study", "headroom", "--model", str(model_path), "--only", "0", "--snr", "medium",
                 "--ues", "3", "--duration-s", "0.2", "--workers", "1", "--du", "oai",
                 "--out-dir", str(tmp_path)]) == 0
    md = (tmp_path / "headroom.md").read_text()
    assert "perfect RI-CQI-Tune" in md and "oai" in md and "--du oai" in md
    header, row = (tmp_path / "headroom.csv").read_text().strip().splitlines()
    assert "ri_cqi_perfect_gain_pct" in header and "recovered_pct" in header and row.startswith("0,80,TDL-A10")
    assert str(tmp_path) not in md


def test_channel_knowing_predictor_answers_the_expected_bler() -> None:
    """``PerfectPredictor(expected=True)`` answers each candidate's mean block error
    probability (0 without a transmission): over HARQ draws, the replayed NACK fractions
    average to it, while one draw's labels scatter around it."""
    scenario = _scenario("srsran", n_ue=6, csi_period_ms=80)
    channel, du, harq, out = _first_period(scenario)
    rep = out.reports
    cand = policy_candidates(rep, CellTuner(LightTuneModel(seed=1), "ri_cqi", du_preset="srsran"))
    period = scenario.csi_period_slots
    slots = [channel.step() for _ in range(period)]
    draws = np.random.default_rng(7)
    replays = [replay_candidates(du, *cand, slots, [draws.random(scenario.n_ue) for _ in range(period)])
               for _ in range(40)]
    expected = replays[0].expected_bler
    tx = np.isfinite(expected)
    assert tx.sum() > 2 * scenario.n_ue and 0.0 < expected[tx].mean() < 1.0
    # the NACK fractions average to the expected BLER (40 draws of ~20 transmissions each;
    # the draws also move the loop, and with it a candidate's MCS near a boundary)
    nack_share = np.mean([r.n_nack[tx] / (r.n_ack[tx] + r.n_nack[tx]) for r in replays], axis=0)
    mean_expected = np.mean([r.expected_bler[tx] for r in replays], axis=0)
    averaged_error = np.abs(nack_share - mean_expected).mean()
    assert averaged_error < 0.005
    assert np.abs(replays[1].expected_bler[tx] - expected[tx]).mean() < 0.01
    # one draw's (quantised) labels scatter far more around it than the 40-draw average
    assert np.abs(replays[0].label[tx] - expected[tx]).mean() > 5 * averaged_error
    predictor = PerfectPredictor(expected=True)
    predictor.set_period(rep, replays[0])
    rows = build_features(rep, rep.ri, rep.cqi)[cand[0]]
    rows[:, 6] = cand[1] / 4
    rows[:, 7] = cand[2] / 15
    np.testing.assert_array_equal(predictor.predict_many(rows), np.where(tx, expected, 0.0))
    no_sum = dataclasses.replace(replays[0], bler_sum=None)
    with pytest.raises(ValueError, match="bler_sum"):
        PerfectPredictor(expected=True).set_period(rep, no_sum)
