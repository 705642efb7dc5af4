"""DU behaviour: OLLA convergence, CSI reports in range, control hook, common random numbers."""

from __future__ import annotations

import numpy as np
import pytest

from e2sim.channel import LinkChannel, Scenario
from e2sim.du import DU, PeriodOutcome


def _run(scenario: Scenario, n_slots: int) -> tuple[DU, list[PeriodOutcome]]:
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    outs = []
    for _ in range(n_slots):
        out = du.step(channel.step())
        if out is not None:
            outs.append(out)
    return du, outs


def test_olla_converges_to_ten_percent_bler_on_awgn_full_band() -> None:
    # interval 1: every UE in every slot (the default interval is in test_sim_du_scheduler.py)
    scenario = Scenario(profile="AWGN", n_ue=16, snr_db=(0.0, 14.0), csi_period_ms=10, seed=5,
                        sched_interval_slots=1)
    _, outs = _run(scenario, 3000)
    late = outs[len(outs) // 3 :]
    nack = sum(int(o.reports.n_nack.sum()) for o in late)
    total = sum(int((o.reports.n_ack + o.reports.n_nack).sum()) for o in late)
    assert total > 10_000
    assert abs(nack / total - 0.10) < 0.015
    # every UE individually near the target, and its expected BLER too
    per_ue = sum(o.reports.n_nack for o in late) / sum(o.reports.n_ack + o.reports.n_nack for o in late)
    assert np.all(np.abs(per_ue - 0.10) < 0.05)


def test_csi_reports_in_range_and_consistent() -> None:
    scenario = Scenario(profile="TDL-B50", doppler_hz=30.0, n_ue=12, snr_db=(0.0, 40.0),
                        csi_period_ms=10, csi_snr_error_db=1.0, seed=2)
    du, outs = _run(scenario, 400)
    assert len(outs) == 400 // scenario.csi_period_slots
    for out in outs:
        rep = out.reports
        assert np.all(rep.validate())
        assert np.all((rep.ri >= 1) & (rep.ri <= 4)) and np.all((rep.cqi >= 0) & (rep.cqi <= 15))
        layers = np.arange(4)[None, :]
        assert np.all(np.isfinite(rep.sinr_layers_db[layers < rep.ri[:, None]]))
        assert np.all(np.isnan(rep.sinr_layers_db[layers >= rep.ri[:, None]]))
        assert np.all(rep.csi_age_ms == pytest.approx(0.5))
        assert out.end_slot - out.start_slot == (1 if out.period_index == 0 else scenario.csi_period_slots)
    # higher SNR UEs report higher rank x CQI on average
    snr = LinkChannel(scenario).ue_snr_db
    rate = np.mean([o.reports.ri * o.reports.cqi for o in outs[1:]], axis=0)
    assert np.corrcoef(snr, rate)[0, 1] > 0.7
    # served bits only from ACKed TBs: zero when nothing was ACKed
    for out in outs:
        assert np.all(out.reports.served_bits[out.reports.n_ack == 0] == 0)


def test_control_hook_rejects_invalid_values_and_keeps_choice() -> None:
    scenario = Scenario(profile="AWGN", n_ue=4, snr_db=(20.0, 20.0), csi_period_ms=10, seed=1)
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    while du.step(channel.step()) is None:
        pass
    table_rank, table_cqi = du.current_choice()
    accepted, reasons = du.apply_control(
        np.array([0, 1, 2, 3, 99]), np.array([0, 5, 2, 2, 1]), np.array([7, 7, 16, 6, 3])
    )
    assert accepted.tolist() == [False, False, False, True, False]
    assert "ri 0" in reasons[0] and "ri 5" in reasons[1]
    assert "cqi 16" in reasons[2] and reasons[3] == "" and "unknown ue_id 99" in reasons[4]
    rank, cqi = du.current_choice()
    assert rank[:3].tolist() == table_rank[:3].tolist() and cqi[:3].tolist() == table_cqi[:3].tolist()
    assert (rank[3], cqi[3]) == (2, 6)
    # the control holds for the period, then the next report replaces it
    out = None
    while out is None:
        out = du.step(channel.step())
    assert out.reports.rank[3] == 2 and out.reports.rank[0] == table_rank[0]
    assert not du.control_active.any()
    with pytest.raises(ValueError, match="one length"):
        du.apply_control(np.array([0, 1]), np.array([1]), np.array([3, 3]))
    accepted, reasons = du.apply_control(np.array([0.5]), np.array([np.nan]), np.array([3]))
    assert not accepted[0] and "ue_id" in reasons[0] and "ri" in reasons[0]


@pytest.mark.float_sensitive
def test_same_seed_dus_share_random_numbers() -> None:
    scenario = Scenario(profile="TDL-A30", n_ue=6, snr_db=(5.0, 15.0), csi_period_ms=10, seed=9)
    channel = LinkChannel(scenario)
    a = DU(scenario, subband_n_rb=channel.subband_n_rb)
    b = DU(scenario, subband_n_rb=channel.subband_n_rb)
    for _ in range(100):
        s = channel.step()
        oa, ob = a.step(s), b.step(s)
        assert (oa is None) == (ob is None)
        if oa is not None and ob is not None:
            assert np.array_equal(oa.reports.served_bits, ob.reports.served_bits)
            assert np.array_equal(oa.reports.cqi, ob.reports.cqi)


def test_bad_construction_is_rejected() -> None:
    scenario = Scenario(profile="AWGN", n_ue=2, csi_period_ms=10)
    with pytest.raises(ValueError, match="csi_delay_slots"):
        DU(scenario, csi_delay_slots=0)
    with pytest.raises(ValueError, match="ue_ids"):
        DU(scenario, ue_ids=np.array([3, 3]))
