"""Per-UE report record validation, the feature builder and BLER labels."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from lighttune_core.features import (
    BLER_LABELS,
    FEATURE_NAMES,
    N_FEATURES,
    UNKNOWN_PREV_BLER,
    bler_label,
    build_features,
)
from lighttune_core.report import LinkReports
from lighttune_core.synthetic import random_reports


def _reports(n: int = 3, **overrides: Any) -> LinkReports:
    fields: dict[str, Any] = dict(
        ue_id=np.arange(n) + 100,
        ri=np.array([1, 2, 4])[:n],
        cqi=np.array([5, 10, 15])[:n],
        sinr_layers_db=np.array(
            [[4.0, np.nan, np.nan, np.nan], [20.0, 16.0, np.nan, np.nan], [30.0, 28.0, 26.0, 24.0]]
        )[:n],
        csirs_snr_db=np.array([6.0, 22.0, 35.0])[:n],
        rank=np.array([1, 2, 3])[:n],
        mcs=np.array([4, 17, 27])[:n],
        olla_offset_db=np.array([-2.0, 0.5, 1.0])[:n],
        n_ack=np.array([9, 0, 50])[:n],
        n_nack=np.array([1, 0, 50])[:n],
        served_bits=np.array([1000, 0, 90000])[:n],
        csi_age_ms=np.array([5.0, 40.0, 80.0])[:n],
    )
    fields.update(overrides)
    return LinkReports(**fields)


def test_features_for_one_candidate_per_ue_are_scaled_as_documented() -> None:
    rep = _reports()
    x = build_features(rep, rank=np.array([1, 1, 4]), cqi=np.array([5, 9, 15]))
    assert x.shape == (3, N_FEATURES) and x.dtype == np.float64
    assert len(FEATURE_NAMES) == N_FEATURES
    np.testing.assert_allclose(x[1, 0:4], [0.5, 0.4, 0.0, 0.0])  # SINR / 40 dB, 0 beyond ri
    np.testing.assert_allclose(x[:, 4], [5 / 15, 10 / 15, 1.0])  # reported CQI / 15
    np.testing.assert_allclose(x[:, 5], [0.25, 0.5, 1.0])  # RI / 4
    np.testing.assert_allclose(x[:, 6], [0.25, 0.25, 1.0])  # candidate rank / 4
    np.testing.assert_allclose(x[:, 7], [5 / 15, 9 / 15, 1.0])  # candidate CQI / 15
    np.testing.assert_allclose(x[:, 8], [-0.2, 0.05, 0.1])  # OLLA / 10 dB
    np.testing.assert_allclose(x[:, 9], [0.1, UNKNOWN_PREV_BLER, 0.5])  # HARQ BLER of the period
    np.testing.assert_allclose(x[:, 10], [5 / 80, 0.5, 1.0])  # CSI age / 80 ms
    np.testing.assert_allclose(x[:, 11], [6 / 40, 22 / 40, 35 / 40])  # SNR / 40 dB


def test_features_for_k_candidates_per_ue() -> None:
    rep = _reports()
    ranks = np.array([[1, 1], [1, 2], [3, 4]])
    cqis = np.array([[5, 3], [10, 8], [15, 12]])
    x = build_features(rep, ranks, cqis)
    assert x.shape == (3, 2, N_FEATURES)
    np.testing.assert_allclose(x[..., 6], ranks / 4)
    np.testing.assert_allclose(x[..., 7], cqis / 15)
    # the report part is the same for every candidate of a UE
    np.testing.assert_array_equal(x[:, 0, [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]], x[:, 1, [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]])
    # [N] rank broadcast against [N, K] CQI, and a scalar rank
    y = build_features(rep, np.array([1, 2, 3]), cqis)
    np.testing.assert_allclose(y[..., 6], np.repeat([[0.25], [0.5], [0.75]], 2, axis=1))
    z = build_features(rep, 2, cqis)
    assert z.shape == (3, 2, N_FEATURES) and np.all(z[..., 6] == 0.5)
    # the flat [N*K, 12] view is what predictors receive
    assert x.reshape(-1, N_FEATURES).shape == (6, N_FEATURES)


def test_prev_bler_given_unknown_or_from_the_reports() -> None:
    rep = _reports()
    x = build_features(rep, rep.ri, rep.cqi, prev_bler=np.array([np.nan, 0.3, 2.0]))
    np.testing.assert_allclose(x[:, 9], [UNKNOWN_PREV_BLER, 0.3, 1.0])  # NaN → OLLA target, clipped
    default = build_features(rep, rep.ri, rep.cqi)
    np.testing.assert_allclose(default[:, 9], [0.1, UNKNOWN_PREV_BLER, 0.5])
    with pytest.raises(ValueError, match="prev_bler"):
        build_features(rep, rep.ri, rep.cqi, prev_bler=np.zeros(2))


@pytest.mark.parametrize(
    "rank, cqi, message",
    [
        (0, 5, "rank"),
        (5, 5, "rank"),
        (1, -1, "CQI"),
        (1, 16, "CQI"),
        (np.ones((3, 2, 2)), 5, "shape"),
        (np.ones(2), 5, "do not fit"),
    ],
)
def test_out_of_range_or_misshaped_candidates_raise(rank: Any, cqi: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_features(_reports(), rank, cqi)


def test_bler_label_quantises_and_marks_empty_periods_invalid() -> None:
    n_ack = np.array([10, 0, 2, 1, 86, 84, 0, 0])
    n_nack = np.array([0, 7, 1, 2, 14, 16, 0, 3])
    label, valid = bler_label(n_ack, n_nack)
    np.testing.assert_array_equal(valid, [True, True, True, True, True, True, False, True])
    np.testing.assert_allclose(label[valid], [0.0, 1.0, 0.3, 0.7, 0.1, 0.2, 1.0])
    assert np.isnan(label[6])
    assert np.all(np.isin(label[valid], BLER_LABELS))  # exactly on the label grid


def test_bler_label_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        bler_label(np.array([1, -1]), np.array([0, 0]))
    with pytest.raises(ValueError, match="shape"):
        bler_label(np.array([1, 2]), np.array([0]))


def test_validate_masks_only_the_bad_ues() -> None:
    rep = _reports()
    assert rep.validate().tolist() == [True, True, True]
    bad_cases: list[dict[str, Any]] = [
        dict(ri=np.array([1, 5, 4])),
        dict(cqi=np.array([5, 16, 15])),
        dict(rank=np.array([1, 0, 3])),
        dict(mcs=np.array([4, 29, 27])),
        dict(n_ack=np.array([9, -1, 50])),
        dict(n_nack=np.array([1, -1, 50])),
        dict(served_bits=np.array([1000, -5, 90000])),
        dict(csirs_snr_db=np.array([6.0, np.nan, 35.0])),
        dict(csirs_snr_db=np.array([6.0, 61.0, 35.0])),
        dict(olla_offset_db=np.array([-2.0, 25.0, 1.0])),
        dict(csi_age_ms=np.array([5.0, -1.0, 80.0])),
        dict(ue_id=np.array([100, 2**32, 102])),
        # a NaN SINR on a layer the reported rank uses
        dict(sinr_layers_db=np.array([[4.0, np.nan, np.nan, np.nan], [20.0, np.nan, np.nan, np.nan], [30, 28, 26, 24]])),
    ]
    for overrides in bad_cases:
        assert _reports(**overrides).validate().tolist() == [True, False, True], overrides
    # NaN beyond the reported rank is expected, not an error
    assert replace(rep).validate().all()


def test_report_record_rejects_misshaped_fields() -> None:
    with pytest.raises(ValueError, match="ri"):
        _reports(ri=np.array([1, 2]))
    with pytest.raises(ValueError, match="sinr_layers_db"):
        _reports(sinr_layers_db=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="integers"):
        _reports(cqi=np.array([1.5, 2.0, 3.0]))
    with pytest.raises(ValueError, match="cqi_table"):
        _reports(cqi_table=4)


def test_bler_label_rounds_halves_up() -> None:
    """1 NACK in 20 (0.05) is 0.1 and 3 in 20 (0.15) is 0.2: halves round up, never to even."""
    from lighttune_core.features import bler_label

    label, valid = bler_label(np.array([19, 17, 15, 13]), np.array([1, 3, 5, 7]))
    assert valid.all()
    np.testing.assert_allclose(label, [0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("consistent", [True, False])
def test_random_reports_are_valid_seeded_and_of_their_kind(consistent: bool) -> None:
    a = random_reports(500, 3, consistent=consistent, ue_ids=np.arange(500) * 2 + 1)
    b = random_reports(500, 3, consistent=consistent, ue_ids=np.arange(500) * 2 + 1)
    assert a.validate().all() and len(a) == 500 and a.ue_id[-1] == 999
    assert all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in ("sinr_layers_db", "n_ack", "cqi"))
    assert np.array_equal(a.rank, a.ri) == consistent
    assert np.all(np.isnan(a.sinr_layers_db[np.arange(4)[None, :] >= a.ri[:, None]]))
