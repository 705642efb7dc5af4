"""The reference schemes of Table 6: the fixed back-off rule, the hindsight predictor and
the channel-knowing predictor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from e2sim import experiment
from e2sim.channel import Scenario
from e2sim.channel.scenario import SNR_RANGES_DB
from e2sim.experiment import (
    FIXED_BACKOFF_CQI,
    ModelSource,
    fixed_backoff,
    run_experiment,
    run_table6,
    table6_markdown,
)
from lighttune_core.report import LinkReports
from lighttune_core.synthetic import random_reports
from lighttune_core.tuner import LightTuneModel


def _scenario(n_ue: int = 6, csi_period_ms: int = 20, seed: int = 3) -> Scenario:
    return Scenario(
        profile="TDL-A10", doppler_hz=20.0, correlation="low", snr_db=SNR_RANGES_DB["medium"],
        csi_period_ms=csi_period_ms, n_ue=n_ue, seed=seed, du_preset="srsran",
    )


def _reports(cqi: list[int], ri: list[int]) -> LinkReports:
    rep = random_reports(len(cqi), 0)
    return dataclasses.replace(rep, ue_id=np.arange(10, 10 + len(cqi)), ri=np.array(ri), cqi=np.array(cqi))


def test_fixed_backoff_keeps_the_rank_and_backs_off_one_cqi_never_below_one() -> None:
    rep = _reports([15, 7, 2, 1, 0], [4, 2, 1, 3, 1])
    d = fixed_backoff(rep)
    np.testing.assert_array_equal(d.ue_id, rep.ue_id)
    np.testing.assert_array_equal(d.rank, [4, 2, 1, 3, 1])
    np.testing.assert_array_equal(d.cqi, [14, 6, 1, 1, 0])  # CQI 1 stays 1, 0 (out of range) stays 0
    assert d.control and np.isnan(d.predicted_bler).all()
    np.testing.assert_array_equal(fixed_backoff(rep, 3).cqi, [12, 4, 1, 1, 0])
    np.testing.assert_array_equal(fixed_backoff(rep, 0).cqi, rep.cqi)
    assert FIXED_BACKOFF_CQI == 1
    with pytest.raises(ValueError, match="steps"):
        fixed_backoff(rep, -1)


def test_hindsight_replays_the_period_that_just_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hindsight replay runs on exactly the slots of the period the DU just closed, from
    the DU's state at its end, while the perfect replay runs on the next period's slots."""
    calls: list[tuple[int, list[int]]] = []
    real = experiment.replay_candidates

    def spy(du, ue, rank, cqi, slots, uniforms):  # type: ignore[no-untyped-def]
        calls.append((du.slot_index, [s.slot for s in slots]))
        return real(du, ue, rank, cqi, slots, uniforms)

    monkeypatch.setattr(experiment, "replay_candidates", spy)
    scenario = _scenario(n_ue=4, csi_period_ms=20)
    model = ModelSource(LightTuneModel(seed=1), "untrained test model")
    res = run_experiment(scenario, 0.3, model, schemes=("olla", "ri_cqi_hindsight"))
    period = scenario.csi_period_slots
    assert len(calls) >= 8
    ends = []
    for du_slot, slots in calls:
        # the DU has just closed a period: its next slot follows the replayed ones directly
        assert slots == list(range(du_slot - len(slots), du_slot))
        assert len(slots) <= period
        ends.append(du_slot)
    # consecutive replays cover consecutive periods, each ending where a period ends
    assert all(len(s) == period for _, s in calls[1:])
    assert all(b - a == period for a, b in zip(ends, ends[1:]))
    # the hindsight scheme has no forecast log and changes OLLA's run in nothing
    assert "ri_cqi_hindsight" not in res.headroom
    alone = run_experiment(scenario, 0.3, model, schemes=("olla",))
    np.testing.assert_array_equal(alone.schemes["olla"].throughput_bps, res.schemes["olla"].throughput_bps)


