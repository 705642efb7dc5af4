"""The xApp's link-adaptation policy: one LightTune model per cell, decisions, persistence.

Transport-agnostic: the local E2 termination and the RIC (RMR) adapter both hand decoded
per-cell reports to the policy and send back its decisions. Per cell-period the policy first
decides (:meth:`LinkAdaptationPolicy.decide`: take the fine-tuning samples of the period
that ended, build features, predict, search) and learns afterwards
(:meth:`LinkAdaptationPolicy.finish`), so a transport sends the control in between and the
decision latency does not include fine-tuning; :meth:`LinkAdaptationPolicy.on_reports` does
both.

Per cell the policy keeps a :class:`~lighttune_core.cell.CellTuner` whose model starts
from the stored fine-tuned model of that cell when the store has a usable one, and from a
copy of the offline model otherwise (a corrupted or incompatible stored model is reported,
counted and replaced, never fatal). Models that changed are saved by a
:class:`~lighttune_xapp.store.Checkpointer` at most every ``checkpoint_interval_s``
seconds, so a restart loses at most that much fine-tuning; :meth:`close` saves the rest.

The mode of a cell is, by precedence: an A1 per-cell override (:meth:`set_cell_mode`),
then ``off`` for a cell outside the configured allow-list, then the configured mode.

Repeated UE ids: a report that holds one UE id twice keeps the first row of that UE and
drops the others (counted in ``lighttune_ue_reports_dropped_total{reason="duplicate_ue"}``
and in the cell's ``duplicate_ue_reports`` statistic); the other UEs are served as usual.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np

from lighttune_core.calibration import RankChangeCheck, RankOffsetCalibration
from lighttune_core.cell import CellTuner, Decisions, DuplicateUeError, LearnOutcome, LearnSamples, TuneMode
from lighttune_core.linkadapt.tune import SearchBudget
from lighttune_core.report import LinkReports
from lighttune_core.tuner import LightTuneModel
from lighttune_xapp.config import XappConfig
from lighttune_xapp.metrics import XappMetrics
from lighttune_xapp.store import Checkpointer, ModelStore, restore

_log = logging.getLogger(__name__)


_StateT = TypeVar("_StateT", RankOffsetCalibration, RankChangeCheck)
"""A per-cell state saved in the model's metadata (``state_dict`` / ``from_state_dict``)."""

MODEL_META_KIND = "lighttune-ff"


@dataclass(frozen=True)
class CellResult:
    """What the policy did for one cell-period.

    Attributes:
        cell_id: the cell.
        mode: the cell's mode this period.
        decisions: next-period (rank, CQI) per UE; ``decisions.control`` tells whether to
            send them to the DU.
        learned: the period's LightTune learning pass.
        latency_s: wall time of the decision (samples taken, features, predictions,
            search), seconds.
        learn_s: wall time of the learning pass that followed the decision, seconds.
    """

    cell_id: str
    mode: TuneMode
    decisions: Decisions
    learned: LearnOutcome
    latency_s: float
    learn_s: float = 0.0


@dataclass(frozen=True)
class PendingCell:
    """A cell-period decided by :meth:`LinkAdaptationPolicy.decide`, not yet learned from.

    Attributes:
        cell_id, mode: the cell and its mode this period.
        reports: the period's reports.
        decisions: the next period's decisions (send these).
        samples: the fine-tuning samples :meth:`LinkAdaptationPolicy.finish` will fit.
        decision_s: wall time of the decision, seconds.
    """

    cell_id: str
    mode: TuneMode
    reports: LinkReports
    decisions: Decisions
    samples: LearnSamples
    decision_s: float


