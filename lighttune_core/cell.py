"""One cell's decision loop: learn from the period that ended, then decide the next one.

:class:`CellTuner` is the part of the policy that is pure computation, shared by the
simulator's in-process experiments and the xApp. Per CSI-RS period it receives the cell's
:class:`~lighttune_core.report.LinkReports` and

1. **learns** (LightTune, buffer-less): every UE that had a decision applied in the period
   that just ended and whose HARQ counts define a true BLER gives one sample
   ``(x_pending, y_true)`` with ``y_true = λ·round(nNACK/(nACK+nNACK)/λ)``;
2. **decides** the next period's (rank, CQI) per UE: ``off`` keeps the DU's table choice
   (reported RI and CQI, no control sent), ``cqi`` runs CQI-Tune, ``ri_cqi`` runs
   RI-CQI-Tune;
3. **remembers** the features of the chosen decision of every UE until its outcome arrives.

Two orders. :meth:`CellTuner.step` learns, then decides (the decision already uses the
outcome of the period that just ended: the simulator's in-process experiments). A caller on
a control path with a latency budget (the xApp) takes the period's samples first
(:meth:`CellTuner.collect`, a few array copies), decides, sends its control, and only then
fits the samples (:meth:`CellTuner.fit`): the decision is one period behind in what it has
learned, and the fine-tuning cost is off the decision latency.

Vectorised screen: LightTune updates only on samples with ``|ŷ − y| ≥ δ``. The period's
samples are first predicted in one batched call with the model as it is (or, when the model
has not changed since the decision — same ``version`` — its prediction at decision time is
reused: the same model on the same features, so no second forward pass); only the samples
that fail that screen go, one at a time, through ``learn_one`` (which predicts again with
the current, possibly already updated, model and updates only if the error is still
``≥ δ``). After convergence few samples fail the screen, so the per-sample Python work is
proportional to the number of *updates*, not of UEs. A model with ``learn_many`` (the
:class:`~lighttune_core.tuner.LightTuneModel`) takes the failing samples in one call, checked
once as a batch, with the same updates as one ``learn_one`` per sample.

A model with a softmax readout (:mod:`lighttune_core.readout`, offline-v7) is fine-tuned in
its FF layers only here (``learn_many(..., readout=False)``; the screen above uses the
readout's label, ``learn_one`` the layers' own arg-max): the cell's labels are those of the
candidates its search applied, and the readout's online steps on them generalise to the
candidates it did not apply. Measured on Table 6 rows 0, 4, 7, 12 and 14 (srsRAN DU, 32 UEs ×
3 s, seed 2, RI-CQI-Tune medium / high SNR): readout kept as trained +2.31 % / +0.96 %;
with its averaged steps (lr 0.003, β 0.02) in the cell +1.62 % / +0.16 %, with plain SGD
steps (lr 0.001) +2.05 % / +0.45 %; the per-cell calibration below does the cell's
correction instead.

Calibration (``calibrate=True``, the default): the search ranks candidates by the model's
label mapped through the cell's :class:`~lighttune_core.calibration.RankOffsetCalibration`,
the discounted mean true BLER of the applied decisions with the same rank offset
(``r − RI``) and model label; every period with a transmission updates it (whether or not
the model is fine-tuned), with its unquantised ``nNACK / (nACK + nNACK)`` weighted by
``min(n / min_label_tx, 1)`` for ``n`` first transmissions: a mean needs no label, so the
periods too short for LightTune (the 10 ms CSI-RS period's 2–3 transmissions) add up,
transmission by transmission, instead of being dropped. The pending prediction kept per UE
(for LightTune's screen and the error statistics) stays the model's own label;
:class:`Decisions` report the calibrated one.

Rank-change check (``check_rank_changes=True``, the default, ``ri_cqi`` mode): a rank change
the search picks is applied, or replaced by the best same-rank candidate, as the cell's
:class:`~lighttune_core.calibration.RankChangeCheck` decides from the delivered bits of both
arms; the replaced decisions also feed the calibration the same-rank outcomes it lacked.

DU-choice probes (``probe_du_choice=True``, the default, with calibration on): the
calibration learns only from applied decisions, and the search backs off exactly where the
label of the DU's own choice ``(RI, CQI)`` is high, so a label that is too high there is never
corrected. Its borrowing (:class:`~lighttune_core.calibration.RankOffsetCalibration`) can
even raise it: measured on Table 6 row 14 (TDL-A10 20 Hz, medium correlation, 10 ms CSI-RS,
16–24 dB; srsRAN DU, offline-v6, 32 UEs × 3 s, seed 2, CQI-Tune), the applied decisions
labelled 0.1–0.2 failed 24 % of their transmissions, the offset's scale ``ρ₀`` rose to 1.44, and the
DU's choice, labelled 0.33 on average and up to 0.9 where OLLA ran it at a BLER of 0.116, was
served at 0.42: the search backed off in 57 % of the decisions and lost 4.3 % against OLLA.
So while the bin ``(0, k)`` of the DU choice's label ``k`` has less than
:data:`PROBE_MIN_WEIGHT` outcome weight, one in :data:`PROBE_EVERY` of a UE's back-offs at
the reported rank applies the DU's choice instead (:meth:`CellTuner._probe_du_choice`).
On that cell the DU's choice is then served at 0.16, the search backs off in 26 % of the
decisions and CQI-Tune loses 1.7 %. On the full Table 6 (srsRAN, offline-v6, 32 UEs × 5 s,
seed 1) the lowest cell rose from −4.28 % to −1.26 % and RI-CQI-Tune's means moved from
+1.55 % / +1.75 % to +1.53 % / +1.62 % (docs/results.md, fourteenth session).

Decision search: a model with ``predict_many_unchecked`` is called without the per-call
input checks of ``predict_many``; the candidate features are checked for finiteness once
per search here instead. ``search_dtype=np.float32`` runs the candidate ranking of CQI-Tune
/ RI-CQI-Tune in float32 compute (predictions for learning stay float64). It is the default
for the label-conditioned (block-input) model only: with the paper's scalar encoding,
measured with a quickly trained model on simulated DU reports
(``benchmarks/decision_search.py``, an earlier session), it changed 0 % (low SNR), 2.0 %
(medium) and 5.4 % (high SNR) of RI-CQI-Tune decisions (CQI-Tune: 0.8, 2.9 and 11.9 %),
where near-tied labels are common, and was not faster: float32 takes the neuron-by-neuron
forward pass, float64 the all-active closed form (a 1,000-UE RI-CQI-Tune search 10.0 ms vs
5.2 ms). The block model has no closed form and its goodness separates the labels: float32
changed none of 6,000 decisions and saved 41 % of the search time (``CellTuner``'s
``search_dtype``).

Both searches run with exact pruning (``prune=True`` of
:func:`~lighttune_core.linkadapt.ri_cqi_tune` / :func:`~lighttune_core.linkadapt.cqi_tune`):
the same decisions as scoring every candidate, from far fewer predictions when the model
predicts low BLER for the best candidates.

Per-UE state is kept in arrays indexed through a sorted array of UE ids (``searchsorted``),
so no Python loop touches every UE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Protocol

import numpy as np

from lighttune_core.calibration import N_LABELS, RankChangeCheck, RankOffsetCalibration
from lighttune_core.features import BLER_LABELS, FEATURE_NAMES, N_FEATURES, bler_label, build_features
from lighttune_core.linkadapt import cqi_tune, ri_cqi_tune
from lighttune_core.linkadapt.presets import DEFAULT_PRESET, DuPreset, get_preset
from lighttune_core.linkadapt.tune import RiCqiTuneResult, SameRankBest, SearchBudget
from lighttune_core.report import MAX_CQI, MAX_RANK, LinkReports

_RANK_COLUMN: int = FEATURE_NAMES.index("candidate_rank")
_CQI_COLUMN: int = FEATURE_NAMES.index("candidate_cqi")


MIN_LABEL_TX: int = 10
"""Fewest first transmissions of a period for LightTune to learn from it (:class:`CellTuner`)."""

PROBE_EVERY: int = 4
"""``K``: one in ``K`` of a UE's back-offs whose DU choice lacks evidence applies the DU's
choice instead (:meth:`CellTuner._probe_du_choice`)."""
PROBE_MIN_WEIGHT: float = 5.0
"""Outcome weight (transmissions / :data:`MIN_LABEL_TX`) a calibration bin of the DU's own
choice needs before its probes stop: 5 = 50 first transmissions."""


class DuplicateUeError(ValueError):
    """Reports hold the same UE id twice (:meth:`CellTuner.collect`; nothing was changed)."""


class TuneMode(str, Enum):
    """What the policy does with its predictions."""

    OFF = "off"
    """No control: the DU's OLLA with table RI/CQI decides; the model still predicts and learns."""
    CQI = "cqi"
    """CQI-Tune: rank fixed at the reported RI, CQI backed off until predicted BLER <= 0.1."""
    RI_CQI = "ri_cqi"
    """RI-CQI-Tune: maximise r * SE(cqi) * (1 - predicted BLER) over r0-1..r0+1 and CQI."""


