"""The headroom of LightTune: a perfect BLER predictor obtained by replaying the DU.

How much throughput could CQI-Tune / RI-CQI-Tune gain over the DU's OLLA if the BLER
predictor were perfect? The simulator can answer exactly: at the end of each CSI period it
knows the next period's channel and HARQ draws (common random numbers), so it can *replay*
the next period once per candidate decision and read off what each candidate would really
do.

Replay
------
At the end of period ``k`` (the DU just emitted its :class:`~e2sim.du.PeriodOutcome`), the
next period's ``P`` slots (``P = csi_period_slots``; fewer when the run ends first) are
buffered before anything is decided: their :class:`~e2sim.channel.SlotSINR` and per-slot
HARQ uniforms ``u_t`` float64 [U]. The candidates are those the policy will ask about:
:func:`policy_candidates` runs the policy itself (:func:`~lighttune_core.linkadapt.cqi_tune`
/ :func:`~lighttune_core.linkadapt.ri_cqi_tune` with the arguments of
:meth:`~lighttune_core.cell.CellTuner.decide`) without pruning, with a predictor that records
the feature rows it is asked about, and decodes each row into ``(UE, rank, CQI)``
(:class:`FeatureIndex`). For RI-CQI-Tune that is up to ``3 ranks × 5 CQIs = 15`` candidates
per UE, for CQI-Tune up to 15 CQIs at the reported rank.

:func:`replay_candidates` copies the DU's state into one DU with ``M = Σ_u K_u`` rows (row
``m`` = UE ``ue[m]`` forced to candidate ``(rank[m], cqi[m])`` for the whole period, i.e.
what :meth:`~e2sim.du.DU.apply_control` does): the UE's round-robin phase, OLLA back-off
(and the OAI loop's window state), CSI report, PRB share and TBS/BLER tables, and runs the
buffered slots through :meth:`DU.step <e2sim.du.DU.step>` itself with row ``m`` seeing UE
``ue[m]``'s SINR ``sinr_db[ue[m]]`` and uniform ``u_t[ue[m]]``. One ``step`` per slot covers
all ``M`` rows (no loop over UEs or candidates). Row ``m`` therefore does exactly what UE
``ue[m]`` would do in the real DU with that control: per row

    n_ack[m], n_nack[m], served_bits[m]     (first transmissions of the period)

and its true BLER label ``y[m] = bler_label(n_ack[m], n_nack[m])`` (quantised to 0.1 like
the training labels, :func:`lighttune_core.features.bler_label`).

Perfect predictor
-----------------
:class:`PerfectPredictor` is a BLER "model" (``predict_many``, ``learn_one``, ``delta``) that
answers each candidate feature row with its replayed label ``y`` (0 for a candidate that
sends nothing in the period: its BLER is undefined and it delivers nothing). It is plugged
into an ordinary :class:`~lighttune_core.cell.CellTuner` (fine-tuning off), so the decision
search, the pruning and the delivered-bits scoring ``r · SE(MCS_DU(c, b)) · (1 − p)`` are
those of the real model. The perfect scheme is the best the *policy* can do with a
perfect BLER forecast; its objective still uses the reported back-off ``b`` for the whole
period while the real OLLA moves, so it is not the best *candidate*.

Channel-knowing predictor
-------------------------
``PerfectPredictor(expected=True)`` answers with each candidate's *expected* BLER over the
period instead: the mean of the per-transmission block error probabilities of its replay,

    p̄[m] = (1 / n_tx[m]) · Σ_t BLER_TB(SINR_t[ue[m]], MCS_t[m], rank[m])     (unquantised)

over its ``n_tx[m] = n_ack[m] + n_nack[m]`` transmissions
(:attr:`CandidateReplay.expected_bler`). Replayed with HARQ uniforms drawn independently of
the DU's, it knows the next period's channel but not its HARQ draws, which no predictor can
know. The policies score ``r · SE · (1 − p)``, linear in ``p``, so ``p̄`` is what the same
search would rank by with the best predictor that does not know the draws: the gap between
it and the perfect predictor is the part of the headroom that lies in the draws, and no
model can be expected to gain more than it does in the same search.

Oracle
------
The best-candidate oracle takes, per UE and period, the largest replayed delivered bits
``max_m served_bits[m]`` over the UE's candidates (on the perfect scheme's own trajectory:
the DU state its decisions led to). It bounds what any choice among the policy's
candidates could deliver in each period, given that state.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from e2sim.channel import SlotSINR
from e2sim.du import DU
from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import FEATURE_NAMES, N_FEATURES, bler_label, build_features
from lighttune_core.linkadapt import cqi_tune, ri_cqi_tune
from lighttune_core.report import MAX_CQI, MAX_RANK, LinkReports

NO_TX_BLER: float = 0.0
"""The perfect predictor's answer for a candidate without a transmission in the period."""

