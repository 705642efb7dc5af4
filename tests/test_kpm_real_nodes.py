"""Issue 16, item 7 "KPM from real nodes": what third-party E2 nodes send that the KPM path
must take (or refuse with the right reason). Inputs are the vectors of ``test_kpm_vectors``
and bytes built with the project's own encoder from the facts of the E2SM-KPM reference."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asn1tools
import numpy as np
import pytest

from e2sim.kpm_function import KpmPeriod, KpmRanFunction
from lighttune_core.features import FEATURE_NAMES
from lighttune_e2 import e2ap as E
from lighttune_e2 import endpoints as ep
from lighttune_e2.errors import E2DecodeError
from lighttune_e2.kpm.codec import (
    DEFAULT_CODEC,
    KPM_V1_OID,
    KPM_V1_SCHEMA,
    KPM_V2_OID,
    MAX_TRAILING_OCTETS,
    KpmCodec,
    KpmV1Unsupported,
    detect_kpm_v1,
)
from lighttune_e2.kpm.model import (
    NO_LABEL,
    GnbDuUeId,
    IndicationHeader,
    IndicationMessageFormat2,
    MatchingCondition,
    MeasurementConditionUeIds,
    MeasurementLabel,
    MeasurementPeriod,
    RanFunctionDefinition,
    ReportStyle,
)
from lighttune_e2.kpm.reports import (
    UE_MEASUREMENT_NAMES,
    KpmNodeDecoder,
    decode_kpm_indication_detailed,
    missing_measurement_costs,
)
from lighttune_e2.kpm.schema import KpmVersion
from lighttune_e2.kpm.subscription import (
    KpmSubscriptionUnavailable,
    assess_kpm_function,
    plan_kpm_subscription,
)
from lighttune_xapp.app import build_runtime, local_config, read_descriptor
from lighttune_xapp.kpm_metrics import kpm_series
from lighttune_xapp.local import LocalE2Termination
from lighttune_xapp.metrics import XappMetrics
from tests.test_kpm_function import CELL, run_du
from tests.test_kpm_vectors import (
    SRSRAN_4G_RFD,
    SRSRAN_DU,
    VIAVI_HEADER,
    VIAVI_IM_F2,
    _hex,
)

# ----------------------------------------------------------------------------- helpers


def our_indications(n_ue: int = 6) -> tuple[list[tuple[bytes, bytes]], object]:
    """(header, message) pairs of one period of our simulated node, and the subscription plan."""
    du, outs = run_du(n_ue=n_ue, periods=2, seed=11)
    fn = KpmRanFunction(CELL)
    plan = plan_kpm_subscription(fn.definition, 10)
    decision = fn.handle_subscription(plan.event_trigger, plan.action_definition)
    assert decision.accepted, decision.detail
    return fn.build_indications(decision.subscription, KpmPeriod.from_outcome(outs[-1], du, 1.7e9)), plan


class _Link:
    """Transport stand-in: keeps what the termination sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, pdus: list[bytes]) -> None:
        self.sent.extend(pdus)


class _Conn:
    """The part of an E2Connection the termination uses (endpoint, now, apply)."""

    def __init__(self, endpoint: ep.RicEndpoint) -> None:
        self.endpoint = endpoint
        self.link = _Link()

    @staticmethod
    def now() -> float:
        return 0.0

    async def apply(self, output: ep.Output) -> None:
        pdus, _events = output
        await self.link.send(pdus)


def _termination(tmp_path: Path) -> LocalE2Termination:
    config = local_config(read_descriptor(), mode="ri_cqi", store_dir=str(tmp_path / "models"))
    return LocalE2Termination(build_runtime(config, serve_http=False), kpm_period_ms=10)


