"""Transport block size (TS 38.214 §5.1.3.2) and code-block segmentation (TS 38.212)."""

from __future__ import annotations

import numpy as np
import pytest

from lighttune_core.linkadapt import (
    MAX_MCS_BY_TABLE,
    MCS_TABLES,
    NO_TRANSMISSION,
    TBS_TABLE,
    code_block_size,
    ldpc_base_graph,
    n_code_blocks,
    transport_block_size,
)


def test_tbs_table_spot_values() -> None:
    # TS 38.214 Table 5.1.3.2-1: 93 entries, 24 .. 3824, all whole bytes.
    assert TBS_TABLE.shape == (93,)
    assert TBS_TABLE[0] == 24 and TBS_TABLE[21] == 192 and TBS_TABLE[22] == 208
    assert TBS_TABLE[52] == 984 and TBS_TABLE[53] == 1032 and TBS_TABLE[-1] == 3824
    assert np.all(np.diff(TBS_TABLE) > 0) and np.all(TBS_TABLE % 8 == 0)


# Hand-worked cases. Defaults: N_symb = 12, N_DMRS = 12, xOverhead = 0 -> N'_RE = 132.
#
# (a) MCS 0 of table 1 (Qm 2, R 120/1024), 1 layer, 1 PRB:
#     N_RE = 132; N_info = 132 * 120/1024 * 2 = 30.94 (<= 3824)
#     n = max(3, floor(log2 30.94) - 6 = -2) = 3; N'_info = max(24, 8 * floor(3.87)) = 24
#     -> smallest table entry >= 24 = 24.
# (b) MCS 5 of table 1 (Qm 2, R 379), 1 layer, 10 PRB:
#     N_RE = 1320; N_info = 1320 * 379 * 2 / 1024 = 977.11; n = max(3, 9 - 6) = 3
#     N'_info = 8 * floor(122.14) = 976 -> table entry 984.
# (c) MCS 10 of table 1 (Qm 4, R 340), 1 layer, 106 PRB:
#     N_RE = 13992; N_info = 13992 * 340 * 4 / 1024 = 18583.59 (> 3824)
#     n = floor(log2(18559.59)) - 5 = 14 - 5 = 9; N'_info = 512 * round(36.249) = 18432
#     R = 0.332 > 1/4 and N'_info > 8424: C = ceil(18456 / 8424) = 3
#     TBS = 24 * ceil(18456 / 24) - 24 = 24 * 769 - 24 = 18432.
# (d) MCS 28 of table 1 (Qm 6, R 948), 1 layer, 106 PRB:
#     N_info = 13992 * 948 * 6 / 1024 = 77721.19; n = floor(log2 77697.19) - 5 = 16 - 5 = 11
#     N'_info = 2048 * round(37.938) = 77824; C = ceil(77848 / 8424) = 10
#     TBS = 80 * ceil(77848 / 80) - 24 = 80 * 974 - 24 = 77896.
# (e) MCS 27 of table 2 (Qm 8, R 948), 4 layers, 273 PRB:
#     N_RE = 132 * 273 = 36036; N_info = 36036 * 948 * 8 * 4 / 1024 = 1067566.5
#     n = floor(log2 1067542.5) - 5 = 20 - 5 = 15; N'_info = 32768 * round(32.579) = 1081344
#     C = ceil(1081368 / 8424) = 129; TBS = 1032 * ceil(1081368 / 1032) - 24
#         = 1032 * 1048 - 24 = 1081512.
# (f) MCS 0 of table 3 (Qm 2, R 30 -> R <= 1/4), 4 layers, 273 PRB, 14 symbols:
#     N'_RE = 168 - 12 = 156; N_RE = 42588; N_info = 42588 * 30 * 2 * 4 / 1024 = 9981.56
#     n = floor(log2 9957.56) - 5 = 13 - 5 = 8; N'_info = 256 * round(38.90) = 9984
#     C = ceil(10008 / 3816) = 3; TBS = 24 * ceil(10008 / 24) - 24 = 24 * 417 - 24 = 9984.
# (g) as (b) with 14 symbols and xOverhead 18: N'_RE = 168 - 12 - 18 = 138 -> N_RE = 1380
#     N_info = 1380 * 379 * 2 / 1024 = 1021.52; n = 3; N'_info = 1016 -> table entry 1032.
# (h) 14 symbols, no DM-RS: N'_RE = 168 is capped at 156 per PRB.
#     MCS 0 of table 1, 1 layer, 1 PRB: N_info = 156 * 120 * 2 / 1024 = 36.56
#     N'_info = 8 * floor(4.57) = 32 -> 32.
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(mcs=0, n_layers=1, n_prb=1), 24),
        (dict(mcs=5, n_layers=1, n_prb=10), 984),
        (dict(mcs=10, n_layers=1, n_prb=106), 18432),
        (dict(mcs=28, n_layers=1, n_prb=106), 77896),
        (dict(mcs=27, n_layers=4, n_prb=273, mcs_table=2), 1081512),
        (dict(mcs=0, n_layers=4, n_prb=273, mcs_table=3, n_symbols=14), 9984),
        (dict(mcs=5, n_layers=1, n_prb=10, n_symbols=14, x_overhead=18), 1032),
        (dict(mcs=0, n_layers=1, n_prb=1, n_symbols=14, n_dmrs_per_prb=0), 32),
    ],
)
def test_tbs_hand_worked_examples(kwargs: dict[str, int], expected: int) -> None:
    assert int(transport_block_size(**kwargs)) == expected