class OnlineBlerModel(Protocol):
    """What :class:`CellTuner` needs of a model (``lighttune_core.tuner.LightTuneModel``)."""

    delta: float

    def predict_many(self, x: np.ndarray) -> np.ndarray: ...

    def learn_one(self, x: np.ndarray, y: float) -> bool: ...


BlerSearchPredictor = Callable[[np.ndarray], np.ndarray]
"""``features float64 [M, 12] -> predicted BLER float64 [M]`` used by the decision search."""


@dataclass(frozen=True)
class Decisions:
    """The next period's decision per UE of one cell (``N`` UEs, order of the reports).

    Attributes:
        ue_id: int64 [N].
        rank: int64 [N], 1 .. 4.
        cqi: int64 [N], 0 .. 15.
        predicted_bler: float64 [N], the BLER the search used for the chosen pair: the
            model's label, calibrated per rank offset when the tuner calibrates
            (:mod:`lighttune_core.calibration`).
        control: True when the decisions are to be sent to the DU (mode is not ``off``).
        rank_changes_withheld: rank changes the search wanted that the cell's rank-change
            check replaced by the best same-rank candidate this period.
        search_cut_ues: UEs whose search this period left a candidate unpredicted because of
            the cell's prediction budget (``CellTuner(max_predictions=...)``; 0 without one).
        du_choice_probes: UEs whose back-off was replaced by the DU's own choice this period
            (:meth:`CellTuner._probe_du_choice`).
    """

    ue_id: np.ndarray
    rank: np.ndarray
    cqi: np.ndarray
    predicted_bler: np.ndarray
    control: bool
    rank_changes_withheld: int = 0
    search_cut_ues: int = 0
    du_choice_probes: int = 0