async def _setup(term: LocalE2Termination, functions: tuple[E.RanFunction, ...], gnb_id: int) -> _Conn:
    node = ep.E2NodeEndpoint(E.GlobalE2NodeId(b"\x00\xf1\x10", gnb_id, 22), functions)
    conn = _Conn(term.new_endpoint())
    term.on_connect(conn)  # type: ignore[arg-type]
    pdus, _ = node.start_setup(0.0)
    for pdu in pdus:
        _out, events = conn.endpoint.receive_bytes(pdu, 0.0)
        for event in events:
            await term.on_event(conn, event)  # type: ignore[arg-type]
    return conn


def _metric(term: LocalE2Termination, name: str, **labels: str) -> float | None:
    return term.metrics.registry.get_sample_value(name, labels)



# ----------------------------------------------------------------------------- (a) format 2, empty names

VIAVI_UE_METRICS = (
    "DRB.UECqiDl", "DRB.UECqiUl", "DRB.UEThpDl", "DRB.UEThpUl", "RRU.PrbUsedDl", "RRU.PrbUsedUl",
    "TB.TotNbrDl", "TB.TotNbrUl", "Viavi.Cell.id", "Viavi.Geo.x", "Viavi.Geo.y", "Viavi.Geo.z",
    "Viavi.Pdcp.kb", "Viavi.Slice.gbps", "Viavi.Slice.id", "Viavi.UE.BeamId", "Viavi.UE.FrameCnt",
    "Viavi.UE.RsSinr", "Viavi.UE.Rsrp", "Viavi.UE.Rsrq", "Viavi.UE.TcRnti", "Viavi.UE.anomalies",
    "Viavi.UE.id", "Viavi.UE.servingDistance", "Viavi.UE.speed", "Viavi.UE.targetThroughputDl",
    "Viavi.UE.targetThroughputUl",
)
"""The 27 UE measurements kpimon-go maps Viavi 1.3's format-2 items to, by position (its
``UeMetricsEntry`` field order, ``control/types.go``); dots for its underscores."""


def test_viavi_format2_is_decoded_and_its_empty_names_resolved_by_position() -> None:
    header, message = _hex(VIAVI_HEADER), _hex(VIAVI_IM_F2)
    alone = decode_kpm_indication_detailed(header, message)  # no subscription: names unknown
    assert alone.unnamed_measurements == 27 and alone.granularity_period_ms == 10000
    assert alone.drops.no_cqi == 1 and len(alone.reports) == 0  # UE 1 seen, but Viavi sends no RI/CQI
    named = decode_kpm_indication_detailed(header, message, subscribed_names=VIAVI_UE_METRICS)
    assert named.unnamed_measurements == 0 and named.drops.no_cqi == 1
    # a subscription of another length cannot be matched by position: names stay unknown
    short = decode_kpm_indication_detailed(header, message, subscribed_names=VIAVI_UE_METRICS[:5])
    assert short.unnamed_measurements == 27


def _f2_item(name: str, ues: tuple[int, ...], bins: tuple[int, int, int] | None = None) -> MeasurementConditionUeIds:
    label = MeasurementLabel(dist_bin_x=bins[0], dist_bin_y=bins[1], dist_bin_z=bins[2]) if bins else NO_LABEL
    return MeasurementConditionUeIds(name, (MatchingCondition(label=label),), tuple(GnbDuUeId(u) for u in ues))


# items of a style-3 report for UEs 1, 2 (CQI 10, RI 2) and 3 (CQI 7, RI 1), CQI table 1
F2_NAMES = ("CARR.WBCQIDist", "CARR.WBCQIDist", "TB.TotNbrDlInitial", "TB.ErrTotNbrDlInitial")
F2_BINS = ((11, 2, 1), (8, 1, 1), None, None)
F2_UES = ((1, 2), (3,), (1, 2, 3), (1, 2, 3))


