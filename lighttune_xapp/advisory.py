"""Advisory mode: a node that offers E2SM-KPM but not our control service model.

Per cell and period (one decoded KPM indication set, see
:mod:`lighttune_e2.kpm.reports`):

1. **learn** from the KPM TB counts of the period that ended, through the cell's
   :class:`~lighttune_core.cell.CellTuner` of the normal
   :class:`~lighttune_xapp.policy.LinkAdaptationPolicy` (same models, same store);
2. **recommend**: the configured mode's (RI, CQI) per UE (RI-CQI-Tune / CQI-Tune) with its
   predicted BLER. Nothing is sent: the node keeps its own table RI/CQI + OLLA;
3. **remember the node's own choice** as the pending decision (the tuner's ``off``
   decision, the reported RI/CQI), because that is what the next HARQ counts measure.
   Learning from a recommendation the node never applied would teach the model wrong
   labels.

Recommendations are published without exploding metric cardinality:

* ``<ns>_advisory_recommendations_total{kind}``: counts per kind, ``kind`` in
  :data:`RECOMMENDATION_KINDS` (5 series);
* ``<ns>_advisory_table_ues``: rows in the per-UE table (1 series);
* a bounded per-UE table (at most ``max_ues_per_cell`` rows per cell, changes first, and
  ``max_cells`` cells, least recently updated evicted) served as JSON on
  :data:`RECOMMENDATIONS_PATH` of the health server (:meth:`AdvisoryMode.route`);
* one log line per cell-period, and a summary in the model store's meta
  (:meth:`AdvisoryMode.checkpoint`).

Which path a node uses (:func:`plan_node`): a node that offers both reports through the
configured ``reportPath`` (``service_model`` by default, or ``kpm``) and is controlled
through our service model; a KPM-only node gets advisory mode and a startup message naming
the node and the missing function.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import OrderedDict
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge

from lighttune_core.cell import Decisions, LearnOutcome, TuneMode
from lighttune_core.report import LinkReports
from lighttune_e2.kpm.reports import KpmNodeDecoder
from lighttune_e2.kpm.subscription import KpmSubscriptionPlan
from lighttune_xapp.health import Response
from lighttune_xapp.metrics import XappMetrics
from lighttune_xapp.policy import MODEL_META_KIND, LinkAdaptationPolicy

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class KpmFeed:
    """One subscribed KPM function of a node (local mode and RIC mode).

    Attributes:
        cell: the model key of its reports (``<RAN name>/<cell id>``, or
            ``<RAN name>/kpm-<function id>`` when the definition names no cell).
        cell_id: NR cell identity for controls, None when the function names no cell.
        plan: the KPM subscription sent.
        decoder: the node's decoder of this function.
    """

    cell: str
    cell_id: int | None
    plan: KpmSubscriptionPlan
    decoder: KpmNodeDecoder

    @property
    def advisory(self) -> bool:
        """Reports without a controllable cell number."""
        return self.cell_id is None


#: Our control service model, the function a KPM-only node lacks.
CONTROL_FUNCTION_NAME: str = "LT-LINKADAPT"
#: Health-server route of the recommendation table.
RECOMMENDATIONS_PATH: str = "/ric/v1/advisory/recommendations"
#: Recommendation kinds, the only values of the ``kind`` label.
RECOMMENDATION_KINDS: tuple[str, ...] = ("keep", "cqi_backoff", "cqi_raise", "rank_down", "rank_up")
REPORT_PATHS: tuple[str, ...] = ("service_model", "kpm")


@dataclasses.dataclass(frozen=True)
class NodePlan:
    """How the xApp serves one E2 node.

    Attributes:
        node_id: the node.
        report_path: ``service_model`` or ``kpm``.
        control: decisions are sent (through our service model).
        advisory: recommendations only (KPM-only node).
        message: the startup line describing the choice.
    """

    node_id: str
    report_path: str
    control: bool
    advisory: bool
    message: str


def plan_node(
    node_id: str, offers_service_model: bool, offers_kpm: bool, report_path: str = "service_model",
    tuner_mode: str = "ri_cqi",
) -> NodePlan:
    """Report path and control for a node from what it offers and the configuration.

    Raises:
        ValueError: unknown ``report_path``, or a node offering neither function.
    """
    if report_path not in REPORT_PATHS:
        raise ValueError(f"reportPath must be one of {REPORT_PATHS}, got {report_path!r}")
    control_mode = TuneMode(tuner_mode) is not TuneMode.OFF
    if offers_service_model and offers_kpm:
        return NodePlan(node_id, report_path, control_mode, False,
                        f"node {node_id}: reports through {report_path}, control through {CONTROL_FUNCTION_NAME}")
    if offers_service_model:
        note = " (reportPath kpm ignored: the node offers no E2SM-KPM)" if report_path == "kpm" else ""
        return NodePlan(node_id, "service_model", control_mode, False,
                        f"node {node_id}: reports and control through {CONTROL_FUNCTION_NAME}{note}")
    if offers_kpm:
        return NodePlan(
            node_id, "kpm", False, True,
            f"node {node_id} offers E2SM-KPM but not {CONTROL_FUNCTION_NAME}: advisory mode "
            f"(predictions and RI/CQI recommendations are published, no control is sent)",
        )
    raise ValueError(f"node {node_id} offers neither {CONTROL_FUNCTION_NAME} nor E2SM-KPM")


def recommendation_kinds(reported_ri: np.ndarray, reported_cqi: np.ndarray, rank: np.ndarray,
                         cqi: np.ndarray) -> np.ndarray:
    """Kind of each recommendation versus the node's own choice, str [N].

    rank above/below RI -> ``rank_up``/``rank_down``; same rank and CQI below/above the
    reported one -> ``cqi_backoff``/``cqi_raise``; else ``keep``.
    """
    return np.where(
        rank > reported_ri, "rank_up",
        np.where(rank < reported_ri, "rank_down",
                 np.where(cqi < reported_cqi, "cqi_backoff", np.where(cqi > reported_cqi, "cqi_raise", "keep"))),
    )


@dataclasses.dataclass(frozen=True)
class AdvisoryResult:
    """One cell-period of advisory mode.

    Attributes:
        cell_id: the cell.
        recommended: the recommended (rank, CQI) per UE; ``control`` is always False.
        node_choice_bler: float64 [N], predicted BLER of the node's own (RI, CQI) (the
            model's label through the cell's calibration when it calibrates).
        kinds: str [N], :func:`recommendation_kinds`.
        learned: the period's learning pass.
    """

    cell_id: str
    recommended: Decisions
    node_choice_bler: np.ndarray
    kinds: np.ndarray
    learned: LearnOutcome


@dataclasses.dataclass(frozen=True)
class AdvisorySeries:
    """The advisory metric series of one registry (shared by every advisory node)."""

    recommendations: Counter
    table_ues: Gauge


def advisory_series(metrics: XappMetrics) -> AdvisorySeries:
    """Register the advisory series in ``metrics.registry`` (once per registry)."""
    ns = "lighttune"
    return AdvisorySeries(
        Counter("advisory_recommendations", "Advisory RI/CQI recommendations per UE and period by kind",
                ["kind"], namespace=ns, registry=metrics.registry),
        Gauge("advisory_table_ues", "Rows in the advisory per-UE recommendation table",
              namespace=ns, registry=metrics.registry),
    )


class AdvisoryMode:
    """Advisory mode over a :class:`LinkAdaptationPolicy` (see the module docstring).

    Args:
        policy: the xApp's policy (its models, modes, checkpointer and store are used).
        node_id: the KPM node served.
        metrics: the xApp's metrics; the advisory series are added to its registry.
        max_ues_per_cell: rows per cell in the JSON table (>= 1).
        max_cells: cells in the JSON table (>= 1).
        series: the registry's advisory series when another node already registered them
            (:func:`advisory_series`); ``None`` registers them.
    """

    def __init__(
        self,
        policy: LinkAdaptationPolicy,
        node_id: str,
        metrics: XappMetrics | None = None,
        max_ues_per_cell: int = 256,
        max_cells: int = 64,
        series: AdvisorySeries | None = None,
    ) -> None:
        if max_ues_per_cell < 1 or max_cells < 1:
            raise ValueError("max_ues_per_cell and max_cells must be >= 1")
        self.policy = policy
        self.node_id = node_id
        self.metrics = metrics
        self.max_ues_per_cell = int(max_ues_per_cell)
        self.max_cells = int(max_cells)
        self.table: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._rows: dict[str, OrderedDict[int, dict[str, Any]]] = {}
        self.kind_totals: dict[str, dict[str, int]] = {}
        self.imputed_features: tuple[str, ...] = ()
        self.recommendations: Counter | None = None
        self.table_ues: Gauge | None = None
        self.series: AdvisorySeries | None = None
        if metrics is not None:
            self.series = series if series is not None else advisory_series(metrics)
            self.recommendations = self.series.recommendations
            self.table_ues = self.series.table_ues

    def startup_message(self) -> str:
        """Log (and return) the line naming the node and the function it lacks."""
        message = plan_node(self.node_id, False, True).message
        _log.warning("%s", message)
        return message

    def on_reports(self, cell_id: str, reports: LinkReports, imputed_features: tuple[str, ...] = (),
                   now: float | None = None) -> AdvisoryResult:
        """Learn, recommend and publish for one cell-period; nothing is sent to the node."""
        start = time.perf_counter()
        tuner = self.policy.cell(cell_id)
        mode = self.policy.mode_of(cell_id)
        reports, samples = self.policy.collect(cell_id, tuner, reports)  # repeated UE ids dropped
        learned = tuner.fit(samples)
        tuner.mode = mode
        advice = tuner.decide(reports)
        tuner.mode = TuneMode.OFF
        node_choice = tuner.decide(reports)  # pending = what the node will actually do
        tuner.mode = mode
        recommended = dataclasses.replace(advice, control=False)
        kinds = recommendation_kinds(reports.ri, reports.cqi, recommended.rank, recommended.cqi)
        if learned.n_updates or learned.n_calibrated:
            self.policy.checkpointer.mark_dirty(cell_id)
        self.policy.checkpointer.poll(self.policy.clock() if now is None else now)
        if imputed_features:
            self.imputed_features = tuple(sorted(set(self.imputed_features) | set(imputed_features)))
        counts = self._publish(cell_id, reports, recommended, node_choice.predicted_bler, kinds)
        latency = time.perf_counter() - start
        if self.metrics is not None:
            self.metrics.reports_received.labels(path="kpm").inc()
            self.metrics.finetune_updates.inc(learned.n_updates)
            self.metrics.prediction_abs_error.observe_many(learned.abs_error)
            self.metrics.decision_latency.observe(latency)
        _log.info(
            "advisory node %s cell %s mode %s: %d UEs, %s; %d fine-tuning updates",
            self.node_id, cell_id, mode.value, len(reports),
            " ".join(f"{k}={v}" for k, v in counts.items() if v), learned.n_updates,
        )
        return AdvisoryResult(cell_id, recommended, node_choice.predicted_bler, kinds, learned)

    def _publish(self, cell_id: str, reports: LinkReports, rec: Decisions, node_bler: np.ndarray,
                 kinds: np.ndarray) -> dict[str, int]:
        values, numbers = np.unique(kinds, return_counts=True)
        counts = {kind: 0 for kind in RECOMMENDATION_KINDS}
        counts.update({str(k): int(c) for k, c in zip(values.tolist(), numbers.tolist())})
        totals = self.kind_totals.setdefault(cell_id, {kind: 0 for kind in RECOMMENDATION_KINDS})
        for kind, count in counts.items():
            totals[kind] += count
            if self.recommendations is not None and count:
                self.recommendations.labels(kind=kind).inc(count)
        # rows of these UEs (changes first); a period split over several indications
        # updates the same table, which stays bounded by evicting "keep" rows, then the oldest
        order = np.lexsort((reports.ue_id, kinds == "keep"))[: self.max_ues_per_cell]
        true_bler = reports.true_bler
        cell_rows = self._rows.setdefault(cell_id, OrderedDict())
        for u, ri, cq, rr, rc, pb, nb, tb, k in zip(
            reports.ue_id[order].tolist(), reports.ri[order].tolist(), reports.cqi[order].tolist(),
            rec.rank[order].tolist(), rec.cqi[order].tolist(),
            np.round(rec.predicted_bler[order], 3).tolist(), np.round(node_bler[order], 3).tolist(),
            np.round(true_bler[order], 3).tolist(), kinds[order].tolist(),
        ):
            cell_rows.pop(u, None)
            cell_rows[u] = {
                "ue_id": u, "reported_ri": ri, "reported_cqi": cq, "recommended_rank": rr,
                "recommended_cqi": rc, "predicted_bler": pb, "node_choice_predicted_bler": nb,
                "last_bler": None if tb != tb else tb, "kind": k,
            }
        truncated = len(reports) > len(order)
        excess = len(cell_rows) - self.max_ues_per_cell
        if excess > 0:
            truncated = True
            drop = [u for u, row in cell_rows.items() if row["kind"] == "keep"][:excess]
            dropped = set(drop)
            drop += [u for u in cell_rows if u not in dropped][: excess - len(drop)]
            for u in drop:
                del cell_rows[u]
        self.table[cell_id] = {"ues": list(cell_rows.values()), "n_ues": len(reports), "truncated": truncated,
                               "counts": counts}
        self.table.move_to_end(cell_id)
        while len(self.table) > self.max_cells:
            evicted, _ = self.table.popitem(last=False)
            self._rows.pop(evicted, None)
        if self.table_ues is not None:
            self.table_ues.set(sum(len(c["ues"]) for c in self.table.values()))
        return counts

    def table_json(self) -> bytes:
        """The recommendation table as JSON (node, imputed features, cells)."""
        body = {
            "node": self.node_id,
            "missing_function": CONTROL_FUNCTION_NAME,
            "imputed_features": list(self.imputed_features),
            "cells": dict(self.table),
        }
        return json.dumps(body, allow_nan=False).encode()

    def route(self, _body: bytes) -> Response:
        """Health-server handler of :data:`RECOMMENDATIONS_PATH`."""
        return 200, "application/json", self.table_json()

    def store_meta(self, cell_id: str) -> dict[str, Any]:
        """Advisory summary for the model store's meta of ``cell_id``."""
        return {
            "mode": "advisory",
            "node": self.node_id,
            "missing_function": CONTROL_FUNCTION_NAME,
            "recommendations": dict(self.kind_totals.get(cell_id, {})),
            "imputed_features": list(self.imputed_features),
        }

    def checkpoint(self) -> list[str]:
        """Save every cell's model with the advisory summary in its meta; returns the cells."""
        saved = []
        for cell_id, tuner in self.policy.cells.items():
            model = tuner.model
            meta = {"kind": MODEL_META_KIND, "n_updates": model.n_updates, "n_seen": model.n_seen,
                    "advisory": self.store_meta(cell_id)}
            self.policy.store.save(cell_id, model.to_bytes(), meta)
            saved.append(cell_id)
        return saved
