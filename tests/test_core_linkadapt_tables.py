"""TS 38.214 CQI/MCS tables and the CQI -> SE / MCS look-ups."""

from __future__ import annotations

import numpy as np
import pytest

from lighttune_core.linkadapt import (
    CQI_TABLES,
    MAX_MCS_BY_TABLE,
    MCS_TABLES,
    NO_TRANSMISSION,
    cqi_to_mcs,
    mcs_spectral_efficiency,
    spectral_efficiency,
)


@pytest.mark.parametrize(
    ("table", "index", "expected"),
    [
        # TS 38.214 Table 5.2.2.1-2 (CQI table 1)
        (1, 1, (2, 78, 0.1523)),
        (1, 7, (4, 378, 1.4766)),
        (1, 10, (6, 466, 2.7305)),
        (1, 15, (6, 948, 5.5547)),
        # Table 5.2.2.1-3 (CQI table 2)
        (2, 3, (2, 449, 0.8770)),
        (2, 12, (8, 711, 5.5547)),
        (2, 15, (8, 948, 7.4063)),
        # Table 5.2.2.1-4 (CQI table 3)
        (3, 1, (2, 30, 0.0586)),
        (3, 2, (2, 50, 0.0977)),
        (3, 9, (4, 378, 1.4766)),
        (3, 15, (6, 772, 4.5234)),
    ],
)
def test_cqi_table_spot_entries_match_the_spec(table: int, index: int, expected: tuple[float, float, float]) -> None:
    np.testing.assert_array_equal(CQI_TABLES[table][index], np.array(expected, dtype=np.float64))


@pytest.mark.parametrize(
    ("table", "index", "expected"),
    [
        # TS 38.214 Table 5.1.3.1-1 (MCS table 1)
        (1, 0, (2, 120, 0.2344)),
        (1, 9, (2, 679, 1.3262)),
        (1, 10, (4, 340, 1.3281)),
        (1, 17, (6, 438, 2.5664)),
        (1, 27, (6, 910, 5.3320)),
        (1, 28, (6, 948, 5.5547)),
        # Table 5.1.3.1-2 (MCS table 2)
        (2, 4, (2, 602, 1.1758)),
        (2, 20, (8, 682.5, 5.3320)),
        (2, 26, (8, 916.5, 7.1602)),
        (2, 27, (8, 948, 7.4063)),
        # Table 5.1.3.1-3 (MCS table 3)
        (3, 0, (2, 30, 0.0586)),
        (3, 5, (2, 99, 0.1934)),
        (3, 15, (4, 340, 1.3281)),
        (3, 28, (6, 772, 4.5234)),
    ],
)
def test_mcs_table_spot_entries_match_the_spec(table: int, index: int, expected: tuple[float, float, float]) -> None:
    np.testing.assert_array_equal(MCS_TABLES[table][index], np.array(expected, dtype=np.float64))


@pytest.mark.parametrize("table", [1, 2, 3])
def test_table_shapes_reserved_rows_and_out_of_range_row(table: int) -> None:
    cqi = CQI_TABLES[table]
    mcs = MCS_TABLES[table]
    assert cqi.shape == (16, 3) and cqi.dtype == np.float64
    assert mcs.shape == (32, 3) and mcs.dtype == np.float64
    np.testing.assert_array_equal(cqi[0], 0.0)
    top = MAX_MCS_BY_TABLE[table]
    assert np.all(np.isfinite(mcs[: top + 1]))
    assert np.all(np.isnan(mcs[top + 1 :, 1:]))
    # reserved rows keep their modulation order: 2, 4, 6 (, 8)
    np.testing.assert_array_equal(mcs[top + 1 :, 0], 2.0 * np.arange(1, 32 - top))
    # shared module constants: callers cannot corrupt them by accident
    with pytest.raises(ValueError):
        cqi[1, 0] = 99.0
    with pytest.raises(ValueError):
        mcs[0, 1] = 99.0


@pytest.mark.parametrize("tables", [CQI_TABLES, MCS_TABLES])
def test_tabulated_se_is_qm_times_rate_rounded_to_four_decimals(tables: dict[int, np.ndarray]) -> None:
    for table in tables.values():
        ok = np.isfinite(table[:, 2])
        se = table[ok, 0] * table[ok, 1] / 1024.0
        np.testing.assert_allclose(table[ok, 2], se, atol=5.1e-5)


def test_spectral_efficiency_lookup_and_errors() -> None:
    np.testing.assert_array_equal(spectral_efficiency(np.array([0, 15]), 1), [0.0, 5.5547])
    assert spectral_efficiency(15, cqi_table=2) == 7.4063
    assert mcs_spectral_efficiency(27, mcs_table=2) == 7.4063
    assert np.isnan(mcs_spectral_efficiency(29, 1))
    with pytest.raises(ValueError, match="cqi"):
        spectral_efficiency(16)
    with pytest.raises(ValueError, match="cqi_table"):
        spectral_efficiency(3, cqi_table=4)
    with pytest.raises(ValueError, match="mcs"):
        mcs_spectral_efficiency(32)


def test_cqi_to_mcs_table2_to_table2_is_the_familiar_mapping() -> None:
    # CQI table 2 rows reuse MCS table 2 rows 0, 1, 3, 5, ..., 27 exactly.
    got = cqi_to_mcs(np.arange(16), cqi_table=2, mcs_table=2)
    np.testing.assert_array_equal(got, [NO_TRANSMISSION, 0] + list(range(1, 28, 2)))
    assert got.dtype == np.int64


def test_cqi_to_mcs_table1_handles_the_non_monotone_rows() -> None:
    # MCS table 1 has SE(16) = 2.5703 > SE(17) = 2.5664: CQI 10 (SE 2.7305) -> MCS 18.
    assert cqi_to_mcs(10) == 18
    assert cqi_to_mcs(15) == 28
    # CQI table 3 CQI 1 (SE 0.0586) is below MCS table 1's lowest SE: served with MCS 0.
    assert cqi_to_mcs(1, cqi_table=3, mcs_table=1) == 0


@pytest.mark.parametrize("cqi_table", [1, 2, 3])
@pytest.mark.parametrize("mcs_table", [1, 2, 3])
def test_cqi_to_mcs_picks_the_highest_mcs_not_above_the_cqi_se(cqi_table: int, mcs_table: int) -> None:
    cqi = np.arange(1, 16)
    mcs = cqi_to_mcs(cqi, cqi_table, mcs_table)
    se_cqi = spectral_efficiency(cqi, cqi_table)
    valid_se = MCS_TABLES[mcs_table][: MAX_MCS_BY_TABLE[mcs_table] + 1, 2]
    for c_se, m in zip(se_cqi, mcs):
        fitting = np.flatnonzero(valid_se <= c_se + 1e-12)
        assert m == (fitting.max() if fitting.size else 0)
    assert np.all(np.diff(mcs) >= 0)