class LinkAdaptationPolicy:
    """Per-cell models and decisions of the xApp.

    Args:
        config: validated controls (mode, δ, learning rate, allow-list, checkpoint interval).
        offline_model: the offline-trained model every new cell starts from (not modified).
        store: where fine-tuned models persist.
        metrics: counters to update (optional).
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        config: XappConfig,
        offline_model: LightTuneModel,
        store: ModelStore,
        metrics: XappMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._offline_bytes = offline_model.to_bytes()
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.cells: dict[str, CellTuner] = {}
        self.mode_overrides: dict[str, TuneMode] = {}
        self.restore_status: dict[str, str] = {}
        self.duplicate_ue_reports: dict[str, int] = {}
        self.checkpointer = Checkpointer(store, self._snapshot, config.checkpoint_interval_s)

    # ------------------------------------------------------------------ cells
    def _new_model(
        self, cell_id: str
    ) -> tuple[LightTuneModel, RankOffsetCalibration | None, RankChangeCheck | None]:
        """The cell's model (stored, else the offline one), its stored calibration and its
        stored rank-change check (None: start a fresh one)."""
        result = restore(self.store, cell_id)
        calibration: RankOffsetCalibration | None = None
        check: RankChangeCheck | None = None
        status = result.status
        model: LightTuneModel | None = None
        if result.ok and result.blob is not None:
            try:
                model = LightTuneModel.from_bytes(result.blob)
            except ValueError as exc:
                status = "incompatible"
                _log.warning("cell %s: stored model unusable (%s); starting from the offline model", cell_id, exc)
            else:
                calibration = self._stored_state(cell_id, result.meta, "calibration", RankOffsetCalibration)
                check = self._stored_state(cell_id, result.meta, "rank_check", RankChangeCheck)
        elif status not in ("ok", "absent"):
            _log.warning("cell %s: stored model %s (%s); starting from the offline model", cell_id, status, result.detail)
        if model is None:
            model = LightTuneModel.from_bytes(self._offline_bytes)
        model.delta = self.config.delta
        model.lr = self.config.learning_rate
        self.restore_status[cell_id] = status
        if self.metrics is not None:
            self.metrics.model_restore.labels(status=status).inc()
        return model, calibration, check

    @staticmethod
    def _stored_state(cell_id: str, meta: dict[str, Any], key: str, kind: type[_StateT]) -> _StateT | None:
        """The per-cell state saved under ``meta[key]`` with a cell's model (its calibration,
        its rank-change check), read by ``kind.from_state_dict``; None (a fresh one) when there
        is none or it is unusable (logged: the model itself is still restored)."""
        state = meta.get(key)
        if state is None:
            return None
        try:
            return kind.from_state_dict(state)
        except ValueError as exc:
            _log.warning("cell %s: stored %s unusable (%s); starting a fresh one", cell_id, key, exc)
            return None

    def cell(self, cell_id: str) -> CellTuner:
        """The cell's tuner, created (and its model restored) on first use."""
        tuner = self.cells.get(cell_id)
        if tuner is None:
            model, calibration, check = self._new_model(cell_id)
            tuner = CellTuner(model, self.mode_of(cell_id), du_preset=self.config.link_preset(),
                              min_label_tx=self.config.min_label_tx, calibrate=self.config.calibrate,
                              check_rank_changes=self.config.check_rank_changes,
                              max_predictions=self.config.max_predictions,
                              probe_du_choice=self.config.probe_du_choice)
            if calibration is not None and self.config.calibrate:
                tuner.calibration = calibration
            if check is not None and self.config.check_rank_changes:
                tuner.rank_check = check
            self.cells[cell_id] = tuner
        return tuner

    def mode_of(self, cell_id: str) -> TuneMode:
        """The mode a cell runs in now (A1 override > allow-list > configured mode)."""
        if cell_id in self.mode_overrides:
            return self.mode_overrides[cell_id]
        if not self.config.cell_allowed(cell_id):
            return TuneMode.OFF
        return TuneMode(self.config.tuner_mode)

    def set_cell_mode(self, cell_id: str, mode: TuneMode | str | None) -> None:
        """Override (or with ``None`` clear the override of) one cell's mode (A1 policy)."""
        if mode is None:
            self.mode_overrides.pop(cell_id, None)
        else:
            self.mode_overrides[cell_id] = TuneMode(mode)
        if cell_id in self.cells:
            self.cells[cell_id].mode = self.mode_of(cell_id)

    def apply_config(self, config: XappConfig) -> None:
        """Switch to a new (already validated) configuration; models are kept."""
        self.config = config
        self.checkpointer.interval_s = config.checkpoint_interval_s
        for cell_id, tuner in self.cells.items():
            tuner.mode = self.mode_of(cell_id)
            tuner.du_preset = config.link_preset()
            tuner.model.delta = config.delta
            tuner.model.lr = config.learning_rate
            if not config.calibrate:
                tuner.calibration = None
            elif tuner.calibration is None:
                tuner.calibration = RankOffsetCalibration()
            tuner.budget = None if config.max_predictions is None else SearchBudget(config.max_predictions)
            tuner.probe_du_choice = config.probe_du_choice
            if not config.check_rank_changes:
                tuner.rank_check = None
            elif tuner.rank_check is None:
                tuner.rank_check = RankChangeCheck()

    # ------------------------------------------------------------------ reports
    def decide(self, cell_id: str, reports: LinkReports) -> PendingCell:
        """Decide the next period for one cell; the learning from these reports is left to
        :meth:`finish`, so the caller can send the control first.

        The period's fine-tuning samples (outcomes of the decisions of the previous period)
        are taken before deciding, and fitted by :meth:`finish`: a decision uses the model as
        fine-tuned up to the period before (see :mod:`lighttune_core.cell`).

        Args:
            cell_id: the cell the reports belong to.
            reports: already validated reports (decoders drop invalid UEs); of a UE id
                reported twice only the first row is used (the repeats are counted).
        """
        start = time.perf_counter()
        tuner = self.cell(cell_id)
        tuner.mode = self.mode_of(cell_id)
        reports, samples = self.collect(cell_id, tuner, reports)
        decisions = tuner.decide(reports)
        return PendingCell(cell_id, tuner.mode, reports, decisions, samples, time.perf_counter() - start)

    def collect(self, cell_id: str, tuner: CellTuner, reports: LinkReports) -> tuple[LinkReports, LearnSamples]:
        """``tuner.collect(reports)``, dropping (and counting) repeated rows of a UE id first.

        Returns:
            (the reports used: the first row of every UE id, the period's samples).
        """
        try:
            return reports, tuner.collect(reports)
        except DuplicateUeError:  # raised before anything changed; rare, so checked only then
            keep = reports.first_of_each_ue()
            n_dropped = int(keep.shape[0] - np.count_nonzero(keep))
            reports = reports.select(keep)
            self.duplicate_ue_reports[cell_id] = self.duplicate_ue_reports.get(cell_id, 0) + n_dropped
            if self.metrics is not None:
                self.metrics.ue_reports_dropped.labels(reason="duplicate_ue").inc(n_dropped)
            _log.warning("cell %s: %d report rows repeat a UE id already reported; the first row of each UE is used",
                         cell_id, n_dropped)
            return reports, tuner.collect(reports)

    def finish(self, pending: PendingCell, now: float | None = None) -> CellResult:
        """Fine-tune the cell's model on the samples taken by :meth:`decide`, count and
        checkpoint.

        Args:
            pending: what :meth:`decide` returned (each exactly once, in order).
            now: monotonic time in seconds for the checkpoint policy (default ``clock()``).
        """
        start = time.perf_counter()
        learned = self.cells[pending.cell_id].fit(pending.samples)
        learn_s = time.perf_counter() - start
        if learned.n_updates or learned.n_calibrated:
            self.checkpointer.mark_dirty(pending.cell_id)
        self.checkpointer.poll(self.clock() if now is None else now)
        if self.metrics is not None:
            self._count(pending.mode, pending.reports, pending.decisions, learned, pending.decision_s)
        return CellResult(pending.cell_id, pending.mode, pending.decisions, learned, pending.decision_s, learn_s)

    def on_reports(self, cell_id: str, reports: LinkReports, now: float | None = None) -> CellResult:
        """:meth:`decide` then :meth:`finish` for one cell (callers that send the control
        afterwards anyway)."""
        return self.finish(self.decide(cell_id, reports), now)

    def _count(
        self, mode: TuneMode, reports: LinkReports, decisions: Decisions, learned: LearnOutcome, latency: float
    ) -> None:
        m = self.metrics
        assert m is not None
        m.decision_latency.observe(latency)
        m.finetune_updates.inc(learned.n_updates)
        m.rank_changes_withheld.inc(decisions.rank_changes_withheld)
        m.search_cut_ues.inc(decisions.search_cut_ues)
        m.du_choice_probes.inc(decisions.du_choice_probes)
        m.prediction_abs_error.observe_many(learned.abs_error)
        if mode is TuneMode.OFF:
            m.decisions.labels(kind="keep").inc(len(reports))
            return
        kinds = np.where(
            decisions.rank != reports.ri,
            "rank_change",
            np.where(decisions.cqi < reports.cqi, "cqi_backoff", "keep"),
        )
        m.count_decisions(kinds)

    # ------------------------------------------------------------------ persistence
    def _snapshot(self, cell_id: str) -> tuple[bytes, dict[str, Any]]:
        tuner = self.cells[cell_id]
        model = tuner.model
        meta: dict[str, Any] = {"kind": MODEL_META_KIND, "n_updates": model.n_updates, "n_seen": model.n_seen}
        if tuner.calibration is not None:
            meta["calibration"] = tuner.calibration.state_dict()
        if tuner.rank_check is not None:
            meta["rank_check"] = tuner.rank_check.state_dict()
        return model.to_bytes(), meta

    def checkpoint(self) -> list[str]:
        """Save every cell with unsaved fine-tuning now; returns the cells saved."""
        return self.checkpointer.flush()

    def close(self) -> None:
        """Save what is unsaved (shutdown)."""
        saved = self.checkpoint()
        if saved:
            _log.info("saved fine-tuned models of cells %s", ", ".join(saved))

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per cell: mode, fine-tuning updates and samples seen so far, restore status, and
        report rows dropped for repeating a UE id."""
        return {
            cell_id: {
                "mode": tuner.mode.value,
                "n_updates": tuner.model.n_updates,
                "n_seen": tuner.model.n_seen,
                "ues": tuner.n_ues,
                "restored": self.restore_status.get(cell_id, ""),
                "duplicate_ue_reports": self.duplicate_ue_reports.get(cell_id, 0),
            }
            for cell_id, tuner in self.cells.items()
        }