def test_tbs_is_vectorised_and_equals_elementwise_calls() -> None:
    rng = np.random.default_rng(7)
    mcs = rng.integers(0, 28, 200)
    layers = rng.integers(1, 5, 200)
    prb = rng.integers(1, 274, 200)
    got = transport_block_size(mcs, layers, prb, mcs_table=2)
    assert got.shape == (200,) and got.dtype == np.int64
    for i in range(0, 200, 17):
        assert got[i] == transport_block_size(int(mcs[i]), int(layers[i]), int(prb[i]), mcs_table=2)
    # broadcasting: one MCS per UE against a scalar allocation
    np.testing.assert_array_equal(transport_block_size(mcs[:5], 2, 106), [
        transport_block_size(int(m), 2, 106) for m in mcs[:5]
    ])


@pytest.mark.parametrize("table", [1, 2, 3])
def test_tbs_structure_over_the_whole_grid(table: int) -> None:
    top = MAX_MCS_BY_TABLE[table]
    m, v, p = np.meshgrid(np.arange(top + 1), np.arange(1, 5), np.arange(1, 274, 4), indexing="ij")
    tbs = transport_block_size(m, v, p, mcs_table=table)
    small = tbs <= 3824
    assert np.all(np.isin(tbs[small], TBS_TABLE))
    # large TBs split into C equal code blocks of whole bytes: 8C divides TBS + 24
    rate = MCS_TABLES[table][m, 1] / 1024.0
    c = n_code_blocks(tbs, rate)
    assert np.all((tbs[~small] + 24) % (8 * c[~small]) == 0)
    # more PRBs or layers never shrink the transport block
    assert np.all(np.diff(tbs, axis=2) >= 0)
    assert np.all(np.diff(tbs, axis=1) >= 0)
    # and it never carries more than N_RE * Qm * v bits
    qm = MCS_TABLES[table][m, 0]
    assert np.all(tbs <= 132 * p * qm * v)


def test_tbs_no_transmission_and_errors() -> None:
    np.testing.assert_array_equal(transport_block_size([NO_TRANSMISSION, 3], 1, [10, 0]), [0, 0])
    with pytest.raises(ValueError, match="mcs"):
        transport_block_size(28, 1, 10, mcs_table=2)  # reserved in table 2
    with pytest.raises(ValueError, match="mcs"):
        transport_block_size(29, 1, 10)
    with pytest.raises(ValueError, match="n_layers"):
        transport_block_size(3, 5, 10)
    with pytest.raises(ValueError, match="n_prb"):
        transport_block_size(3, 1, -1)
    with pytest.raises(ValueError, match="n_symbols"):
        transport_block_size(3, 1, 10, n_symbols=15)
    with pytest.raises(ValueError, match="mcs_table"):
        transport_block_size(3, 1, 10, mcs_table=4)
    with pytest.raises(ValueError, match="n_dmrs_per_prb"):
        transport_block_size(3, 1, 10, n_symbols=1, n_dmrs_per_prb=13)


def test_base_graph_and_code_blocks_per_ts_38_212() -> None:
    # BG2: A <= 292, or A <= 3824 with R <= 0.67, or R <= 0.25; else BG1.
    np.testing.assert_array_equal(
        ldpc_base_graph([292, 3824, 3824, 3840, 100000, 100000], [0.9, 0.67, 0.7, 0.5, 0.25, 0.26]),
        [2, 2, 1, 1, 2, 1],
    )
    # C: B = A + 24 (A > 3824) or A + 16; C = 1 if B <= K_cb else ceil(B / (K_cb - 24)).
    #   8424 (BG1): B = 8448 = K_cb -> 1 block; 8432: B = 8456 -> ceil(8456/8424) = 2.
    #   3000 at R 0.2 (BG2): B = 3016 <= 3840 -> 1; 9984 at R 30/1024: B = 10008 -> 3.
    #   77896 at R 948/1024: ceil(77920 / 8424) = 10 (as in the TBS formula).
    np.testing.assert_array_equal(
        n_code_blocks([8424, 8432, 3000, 9984, 77896, 0], [0.9, 0.9, 0.2, 30 / 1024, 948 / 1024, 0.5]),
        [1, 2, 1, 3, 10, 0],
    )
    # K' = (B + 24 C) / C when segmented: (77920 + 240) / 10 = 7816; unsegmented K' = B.
    np.testing.assert_array_equal(code_block_size([77896, 3000, 0], [948 / 1024, 0.2, 0.5]), [7816, 3016, 0])
    with pytest.raises(ValueError, match="code_rate"):
        n_code_blocks(1000, 948)
    with pytest.raises(ValueError, match="tbs"):
        n_code_blocks(-8, 0.5)
