"""Prometheus metrics of the xApp, in a registry of its own.

:class:`XappMetrics` owns a ``prometheus_client.CollectorRegistry`` (not the process-global
one, so several instances — tests, two xApps in one process — never collide) and the
metrics below, all prefixed ``lighttune_``:

=====================================  =========  ===============  ==========================================
name                                   type       labels           meaning
=====================================  =========  ===============  ==========================================
reports_received_total                 counter    path             E2 report messages received (per report path)
ue_reports_dropped_total               counter    reason           per-UE records dropped (out of range, ...)
decode_errors_total                    counter    kind             messages that failed to decode (e2ap, sm, kpm, a1)
decisions_total                        counter    kind             per-UE decisions (keep, cqi, ri_cqi, advisory)
finetune_updates_total                 counter    -                LightTune learn steps taken (|ŷ - y| >= δ)
prediction_abs_error                   histogram  -                |predicted - true BLER| per UE-period, unitless
control_sends_total                    counter    -                E2 control requests sent
control_failures_total                 counter    reason           control sends that failed / were refused
decision_latency_seconds               histogram  -                report received -> decision ready, seconds
config_rejections_total                counter    -                configurations refused (running one kept)
model_restore_total                    counter    status           model loads at start (ok, absent, corrupt, ...)
checkpoint_saves_total                 counter    result           model saves (ok, failed)
ready                                  gauge      -                1 when the readiness probe answers 200
cell_refusals_total                    counter    reason           cell reports refused (cells_per_node: the node's cell cap reached)
subscriptions_up                       gauge      -                1 when every wanted E2 node's subscription is confirmed
subscriptions                          gauge      state            E2 nodes by subscription state (wanted, requested, confirmed)
=====================================  =========  ===============  ==========================================

:meth:`XappMetrics.render` gives the text exposition served on ``/ric/v1/metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "BatchHistogram", "XappMetrics"]

CONTENT_TYPE: str = CONTENT_TYPE_LATEST
"""Content-Type of :meth:`XappMetrics.render`'s output."""