@pytest.mark.parametrize("empty_names", [False, True])
def test_format2_transposed_layout_gives_per_ue_reports(empty_names: bool) -> None:
    items = tuple(_f2_item("" if empty_names else n, u, b) for n, u, b in zip(F2_NAMES, F2_UES, F2_BINS))
    # Viavi's layout: measData item i = measurement item i, one record per matched UE
    periods = (MeasurementPeriod((4, 4)), MeasurementPeriod((4,)), MeasurementPeriod((20, 30, 10)),
               MeasurementPeriod((2, 9, 0)))
    codec = KpmCodec(encode_version=KpmVersion.V2_01)
    message = codec.encode_indication_message(IndicationMessageFormat2(periods, items, 80))
    header = codec.encode_indication_header(IndicationHeader(bytes.fromhex("e6b0f4b7")))
    got = decode_kpm_indication_detailed(header, message, codec, subscribed_names=F2_NAMES)
    assert got.unnamed_measurements == 0 and got.drops.total == 0
    order = np.argsort(got.reports.ue_id)
    np.testing.assert_array_equal(got.reports.ue_id[order], [1, 2, 3])
    np.testing.assert_array_equal(got.reports.cqi[order], [10, 10, 7])
    np.testing.assert_array_equal(got.reports.ri[order], [2, 2, 1])
    np.testing.assert_array_equal(got.reports.n_nack[order], [2, 9, 0])
    np.testing.assert_array_equal(got.reports.n_ack[order], [18, 21, 10])
    if empty_names:  # without the subscription's names nothing can be placed
        blind = decode_kpm_indication_detailed(header, message, codec)
        assert blind.unnamed_measurements == 4 and len(blind.reports) == 0 and blind.drops.no_cqi == 3


def test_format2_standard_layout_keeps_per_ue_records_and_counts_group_records() -> None:
    # standard layout: one period per measData item, one record per measCondUEidList item
    items = (
        _f2_item("CARR.WBCQIDist", (5,), (13, 1, 1)),
        _f2_item("TB.TotNbrDlInitial", (5,)),
        _f2_item("TB.ErrTotNbrDlInitial", (5,)),
        _f2_item("TB.TotNbrDlInitial", (5, 6)),  # a group value of two UEs: not UE 5's own
    )
    periods = (MeasurementPeriod((3, 10, 1, 25)), MeasurementPeriod((2, 12, 3, 30)))
    for version in (KpmVersion.V3_00, KpmVersion.V2_01):
        codec = KpmCodec(encode_version=version, decode_order=(version,))
        message = codec.encode_indication_message(IndicationMessageFormat2(periods, items, 40))
        header = codec.encode_indication_header(
            IndicationHeader(bytes(version.timestamp_octets - 1) + b"\x01"))
        got = decode_kpm_indication_detailed(header, message, codec)
        assert got.group_records == 2 and got.unnamed_measurements == 0
        assert got.reports.ue_id.tolist() == [5] and got.reports.cqi.tolist() == [12]
        assert got.reports.n_ack.tolist() == [18] and got.reports.n_nack.tolist() == [4]  # summed periods


def test_format2_records_fitting_neither_layout_are_a_decode_error() -> None:
    items = (_f2_item("CARR.WBCQIDist", (1,), (3, 1, 1)), _f2_item("TB.TotNbrDlInitial", (1, 2)))
    codec = KpmCodec(encode_version=KpmVersion.V2_01)
    message = codec.encode_indication_message(IndicationMessageFormat2((MeasurementPeriod((1, 2, 3)),), items))
    header = codec.encode_indication_header(IndicationHeader(bytes.fromhex("e6b0f4b7")))
    with pytest.raises(E2DecodeError, match="fits neither layout"):
        decode_kpm_indication_detailed(header, message, codec)


