"""CQI-Tune and RI-CQI-Tune: adjust the DU's table decision with a BLER predictor.

Both policies score a small grid of candidate decisions ``(rank r, CQI c)`` per UE with
*one* batched call of a BLER predictor over all UEs × candidates:

    X = build_features(reports, rank[N, K], cqi[N, K], prev_bler)   # [N, K, 12]
    bler = predict(X.reshape(N · K, 12)).reshape(N, K)

``predict`` is any callable ``features[M, 12] -> bler[M]`` (normally
``LightTuneModel.predict_many``). Selection is vectorised; there is no per-UE Python loop.

CQI-Tune (rank fixed at the reported RI ``r0``): candidates are the table CQI ``c0``
(the reported CQI unless given) backed off one step at a time, ``c0, c0 − 1, ...,
max(c0 − max_backoff, 1)``. The first candidate with predicted BLER ``<= target_bler``
(0.1, the OLLA target) wins, i.e. the smallest back-off that meets the target. If none
does, the candidate with the lowest predicted BLER wins (ties to the smaller back-off).
The CQI never exceeds ``c0``. A UE with ``c0 = 0`` ("out of range") keeps CQI 0.

RI-CQI-Tune: ranks ``r ∈ {r0, r0 − 1, r0 + 1} ∩ [1, max_rank]`` and CQIs
``c ∈ [c0 − cqi_window + 1, c0] ∩ [1, 15]``; the pair maximising the expected throughput per
RE, ``r · SE(c) · (1 − BLER_pred(r, c))``, wins. Ties go to the earlier candidate in the
order (r0, then r0 − 1, then r0 + 1; higher CQI first). If every candidate is predicted
to fail surely (all objectives 0), the lowest predicted BLER wins instead. Should the rank
set be empty (a reported RI above ``max_rank + 1``), the rank is capped at ``max_rank``.

Exact pruning (``prune=True``, what :class:`lighttune_core.cell.CellTuner` uses): the same
decisions from fewer predictions, in a few batched predictor calls instead of one.

* RI-CQI-Tune: ``U = r · SE(c)`` bounds a candidate's objective (``J = U (1 − BLER) <= U``,
  also after float rounding). Round 1 predicts, per UE, the candidate of largest ``U``
  (first on ties), giving ``J_1``; round 2 predicts only the candidates that can still win,
  ``U > J_1`` or ``U = J_1`` earlier in the order, or all of them if ``J_1 <= 0`` (the
  lowest-BLER fallback needs them). A candidate left out has ``J <= U < J_1``, or ties
  ``J_1`` from a later slot, so the first maximiser is among those predicted.
* CQI-Tune: back-offs are predicted in stages (0, then 1–2, then the rest) for the UEs
  that have not yet met the target; the first back-off meeting it is then already
  predicted, and a UE that never meets it has had all of them predicted.

A UE's candidates differ only in the candidate rank and CQI features, so the pruned
searches build the feature rows they predict from one ``[N, 12]`` array, not the whole
``[N, K, 12]`` grid (1,000-UE field cell: ~1.9 -> ~0.4 ms per decision).

Measured with a quickly trained model on simulated DU reports (``benchmarks/decision_search.py``):
the pruned RI-CQI-Tune predicted 14 % (low SNR) and 31 % (medium SNR) of the candidates,
CQI-Tune 16 % and 34 %; at high SNR, where that model predicts high BLER for most
candidates, all of them. The decisions equalled the full searches' in every case.

Rank rule: the CSI report only carries a table CQI ``c0`` for the reported rank ``r0``.
The window of rank ``r`` is anchored at ``c_r = c0 + Q(r) − Q(r0)`` (clipped to 1 .. 15;
:func:`rank_cqi_anchor`), where ``Q(r)`` is the CQI the per-layer SINRs of the report stand
for at rank ``r``: equal power split over the layers, so going from ``r0`` to ``r`` layers
moves every layer's SINR by ``10 log10(r0 / r)`` dB; rank ``r < r0`` keeps the ``r``
strongest reported layers, rank ``r0 + 1`` adds a layer 3 dB below the weakest reported
one (the next eigenmode is not reported: a stated, conservative guess); the codeword's
SINR is the mean of its layers' SINRs in dB and ``Q`` the highest CQI whose gap-to-capacity
threshold (:func:`~lighttune_core.linkadapt.olla.default_cqi_sinr_db`) it reaches. Only
the *difference* ``Q(r) − Q(r0)`` is used, so the UE's own CQI calibration is kept. The
anchor is then capped by rate consistency: the UE reported ``r0`` because no other rank
gave it more rate at the 10 % BLER target, so ``c_r`` is at most the highest CQI with
``r · SE(c_r) <= r0 · SE(c0)``. With a predictor that sees no BLER difference between the
candidates (OLLA keeps the BLER near target whatever the rank), RI-CQI-Tune therefore keeps
the reported rank; it changes rank only where the predicted BLER of ``r0`` is worse.
Without these anchors it would always buy ``r0 + 1`` at ``r0``'s CQI and lose throughput
(measured: −42 % on TDL-B200, medium correlation, high SNR).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np

from lighttune_core.features import FEATURE_NAMES, N_FEATURES, build_features
from lighttune_core.linkadapt.olla import default_cqi_sinr_db
from lighttune_core.linkadapt.presets import DuPreset, get_preset, preset_mcs
from lighttune_core.linkadapt.tables import MAX_MCS_BY_TABLE, mcs_spectral_efficiency, spectral_efficiency
from lighttune_core.report import MAX_CQI, MAX_RANK, LinkReports

BlerPredictor = Callable[[np.ndarray], np.ndarray]
"""``features float [M, 12] -> predicted BLER float [M]``."""
BlerAdjust = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(rank offset r − RI int [...], predicted BLER float [...]) -> BLER the search scores by``,
same shape, values in [0, 1] (e.g. :meth:`lighttune_core.calibration.RankOffsetCalibration.adjust`)."""

