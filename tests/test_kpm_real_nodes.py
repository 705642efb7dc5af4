"""Issue 16, item 7 "KPM from real nodes": what third-party E2 nodes send that the KPM path
must take (or refuse with the right reason). Inputs are the vectors of ``test_kpm_vectors``
and bytes built with the project's own encoder from the facts of the E2SM-KPM reference."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from e2sim.kpm_function import KpmPeriod, KpmRanFunction
from lighttune_xapp.e2.errors import E2DecodeError
from lighttune_xapp.e2.kpm.codec import (
    DEFAULT_CODEC,
    MAX_TRAILING_OCTETS,
)
from lighttune_xapp.e2.kpm.reports import KpmNodeDecoder, decode_kpm_indication_detailed
from lighttune_xapp.e2.kpm.subscription import plan_kpm_subscription
from lighttune_xapp.kpm_metrics import kpm_series
from lighttune_xapp.metrics import XappMetrics
from tests.test_kpm_function import CELL, run_du
from tests.test_kpm_vectors import SRSRAN_DU, _hex

# ----------------------------------------------------------------------------- helpers


def our_indications(n_ue: int = 6) -> tuple[list[tuple[bytes, bytes]], object]:
    """(header, message) pairs of one period of our simulated node, and the subscription plan."""
    du, outs = run_du(n_ue=n_ue, periods=2, seed=11)
    fn = KpmRanFunction(CELL)
    plan = plan_kpm_subscription(fn.definition, 10)
    decision = fn.handle_subscription(plan.event_trigger, plan.action_definition)
    assert decision.accepted, decision.detail
    return fn.build_indications(decision.subscription, KpmPeriod.from_outcome(outs[-1], du, 1.7e9)), plan


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
    with caplog.at_level(logging.WARNING, logger="lighttune_xapp.e2.kpm.reports"):
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