@dataclass(frozen=True)
class LearnSamples:
    """One period's fine-tuning samples, taken from the pending decisions (:meth:`CellTuner.collect`).

    Attributes:
        x: float64 [S, 12], features of the decision applied in the ended period.
        y: float64 [S], its true BLER label.
        pred: float64 [S], the model's prediction for that decision when it was made.
        version: int64 [S], the model's ``version`` at that time (−1 if it has none).
        ue_id: int64 [S].
        learnable: bool [S], the period had at least ``min_label_tx`` transmissions; only
            these are fine-tuned on, all count in ``abs_error`` and in the calibration.
        n_tx: int64 [S], the period's first transmissions ``nACK + nNACK`` (>= 1).
        ratio: float64 [S], the unquantised ``nNACK / (nACK + nNACK)``.
        check_offset: int64 [C], the rank offset (±1) RI-CQI-Tune wanted for the UEs whose
            decision went through the cell's :class:`~lighttune_core.calibration.RankChangeCheck`
            (``C`` such UEs with a transmission in the period; empty without a check).
        check_changed: bool [C], the change was applied (False: the same-rank candidate was).
        check_bits: float64 [C], the period's served bits of those UEs.
        check_promised: float64 [C], ``n · J_stay``: first transmissions times the bits per RE
            the same-rank candidate promised at decision time.
    """

    x: np.ndarray
    y: np.ndarray
    pred: np.ndarray
    version: np.ndarray
    ue_id: np.ndarray
    learnable: np.ndarray
    n_tx: np.ndarray
    ratio: np.ndarray
    check_offset: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    check_changed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    check_bits: np.ndarray = field(default_factory=lambda: np.zeros(0))
    check_promised: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class LearnOutcome:
    """What one period's learning pass did.

    Attributes:
        n_samples: samples with a defined true BLER and a pending decision.
        n_updates: LightTune updates made (``learn_one`` returned True).
        abs_error: float64 [n_samples], |predicted − true| BLER of each sample, predicted
            with the model as it was when the decision was made.
        ue_id: int64 [n_samples], the UEs the samples belong to.
        n_calibrated: samples added to the cell's calibration (its state changed when > 0).
    """

    n_samples: int
    n_updates: int
    abs_error: np.ndarray
    ue_id: np.ndarray
    n_calibrated: int = 0


def bits_missing(reports: LinkReports) -> np.ndarray:
    """bool [N]: the UE's served bits are not reported, i.e. it has ACKed first
    transmissions and 0 served bits (impossible for a transport block; what a KPM node
    without ``DRB.UEThpDl`` gives, :mod:`lighttune_e2.kpm.reports`)."""
    return (reports.served_bits == 0) & (reports.n_ack > 0)


def bits_reported(reports: LinkReports) -> bool:
    """Whether ``reports`` carry the served bits (no UE of :func:`bits_missing`)."""
    return not bool(bits_missing(reports).any())