def test_node_decoder_counts_unnamed_format2_measurements(caplog: pytest.LogCaptureFixture) -> None:
    decoder = KpmNodeDecoder("viavi", DEFAULT_CODEC)
    with caplog.at_level(logging.WARNING, logger="lighttune_e2.kpm.reports"):
        assert decoder.decode(_hex(VIAVI_HEADER), _hex(VIAVI_IM_F2)) is not None
        assert decoder.decode(_hex(VIAVI_HEADER), _hex(VIAVI_IM_F2)) is not None
    stats = decoder.stats()
    assert stats["decode_errors"] == 0 and stats["unnamed_measurements"] == 54
    assert stats["dropped"]["no_cqi"] == 2
    assert sum("empty measName" in r.getMessage() for r in caplog.records) == 1


# ----------------------------------------------------------------------------- (b) trailing octets


@pytest.mark.parametrize("where", ["message", "header", "both"])
def test_trailing_octet_after_a_complete_pdu_is_accepted_and_counted(where: str) -> None:
    indications, plan = our_indications()
    header, message = indications[0]
    clean = decode_kpm_indication_detailed(header, message, plan.codec)
    assert clean.trailing_octets == 0 and len(clean.reports) == 6
    padded_header = header + b"\x00" if where in ("header", "both") else header
    padded_message = message + b"\x00" if where in ("message", "both") else message
    got = decode_kpm_indication_detailed(padded_header, padded_message, plan.codec)
    assert got.trailing_octets == (2 if where == "both" else 1)
    assert got.header == clean.header
    for name in ("ue_id", "ri", "cqi", "rank", "mcs", "n_ack", "n_nack"):
        np.testing.assert_array_equal(getattr(got.reports, name), getattr(clean.reports, name), err_msg=name)
    np.testing.assert_allclose(got.reports.sinr_layers_db, clean.reports.sinr_layers_db)


def test_trailing_octets_beyond_the_limit_are_refused() -> None:
    indications, plan = our_indications()
    header, message = indications[0]
    trailer = bytes(range(1, MAX_TRAILING_OCTETS + 2))
    with pytest.raises(E2DecodeError, match=f"{len(trailer)} trailing bytes"):
        decode_kpm_indication_detailed(header, message + trailer, plan.codec)


def test_node_decoder_counts_and_logs_trailing_octets(caplog: pytest.LogCaptureFixture) -> None:
    indications, plan = our_indications()
    header, message = indications[0]
    decoder = KpmNodeDecoder("gnb-t", plan.codec, plan.measurements, 10)
    with caplog.at_level(logging.WARNING, logger="lighttune_e2.kpm.reports"):
        assert decoder.decode(header, message + b"\x5a") is not None
        assert decoder.decode(header, message) is not None
        assert decoder.decode(header + b"\x00", message + b"\x00") is not None
    stats = decoder.stats()
    assert stats["indications"] == 3 and stats["decode_errors"] == 0
    assert stats["indications_with_trailing_octets"] == 2 and stats["trailing_octets"] == 3
    lines = [r.getMessage() for r in caplog.records if "after the complete PDU" in r.getMessage()]
    assert len(lines) == 1 and "gnb-t" in lines[0]  # logged once (then at 10, 100, ...)


def test_trailing_octet_after_other_pdus_is_accepted() -> None:
    definition = DEFAULT_CODEC.decode_ran_function_definition(_hex(SRSRAN_DU) + b"\x00", ran_function_id=2)
    assert definition == DEFAULT_CODEC.decode_ran_function_definition(_hex(SRSRAN_DU), ran_function_id=2)
    assert DEFAULT_CODEC.decode_event_trigger(bytes.fromhex("0803e7") + b"\x00").reporting_period_ms == 1000


def test_trailing_octets_metrics_series() -> None:
    metrics = XappMetrics()
    series = kpm_series(metrics)
    assert kpm_series(metrics) is series  # one registration per registry
    series.count_trailing(0)
    series.count_trailing(1)
    series.count_trailing(3)
    sample = metrics.registry.get_sample_value
    assert sample("lighttune_kpm_indications_with_trailing_octets_total") == 2
    assert sample("lighttune_kpm_trailing_octets_total") == 4
    assert b"lighttune_kpm_trailing_octets_total 4.0" in metrics.render()