_RANK_COLUMN: int = FEATURE_NAMES.index("candidate_rank")
_CQI_COLUMN: int = FEATURE_NAMES.index("candidate_cqi")
_PREV_COLUMN: int = FEATURE_NAMES.index("prev_bler")
_UE_COLUMNS: np.ndarray = np.array([i for i in range(N_FEATURES) if i not in (_RANK_COLUMN, _CQI_COLUMN, _PREV_COLUMN)])
"""Feature columns that depend on the UE's report only: not on the candidate, nor on the
previous BLER, which the tuner keeps per UE (:class:`~lighttune_core.cell.CellTuner`)."""


def _row_keys(x: np.ndarray) -> np.ndarray:
    """One opaque key per row of the UE columns of ``x`` float64 [M, 12] (bytes compare)."""
    block = np.ascontiguousarray(np.asarray(x, dtype=np.float64)[:, _UE_COLUMNS])
    return block.view(np.dtype((np.void, block.dtype.itemsize * block.shape[1]))).ravel()


class FeatureIndex:
    """Which UE, rank and CQI a candidate feature row stands for.

    A UE's candidate rows differ only in the ``candidate_rank`` (``r / 4``) and
    ``candidate_cqi`` (``c / 15``) columns; the others are the UE's own
    (:func:`~lighttune_core.features.build_features`), identical bit for bit in every row the
    policies build. The index keys each UE by its nine report columns (the previous BLER,
    which the tuner supplies, is left out).

    Args:
        reports: the cell's reports, ``N`` UEs (what the policy decides on).

    Raises:
        ValueError: two UEs with identical features (the rows could not be told apart).
    """

    def __init__(self, reports: LinkReports) -> None:
        keys = _row_keys(build_features(reports, reports.ri, reports.cqi))
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]
        if self._sorted.size > 1 and (self._sorted[1:] == self._sorted[:-1]).any():
            raise ValueError("two UEs have identical features; their candidates cannot be told apart")
        self.n_ue = len(reports)

    def locate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ue int64 [M], rank int64 [M], cqi int64 [M])`` of feature rows ``x`` [M, 12];
        ``ue`` is the UE's position in the reports.

        Raises:
            ValueError: ``x`` is not [M, 12] or a row belongs to no UE of the reports.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != N_FEATURES:
            raise ValueError(f"feature rows must be [M, {N_FEATURES}], got {x.shape}")
        if x.shape[0] == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), empty.copy()
        keys = _row_keys(x)
        pos = np.minimum(np.searchsorted(self._sorted, keys), max(self.n_ue - 1, 0))
        if self.n_ue == 0 or not (self._sorted[pos] == keys).all():
            raise ValueError("a feature row belongs to no UE of the reports")
        rank = np.rint(x[:, _RANK_COLUMN] * MAX_RANK).astype(np.int64)
        cqi = np.rint(x[:, _CQI_COLUMN] * MAX_CQI).astype(np.int64)
        return self._order[pos].astype(np.int64), rank, cqi


def _candidate_key(ue: np.ndarray, rank: np.ndarray, cqi: np.ndarray) -> np.ndarray:
    """int64 key ``(ue · 5 + rank) · 16 + cqi`` of candidates (rank 0 .. 4, CQI 0 .. 15)."""
    return (np.asarray(ue, np.int64) * (MAX_RANK + 1) + rank) * (MAX_CQI + 1) + cqi