DEFAULT_TARGET_BLER: float = 0.1
"""BLER a CQI-Tune decision must be predicted to meet (the OLLA target)."""
DEFAULT_MAX_BACKOFF: int = MAX_CQI - 1
"""CQI-Tune may back off all the way to CQI 1 by default."""
DEFAULT_CQI_WINDOW: int = 5
"""RI-CQI-Tune searches this many CQIs at and below the table CQI."""

_BLER_TOLERANCE: float = 1e-9


class CqiTuneResult(NamedTuple):
    """CQI-Tune decision per UE."""

    cqi: np.ndarray
    """int64 [N], chosen CQI (<= the table CQI)."""
    predicted_bler: np.ndarray
    """float64 [N], predicted BLER of the chosen (RI, CQI)."""


class SameRankBest:
    """Per UE, the best candidate at the reported rank (rank slot 0: ``r0``, or ``max_rank``
    for a reported RI above it), as the same :func:`ri_cqi_tune` search with
    ``change_rank=False`` would choose it. Pass one as ``ri_cqi_tune(..., same_rank_out=...)``:
    a UE whose choice keeps its rank has that choice; for one whose choice changes rank, a
    pruned search predicts, in up to two more batched calls, the same-rank candidates its
    pruning left out that could still be that rank's best (the same exact pruning rule on the
    rank's own slots).

    Attributes (arrays [N] once filled):
        rank: int64, the slot's rank.
        cqi: int64, the chosen CQI.
        predicted_bler: float64, the predictor's answer for it (before ``adjust``).
        score: float64, its objective ``max(J, 0)``, ``J = U · (1 − adjust(BLER))``, bit per RE.
    """

    rank: np.ndarray
    cqi: np.ndarray
    predicted_bler: np.ndarray
    score: np.ndarray

    def __init__(self) -> None:
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
        self.rank, self.cqi, self.predicted_bler, self.score = empty_i, empty_i.copy(), empty_f, empty_f.copy()


class SearchBudget:
    """A cap on the rows one pruned search predicts, and what the cap cut in its last call.

    The exact pruning predicts each UE's candidate of largest bound first (``N`` rows, always:
    a decision needs one prediction per UE), then every candidate that could still win. Early
    in a cell's life, or with a model that labels most candidates' BLER high, that second round
    can hold several times ``N`` rows, and with :class:`SameRankBest` each UE whose choice
    changes rank needs its same-rank candidates too (1,000-UE field trace,
    ``benchmarks/search_budget.py``: a median of 4,748 rows a period, but 11,769 and 10,541 in
    the first two, nearly all of them second-round rows; about 1 µs each in float32). With
    a budget of ``max_rows`` the call predicts at most ``max(max_rows, N)`` rows: the first
    round's ``N`` rows are never cut (every UE gets a predicted choice), then the second round
    and the same-rank rounds take what is left, in that order, each breadth first: every UE's
    next-best-bound candidate before any UE's one after it (depth ``d`` = the candidate's
    place in its UE's order of decreasing bound ``U``; ties by larger ``U``, then earlier UE
    and slot). A UE whose candidates were cut takes the best of those predicted (the search
    then is anytime, not exact); a search within the budget is the exact one. A rank-changing
    UE whose same-rank candidates were all cut has no same-rank best
    (``SameRankBest.predicted_bler`` +inf, score 0).

    Attributes:
        max_rows: the cap (>= 1), rows per call including the first round's ``N``.
        rows: rows the last call predicted.
        cut: bool [N] of the last call, True for a UE with a candidate left out by the cap.
    """

    def __init__(self, max_rows: int) -> None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
            raise ValueError(f"max_rows must be an integer >= 1, got {max_rows!r}")
        self.max_rows = int(max_rows)
        self.rows = 0
        self.cut = np.zeros(0, dtype=bool)

    @property
    def cut_ues(self) -> int:
        """UEs of the last call with at least one candidate left out by the cap."""
        return int(np.count_nonzero(self.cut))

    def start(self, n: int) -> None:
        """Begin a call over ``n`` UEs whose first round predicts ``n`` rows."""
        self.rows = n
        self.cut = np.zeros(n, dtype=bool)

    def remaining(self) -> int:
        """Rows the current call may still predict (0 when spent)."""
        return max(self.max_rows - self.rows, 0)

    def take(self, ue: np.ndarray, bound: np.ndarray) -> np.ndarray:
        """Which of the wanted rows to predict: bool [M] over rows of UEs ``ue`` int [M] (each
        UE's rows in slot order) with bounds ``bound`` float [M], breadth first (class doc);
        counts the kept rows and the UEs that lose one."""
        m = ue.shape[0]
        room = self.remaining()
        if m <= room:
            self.rows += m
            return np.ones(m, dtype=bool)
        order = np.lexsort((np.arange(m), -bound, ue))  # per UE, by decreasing bound
        first = np.flatnonzero(np.r_[True, ue[order][1:] != ue[order][:-1]])
        starts = np.repeat(first, np.diff(np.r_[first, m]))
        depth = np.empty(m, dtype=np.int64)
        depth[order] = np.arange(m) - starts
        keep = np.zeros(m, dtype=bool)
        keep[np.lexsort((np.arange(m), -bound, depth))[:room]] = True
        self.rows += room
        self.cut[ue[~keep]] = True
        return keep