_ERROR_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
_LATENCY_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class BatchHistogram(Collector):
    """A Prometheus histogram fed with whole numpy batches (one ``bincount`` per batch).

    ``prometheus_client.Histogram`` observes one value per call; per-UE values of a
    report would need a Python loop over UEs. This collector keeps the bucket counts in an
    int64 array [B + 1] (last = +Inf) and the running sum, and exposes them as a standard
    histogram: bucket ``le=b_i`` counts values v <= b_i.

    Args:
        name: full metric name (without ``_bucket``/``_sum``/``_count``).
        documentation: help text.
        buckets: strictly increasing finite upper bounds [B].
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        bounds = np.asarray(buckets, dtype=np.float64)
        if bounds.ndim != 1 or bounds.size == 0 or not np.all(np.isfinite(bounds)) or np.any(np.diff(bounds) <= 0):
            raise ValueError("buckets must be a non-empty, strictly increasing list of finite numbers")
        self.name = name
        self.documentation = documentation
        self.bounds = bounds
        self._counts = np.zeros(bounds.size + 1, dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: np.ndarray | Sequence[float]) -> int:
        """Add the finite entries of ``values`` (any shape); returns how many were added."""
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        index = np.searchsorted(self.bounds, v, side="left")  # bounds[i-1] < v <= bounds[i]
        counts = np.bincount(index, minlength=self.bounds.size + 1)
        with self._lock:
            self._counts += counts
            self._sum += float(v.sum())
        return int(v.size)

    def collect(self) -> Iterator[Metric]:
        """Yield the histogram family (cumulative bucket counts, sum)."""
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        labels = [repr(float(b)) for b in self.bounds.tolist()] + ["+Inf"]
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=list(zip(labels, cumulative)), sum_value=total
        )


class XappMetrics:
    """The xApp's counters and histograms (see module doc for the list).

    Args:
        namespace: metric name prefix (default ``"lighttune"``).
    """

    def __init__(self, namespace: str = "lighttune") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reports_received = Counter(
            "reports_received", "E2 report messages received", ["path"], namespace=namespace, registry=r
        )
        self.ue_reports_dropped = Counter(
            "ue_reports_dropped", "Per-UE report records dropped", ["reason"], namespace=namespace, registry=r
        )
        self.decode_errors = Counter(
            "decode_errors", "Messages that failed to decode", ["kind"], namespace=namespace, registry=r
        )
        self.decisions = Counter("decisions", "Per-UE decisions by kind", ["kind"], namespace=namespace, registry=r)
        self.rank_changes_withheld = Counter(
            "rank_changes_withheld",
            "Rank changes RI-CQI-Tune wanted that the cell's rank-change check replaced by the best same-rank "
            "candidate (lighttune_core.calibration.RankChangeCheck)",
            namespace=namespace, registry=r,
        )
        self.du_choice_probes = Counter(
            "du_choice_probes",
            "CQI back-offs replaced by the DU's own choice so that the cell's calibration learns the BLER of a "
            "label it had no evidence for (controls.probeDuChoice; lighttune_core.cell.CellTuner)",
            namespace=namespace, registry=r,
        )
        self.search_cut_ues = Counter(
            "search_cut_ues",
            "UE decisions taken with candidates left unpredicted because the cell's search reached its "
            "prediction cap (controls.maxPredictionsPerDecision; lighttune_core.linkadapt.tune.SearchBudget)",
            namespace=namespace, registry=r,
        )
        self.finetune_updates = Counter(
            "finetune_updates", "LightTune online learning steps taken", namespace=namespace, registry=r
        )
        self.prediction_abs_error = BatchHistogram(
            f"{namespace}_prediction_abs_error",
            "Absolute BLER prediction error per UE and period (unitless)",
            _ERROR_BUCKETS,
        )
        r.register(self.prediction_abs_error)
        self.control_sends = Counter("control_sends", "E2 control requests sent", namespace=namespace, registry=r)
        self.control_failures = Counter(
            "control_failures", "E2 control requests failed or refused", ["reason"], namespace=namespace, registry=r
        )
        self.decision_latency = Histogram(
            "decision_latency_seconds",
            "Time from report reception to decision, seconds",
            namespace=namespace,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.config_rejections = Counter(
            "config_rejections", "Configurations refused; the running one was kept", namespace=namespace, registry=r
        )
        self.model_restore = Counter(
            "model_restore", "Stored model loads by outcome", ["status"], namespace=namespace, registry=r
        )
        self.checkpoint_saves = Counter(
            "checkpoint_saves", "Model checkpoint saves by result", ["result"], namespace=namespace, registry=r
        )
        self.ready = Gauge("ready", "1 when the xApp is ready to serve", namespace=namespace, registry=r)
        self.cell_refusals = Counter(
            "cell_refusals", "Cell reports refused (cells_per_node: the node has its cap of cells)", ["reason"],
            namespace=namespace, registry=r,
        )
        self.subscriptions_up = Gauge(
            "subscriptions_up", "1 when every wanted E2 node's subscription is confirmed", namespace=namespace,
            registry=r,
        )
        self.subscriptions = Gauge(
            "subscriptions", "E2 subscriptions by state (wanted, requested, confirmed; one or more per node)", ["state"],
            namespace=namespace, registry=r,
        )

    def observe_prediction_errors(self, predicted: np.ndarray | Sequence[float], true: np.ndarray | Sequence[float]) -> None:
        """Record |predicted - true| for a batch of UEs.

        Args:
            predicted, true: float BLER arrays of the same shape [N]; pairs where either is
                NaN (no transmission in the period) are skipped.

        Raises:
            ValueError: shapes differ.
        """
        p = np.asarray(predicted, dtype=np.float64)
        t = np.asarray(true, dtype=np.float64)
        if p.shape != t.shape:
            raise ValueError(f"predicted shape {p.shape} != true shape {t.shape}")
        self.prediction_abs_error.observe_many(np.abs(p - t))

    def count_decisions(self, kinds: np.ndarray | Sequence[str]) -> None:
        """Add a batch of per-UE decision kinds (e.g. ``["cqi", "cqi", "keep"]``) to ``decisions``."""
        values, counts = np.unique(np.asarray(kinds, dtype=str), return_counts=True)
        for kind, count in zip(values.tolist(), counts.tolist()):
            self.decisions.labels(kind=kind).inc(count)

    def render(self) -> bytes:
        """Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
