"""KPM format 3 -> LinkReports: equal to the DU's reports where KPM carries the field,
imputed by the documented rule where a node lacks our LT. measurements."""

from __future__ import annotations

import numpy as np
import pytest

from e2sim.kpm_function import KpmPeriod, KpmRanFunction
from lighttune_core.linkadapt import cqi_to_mcs, default_cqi_sinr_db
from lighttune_core.report import LinkReports
from lighttune_e2.errors import E2DecodeError
from lighttune_e2.kpm.model import RanFunctionDefinition, ReportStyle
from lighttune_e2.kpm.reports import (
    CQI0_MARGIN_DB,
    LT_CSI_AGE,
    LT_CSIRS_SNR,
    LT_OLLA_OFFSET,
    LT_SINR_LAYERS,
    PDSCH_MCS_DIST,
    UE_MEASUREMENT_NAMES,
    KpmNodeDecoder,
    _largest_bin,
    decode_kpm_indication,
)
from lighttune_e2.kpm.subscription import (
    KpmSubscriptionUnavailable,
    plan_kpm_subscription,
)
from tests.test_kpm_function import CELL, run_du

INT_FIELDS = ("ue_id", "ri", "cqi", "rank", "mcs", "n_ack", "n_nack", "served_bits")
"""Integer fields the xApp's subscription carries (``served_bits`` from ``DRB.UEThpDl``, which
the rank-change check reads)."""
REAL_FIELDS = ("sinr_layers_db", "csirs_snr_db", "olla_offset_db", "csi_age_ms")


def decode_period(names: tuple[str, ...], n_ue: int = 16, seed: int = 4) -> tuple[LinkReports, LinkReports, tuple]:
    du, outs = run_du(n_ue=n_ue, periods=3, seed=seed)
    fn = KpmRanFunction(CELL)
    # a node offering only ``names`` (as srsRAN/OAI lack the LT. ones)
    offered = tuple((n, None) for n in names)
    definition = RanFunctionDefinition(
        fn.definition.short_name, fn.definition.oid, fn.definition.description,
        report_styles=(ReportStyle(4, "UE-level", 4, offered, 1, 3),), ran_function_id=2,
    )
    plan = plan_kpm_subscription(definition, 10)
    decision = fn.handle_subscription(plan.event_trigger, plan.action_definition)
    assert decision.accepted, decision.detail
    truth = outs[-1].reports
    messages = fn.build_indications(decision.subscription, KpmPeriod.from_outcome(outs[-1], du, 1.7e9))
    decoded = [decode_kpm_indication(h, m, plan.codec) for h, m in messages]
    assert all(d[2] == 0 for d in decoded)
    imputed = tuple(sorted({f for d in decoded for f in d[3]}))
    return truth, LinkReports.concat([d[1] for d in decoded]), imputed


def test_full_measurements_equal_du_reports() -> None:
    truth, got, imputed = decode_period(UE_MEASUREMENT_NAMES)
    assert imputed == ()
    assert got.cqi_table == truth.cqi_table
    for name in INT_FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(truth, name), err_msg=name)
    for name in REAL_FIELDS:
        np.testing.assert_allclose(getattr(got, name), getattr(truth, name), rtol=0, atol=1e-9, err_msg=name)
    assert got.served_bits.any()  # DRB.UEThpDl is subscribed: the delivered bits arrive
    # some UEs had no transmission or several ranks: the test covers real variety
    assert len(np.unique(truth.ri)) >= 2


def test_missing_lt_measurements_imputed_by_rule() -> None:
    standard = tuple(n for n in UE_MEASUREMENT_NAMES if not n.startswith("LT."))
    truth, got, imputed = decode_period(standard)
    assert set(imputed) == {"sinr_layer1", "sinr_layer2", "csirs_snr", "olla_offset", "csi_age"} | (
        {"sinr_layer3", "sinr_layer4"} & set(imputed)
    )
    for name in INT_FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(truth, name), err_msg=name)
    thresholds = default_cqi_sinr_db(truth.cqi_table).copy()
    thresholds[0] = thresholds[1] - CQI0_MARGIN_DB
    expected = np.clip(thresholds[truth.cqi], -30, 60)
    np.testing.assert_allclose(got.csirs_snr_db, expected)
    used = np.arange(4)[None, :] < truth.ri[:, None]
    np.testing.assert_allclose(got.sinr_layers_db[used], np.broadcast_to(expected[:, None], (len(truth), 4))[used])
    assert np.all(np.isnan(got.sinr_layers_db[~used]))
    np.testing.assert_array_equal(got.olla_offset_db, 0.0)
    np.testing.assert_array_equal(got.csi_age_ms, 0.0)