class RiCqiTuneResult(NamedTuple):
    """RI-CQI-Tune decision per UE."""

    rank: np.ndarray
    """int64 [N], chosen rank in [1, max_rank]."""
    cqi: np.ndarray
    """int64 [N], chosen CQI (<= the table CQI)."""
    predicted_bler: np.ndarray
    """float64 [N], predicted BLER of the chosen pair."""


_RANK_OFFSETS: np.ndarray = np.array([0, -1, 1], dtype=np.int64)
"""RI-CQI-Tune's rank slots relative to the reported RI, in tie-break order."""
_RANK_OFFSETS.setflags(write=False)
_RANK_COLUMN: int = FEATURE_NAMES.index("candidate_rank")
_CQI_COLUMN: int = FEATURE_NAMES.index("candidate_cqi")


def _table_cqi(reports: LinkReports, table_cqi: np.ndarray | None) -> np.ndarray:
    n = len(reports)
    if table_cqi is None:
        c0 = reports.cqi
    else:
        c0 = np.asarray(table_cqi)
        if c0.shape != (n,):
            raise ValueError(f"table_cqi must have shape ({n},), got {c0.shape}")
        if c0.dtype.kind not in "iu" and not (c0.dtype.kind == "f" and np.all(c0 == np.round(c0))):
            raise ValueError("table_cqi must hold integers")
        c0 = c0.astype(np.int64)
    if ((c0 < 0) | (c0 > MAX_CQI)).any():
        raise ValueError(f"table CQI must be in 0..{MAX_CQI}")
    return c0


EXTRA_LAYER_MARGIN_DB: float = 3.0
"""Assumed SINR of an unreported extra layer: this much below the weakest reported one, dB."""

_POWER_SPLIT_DB: np.ndarray = 10.0 * np.log10(
    np.maximum(np.arange(MAX_RANK + 2), 1).astype(np.float64)[:, None] / np.maximum(np.arange(MAX_RANK + 2), 1)[None, :]
)
"""``10 log10(r0 / r)`` dB for ``r0, r`` in 0 .. 5 (row 0 and column 0 unused)."""
_POWER_SPLIT_DB.setflags(write=False)