class CellTuner:
    """Per-cell LightTune policy state: one model, per-UE pending decisions.

    Args:
        model: the cell's online BLER model (``predict_many``, ``learn_one``, ``delta``).
        mode: :class:`TuneMode` or its value.
        learn: fine-tune online (False freezes the model: the paper's "no fine-tuning").
        max_rank: largest rank RI-CQI-Tune may choose.
        search_dtype: compute dtype of the decision search, ``np.float64`` or ``np.float32``
            (used only with a model that has ``predict_many_unchecked``); None (default): the
            model's own ``search_dtype`` (float32 for a label-conditioned model, float64
            otherwise; float64 for a model without one) — measured
            (``benchmarks/decision_search.py``, 200 UEs × 10 periods on TDL-A30 low, TDL-B100
            medium and TDL-C200 high SNR): with the block model float32 changed 0 of 6,000
            RI-CQI-Tune and CQI-Tune decisions and 0–0.007 % of candidate predictions, and a
            1,000-UE RI-CQI-Tune search took 18.5 instead of 31.6 ms (the scalar model's
            float64 closed form is faster than its float32 forward pass).
        du_preset: the DU's link adaptation (:mod:`lighttune_core.linkadapt.presets`), so
            that both policies score candidates by the bits the DU will deliver,
            ``r · SE(MCS_DU(c, b)) · (1 − BLER_pred)``; default ``"srsran"``.
        mcs_table: the DU's MCS table (1 .. 3).
        min_label_tx: fewest first transmissions (``nACK + nNACK``) a period needs to be
            learned from (default :data:`MIN_LABEL_TX` = 10). A label is quantised at
            λ = 0.1, which a period of fewer than ``1/λ`` transmissions cannot resolve: with
            the 10 ms CSI-RS period (2.5 transmissions per UE and period on the round-robin
            DU) the label of a candidate whose BLER is 0.43 is 0 in a third of the periods,
            and fine-tuning on such labels taught the model to predict 0 for rank-up
            candidates (measured on Table 6 row 14, TDL-A10 medium correlation, 16 UEs ×
            2 s: RI-CQI-Tune −24.9 % with every period learned, −0.8 % frozen). Periods
            below the bound still count in the error statistics; they are not learned from.
        calibrate: rank the candidates by the model's label mapped through the cell's
            online :class:`~lighttune_core.calibration.RankOffsetCalibration` (mean true
            BLER per rank offset and label, learnt from the same periods as LightTune,
            whether or not the model is fine-tuned); default True. Measured on Table 6
            (srsRAN DU, offline-v3, 32 UEs × 5 s, seed 1, ``e2sim table6 --perfect``):
            RI-CQI-Tune mean +0.33 % / +1.96 % (medium / high SNR) without, +2.81 % /
            +1.94 % with; its four high-correlation medium-SNR cells −6.9 / −9.3 / −5.3 /
            −6.7 % without, −0.1 / −1.3 / +0.3 / −0.1 % with. Every period calibrates,
            weighted by its transmissions (module doc); with periods of ≥ 10 transmissions
            only, the 10 ms CSI-RS rows never calibrated: measured on the same table (seeds
            1 and 2, without ``--perfect``), RI-CQI-Tune's medium-SNR mean went from +2.81 /
            +2.89 % to +3.08 / +3.06 %, its high-SNR mean from +1.94 / +1.52 % to +1.81 /
            +1.42 % (docs/results.md, section 0.00000).
        check_rank_changes: in ``ri_cqi`` mode, pass the rank changes the search picks
            through the cell's :class:`~lighttune_core.calibration.RankChangeCheck`: for each
            UE whose search chose ``r != RI`` the search also gives its best candidate at
            ``RI`` (:class:`~lighttune_core.linkadapt.tune.SameRankBest`), and the check
            applies either the change or that same-rank candidate (an A/B test in delivered
            bits, with one in five wanted changes probing the rejected arm); default True.
            The BLER calibration cannot see this loss: it corrects the labels of applied
            decisions, and a rank change is picked where the same-rank labels are too
            pessimistic, so those are never applied (see the class doc for the measurement).
        max_predictions: cap on the feature rows one decision predicts (``ri_cqi`` and
            ``cqi`` modes; :class:`~lighttune_core.linkadapt.tune.SearchBudget`), at least
            one per UE whatever the cap; None (default): the exact search. A latency bound
            for large cells: a row costs about 1 µs (float32, ``[143, 32, 32]``, one core), and
            the exact pruning of a 1,000-UE field cell predicts a median of ~4,700 rows a
            period and up to ~11,800 in its first periods. UEs over the cap take the best
            candidate they predicted (``Decisions.search_cut_ues``).
        probe_du_choice: with calibration on and mode ``cqi`` or ``ri_cqi``, apply the DU's
            own choice to one in :data:`PROBE_EVERY` of a UE's back-offs while the calibration
            bin of that choice's label has less than :data:`PROBE_MIN_WEIGHT` outcome weight
            (module doc, "DU-choice probes"); default True.
    """

    def __init__(
        self,
        model: OnlineBlerModel,
        mode: TuneMode | str = TuneMode.RI_CQI,
        learn: bool = True,
        max_rank: int = MAX_RANK,
        search_dtype: type | None = None,
        du_preset: DuPreset | str = DEFAULT_PRESET,
        mcs_table: int = 1,
        min_label_tx: int | None = None,
        calibrate: bool = True,
        check_rank_changes: bool = True,
        max_predictions: int | None = None,
        probe_du_choice: bool = True,
    ) -> None:
        self.du_preset = get_preset(du_preset)
        self.budget: SearchBudget | None = None if max_predictions is None else SearchBudget(max_predictions)
        self.calibration: RankOffsetCalibration | None = RankOffsetCalibration() if calibrate else None
        self.rank_check: RankChangeCheck | None = RankChangeCheck() if check_rank_changes else None
        min_label_tx = MIN_LABEL_TX if min_label_tx is None else min_label_tx
        if isinstance(min_label_tx, bool) or not isinstance(min_label_tx, (int, np.integer)) or min_label_tx < 1:
            raise ValueError(f"min_label_tx must be an integer >= 1, got {min_label_tx!r}")
        self.min_label_tx = int(min_label_tx)
        if mcs_table not in (1, 2, 3):
            raise ValueError(f"mcs_table must be 1, 2 or 3, got {mcs_table!r}")
        self.mcs_table = int(mcs_table)
        if not 1 <= max_rank <= MAX_RANK:
            raise ValueError(f"max_rank must be in 1..{MAX_RANK}, got {max_rank}")
        if search_dtype is None:
            search_dtype = getattr(model, "search_dtype", np.float64)
        if np.dtype(search_dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"search_dtype must be float64 or float32, got {search_dtype!r}")
        self.search_dtype = np.dtype(search_dtype).type
        self.model = model
        self.mode = TuneMode(mode)
        self.learn_enabled = bool(learn)
        self.max_rank = int(max_rank)
        self._ue_ids = np.zeros(0, dtype=np.int64)
        self._pending_x = np.zeros((0, N_FEATURES), dtype=np.float64)
        self._pending_pred = np.zeros(0, dtype=np.float64)
        self._has_pending = np.zeros(0, dtype=bool)
        self._pending_version = np.zeros(0, dtype=np.int64)
        self._win_tx = np.zeros((0, 2), dtype=np.int64)  # [U, (nACK, nNACK)] of the open window
        self._prev_bler = np.zeros(0, dtype=np.float64)  # BLER of the last closed window, NaN: none
        self._wanted_changes = np.zeros(0, dtype=np.int64)  # rank changes the search wanted, per UE
        self._check_offset = np.zeros(0, dtype=np.int64)  # pending decision's wanted offset (0: none)
        self._check_changed = np.zeros(0, dtype=bool)  # ... the change was applied
        self._check_stay_rate = np.zeros(0, dtype=np.float64)  # ... J_stay, bit per RE
        self.probe_du_choice = bool(probe_du_choice)
        self._backoffs = np.zeros(0, dtype=np.int64)  # back-offs that could have been probed, per UE

    @property
    def n_ues(self) -> int:
        """UEs the cell has state for."""
        return int(self._ue_ids.shape[0])

    def _index(self, ue_id: np.ndarray, unique: bool = False) -> np.ndarray:
        """Row of each UE id in the per-UE state arrays, adding unseen UEs.

        Raises:
            DuplicateUeError: ``unique`` and an id twice in ``ue_id`` (nothing is changed then).
        """
        pos = np.searchsorted(self._ue_ids, ue_id)
        if self._ue_ids.size:
            known = self._ue_ids[np.minimum(pos, self._ue_ids.size - 1)] == ue_id
            if known.all():  # the steady state: one binary search, no sort
                # ids are distinct iff their rows are (a bincount, not a sort)
                if unique and pos.size and np.bincount(pos).max() > 1:
                    raise DuplicateUeError("reports hold the same UE id twice")
                return pos
            new = np.unique(ue_id[~known])
        else:
            new = np.unique(ue_id)
        if unique and np.unique(ue_id).shape[0] != ue_id.shape[0]:
            raise DuplicateUeError("reports hold the same UE id twice")
        if new.size:
            ids = np.concatenate([self._ue_ids, new])
            order = np.argsort(ids, kind="stable")
            n_new = new.shape[0]
            self._ue_ids = ids[order]
            self._pending_x = np.concatenate([self._pending_x, np.zeros((n_new, N_FEATURES))])[order]
            self._pending_pred = np.concatenate([self._pending_pred, np.full(n_new, np.nan)])[order]
            self._has_pending = np.concatenate([self._has_pending, np.zeros(n_new, dtype=bool)])[order]
            self._pending_version = np.concatenate([self._pending_version, np.full(n_new, -1, dtype=np.int64)])[order]
            self._win_tx = np.concatenate([self._win_tx, np.zeros((n_new, 2), dtype=np.int64)])[order]
            self._prev_bler = np.concatenate([self._prev_bler, np.full(n_new, np.nan)])[order]
            self._wanted_changes = np.concatenate([self._wanted_changes, np.zeros(n_new, dtype=np.int64)])[order]
            self._check_offset = np.concatenate([self._check_offset, np.zeros(n_new, dtype=np.int64)])[order]
            self._check_changed = np.concatenate([self._check_changed, np.zeros(n_new, dtype=bool)])[order]
            self._check_stay_rate = np.concatenate([self._check_stay_rate, np.zeros(n_new)])[order]
            self._backoffs = np.concatenate([self._backoffs, np.zeros(n_new, dtype=np.int64)])[order]
        return np.searchsorted(self._ue_ids, ue_id)

    def forget(self, ue_id: np.ndarray) -> None:
        """Drop the pending decisions of UEs that left the cell (unknown ids are ignored)."""
        keep = ~np.isin(self._ue_ids, np.asarray(ue_id, dtype=np.int64))
        self._ue_ids = self._ue_ids[keep]
        self._pending_x = self._pending_x[keep]
        self._pending_pred = self._pending_pred[keep]
        self._has_pending = self._has_pending[keep]
        self._pending_version = self._pending_version[keep]
        self._win_tx = self._win_tx[keep]
        self._prev_bler = self._prev_bler[keep]
        self._wanted_changes = self._wanted_changes[keep]
        self._check_offset = self._check_offset[keep]
        self._check_changed = self._check_changed[keep]
        self._check_stay_rate = self._check_stay_rate[keep]
        self._backoffs = self._backoffs[keep]

    def _previous_bler(self, idx: np.ndarray, reports: LinkReports) -> np.ndarray:
        """The ``prev_bler`` feature: BLER of each UE's latest ≥ ``min_label_tx`` first
        transmissions, float64 [N] (NaN before the first such window closes).

        The period's HARQ counts are added to the UE's open window; a window that reaches
        ``min_label_tx`` transmissions closes and gives ``nNACK / (nACK + nNACK)``. A period
        with that many transmissions closes a window on its own, so with the 80 ms CSI-RS
        period of the training data (20 transmissions per UE and period) this is the
        previous period's BLER, as in the dataset; with a 10 ms period (2.5 transmissions)
        it spans about four periods instead of being 0, 1/2 or 1 from one or two
        transmissions, values the model never saw as a previous BLER.
        """
        win = self._win_tx[idx] + np.stack([reports.n_ack, reports.n_nack], axis=1)
        total = win.sum(axis=1)
        closed = total >= self.min_label_tx
        if closed.any():
            self._prev_bler[idx[closed]] = win[closed, 1] / total[closed]
            win[closed] = 0
        self._win_tx[idx] = win
        return self._prev_bler[idx]

    def _model_version(self) -> int:
        """The model's parameter version, −1 when the model does not count versions."""
        version = getattr(self.model, "version", None)
        return -1 if version is None else int(version)

    def learn(self, reports: LinkReports) -> LearnOutcome:
        """Learn from the outcome (HARQ counts) of the decisions applied last period.

        Args:
            reports: this period's reports (their ``n_ack``/``n_nack`` are the outcome of
                the decisions remembered from the previous call of :meth:`decide`).
        """
        return self.fit(self.collect(reports))

    def collect(self, reports: LinkReports) -> LearnSamples:
        """Take this period's samples: every reported UE with a pending decision and a
        defined true BLER. Clears the reported UEs' pending decisions (call before
        :meth:`decide` on the same reports).

        Raises:
            DuplicateUeError: a UE id twice in ``reports`` (nothing is changed then; drop the
                repeats with ``reports.select(reports.first_of_each_ue())``).
        """
        idx = self._index(reports.ue_id, unique=True)
        label, valid = bler_label(reports.n_ack, reports.n_nack)
        use = valid & self._has_pending[idx]
        all_tx = reports.n_ack + reports.n_nack
        n_tx = all_tx[use].astype(np.int64)
        rows = idx[use]
        self._has_pending[idx] = False
        checked = use & (self._check_offset[idx] != 0) & ~bits_missing(reports)
        crow = idx[checked]
        check = (
            self._check_offset[crow],
            self._check_changed[crow],
            reports.served_bits[checked].astype(np.float64),
            all_tx[checked] * self._check_stay_rate[crow],
        )
        self._check_offset[idx] = 0
        return LearnSamples(
            self._pending_x[rows],
            label[use],
            self._pending_pred[rows],
            self._pending_version[rows],
            reports.ue_id[use],
            n_tx >= self.min_label_tx,
            n_tx,
            reports.n_nack[use] / n_tx,
            *check,
        )

    def fit(self, samples: LearnSamples) -> LearnOutcome:
        """LightTune on the samples of :meth:`collect` (screen, then ``learn_many``)."""
        n = int(samples.y.shape[0])
        if n == 0:
            return LearnOutcome(0, 0, np.zeros(0), np.zeros(0, dtype=np.int64))
        abs_error = np.abs(samples.pred - samples.y)
        n_updates = n_calibrated = 0
        cal = self.calibration
        if self.rank_check is not None and samples.check_offset.size:
            ok = samples.check_promised > 0
            self.rank_check.update(samples.check_offset[ok], samples.check_changed[ok], samples.check_bits[ok],
                                   samples.check_promised[ok])
        learnable = samples.learnable
        if self.learn_enabled or cal is not None:
            # the model's current label of every sample learned from: the calibration (a mean)
            # takes every period, weighted by its transmissions; LightTune the learnable ones
            pred_all = self._current_labels(samples, np.ones(n, dtype=bool) if cal is not None else learnable)
            if cal is not None:
                cal.update(samples.x, pred_all, samples.ratio, np.minimum(samples.n_tx / self.min_label_tx, 1.0))
                n_calibrated = n
            x, y, pred = samples.x[learnable], samples.y[learnable], pred_all[learnable]
        if self.learn_enabled:
            fail = np.flatnonzero(np.abs(pred - y) >= self.model.delta - 1e-9)
            learn_many = getattr(self.model, "learn_many", None)
            if learn_many is not None and getattr(self.model, "readout", None) is not None:
                # a softmax readout stays as trained here: the cell's labels are those of the
                # candidates its search applied, and its steps on them cost throughput
                n_updates = int(learn_many(x[fail], y[fail], readout=False)) if fail.size else 0
            elif learn_many is not None:
                n_updates = int(learn_many(x[fail], y[fail])) if fail.size else 0
            else:
                for i in fail:
                    n_updates += bool(self.model.learn_one(x[i], float(y[i])))
        return LearnOutcome(n, n_updates, abs_error, samples.ue_id, n_calibrated)

    def _current_labels(self, samples: LearnSamples, rows: np.ndarray) -> np.ndarray:
        """The model's label now for the samples where ``rows`` (bool [S]) is True, float64
        [S] (NaN elsewhere): the decision-time label where the model has not changed since
        (same ``version``, float64 search), predicted again otherwise."""
        pred = np.full(samples.y.shape[0], np.nan)
        sel = np.flatnonzero(rows)
        if not sel.size:
            return pred
        version = self._model_version()
        if version >= 0 and self.search_dtype is np.float64:
            pred[sel] = samples.pred[sel]
            stale = sel[samples.version[sel] != version]
            if stale.size:
                pred[stale] = self.model.predict_many(samples.x[stale])
        else:
            pred[sel] = self.model.predict_many(samples.x[sel])
        return pred

    def decide(self, reports: LinkReports) -> Decisions:
        """Choose each UE's (rank, CQI) for the next period and remember its features."""
        idx = self._index(reports.ue_id)
        prev = self._previous_bler(idx, reports)
        predict = self._search_predictor()
        cal = self.calibration
        adjust = None if cal is None else cal.adjust
        chosen_x = None
        same: SameRankBest | None = None
        if self.mode is TuneMode.RI_CQI:
            chosen_x = np.empty((len(reports), N_FEATURES))
            same = SameRankBest() if self.rank_check is not None else None
            rank, cqi, raw = self._ri_cqi_search(reports, prev, self.budget, same, chosen_x)
        elif self.mode is TuneMode.CQI:
            cqi, raw = cqi_tune(predict, reports, prev, prune=True, du_preset=self.du_preset, mcs_table=self.mcs_table,
                                adjust=adjust, budget=self.budget)
            rank = reports.ri.copy()
        else:
            rank = reports.ri.copy()
            cqi = reports.cqi.copy()
            chosen_x = build_features(reports, rank, cqi, prev)
            raw = predict(chosen_x)
        rank = np.asarray(rank, dtype=np.int64)
        cqi = np.asarray(cqi, dtype=np.int64)
        withheld = 0
        if same is not None:
            raw, withheld = self._check_rank_changes(reports, idx, rank, cqi, raw, chosen_x, same)
        if chosen_x is None:
            chosen_x = build_features(reports, rank, cqi, prev)
        probes = 0
        if self.probe_du_choice and cal is not None and self.mode is not TuneMode.OFF:
            raw, probes = self._probe_du_choice(reports, idx, rank, cqi, raw, chosen_x, predict, cal)
        # the pending prediction is the model's own label (LightTune's screen and the error
        # statistics are about the model); the decisions carry what the search scored by
        raw = np.asarray(raw, dtype=np.float64)
        pred = raw if cal is None else cal.adjust(rank - reports.ri, raw)
        self._pending_x[idx] = chosen_x
        self._pending_pred[idx] = raw
        self._pending_version[idx] = self._model_version()
        self._has_pending[idx] = True
        cut = self.budget.cut_ues if self.budget is not None and self.mode is not TuneMode.OFF else 0
        return Decisions(reports.ue_id, rank, cqi, pred, self.mode is not TuneMode.OFF, withheld, cut, probes)

    def search(
        self, reports: LinkReports, budget: SearchBudget | None = None, same_rank_out: SameRankBest | None = None
    ) -> RiCqiTuneResult:
        """The RI-CQI-Tune search :meth:`decide` runs in ``ri_cqi`` mode, on the cell's current
        state (model, calibration, previous BLER), with ``budget`` instead of the cell's own
        (None: the exact search), before any rank-change check. Nothing is remembered,
        except that unseen UEs are registered as :meth:`decide` would.

        Returns:
            ``RiCqiTuneResult`` of the ``N`` reports; ``same_rank_out`` as in
            :func:`~lighttune_core.linkadapt.ri_cqi_tune`.
        """
        prev = self._previous_bler(self._index(reports.ue_id), reports)
        return self._ri_cqi_search(reports, prev, budget, same_rank_out, None)

    def _ri_cqi_search(
        self,
        reports: LinkReports,
        prev: np.ndarray,
        budget: SearchBudget | None,
        same: SameRankBest | None,
        features_out: np.ndarray | None,
    ) -> RiCqiTuneResult:
        """``ri_cqi_tune`` with the cell's predictor, preset, MCS table and calibration."""
        adjust = None if self.calibration is None else self.calibration.adjust
        return ri_cqi_tune(
            self._search_predictor(), reports, prev, max_rank=self.max_rank, prune=True, features_out=features_out,
            du_preset=self.du_preset, mcs_table=self.mcs_table, adjust=adjust, same_rank_out=same, budget=budget,
        )

    def _check_rank_changes(
        self,
        reports: LinkReports,
        idx: np.ndarray,
        rank: np.ndarray,
        cqi: np.ndarray,
        raw: np.ndarray,
        chosen_x: np.ndarray,
        same: SameRankBest,
    ) -> tuple[np.ndarray, int]:
        """Pass RI-CQI-Tune's rank changes through the cell's
        :class:`~lighttune_core.calibration.RankChangeCheck`.

        For the UEs whose search chose ``rank != RI``, take the best candidate at ``RI`` (the
        stay arm, ``same``, filled by the search), let the check pick the arm, and write the
        stay decisions into ``rank``, ``cqi``, ``chosen_x`` (in place). Reports that do not
        carry the served bits (:func:`bits_reported`) leave the search's choices as they are
        and give the check no samples.

        Returns:
            The model's raw labels of the applied decisions, float64 [N], and how many wanted
            changes were withheld.
        """
        self._check_offset[idx] = 0
        if not bits_reported(reports):  # no evidence to check with: the search's choices stand
            return raw, 0
        # (a reported RI above max_rank is capped by the search, not changed by the model; a
        # change whose same-rank candidates the search budget cut has no stay arm: it stands)
        wanted = np.flatnonzero((rank != reports.ri) & (reports.ri <= self.max_rank) & np.isfinite(same.predicted_bler))
        if not wanted.size:
            return raw, 0
        s_rank, s_cqi = same.rank[wanted], same.cqi[wanted]
        s_raw, s_score = same.predicted_bler[wanted], same.score[wanted]
        rows = idx[wanted]
        offset = np.clip(rank[wanted] - reports.ri[wanted], -1, 1)
        change = self.rank_check.choose(offset, self._wanted_changes[rows], reports.ue_id[wanted])
        self._wanted_changes[rows] += 1
        self._check_offset[rows] = offset
        self._check_changed[rows] = change
        self._check_stay_rate[rows] = s_score
        stay = wanted[~change]
        if stay.size:
            raw = np.array(raw, dtype=np.float64)
            rank[stay] = s_rank[~change]
            cqi[stay] = s_cqi[~change]
            raw[stay] = s_raw[~change]
            # a UE's candidates differ only in the candidate rank and CQI features
            chosen_x[stay, _RANK_COLUMN] = rank[stay] / MAX_RANK
            chosen_x[stay, _CQI_COLUMN] = cqi[stay] / MAX_CQI
        return raw, int(stay.size)

    def _probe_du_choice(
        self,
        reports: LinkReports,
        idx: np.ndarray,
        rank: np.ndarray,
        cqi: np.ndarray,
        raw: np.ndarray,
        chosen_x: np.ndarray,
        predict: BlerSearchPredictor,
        cal: RankOffsetCalibration,
    ) -> tuple[np.ndarray, int]:
        """Apply the DU's own choice to some of the UEs whose search backed off, so that the
        calibration learns its BLER (the module doc, "DU-choice probes").

        A UE is a candidate when its decision keeps the reported rank and backs the CQI off
        (``rank == RI``, ``cqi < CQI``) and the model's label ``k`` of the DU's own choice
        ``(RI, CQI)`` lies in a calibration bin ``(0, k)`` with less than
        :data:`PROBE_MIN_WEIGHT` outcome weight (:meth:`RankOffsetCalibration.evidence`). Of a
        UE's candidate periods, the ``j``-th is probed when ``(j + u) mod K = K − 1`` (``u``
        the UE id, ``K`` = :data:`PROBE_EVERY`): its decision becomes ``(RI, CQI)`` in
        ``rank``, ``cqi`` and ``chosen_x`` (in place). Once the bin has the evidence, probing
        stops for that label; the bins keep their weight while nothing is applied to them.

        Returns:
            The model's raw labels of the applied decisions, float64 [N], and how many UEs
            were probed.
        """
        rows = np.flatnonzero((rank == reports.ri) & (cqi < reports.cqi))
        if not rows.size or (cal.evidence(np.zeros(N_LABELS, dtype=np.int64), BLER_LABELS) >= PROBE_MIN_WEIGHT).all():
            return raw, 0  # (every label of the reported rank has its evidence: nothing to predict)
        x_du = chosen_x[rows].copy()
        x_du[:, _CQI_COLUMN] = reports.cqi[rows] / MAX_CQI
        raw_du = np.asarray(predict(x_du), dtype=np.float64)
        need = cal.evidence(np.zeros(rows.shape[0], dtype=np.int64), raw_du) < PROBE_MIN_WEIGHT
        rows, x_du, raw_du = rows[need], x_du[need], raw_du[need]
        turn = self._backoffs[idx[rows]] + reports.ue_id[rows]
        self._backoffs[idx[rows]] += 1
        sel = turn % PROBE_EVERY == PROBE_EVERY - 1
        if not sel.any():
            return raw, 0
        probe = rows[sel]
        raw = np.array(raw, dtype=np.float64)
        cqi[probe] = reports.cqi[probe]
        chosen_x[probe] = x_du[sel]
        raw[probe] = raw_du[sel]
        return raw, int(probe.size)

    def _search_predictor(self) -> BlerSearchPredictor:
        """The model's predictor for the decision search (see the module docstring)."""
        unchecked = getattr(self.model, "predict_many_unchecked", None)
        if unchecked is None:
            return self.model.predict_many
        dtype = self.search_dtype

        def predict(x: np.ndarray) -> np.ndarray:
            if not np.isfinite(x).all():
                raise ValueError("candidate features must be finite: validate the reports (LinkReports.validate)")
            return unchecked(x, dtype)

        return predict

    def step(self, reports: LinkReports) -> tuple[Decisions, LearnOutcome]:
        """Learn from the period that ended, then decide the next one."""
        outcome = self.learn(reports)
        return self.decide(reports), outcome