def test_missing_mcs_distribution_and_initial_counts() -> None:
    names = tuple(n for n in UE_MEASUREMENT_NAMES
                  if n not in (PDSCH_MCS_DIST, "TB.TotNbrDlInitial", "TB.ErrTotNbrDlInitial"))
    truth, got, imputed = decode_period(names)
    # all-transmission counters stand in (the DU has first transmissions only: equal)
    np.testing.assert_array_equal(got.n_ack, truth.n_ack)
    np.testing.assert_array_equal(got.n_nack, truth.n_nack)
    np.testing.assert_array_equal(got.rank, truth.ri)
    np.testing.assert_array_equal(got.mcs, np.maximum(cqi_to_mcs(truth.cqi, truth.cqi_table, 1), 0))
    assert imputed == ()


def test_node_without_cqi_distribution_is_refused() -> None:
    fn = KpmRanFunction(CELL)
    definition = RanFunctionDefinition("ORAN-E2SM-KPM", fn.oid, "KPM Monitor", report_styles=(
        ReportStyle(4, "UE-level", 4, (("DRB.UEThpDl", None), ("RRU.PrbUsedDl", None)), 1, 3),))
    with pytest.raises(KpmSubscriptionUnavailable, match="CARR.WBCQIDist"):
        plan_kpm_subscription(definition, 10)


def test_style5_plan_when_style4_absent() -> None:
    fn = KpmRanFunction(CELL)
    style5 = fn.definition.report_style(5)
    definition = RanFunctionDefinition("ORAN-E2SM-KPM", fn.oid, "KPM Monitor", report_styles=(style5,))
    plan = plan_kpm_subscription(definition, 40, ue_ids=[3, 5, 8])
    decision = fn.handle_subscription(plan.event_trigger, plan.action_definition)
    assert plan.style == 5 and decision.accepted
    assert decision.subscription.ue_ids == (3, 5, 8)
    assert decision.subscription.reporting_period_ms == decision.subscription.granularity_period_ms == 40


def test_node_decoder_counts_errors_and_remembers_imputed_features() -> None:
    standard = tuple(n for n in UE_MEASUREMENT_NAMES if n not in (LT_CSI_AGE, LT_OLLA_OFFSET))
    du, outs = run_du(n_ue=6)
    fn = KpmRanFunction(CELL)
    definition = RanFunctionDefinition("ORAN-E2SM-KPM", fn.oid, "KPM Monitor", report_styles=(
        ReportStyle(4, "UE-level", 4, tuple((n, None) for n in standard), 1, 3),))
    plan = plan_kpm_subscription(definition, 10)
    sub = fn.handle_subscription(plan.event_trigger, plan.action_definition).subscription
    decoder = KpmNodeDecoder("gnb-1", plan.codec, plan.measurements, 10)
    ((header, message),) = fn.build_indications(sub, KpmPeriod.from_outcome(outs[-1], du, 1.7e9))
    assert decoder.decode(header, b"\x00garbage") is None
    result = decoder.decode(header, message)
    assert result is not None and len(result.reports) == 6
    stats = decoder.stats()
    assert stats["decode_errors"] == 1 and stats["indications"] == 1 and stats["ue_reports"] == 6
    assert stats["imputed_features"] == ["olla_offset", "csi_age"]
    assert LT_CSIRS_SNR in plan.measurements and set(LT_SINR_LAYERS) <= set(plan.measurements)