@lru_cache(maxsize=None)
def _cqi_tables(cqi_table: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only (CQI SINR thresholds dB [16], spectral efficiency [16]) of a CQI table."""
    thresholds = default_cqi_sinr_db(cqi_table)
    se = spectral_efficiency(np.arange(MAX_CQI + 1), cqi_table)
    thresholds.setflags(write=False)
    se.setflags(write=False)
    return thresholds, se


def _sorted_columns_descending(v: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Each row of ``v`` float [N, 4] (no NaN) sorted in descending order into ``out`` [N, 4]:
    the 5-comparator sorting network on whole columns (10 vector calls instead of N tiny
    sorts; the same values as ``np.sort(v, axis=1)[:, ::-1]``)."""
    if v.shape[1] != 4:
        out[...] = np.sort(v, axis=1)[:, ::-1]
        return out
    a, b, c, d = v[:, 0], v[:, 1], v[:, 2], v[:, 3]
    a, b = np.maximum(a, b), np.minimum(a, b)
    c, d = np.maximum(c, d), np.minimum(c, d)
    np.maximum(a, c, out=out[:, 0])
    c = np.minimum(a, c)
    np.minimum(b, d, out=out[:, 3])
    b = np.maximum(b, d)
    np.maximum(b, c, out=out[:, 1])
    np.minimum(b, c, out=out[:, 2])
    return out


def rank_cqi_anchor(reports: LinkReports, ranks: np.ndarray, c0: np.ndarray | None = None) -> np.ndarray:
    """Table CQI of each candidate rank, from the reported CQI and per-layer SINRs.

    ``c_r = min(clip(c0 + Q(r) − Q(r0), 1, 15), max{c : r · SE(c) <= r0 · SE(c0)})``
    (``c0`` itself where ``r = r0`` or ``c0 = 0``; 0 when no CQI satisfies the bound),
    with ``Q(r)`` the CQI of the mean per-layer SINR (dB) at rank ``r`` — see the module
    doc for the layer model (power split ``10 log10(r0 / r)`` dB, strongest ``r`` layers,
    an extra layer :data:`EXTRA_LAYER_MARGIN_DB` below the weakest).

    Args:
        reports: ``N`` UEs.
        ranks: int [N, K] candidate ranks, each in ``1 .. r0 + 1`` (and 1 .. 4).
        c0: int [N] table CQI at the reported rank (default ``reports.cqi``).

    Returns:
        int64 [N, K] anchor CQIs.
    """
    r0 = reports.ri
    n = len(reports)
    base = reports.cqi if c0 is None else np.asarray(c0, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.int64)
    sinr = reports.sinr_layers_db
    known = (np.arange(MAX_RANK)[None, :] < r0[:, None]) & np.isfinite(sinr)
    # layer SINRs at rank r0 (strongest first, 0 where unknown), then r0 + 1 with the guessed
    # extra layer: [N, 5]
    layers = np.empty((n, MAX_RANK + 1))
    _sorted_columns_descending(np.where(known, sinr, -np.inf), out=layers[:, :MAX_RANK])
    layers[:, MAX_RANK] = -np.inf
    col = np.where(known, sinr, np.inf)
    weakest = col[:, 0].copy()  # [N]; column by column (a min over axis 1 of 4 is slower)
    for j in range(1, MAX_RANK):
        np.minimum(weakest, col[:, j], out=weakest)
    row = np.arange(0, n * (MAX_RANK + 1), MAX_RANK + 1)  # flat index of each UE's column 0
    layers.put(row + r0, weakest - EXTRA_LAYER_MARGIN_DB)
    layers[np.isinf(layers)] = 0.0
    csum = layers.cumsum(axis=1)  # sum of the r strongest

    thresholds, se_table = _cqi_tables(reports.cqi_table)
    r = np.minimum(np.maximum(ranks, 1), MAX_RANK + 1)
    # mean per-layer SINR at rank r with the power split 10 log10(r0 / r) dB; at r0 no split
    mean_db = csum.take(row[:, None] + (r - 1)) / r + _POWER_SPLIT_DB.take(r0[:, None] * (MAX_RANK + 2) + r)
    q0 = thresholds.searchsorted(csum.take(row + (r0 - 1)) / r0, side="right")
    shift = thresholds.searchsorted(mean_db, side="right") - q0[:, None]
    anchor = np.minimum(np.maximum(base[:, None] + shift, 1), MAX_CQI)
    # rate consistency: the UE chose r0, so no other rank may promise more than r0 * SE(c0)
    bound = (r0 * se_table[base])[:, None] / np.maximum(ranks, 1)
    cap = se_table.searchsorted(bound * (1.0 + 1e-12), side="right") - 1
    anchor = np.minimum(anchor, cap)
    return np.where((ranks == r0[:, None]) | (base[:, None] == 0), base[:, None], anchor).astype(np.int64)


def _reported_rank(reports: LinkReports) -> np.ndarray:
    if ((reports.ri < 1) | (reports.ri > MAX_RANK)).any():
        raise ValueError(
            f"reports.ri must be in 1..{MAX_RANK}; drop invalid UEs with LinkReports.validate() first"
        )
    return reports.ri


def _candidate_rows(
    base: np.ndarray, ue: np.ndarray | None, rank: np.ndarray, cqi: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Features of candidates ``(ue[i], rank[i], cqi[i])``, float64 [M, 12], from the UEs'
    candidate-free features ``base`` [N, 12] (``build_features`` of any candidate): only the
    candidate columns differ between a UE's candidates, so a pruned search builds the rows
    it predicts, not the whole grid (the same values as ``build_features`` of the grid).
    ``ue`` None: one candidate per UE, in order (``M = N``); ``out``: where to write them."""
    if out is None:
        rows = base.copy() if ue is None else base[ue]
    else:
        rows = out
        rows[...] = base if ue is None else base[ue]
    rows[:, _RANK_COLUMN] = rank / MAX_RANK
    rows[:, _CQI_COLUMN] = cqi / MAX_CQI
    return rows


def _predict_rows(predict: BlerPredictor, features: np.ndarray) -> np.ndarray:
    """Run the predictor on ``features [M, 12]`` and check its answer, float64 [M]."""
    m = features.shape[0]
    bler = np.asarray(predict(features), dtype=np.float64)
    if bler.size != m:
        raise ValueError(f"predict returned {bler.size} values for {m} feature rows")
    bler = bler.reshape(m)
    if not np.isfinite(bler).all():
        raise ValueError("predict returned non-finite BLER values")
    return bler


def cqi_tune(
    predict: BlerPredictor,
    reports: LinkReports,
    prev_bler: np.ndarray | None = None,
    table_cqi: np.ndarray | None = None,
    target_bler: float = DEFAULT_TARGET_BLER,
    max_backoff: int = DEFAULT_MAX_BACKOFF,
    prune: bool = False,
    du_preset: DuPreset | str | None = None,
    mcs_table: int = 1,
    adjust: BlerAdjust | None = None,
    budget: SearchBudget | None = None,
) -> CqiTuneResult:
    """CQI-Tune: smallest CQI back-off whose predicted BLER meets the target (see module doc).

    Candidates ``c_k = max(c0 − k, 1)``, ``k = 0 .. K − 1`` with
    ``K = min(max_backoff, max(c0) − 1) + 1``, rank ``r0`` = reported RI. Chosen
    ``k* = min{k : BLER_k <= target}``, or ``argmin_k BLER_k`` if the set is empty.

    Args:
        predict: ``features [M, 12] -> bler [M]``, called once with ``M = N · K``.
        reports: the cell's reports, ``N`` UEs (valid per ``LinkReports.validate``).
        prev_bler: float [N] or None, passed to ``build_features``.
        table_cqi: int [N], the DU's table CQI; default the reported CQI.
        target_bler: BLER target in [0, 1].
        max_backoff: largest back-off in CQI steps, >= 0.
        prune: predict back-offs in stages, only for UEs that have not met the target yet
            (same result, fewer predictions, up to three predictor calls).
        du_preset: the DU's link adaptation (:mod:`~lighttune_core.linkadapt.presets`). When
            given, CQI-Tune scores by expected delivered bits instead of the BLER target:
            the back-off maximising ``SE(MCS_DU(c, b)) · (1 − BLER_pred)`` wins (rank fixed
            at ``r0``, :func:`ri_cqi_tune`'s search with one rank slot and a window of
            ``max_backoff + 1`` CQIs), ``MCS_DU`` the MCS the DU transmits for CQI ``c`` at
            its reported OLLA back-off ``b`` (:func:`~lighttune_core.linkadapt.presets.preset_mcs`).
        mcs_table: the DU's MCS table (with ``du_preset``).
        adjust: maps the predictions to the BLER the search scores by (rank offset 0 here);
            None: the predictions themselves.
        budget: caps the rows the pruned delivered-bits search predicts (:class:`SearchBudget`;
            needs ``prune`` and ``du_preset``); None: the exact search.

    Returns:
        ``CqiTuneResult(cqi int64 [N], predicted_bler float64 [N])``; ``predicted_bler`` is
        the predictor's answer for the chosen CQI (before ``adjust``).

    Raises:
        ValueError: bad arguments, reported RI outside 1..4, or a predictor answer of the
            wrong size or with non-finite values.
    """
    if not 0.0 <= target_bler <= 1.0:
        raise ValueError(f"target_bler must be in [0, 1], got {target_bler!r}")
    if int(max_backoff) != max_backoff or max_backoff < 0:
        raise ValueError(f"max_backoff must be a non-negative integer, got {max_backoff!r}")
    if budget is not None and du_preset is None:
        raise ValueError("a search budget needs du_preset (the delivered-bits search)")
    if du_preset is not None:
        res = _ri_cqi_search(
            predict, reports, prev_bler, MAX_RANK, int(max_backoff) + 1, table_cqi, prune, None,
            du_preset, mcs_table, _FIXED_RANK, adjust, budget=budget,
        )
        return CqiTuneResult(res.cqi, res.predicted_bler)
    n = len(reports)
    c0 = _table_cqi(reports, table_cqi)
    r0 = _reported_rank(reports)
    if n == 0:
        return CqiTuneResult(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
    k = int(min(int(max_backoff), max(int(c0.max()) - 1, 0))) + 1
    backoff = np.arange(k, dtype=np.int64)[None, :]
    cand = np.where(c0[:, None] > 0, np.maximum(c0[:, None] - backoff, 1), 0)  # [N, K]
    rank = np.broadcast_to(r0[:, None], cand.shape)
    if prune:
        base = build_features(reports, r0, c0, prev_bler)  # [N, 12]
        bler = np.full((n, k), np.inf)
        open_ue = np.ones(n, dtype=bool)
        for lo, hi in ((0, 1), (1, 3), (3, k)):
            hi = min(hi, k)
            if lo >= hi or not open_ue.any():
                break
            ues = np.flatnonzero(open_ue)
            ue_rows = np.repeat(ues, hi - lo)
            part = _candidate_rows(base, ue_rows, r0[ue_rows], cand[ues, lo:hi].reshape(-1))
            bler[ues, lo:hi] = _predict_rows(predict, part).reshape(ues.shape[0], hi - lo)
            scored = bler[ues, lo:hi] if adjust is None else _adjusted(adjust, 0, bler[ues, lo:hi])
            open_ue[ues] = ~np.any(scored <= target_bler + _BLER_TOLERANCE, axis=1)
    else:
        x = build_features(reports, rank, cand, prev_bler).reshape(n * k, N_FEATURES)
        bler = _predict_rows(predict, x).reshape(n, k)

    score = bler if adjust is None else _adjusted(adjust, 0, bler)
    meets = score <= target_bler + _BLER_TOLERANCE
    choice = np.where(meets.any(axis=1), np.argmax(meets, axis=1), np.argmin(score, axis=1))
    rows = np.arange(n)
    return CqiTuneResult(cand[rows, choice].astype(np.int64), bler[rows, choice])


def _adjusted(adjust: BlerAdjust, offset: np.ndarray | int, bler: np.ndarray) -> np.ndarray:
    """``adjust(offset, bler)`` on the finite entries of ``bler`` (unscored slots, +inf, stay),
    checked: same shape, finite, in [0, 1]."""
    out = np.array(bler, dtype=np.float64, copy=True)
    ok = np.isfinite(out)
    if not ok.any():
        return out
    d = np.broadcast_to(np.asarray(offset, dtype=np.int64), out.shape)[ok]
    got = np.asarray(adjust(d, out[ok]), dtype=np.float64)
    if got.shape != d.shape or not (np.isfinite(got).all() and (got >= 0.0).all() and (got <= 1.0).all()):
        raise ValueError("adjust must return one BLER in [0, 1] per prediction")
    out[ok] = got
    return out


def ri_cqi_tune(
    predict: BlerPredictor,
    reports: LinkReports,
    prev_bler: np.ndarray | None = None,
    max_rank: int = MAX_RANK,
    cqi_window: int = DEFAULT_CQI_WINDOW,
    table_cqi: np.ndarray | None = None,
    prune: bool = False,
    features_out: np.ndarray | None = None,
    du_preset: DuPreset | str | None = None,
    mcs_table: int = 1,
    adjust: BlerAdjust | None = None,
    change_rank: bool = True,
    same_rank_out: SameRankBest | None = None,
    budget: SearchBudget | None = None,
) -> RiCqiTuneResult:
    """RI-CQI-Tune: the (rank, CQI) pair of best expected throughput (see module doc).

    Grid (K = 3 · cqi_window slots per UE, ordered rank offset d ∈ (0, −1, +1) then
    CQI step j = 0 .. cqi_window − 1): ``r = r0 + d``, ``c = c0 − j``; a slot is valid iff
    ``1 <= r <= max_rank`` and ``1 <= c`` (for ``c0 = 0`` only (first valid rank, 0) is;
    if no ``r0 + d`` is in range, ``max_rank`` replaces ``r0``).
    Only valid slots are sent to ``predict`` (one call). Objective
    ``J = r · SE(c) · (1 − BLER_pred)`` with SE from the reports' CQI table; chosen
    ``argmax J`` (first on ties), or the lowest predicted BLER if ``max J <= 0``.

    Args:
        predict: ``features [M, 12] -> bler [M]``, called once.
        reports: the cell's reports, ``N`` UEs (valid per ``LinkReports.validate``).
        prev_bler: float [N] or None, passed to ``build_features``.
        max_rank: highest rank allowed, 1 .. 4.
        cqi_window: number of CQIs searched at and below the table CQI, >= 1.
        table_cqi: int [N], the DU's table CQI; default the reported CQI.
        prune: skip candidates whose bound ``r · SE(c)`` cannot beat the best predicted one
            (same result, fewer predictions, two predictor calls; see the module doc).
        features_out: float64 [N, 12] or None; when given, receives the features of each
            UE's chosen (rank, CQI) (what ``build_features`` would give for them), so a
            caller that keeps them need not build them again.
        du_preset: the DU's link adaptation (:mod:`~lighttune_core.linkadapt.presets`). When
            given, candidates are scored by the bits the DU will deliver,
            ``J = r · SE(MCS_DU(c, b)) · (1 − BLER_pred)``, with ``MCS_DU`` the MCS the DU
            transmits for CQI ``c`` at the UE's reported OLLA back-off ``b``
            (:func:`~lighttune_core.linkadapt.presets.preset_mcs`) and SE that MCS's spectral
            efficiency (MCS table ``mcs_table``); None scores by the CQI's own SE.
        mcs_table: the DU's MCS table (with ``du_preset``).
        adjust: maps each prediction and its candidate's rank offset ``r − r0`` to the BLER
            the objective uses (``J = U · (1 − adjust(r − r0, BLER_pred))``; the pruning bound
            ``J <= U`` holds for any value in [0, 1]); None: the predictions themselves.
        change_rank: False searches the reported rank's slot only (``d = 0``: the best
            same-rank candidate of the same window, what
            :class:`~lighttune_core.calibration.RankChangeCheck` compares a rank change with).
        same_rank_out: when given, receives each UE's best same-rank candidate
            (:class:`SameRankBest`; up to two more predictor calls when pruning left some of
            a rank-changing UE's same-rank candidates out).
        budget: caps the rows the pruned search predicts (:class:`SearchBudget`, needs
            ``prune``; it records the rows and the UEs the cap cut); None: the exact search.

    Returns:
        ``RiCqiTuneResult(rank int64 [N], cqi int64 [N], predicted_bler float64 [N])``;
        ``predicted_bler`` is the predictor's answer for the chosen pair (before ``adjust``).

    Raises:
        ValueError: bad arguments, reported RI outside 1..4, or a predictor answer of the
            wrong size or with non-finite values.
    """
    return _ri_cqi_search(
        predict, reports, prev_bler, max_rank, cqi_window, table_cqi, prune, features_out,
        du_preset, mcs_table, _RANK_OFFSETS if change_rank else _FIXED_RANK, adjust, same_rank_out, budget,
    )


_FIXED_RANK: np.ndarray = np.array([0], dtype=np.int64)
"""CQI-Tune's one rank slot (the reported RI) when it scores delivered bits."""
_FIXED_RANK.setflags(write=False)


@lru_cache(maxsize=None)
def _mcs_se(mcs_table: int) -> np.ndarray:
    """float64 [top + 2]: SE of MCS 0 .. top, then 0 for index −1 (no transmission)."""
    top = MAX_MCS_BY_TABLE[mcs_table]
    out = np.append(mcs_spectral_efficiency(np.arange(top + 1), mcs_table), 0.0)
    out.setflags(write=False)
    return out


def _fill_same_rank(
    out: SameRankBest, objective: np.ndarray, score: np.ndarray, bler: np.ndarray, rank: np.ndarray, cqi: np.ndarray
) -> None:
    """The search's choice rule on rank slot 0 into ``out``: first maximiser of the objective
    [N, W] over the scored slots, or the lowest scored BLER where none is > 0."""
    best = objective.argmax(axis=1)
    rows = np.arange(objective.shape[0])
    j = objective[rows, best]
    hopeless = j <= 0.0
    choice = np.where(hopeless, score.argmin(axis=1), best) if hopeless.any() else best
    out.rank = rank.astype(np.int64, copy=True)
    out.cqi = cqi[rows, choice].astype(np.int64, copy=False)
    out.predicted_bler = bler[rows, choice].astype(np.float64, copy=False)
    out.score = np.maximum(objective[rows, choice], 0.0)


def candidate_rate(
    reports: LinkReports,
    rank: np.ndarray,
    cqi: np.ndarray,
    du_preset: DuPreset | str | None = None,
    mcs_table: int = 1,
) -> np.ndarray:
    """Rate bound ``U`` of candidates, bit per RE: ``r · SE(c)`` (``du_preset`` None) or the
    delivered-bits form ``r · SE(MCS_DU(c, b))`` with the UE's reported back-off ``b``.

    Args:
        reports: ``N`` UEs.
        rank, cqi: int [N, K] candidates (CQI 0 .. 15).

    Returns:
        float64 [N, K]; 0 for CQI 0.
    """
    if du_preset is None:
        return rank * _cqi_tables(reports.cqi_table)[1][cqi]
    preset = get_preset(du_preset)
    mcs = preset_mcs(preset, cqi, reports.olla_offset_db[:, None], reports.cqi_table, mcs_table)
    return rank * _mcs_se(mcs_table)[mcs]


def _ri_cqi_search(
    predict: BlerPredictor,
    reports: LinkReports,
    prev_bler: np.ndarray | None,
    max_rank: int,
    cqi_window: int,
    table_cqi: np.ndarray | None,
    prune: bool,
    features_out: np.ndarray | None,
    du_preset: DuPreset | str | None,
    mcs_table: int,
    rank_offsets: np.ndarray,
    adjust: BlerAdjust | None = None,
    same_rank_out: SameRankBest | None = None,
    budget: SearchBudget | None = None,
) -> RiCqiTuneResult:
    """The search of :func:`ri_cqi_tune` over rank slots ``r0 + rank_offsets``."""
    if budget is not None and not prune:
        raise ValueError("a search budget needs prune=True (the full search predicts every candidate)")
    if int(max_rank) != max_rank or not 1 <= max_rank <= MAX_RANK:
        raise ValueError(f"max_rank must be in 1..{MAX_RANK}, got {max_rank!r}")
    if int(cqi_window) != cqi_window or cqi_window < 1:
        raise ValueError(f"cqi_window must be a positive integer, got {cqi_window!r}")
    n = len(reports)
    if features_out is not None and features_out.shape != (n, N_FEATURES):
        raise ValueError(f"features_out must have shape ({n}, {N_FEATURES}), got {features_out.shape}")
    c0 = _table_cqi(reports, table_cqi)
    r0 = _reported_rank(reports)
    if budget is not None:
        budget.start(n)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return RiCqiTuneResult(empty, empty.copy(), np.zeros(0, dtype=np.float64))
    if same_rank_out is not None and rank_offsets[0] != 0:
        raise ValueError("same_rank_out needs the reported rank in slot 0")
    w = int(cqi_window)
    n_slots = rank_offsets.shape[0]
    k = n_slots * w
    # ranks r0, r0 - 1, r0 + 1 that lie in [1, max_rank]; none (r0 > max_rank + 1): max_rank
    rank_set = r0[:, None] + rank_offsets  # [N, A]
    rank_ok = (rank_set >= 1) & (rank_set <= max_rank)
    stranded = ~rank_ok.any(axis=1)
    any_stranded = bool(stranded.any())
    if any_stranded:
        rank_set[stranded, 0] = max_rank
        rank_ok[stranded, 0] = True
    # grid [N, 3, W] -> [N, K]: rank slot a, CQI step j; flat slot f = a W + j
    c_rank = rank_cqi_anchor(reports, np.minimum(np.maximum(rank_set, 1), MAX_RANK), c0)  # [N, 3] table CQI per rank
    cqi_grid = c_rank[:, :, None] - np.arange(w, dtype=np.int64)
    valid = rank_ok[:, :, None] & (cqi_grid >= 1)
    no_tx = c0 == 0
    if no_tx.any():  # CQI 0 ("out of range"): the only candidate is (first valid rank, CQI 0)
        first_rank = rank_ok.argmax(axis=1)
        valid[no_tx] = False
        valid[np.flatnonzero(no_tx), first_rank[no_tx], 0] = True
        fallback_rank = np.take_along_axis(rank_set, first_rank[:, None], axis=1)[:, :, None]
    else:
        fallback_rank = r0[:, None, None]  # any rank: invalid slots are never chosen
    # a valid slot's CQI is >= 1, or 0 for a UE without transmission (c_rank = c0 = 0 there)
    rank_safe = np.where(valid, rank_set[:, :, None], fallback_rank).reshape(n, k)
    cqi_safe = np.where(valid, cqi_grid, c0[:, None, None]).reshape(n, k)
    valid = valid.reshape(n, k)
    rate = candidate_rate(reports, rank_safe, cqi_safe, du_preset, mcs_table)  # r · SE; cqi_safe is 0..15
    offset = rank_safe - r0[:, None] if adjust is not None else None  # [N, K] rank offset per slot
    first_of_row = np.arange(0, n * k, k)  # flat index of each UE's slot 0

    if prune:
        base = build_features(reports, r0, c0, prev_bler)  # [N, 12]; candidates set per row
        upper = np.where(valid, rate, -np.inf)  # J <= U
        top = upper.argmax(axis=1)
        flat_top = first_of_row + top
        if any_stranded or top.any():
            top_rows = _candidate_rows(base, None, rank_safe.take(flat_top), cqi_safe.take(flat_top))
        else:  # the usual case: slot 0 = (r0, c0) has the largest bound, its row is `base`
            top_rows = base
        bler_top = _predict_rows(predict, top_rows)
        score_top = bler_top if adjust is None else _adjusted(adjust, offset.take(flat_top), bler_top)
        j1 = (upper.take(flat_top) * (1.0 - np.minimum(score_top, 1.0)))[:, None]
        need = upper > j1
        if top.any():  # ties go to the earlier slot
            need |= (upper == j1) & (np.arange(k) < top[:, None])
        hopeless_top = j1[:, 0] <= 0.0
        if hopeless_top.any():  # the lowest-BLER fallback needs every candidate
            need |= hopeless_top[:, None]
        need &= valid
        need.reshape(-1)[flat_top] = False
        flat_need = np.flatnonzero(need)
        if budget is not None and flat_need.size:
            flat_need = flat_need[budget.take(flat_need // k, upper.reshape(-1).take(flat_need))]
        bler = np.full(n * k, np.inf)
        bler[flat_top] = bler_top
        if flat_need.size:
            rows_need = _candidate_rows(
                base, flat_need // k, rank_safe.take(flat_need), cqi_safe.take(flat_need)
            )
            bler[flat_need] = _predict_rows(predict, rows_need)
        bler = bler.reshape(n, k)
        scored = np.isfinite(bler)
    else:
        x = build_features(reports, rank_safe, cqi_safe, prev_bler)  # [N, K, 12]
        bler = np.full(valid.shape, np.inf)
        bler[valid] = _predict_rows(predict, x[valid])
        scored = valid

    score = bler if adjust is None else _adjusted(adjust, offset, bler)  # unscored slots are +inf
    objective = np.where(scored, rate * (1.0 - np.minimum(score, 1.0)), -np.inf)
    best = objective.argmax(axis=1)
    hopeless = objective.take(first_of_row + best) <= 0.0
    choice = np.where(hopeless, score.argmin(axis=1), best) if hopeless.any() else best
    flat_choice = first_of_row + choice
    rank_c, cqi_c = rank_safe.take(flat_choice), cqi_safe.take(flat_choice)
    if same_rank_out is not None:
        z_obj, z_score, z_bler = objective[:, :w].copy(), score[:, :w].copy(), bler[:, :w].copy()
        if prune:
            # a UE whose choice is at the reported rank has it as its same-rank best too. For one
            # whose choice changes rank, the same-rank slots the pruning left out are predicted
            # as the same-rank search would: its top slot (slot 0, the largest bound of its
            # rank), then the slots whose bound can still beat the best predicted one
            z_rate, z_valid, z_scored = rate[:, :w], valid[:, :w], scored[:, :w].copy()
            changed = choice >= w
            for stage in (0, 1):
                if stage == 0:
                    need_z = np.zeros_like(z_valid)
                    need_z[:, 0] = changed & z_valid[:, 0] & ~z_scored[:, 0]
                else:
                    best_z = z_obj.argmax(axis=1)
                    j_best = z_obj[np.arange(n), best_z][:, None]
                    need_z = (z_rate > j_best) | ((z_rate == j_best) & (np.arange(w) < best_z[:, None]))
                    need_z |= (j_best <= 0.0)  # the lowest-BLER fallback needs every candidate
                    need_z &= changed[:, None] & z_valid & ~z_scored
                if not need_z.any():
                    continue
                ue, j = np.nonzero(need_z)
                if budget is not None:
                    kept = budget.take(ue, z_rate[ue, j])
                    ue, j = ue[kept], j[kept]
                    if ue.size == 0:
                        continue
                flat = ue * k + j
                got = _predict_rows(predict, _candidate_rows(base, ue, rank_safe.take(flat), cqi_safe.take(flat)))
                z_bler[ue, j] = got
                z_score[ue, j] = got if adjust is None else _adjusted(adjust, 0, got)
                z_obj[ue, j] = z_rate[ue, j] * (1.0 - np.minimum(z_score[ue, j], 1.0))
                z_scored[ue, j] = True
        _fill_same_rank(same_rank_out, z_obj, z_score, z_bler, rank_safe[:, 0], cqi_safe[:, :w])
    if features_out is not None:
        if prune:
            _candidate_rows(base, None, rank_c, cqi_c, out=features_out)
        else:
            features_out[...] = x[np.arange(n), choice]
    return RiCqiTuneResult(rank_c.astype(np.int64, copy=False), cqi_c.astype(np.int64, copy=False), bler.take(flat_choice))