# ----------------------------------------------------------------------------- (c) KPM v1


def _v1_definition(short_name: str, oid: str, description: str) -> bytes:
    """A KPM v1 RAN function description (event trigger style 1, one report style), encoded
    with asn1tools from our v1 description schema."""
    spec = asn1tools.compile_files([str(KPM_V1_SCHEMA)], "per")
    value = {
        "ranFunction-Name": {
            "ranFunction-ShortName": short_name, "ranFunction-E2SM-OID": oid,
            "ranFunction-Description": description, "ranFunction-Instance": 1,
        },
        "e2SM-KPM-RANfunction-Item": {
            "ric-EventTriggerStyle-List": [{
                "ric-EventTriggerStyle-Type": 1, "ric-EventTriggerStyle-Name": "Periodic report",
                "ric-EventTriggerFormat-Type": 5,
            }],
            "ric-ReportStyle-List": [{
                "ric-ReportStyle-Type": 1,
                "ric-ReportStyle-Name": "O-DU Measurement Container for the 5GC connected deployment",
                "ric-IndicationHeaderFormat-Type": 1, "ric-IndicationMessageFormat-Type": 1,
            }],
        },
    }
    return bytes(spec.encode("E2SM-KPM-RANfunction-Description", value))


@pytest.mark.parametrize(
    "short_name, oid, description",
    [
        ("ORAN-E2SM-KPM", KPM_V1_OID, "KPM Monitor"),  # the v1 OID
        ("ORAN-WG3-KPM", "OID123", "KPM monitor"),  # ns-O-RAN's names (reference, section 3)
        ("ORAN-E2SM-KPM", "1.3.6.1.4.1.53148.1.2.2.2", "KPM Monitor"),  # v1 content under the v2 OID
    ],
)
def test_kpm_v1_ran_function_is_named_as_unsupported_kpm_v1(short_name: str, oid: str, description: str) -> None:
    data = _v1_definition(short_name, oid, description)
    with pytest.raises(KpmV1Unsupported) as info:
        DEFAULT_CODEC.decode_ran_function_definition(data, ran_function_id=2)
    text = str(info.value)
    assert "KPM v1" in text and "not supported" in text and short_name in text and oid in text
    assert "FlexRIC" not in text and "modified" not in text
    assert isinstance(info.value, E2DecodeError) and info.value.oid == oid
    assert detect_kpm_v1(data) == (short_name, oid, description)


def test_v2_and_v3_definitions_are_not_taken_for_v1() -> None:
    assert detect_kpm_v1(_hex(SRSRAN_DU)) is None
    assert detect_kpm_v1(SRSRAN_4G_RFD) is None
    garbage = bytes.fromhex("00010203")
    assert detect_kpm_v1(garbage) is None
    with pytest.raises(E2DecodeError) as info:
        DEFAULT_CODEC.decode_ran_function_definition(garbage)
    assert not isinstance(info.value, KpmV1Unsupported)
    # FlexRIC's modified encoding does not change RAN function bytes: never blamed for them
    assert "FlexRIC" not in str(info.value)