def test_not_format3_is_a_decode_error() -> None:
    du, outs = run_du(n_ue=4)
    fn = KpmRanFunction(CELL)
    from lighttune_e2.kpm.model import ActionDefinitionFormat1, MeasurementInfo
    from tests.test_kpm_function import INFO, TRIGGER, ad  # noqa: PLC0415 (shared builders)

    sub = fn.handle_subscription(TRIGGER, ad(1, ActionDefinitionFormat1((MeasurementInfo("TB.TotNbrDl"),), 10))).subscription
    ((header, message),) = fn.build_indications(sub, KpmPeriod.from_outcome(outs[-1], du, 1.7e9))
    assert INFO.granularity_period_ms == 10
    with pytest.raises(E2DecodeError, match="format 3"):
        decode_kpm_indication(header, message)


def test_library_decode_of_mixed_records_and_ue_id_forms() -> None:
    """Several periods, noValue and another UEID form: the ASN.1 library's values map to
    the right LinkReports fields."""
    from lighttune_e2.kpm.codec import KpmCodec
    from lighttune_e2.kpm.model import (
        GnbDuUeId,
        GnbUeId,
        Guami,
        IndicationHeader,
        IndicationMessageFormat1,
        IndicationMessageFormat3,
        MeasurementInfo,
        MeasurementPeriod,
        UeMeasurementReport,
        distribution_measurement,
        ntp_timestamp,
    )

    codec = KpmCodec()
    header = codec.encode_indication_header(IndicationHeader(ntp_timestamp(1.7e9)))
    infos = (
        distribution_measurement("CARR.WBCQIDist", [(4, 2, 1), (16, 4, 1)]),
        MeasurementInfo("TB.TotNbrDlInitial"),
        MeasurementInfo("TB.ErrTotNbrDlInitial"),
        MeasurementInfo("LT.SINRLayer1"),
    )
    # UE 0: two periods (counters add up, the real keeps the last value); CQI bin 16 wins
    periods = (MeasurementPeriod((1, 5, 10, 2, -0.5)), MeasurementPeriod((0, 9, 6, 1, None), incomplete=True))
    ue0 = UeMeasurementReport(GnbDuUeId(1000), IndicationMessageFormat1(periods, infos, 10))
    guami = Guami(b"\x00\xf1\x10", 1, 2, 3)
    one = IndicationMessageFormat1((MeasurementPeriod((1, 7, 0)),), (
        distribution_measurement("CARR.WBCQIDist", [(8, 1, 1)]),
        MeasurementInfo("TB.TotNbrDlInitial"), MeasurementInfo("TB.ErrTotNbrDlInitial")), 10)
    ue1 = UeMeasurementReport(GnbUeId(77, guami), one)
    message = codec.encode_indication_message(IndicationMessageFormat3((ue0, ue1)))
    _, got, dropped, _ = decode_kpm_indication(header, message)
    assert dropped == 0 and got.ue_id.tolist() == [1000, 77]
    assert got.cqi.tolist() == [15, 7] and got.ri.tolist() == [4, 1]
    assert got.n_ack.tolist() == [16 - 3, 7] and got.n_nack.tolist() == [3, 0]
    assert got.sinr_layers_db[0, 0] == -0.5


@pytest.mark.parametrize("prefer_low_z", [False, True])
def test_one_bin_per_ue_shortcut_equals_the_general_merge(prefer_low_z: bool) -> None:
    # reports listing UEs in order with one bin each take a shortcut; the same records in
    # another order (or with a UE's bin split in two) go through the general merge
    rng = np.random.default_rng(11)
    n = 40
    ue = np.sort(rng.choice(n, 25, replace=False))
    x, y, z = rng.integers(1, 17, 25), rng.integers(1, 5, 25), rng.integers(1, 4, 25)
    count = np.where(rng.random(25) < 0.2, np.nan, rng.integers(1, 9, 25).astype(float))
    fast = _largest_bin(ue, x, y, z, count, n, prefer_low_z)
    order = rng.permutation(25)
    general = _largest_bin(ue[order], x[order], y[order], z[order], count[order], n, prefer_low_z)
    for a, b in zip(fast, general):
        np.testing.assert_array_equal(a, b)
    assert fast[0].sum() == 25
    # a UE with two listed bins is merged, not taken from its first record
    two = _largest_bin(np.array([3, 3]), np.array([5, 9]), np.array([1, 1]), np.array([1, 1]),
                       np.array([1.0, 4.0]), n, prefer_low_z)
    assert two[0][3] and two[1][3] == 9