def policy_candidates(reports: LinkReports, tuner: CellTuner) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate ``(UE, rank, CQI)`` the tuner's policy may ask its predictor about.

    Runs the tuner's policy (same ``max_rank``, ``du_preset``, ``mcs_table`` as
    :meth:`CellTuner.decide`) without pruning — the pruned search asks about a subset of
    these — with a predictor that records its feature rows and answers 0.

    Args:
        reports: ``N`` UEs.
        tuner: a tuner in mode ``cqi`` or ``ri_cqi``.

    Returns:
        ``(ue, rank, cqi)`` int64 [M], sorted by UE then rank then CQI, no duplicates;
        ``ue`` is the position in ``reports``.

    Raises:
        ValueError: the tuner's mode is ``off``.
    """
    asked: list[np.ndarray] = []

    def record(x: np.ndarray) -> np.ndarray:
        asked.append(np.array(x, dtype=np.float64))
        return np.zeros(x.shape[0])

    if tuner.mode is TuneMode.RI_CQI:
        ri_cqi_tune(record, reports, max_rank=tuner.max_rank, du_preset=tuner.du_preset, mcs_table=tuner.mcs_table)
    elif tuner.mode is TuneMode.CQI:
        cqi_tune(record, reports, du_preset=tuner.du_preset, mcs_table=tuner.mcs_table)
    else:
        raise ValueError("the perfect predictor needs a tuner in mode 'cqi' or 'ri_cqi'")
    rows = np.concatenate(asked) if asked else np.zeros((0, N_FEATURES))
    ue, rank, cqi = FeatureIndex(reports).locate(rows)
    key = np.unique(_candidate_key(ue, rank, cqi))
    cqi_u = key % (MAX_CQI + 1)
    rank_u = (key // (MAX_CQI + 1)) % (MAX_RANK + 1)
    return key // ((MAX_CQI + 1) * (MAX_RANK + 1)), rank_u, cqi_u


@dataclass(frozen=True)
class CandidateReplay:
    """Outcome of every replayed candidate over one period (``M`` rows, ``U`` UEs).

    Attributes:
        n_ue: UEs of the cell.
        ue, rank, cqi: int64 [M], the candidate of each row (``ue`` = position in the cell),
            sorted by :func:`_candidate_key` without duplicates.
        n_ack, n_nack: int64 [M], first-transmission ACKs / NACKs of the period.
        served_bits: int64 [M], ACKed bits of the period.
        n_slots: slots replayed.
        bler_sum: float64 [M], sum of the block error probabilities of the row's
            transmissions (the DU's ``bler_sum``); None for a replay made without it.
    """

    n_ue: int
    ue: np.ndarray
    rank: np.ndarray
    cqi: np.ndarray
    n_ack: np.ndarray
    n_nack: np.ndarray
    served_bits: np.ndarray
    n_slots: int
    bler_sum: np.ndarray | None = None

    @property
    def label(self) -> np.ndarray:
        """float64 [M], ``bler_label(n_ack, n_nack)`` (NaN without a transmission)."""
        return bler_label(self.n_ack, self.n_nack)[0]

    @property
    def expected_bler(self) -> np.ndarray:
        """float64 [M], ``bler_sum / (n_ack + n_nack)``: the mean block error probability of
        the row's transmissions, unquantised (NaN without a transmission).

        Raises:
            ValueError: a replay made without ``bler_sum``.
        """
        if self.bler_sum is None:
            raise ValueError("this replay has no block error probabilities (bler_sum)")
        n_tx = self.n_ack + self.n_nack
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_tx > 0, self.bler_sum / np.maximum(n_tx, 1), np.nan)

    def rows_of(self, ue: np.ndarray, rank: np.ndarray, cqi: np.ndarray) -> np.ndarray:
        """int64 [B], the row of each candidate, −1 where it was not replayed."""
        key = _candidate_key(ue, rank, cqi)
        table = _candidate_key(self.ue, self.rank, self.cqi)
        if table.size == 0:
            return np.full(key.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(table, key), table.size - 1)
        return np.where(table[pos] == key, pos, -1).astype(np.int64)

    def outcome(self, rank: np.ndarray, cqi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(n_ack, n_nack, served_bits)`` int64 [U] of one decision per UE.

        Raises:
            ValueError: a decision that was not replayed.
        """
        rows = self.rows_of(np.arange(self.n_ue), np.asarray(rank), np.asarray(cqi))
        if (rows < 0).any():
            raise ValueError(f"decisions of UEs {np.flatnonzero(rows < 0).tolist()} were not replayed")
        return self.n_ack[rows], self.n_nack[rows], self.served_bits[rows]

    def best_bits(self) -> np.ndarray:
        """int64 [U], ``max`` of the replayed delivered bits over each UE's candidates
        (0 for a UE without a candidate)."""
        out = np.zeros(self.n_ue, dtype=np.int64)
        np.maximum.at(out, self.ue, self.served_bits)
        return out


def _candidate_du(du: DU, ue: np.ndarray, rank: np.ndarray, cqi: np.ndarray) -> DU:
    """A copy of ``du`` with one row per candidate: row ``m`` is UE ``ue[m]`` (its round-robin
    phase, OLLA/window state and CSI report) forced to ``(rank[m], cqi[m])``; the cell-level
    tables (TBS, code blocks, PRB share, thresholds, slot index) are shared with ``du``."""
    if du._pending is not None:
        raise ValueError("a replay starts where a CSI period starts (the DU has a report pending)")
    m = int(ue.shape[0])
    shadow = copy.copy(du)
    shadow.n_ue = m
    shadow.ue_ids = np.arange(m, dtype=np.int64)
    shadow._id_order = np.arange(m)
    shadow._sorted_ids = shadow.ue_ids
    shadow.randomness = None  # type: ignore[assignment]  # the uniforms are always given
    shadow._rows = np.arange(m)
    shadow._sched_phase = du._sched_phase[ue]
    for name in ("olla_offset_db", "_filtered_bler", "_window_tx", "_window_nack", "has_csi",
                 "report_ri", "report_cqi", "rank_used"):
        setattr(shadow, name, getattr(du, name)[ue].copy())
    shadow.control_active = np.ones(m, dtype=bool)
    shadow.control_ri = np.asarray(rank, dtype=np.int64).copy()
    shadow.control_cqi = np.asarray(cqi, dtype=np.int64).copy()
    shadow.last_csi_report = None
    shadow._reset_period_counters()
    return shadow


def replay_candidates(
    du: DU,
    ue: np.ndarray,
    rank: np.ndarray,
    cqi: np.ndarray,
    slots: Sequence[SlotSINR],
    harq_uniforms: Sequence[np.ndarray],
) -> CandidateReplay:
    """Replay the next period once per candidate, from the DU's current state.

    Args:
        du: the DU at the start of a CSI period (just after it emitted a period outcome);
            not modified.
        ue, rank, cqi: int [M] candidates (``ue`` = position in the cell, rank
            1 .. max rank, CQI 0 .. 15), sorted by UE, rank, CQI without duplicates (as
            :func:`policy_candidates` gives them).
        slots: the period's ``T`` slots, in order, for all ``U`` UEs.
        harq_uniforms: ``T`` arrays float [U], the HARQ uniforms of those slots.

    Returns:
        The :class:`CandidateReplay` of the ``T`` slots.

    Raises:
        ValueError: mismatched lengths, candidates out of range or unsorted, or a DU in
            the middle of a period.
    """
    ue = np.asarray(ue, dtype=np.int64)
    rank = np.asarray(rank, dtype=np.int64)
    cqi = np.asarray(cqi, dtype=np.int64)
    if ue.ndim != 1 or ue.shape != rank.shape or ue.shape != cqi.shape:
        raise ValueError(f"ue, rank and cqi must be 1-D of one length, got {ue.shape}, {rank.shape}, {cqi.shape}")
    if len(slots) != len(harq_uniforms):
        raise ValueError(f"{len(slots)} slots but {len(harq_uniforms)} HARQ uniform arrays")
    if ((ue < 0) | (ue >= du.n_ue)).any():
        raise ValueError(f"candidate UEs must be in 0 .. {du.n_ue - 1}")
    if ((rank < 1) | (rank > du.max_rank)).any():
        raise ValueError(f"candidate ranks must be in 1 .. {du.max_rank}")
    if ((cqi < 0) | (cqi > MAX_CQI)).any():
        raise ValueError(f"candidate CQIs must be in 0 .. {MAX_CQI}")
    key = _candidate_key(ue, rank, cqi)
    if key.size > 1 and not (np.diff(key) > 0).all():
        raise ValueError("candidates must be sorted by UE, rank, CQI without duplicates")
    shadow = _candidate_du(du, ue, rank, cqi)
    for slot, u in zip(slots, harq_uniforms):
        u = np.asarray(u)
        if u.shape != (du.n_ue,):
            raise ValueError(f"harq uniforms must have shape ({du.n_ue},), got {u.shape}")
        rows = replace(
            slot,
            sinr_db=slot.sinr_db[ue],
            csirs_snr_db=np.asarray(slot.csirs_snr_db)[ue],
            csi_instant=False,  # the period's CSI report takes effect after it: not needed
        )
        shadow.step(rows, u[ue])
    return CandidateReplay(
        n_ue=du.n_ue,
        ue=ue,
        rank=rank,
        cqi=cqi,
        n_ack=shadow.n_ack.copy(),
        n_nack=shadow.n_nack.copy(),
        served_bits=shadow.served_bits.copy(),
        n_slots=len(slots),
        bler_sum=shadow.bler_sum.copy(),
    )


class PerfectPredictor:
    """A BLER "model" that knows the future: each candidate's replayed true BLER label.

    Plugs into :class:`~lighttune_core.cell.CellTuner` in place of the LightTune model
    (with ``learn=False``). Call :meth:`set_period` with the period's reports and replay
    before the tuner decides.

    Args:
        expected: answer with each candidate's expected BLER
            (:attr:`CandidateReplay.expected_bler`, the channel-knowing predictor of the
            module docstring) instead of its quantised true label.
    """

    delta: float = 0.0
    """Unused (the perfect predictor is never fine-tuned)."""

    def __init__(self, expected: bool = False) -> None:
        self.expected = bool(expected)
        self._index: FeatureIndex | None = None
        self._replay: CandidateReplay | None = None
        self._label = np.zeros(0)

    def set_period(self, reports: LinkReports, replay: CandidateReplay) -> None:
        """Answer from now on with ``replay``'s labels for the UEs of ``reports``."""
        if replay.n_ue != len(reports):
            raise ValueError(f"the replay covers {replay.n_ue} UEs, the reports {len(reports)}")
        self._index = FeatureIndex(reports)
        self._replay = replay
        label = replay.expected_bler if self.expected else replay.label
        self._label = np.where(np.isnan(label), NO_TX_BLER, label)

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        """float64 [M]: the replayed label (or expected BLER) of each candidate row of ``x`` [M, 12].

        Raises:
            ValueError: before :meth:`set_period`, or a row that was not replayed.
        """
        if self._index is None or self._replay is None:
            raise ValueError("PerfectPredictor.set_period must be called before predicting")
        ue, rank, cqi = self._index.locate(x)
        rows = self._replay.rows_of(ue, rank, cqi)
        if (rows < 0).any():
            raise ValueError("the policy asked about a candidate that was not replayed")
        return self._label[rows]

    def learn_one(self, x: np.ndarray, y: float) -> bool:
        """Never learns (returns False)."""
        return False


__all__ = [
    "CandidateReplay",
    "FeatureIndex",
    "NO_TX_BLER",
    "PerfectPredictor",
    "policy_candidates",
    "replay_candidates",
]