def test_channel_knowing_replay_runs_on_the_next_period_with_draws_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The channel-knowing scheme replays the next period's slots (like the perfect one) but
    never with the DU's HARQ uniforms, and it changes OLLA's run in nothing."""
    calls: list[tuple[int, list[int], np.ndarray]] = []
    real = experiment.replay_candidates

    def spy(du, ue, rank, cqi, slots, uniforms):  # type: ignore[no-untyped-def]
        calls.append((du.slot_index, [s.slot for s in slots], np.stack(uniforms)))
        return real(du, ue, rank, cqi, slots, uniforms)

    monkeypatch.setattr(experiment, "replay_candidates", spy)
    scenario = _scenario(n_ue=4, csi_period_ms=20)
    model = ModelSource(LightTuneModel(seed=1), "untrained test model")
    res = run_experiment(scenario, 0.3, model, schemes=("olla", "ri_cqi_channel", "ri_cqi_perfect"))
    period = scenario.csi_period_slots
    assert len(calls) >= 16 and len(calls) % 2 == 0
    # per period: the perfect replay, then the channel-knowing one, on the same next slots
    for (s1, slots1, u1), (s2, slots2, u2) in zip(calls[0::2], calls[1::2]):
        assert s1 == s2 and slots1 == slots2 == list(range(s1, s1 + len(slots1)))
        assert 0 < len(slots1) <= period  # the run's last period may be cut short
        assert u1.shape == u2.shape and not np.isclose(u1, u2).any()
    assert "ri_cqi_channel" not in res.headroom
    assert res.schemes["ri_cqi_channel"].n_updates == 0
    alone = run_experiment(scenario, 0.3, model, schemes=("olla",))
    np.testing.assert_array_equal(alone.schemes["olla"].throughput_bps, res.schemes["olla"].throughput_bps)
    again = run_experiment(scenario, 0.3, model, schemes=("olla", "ri_cqi_channel"))  # seeded
    np.testing.assert_array_equal(again.schemes["ri_cqi_channel"].throughput_bps,
                                  res.schemes["ri_cqi_channel"].throughput_bps)


def test_fixed_backoff_scheme_sends_its_rule_to_the_du() -> None:
    scenario = _scenario(n_ue=6, csi_period_ms=20)
    model = ModelSource(LightTuneModel(seed=1), "untrained test model")
    res = run_experiment(scenario, 0.5, model, schemes=("olla", "cqi_backoff"))
    olla, rule = res.schemes["olla"], res.schemes["cqi_backoff"]
    # one CQI lower than the DU's table choice: fewer NACKs on the same channel and draws
    assert rule.bler < olla.bler
    assert not np.array_equal(rule.throughput_bps, olla.throughput_bps)
    assert rule.n_updates == 0 and np.isnan(rule.error_tuned)


def test_table6_references_columns_and_recovered_share() -> None:
    model = ModelSource(LightTuneModel(seed=1), "untrained test model")
    results = run_table6(model, n_ue=4, duration_s=0.2, seed=1, workers=1, rows=[12], snrs=("high",),
                         du_preset="sionna", references=True)
    d = results[0]
    for key in ("cqi_backoff", "ri_cqi_hindsight", "ri_cqi_channel"):
        assert len(d[key]) == 3 and d[key][1] <= d[key][0] <= d[key][2]
    for key, share in (("ri_cqi_hindsight", "recovered_hindsight"), ("ri_cqi_channel", "recovered_channel")):
        g_ref = d[key][0]
        if g_ref > 0:
            assert d[share] == pytest.approx(d["ri_cqi"][0] / g_ref)
        else:
            assert d[share] is None
    md = table6_markdown(results, "test model", 4, 0.2)
    assert ("| fixed back-off | hindsight RI-CQI-Tune | recovered of hindsight "
            "| channel-knowing RI-CQI-Tune | recovered of channel |") in md
    header = next(line for line in md.splitlines() if line.startswith("| CSI-RS"))
    row = next(line for line in md.splitlines() if line.startswith("| 10 ms"))
    assert row.count("|") == header.count("|")  # one cell per column
    plain = run_table6(model, n_ue=4, duration_s=0.2, seed=1, workers=1, rows=[12], snrs=("high",),
                       du_preset="sionna")
    assert plain[0]["ri_cqi"] == pytest.approx(d["ri_cqi"])  # same common random numbers
    assert "hindsight" not in table6_markdown(plain, "test model", 4, 0.2)