def test_e2_setup_names_kpm_v1_functions(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    term = _termination(tmp_path)
    by_oid = E.RanFunction(3, _v1_definition("ORAN-E2SM-KPM", KPM_V1_OID, "KPM Monitor"), 0, KPM_V1_OID)
    by_content = E.RanFunction(4, _v1_definition("ORAN-E2SM-KPM", KPM_V2_OID, "KPM Monitor"), 0, KPM_V2_OID)
    with caplog.at_level(logging.INFO, logger="lighttune_xapp.local"):
        asyncio.run(_setup(term, (by_oid, by_content), 7))
    lines = [r.getMessage() for r in caplog.records if "gnb-7" in r.getMessage() and "KPM v1" in r.getMessage()]
    assert len(lines) == 2 and all("not supported" in line for line in lines)
    assert any("function 3" in line for line in lines) and any("function 4" in line for line in lines)
    assert not any("FlexRIC" in r.getMessage() for r in caplog.records)
    assert term.stats()["totals"]["ran_function_errors"] == 2


# ----------------------------------------------------------------------------- (d) srsRAN DU coverage

SRSRAN_DU_OURS = ("DRB.UEThpDl", "RRU.PrbUsedDl")
"""Of the srsRAN DU's 15 UE-level names, the only ones of our measurement table."""


def test_srsran_du_assessment_names_every_missing_measurement_and_its_cost() -> None:
    definition = DEFAULT_CODEC.decode_ran_function_definition(_hex(SRSRAN_DU), ran_function_id=2)
    assessment = assess_kpm_function(definition)
    assert assessment.style == 4 and assessment.offered == SRSRAN_DU_OURS
    expected_missing = tuple(n for n in UE_MEASUREMENT_NAMES if n not in SRSRAN_DU_OURS)
    assert assessment.missing_names == expected_missing and len(expected_missing) == 13
    assert not assessment.advising_possible and not assessment.learning_possible
    assert "CARR.WBCQIDist" in assessment.reason
    costs = {c.name: c for c in assessment.missing}
    assert costs["CARR.WBCQIDist"].required and costs["CARR.WBCQIDist"].features == FEATURE_NAMES
    assert costs["TB.TotNbrDlInitial"].features == ("prev_bler",)  # no HARQ pair at all
    assert costs["LT.OLLAOffset"].features == ("olla_offset",) and costs["CARR.PDSCHMCSDist"].features == ()
    assert set(assessment.costly_features) == set(FEATURE_NAMES)
    # the subscription refusal carries all of it, not just the first missing name
    with pytest.raises(KpmSubscriptionUnavailable) as info:
        plan_kpm_subscription(definition, 10)
    assert info.value.assessment == assessment
    text = str(info.value)
    for name in expected_missing:
        assert name in text
    assert "NOT possible" in text and "all 12 features" in text and "olla_offset" in text


def test_harq_costs_only_when_neither_counter_pair_is_offered() -> None:
    costs = {c.name: c for c in missing_measurement_costs(("CARR.WBCQIDist", "TB.TotNbrDl", "TB.ErrTotNbrDl"))}
    assert costs["TB.TotNbrDlInitial"].features == () and "stand in" in costs["TB.TotNbrDlInitial"].effect
    # ns-O-RAN / 28.552 spellings count as ours
    costs = {c.name: c for c in missing_measurement_costs(("CARR.WBCQIDist", "TB.TotNbrDlInit", "TB.IntialErrNbrDl"))}
    assert "TB.TotNbrDlInitial" not in costs and costs["TB.TotNbrDl"].features == ()


def _kpm_function(names: tuple[str, ...], fid: int) -> tuple[E.RanFunction, KpmRanFunction]:
    """A KPM-only function of our simulated node offering only ``names`` at UE level (style 4),
    without a cell instance (as third-party nodes)."""
    fn = KpmRanFunction(CELL)
    definition = RanFunctionDefinition(
        "ORAN-E2SM-KPM", KPM_V2_OID, "KPM Monitor",
        event_trigger_styles=fn.definition.event_trigger_styles,
        report_styles=(ReportStyle(4, "Common Condition-based, UE-level Measurement", 4,
                                   tuple((n, None) for n in names), 1, 3),),
    )
    return E.RanFunction(fid, DEFAULT_CODEC.encode_ran_function_definition(definition), 0, KPM_V2_OID), fn


def test_srsran_du_node_reports_every_gap_in_log_stats_and_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    term = _termination(tmp_path)
    srsran = E.RanFunction(2, _hex(SRSRAN_DU), 0, KPM_V2_OID)
    with caplog.at_level(logging.INFO, logger="lighttune_xapp.local"):
        asyncio.run(_setup(term, (srsran,), 5))
    node = term.stats()["nodes"]["gnb-5"]
    assert node["advising_possible"] is False and node["kpm"] == {}
    function = node["kpm_functions"]["2"]
    missing = [m["name"] for m in function["missing_measurements"]]
    assert missing == [n for n in UE_MEASUREMENT_NAMES if n not in SRSRAN_DU_OURS]
    assert function["advising_possible"] is False and "CARR.WBCQIDist" in function["reason"]
    assert set(function["costly_features"]) == set(FEATURE_NAMES)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for name in missing:
        assert name in text
    assert "gnb-5: advising is NOT possible" in text
    assert _metric(term, "lighttune_kpm_advising_possible", node="gnb-5") == 0.0
    assert _metric(term, "lighttune_kpm_learning_possible", node="gnb-5") == 0.0
    for name in missing:
        assert _metric(term, "lighttune_kpm_missing_measurement", node="gnb-5", measurement=name) == 1.0
    assert _metric(term, "lighttune_kpm_missing_measurement", node="gnb-5", measurement="DRB.UEThpDl") is None
    assert _metric(term, "lighttune_kpm_costly_feature", node="gnb-5", feature="olla_offset") == 1.0


def test_node_with_cqi_but_no_harq_counts_is_advised_with_imputation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = ("CARR.WBCQIDist", "DRB.UEThpDl")
    function, fn = _kpm_function(names, 2)
    term = _termination(tmp_path)
    with caplog.at_level(logging.INFO, logger="lighttune_xapp.local"):
        conn = asyncio.run(_setup(term, (function,), 6))
    node = term.stats()["nodes"]["gnb-6"]
    assert node["advising_possible"] is True and node["advisory"] is True
    assessment = node["kpm_functions"]["2"]
    assert assessment["advising_possible"] and not assessment["learning_possible"]
    assert "TB.TotNbrDlInitial" in [m["name"] for m in assessment["missing_measurements"]]
    assert "advising possible with imputed features, but no fine-tuning" in caplog.text
    assert _metric(term, "lighttune_kpm_advising_possible", node="gnb-6") == 1.0
    assert _metric(term, "lighttune_kpm_learning_possible", node="gnb-6") == 0.0
    # the node's indications (built by our node for the subscription the xApp sent) are advised on
    feed = term.nodes[conn].kpm[2]  # type: ignore[index]
    decision = fn.handle_subscription(feed.plan.event_trigger, feed.plan.action_definition)
    assert decision.accepted, decision.detail
    du, outs = run_du(n_ue=8, periods=2, seed=5)
    messages = fn.build_indications(decision.subscription, KpmPeriod.from_outcome(outs[-1], du, 1.7e9))

    async def deliver() -> None:
        for header, message in messages:
            ind = E.RicIndication(E.RicRequestId(1, 0), 2, 1, None, "report", header, message + b"\x00")
            await term.on_event(conn, ep.IndicationReceived(ind))  # type: ignore[arg-type]

    asyncio.run(deliver())
    stats = term.stats()
    table = stats["advisory"]["gnb-6"]
    assert table["cells"]["gnb-6/kpm-2"]["n_ues"] == 8
    assert {"olla_offset", "csi_age", "csirs_snr", "sinr_layer1", "prev_bler"} <= set(table["imputed_features"])
    assert stats["cells"]["gnb-6/kpm-2"]["advisory_periods"] == len(messages)
    # (b) in the running xApp: the trailing octet of each indication is counted in metrics
    assert _metric(term, "lighttune_kpm_indications_with_trailing_octets_total") == len(messages)
    assert _metric(term, "lighttune_kpm_trailing_octets_total") == len(messages)
    assert stats["nodes"]["gnb-6"]["kpm"]["2"]["trailing_octets"] == len(messages)
