"""Local mode: the xApp terminates E2 itself and closes the loop with E2 nodes such as ``e2sim run``.

``lighttune-xapp --mode local`` listens for E2 nodes (SCTP where the kernel has it, TCP with
length-prefixed frames otherwise, see :mod:`lighttune_e2.transport`) and, per node:

1. accepts E2 Setup (RAN functions of the LT-LINKADAPT service model only; others are refused
   with ``ran-function-not-supported``) and reads each accepted RAN function definition;
2. subscribes to each LT-LINKADAPT function with the event trigger "every CSI-RS period" and
   one report action. One subscription covers every cell of the function: each indication
   names its cell in the indication header (NR cell identity), so "every cell that offers
   the service model" is served by that one subscription;
3. on each RIC Indication: decode → :meth:`LinkAdaptationPolicy.decide` (decide the next
   period) → encode → RIC Control Request (ack requested) → :meth:`LinkAdaptationPolicy.finish`
   (fine-tune on the period that ended, after the control has left). The policy keys its
   models by ``str(cell_id)``.

**Every indication of the service model is answered with a control**, also for a cell in
mode ``off``: that control carries an *empty* decision list, which tells the DU to keep its
own (table RI/CQI + OLLA) choice for the period. A lock-step E2 node (``e2sim run``) waits for
this answer before simulating the next period; without it, it would wait for its control
timeout every period.

A node that disconnects loses its link state (subscriptions, outstanding controls) and the
per-UE pending decisions of its cells (they were never applied, so learning from them would
be wrong); the cells' models stay in the policy and keep their fine-tuning, and the next E2
Setup of that node (or any node serving the same cell ids) re-subscribes.

Malformed PDUs (E2AP or service-model payloads) are counted and logged and never stop the
loop; a frame with an impossible length closes that one connection.

Standard E2SM-KPM (issue 9, ``docs/kpm.md``)
---------------------------------------------
E2 Setup also accepts E2SM-KPM functions (v3 and srsRAN's v2 OID). What a node gets is
decided by :func:`lighttune_xapp.advisory.plan_node` from what it offers and the descriptor's
``reportPath`` / ``tunerMode``:

* LT-LINKADAPT only, or both with ``reportPath: service_model``: as above (KPM unused);
* both with ``reportPath: kpm``: reports through KPM, control through LT-LINKADAPT. The
  xApp first subscribes LT-LINKADAPT with one ``policy`` action (a *control subscription*:
  "I send controls, no reports", so a lock-step node waits for them), then each KPM function
  with :func:`~lighttune_e2.kpm.subscription.plan_kpm_subscription` (style 4, reporting
  and granularity period = the LT-LINKADAPT function's CSI-RS period). Every KPM indication is
  decoded (:class:`~lighttune_e2.kpm.reports.KpmNodeDecoder`; undecodable = a counted
  indication decode error) and answered with a control, exactly as an LT-LINKADAPT report;
  the control's ``period_index`` is the report's ``colletStartTime`` in ms since 1970
  (:attr:`IndicationHeader.period_key_ms`), since KPM has no period index;
* KPM only: advisory mode (:class:`~lighttune_xapp.advisory.AdvisoryMode`): a startup
  warning names the node and the missing function, recommendations are published on
  :data:`~lighttune_xapp.advisory.RECOMMENDATIONS_PATH` and in the statistics, no control is
  sent. The KPM period is ``--kpm-period`` (a KPM definition carries none).

Cell naming: a KPM indication carries no cell id. A KPM function's reports belong to the
cell named by its definition's ``ranFunction-Instance`` (the node states the NR cell
identity there, one function per cell, as ``e2sim run --kpm`` does), so KPM and LT-LINKADAPT
reports of a cell feed the same model ``str(cell id)``; the subscription repeats the cell
(``cellGlobalID``). A function without an instance is named ``<node>/kpm-<function id>``
and, having no cell number to control, is served in advisory mode. Per node the statistics
(``nodes``) name the plan, the subscribed and missing measurements and the imputed features
(also logged once when they first appear), and, per KPM function (``kpm_functions``, subscribed
or not), every missing measurement with the features it costs, and whether advising and
fine-tuning are possible (``advising_possible`` per node; logged at E2 Setup and published as
``lighttune_kpm_advising_possible{node}`` etc., :mod:`lighttune_xapp.kpm_metrics`).

Optional ``--frozen-baseline``: a never-updated copy of the offline model also predicts the
BLER of every applied decision, so the statistics give the mean |prediction error| both with
and without fine-tuning.

Statistics (per cell and totals) are served as JSON at ``GET /ric/v1/stats`` on the HTTP
port and written to ``--stats-out`` at exit. SIGINT/SIGTERM stop the xApp cleanly: the E2
links close and the fine-tuned models are saved through the configured store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lighttune_core.cell import TuneMode
from lighttune_core.features import bler_label, build_features
from lighttune_core.report import LinkReports
from lighttune_core.tuner import LightTuneModel
from lighttune_e2 import e2ap as E
from lighttune_e2.endpoints import (
    ControlAcknowledged,
    ControlFailed,
    E2SetupReceived,
    Event,
    IndicationReceived,
    ProtocolErrorEvent,
    RequestTimedOut,
    RicEndpoint,
    SubscriptionAccepted,
    SubscriptionDeleted,
    SubscriptionRejected,
)
from lighttune_e2.errors import E2DecodeError, E2Error
from lighttune_e2.kpm.codec import (
    DEFAULT_CODEC,
    KPM_V1_OID,
    KPM_V2_OID,
    KPM_V3_OID,
    detect_kpm_v1,
)
from lighttune_e2.kpm.model import CellGlobalId
from lighttune_e2.kpm.model import RanFunctionDefinition as KpmFunctionDefinition
from lighttune_e2.kpm.reports import KpmNodeDecoder
from lighttune_e2.kpm.subscription import (
    KpmFunctionAssessment,
    KpmSubscriptionUnavailable,
    plan_kpm_subscription,
)
from lighttune_e2.service_model import (
    MAX_CELL_ID,
    SM_OID,
    ActionDefinition,
    EventTrigger,
    decode_control_outcome,
    decode_indication,
    decode_ran_function_definition,
    encode_action_definition,
    encode_control,
    encode_event_trigger,
)
from lighttune_e2.transport import E2_SCTP_PORT, E2Connection, E2Server
from lighttune_xapp.advisory import (
    RECOMMENDATIONS_PATH,
    AdvisoryMode,
    AdvisorySeries,
    KpmFeed,
    NodePlan,
    plan_node,
)
from lighttune_xapp.app import (
    XappRuntime,
    build_runtime,
    freeze_startup_objects,
    keep_freed_heap_memory,
    load_offline_model,
    local_config,
    read_descriptor,
)
from lighttune_xapp.cell_cap import CellCap
from lighttune_xapp.config import ConfigError
from lighttune_xapp.health import STATS_PATH
from lighttune_xapp.kpm_metrics import KpmSeries, kpm_series

log = logging.getLogger(__name__)

REPORT_ACTION_ID = 1
"""Action id of the one report action of every subscription."""
CONTROL_ACTION_ID = 2
"""Action id of the ``policy`` action of an LT-LINKADAPT control subscription."""
KPM_OIDS: frozenset[str] = frozenset({KPM_V3_OID, KPM_V2_OID})
"""E2SM-KPM OIDs accepted in E2 Setup."""
DEFAULT_KPM_PERIOD_MS = 80
"""KPM reporting period of a KPM-only node (the CSI-RS period is not advertised), ms."""
"""HTTP path of the JSON statistics."""
LATENCY_WINDOW = 10_000
"""Decision latencies kept per cell for the percentiles (most recent)."""
_EMPTY = np.zeros(0, dtype=np.int64)


def parse_host_port(text: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` → (host, port); ValueError naming the value otherwise."""
    host, sep, port_s = text.rpartition(":")
    if not sep:
        host, port_s = default_host, text
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"address {text!r}: port {port_s!r} is not an integer") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"address {text!r}: port must be in 0 .. 65535")
    return (host or default_host), port


def parse_cell_mode(text: str) -> tuple[str, TuneMode]:
    """``CELL=MODE`` (mode off, cqi or ri_cqi) → (cell id, mode); ValueError otherwise."""
    cell, sep, mode = text.partition("=")
    if not sep or not cell:
        raise ValueError(f"--cell-mode {text!r}: expected CELL=MODE, e.g. 1=ri_cqi")
    try:
        return cell, TuneMode(mode)
    except ValueError:
        raise ValueError(f"--cell-mode {text!r}: mode must be one of off, cqi, ri_cqi") from None


# --------------------------------------------------------------------------- statistics


@dataclass
class CellCounters:
    """What the E2 termination saw and did for one cell (monotonic over the xApp's life)."""

    indications: int = 0
    ue_reports: int = 0
    ue_reports_dropped: int = 0
    policy_errors: int = 0
    controls_sent: int = 0
    controls_acked: int = 0
    controls_failed: int = 0
    controls_timed_out: int = 0
    ue_decisions_rejected: int = 0
    advisory_periods: int = 0
    samples: int = 0
    abs_error_sum: float = 0.0
    frozen_samples: int = 0
    frozen_abs_error_sum: float = 0.0
    last_period: int = -1
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    last_ue_ids: np.ndarray = field(default_factory=lambda: _EMPTY)

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures; errors are NaN-free (``None`` when there is no sample)."""
        lat = np.asarray(self.latencies_s, dtype=np.float64)
        out = {k: v for k, v in asdict(self).items() if k not in ("latencies_s", "last_ue_ids")}
        out["mean_abs_error"] = self.abs_error_sum / self.samples if self.samples else None
        out["mean_abs_error_frozen"] = (
            self.frozen_abs_error_sum / self.frozen_samples if self.frozen_samples else None
        )
        out["decision_latency_p50_ms"] = float(np.percentile(lat, 50) * 1e3) if lat.size else None
        out["decision_latency_p99_ms"] = float(np.percentile(lat, 99) * 1e3) if lat.size else None
        return out


@dataclass
class Totals:
    """Counters not tied to one cell."""

    e2_setups: int = 0
    disconnects: int = 0
    subscriptions_accepted: int = 0
    subscriptions_rejected: int = 0
    e2ap_decode_errors: int = 0
    e2ap_protocol_errors: int = 0
    indication_decode_errors: int = 0
    ran_function_errors: int = 0
    control_encode_errors: int = 0
    request_timeouts: int = 0
    cells_refused: int = 0


@dataclass
class _FrozenBaseline:
    """Predictions of the never-updated offline model for the decisions applied last period.

    ``ue_id`` int64 [N] sorted, ``pred`` float64 [N] (BLER).
    """

    ue_id: np.ndarray = field(default_factory=lambda: _EMPTY)
    pred: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class _Node:
    """Per-connection state: what is dropped when the node disconnects."""

    name: str = "?"
    cells: set[str] = field(default_factory=set)
    controls: dict[E.RicRequestId, str] = field(default_factory=dict)
    subscriptions: set[E.RicRequestId] = field(default_factory=set)
    decode_errors_seen: int = 0
    plan: NodePlan | None = None
    control_function: int | None = None
    """LT-LINKADAPT function id controls go to (KPM report path), else None."""
    kpm: dict[int, KpmFeed] = field(default_factory=dict)
    advisory: AdvisoryMode | None = None
    kpm_assessments: dict[int, KpmFunctionAssessment] = field(default_factory=dict)
    """Every KPM function's assessment (subscribed or not): missing measurements and costs."""

    @property
    def advising_possible(self) -> bool | None:
        """A KPM function of the node yields per-UE reports; ``None`` without KPM functions."""
        if not self.kpm_assessments:
            return None
        return any(a.advising_possible for a in self.kpm_assessments.values())

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: plan, KPM feeds (measurements, imputed features)."""
        feeds = {}
        for fid, feed in sorted(self.kpm.items()):
            feeds[str(fid)] = {
                "cell": feed.cell, "style": feed.plan.style, "period_ms": feed.plan.period_ms,
                "measurements": list(feed.plan.measurements), "missing_measurements": list(feed.plan.missing),
                "advisory": feed.advisory, **feed.decoder.stats(),
            }
        imputed = sorted({f for feed in self.kpm.values() for f in feed.decoder.imputed_features})
        return {
            "plan": None if self.plan is None else self.plan.message,
            "report_path": None if self.plan is None else self.plan.report_path,
            "control": self.control_function is not None,
            "advisory": self.advisory is not None,
            "imputed_features": imputed,
            "kpm": feeds,
            "advising_possible": self.advising_possible,
            "kpm_functions": {str(fid): a.as_json() for fid, a in sorted(self.kpm_assessments.items())},
        }


# --------------------------------------------------------------------------- termination


class LocalE2Termination:
    """The xApp's own E2 termination: per-node E2 handling on top of an :class:`XappRuntime`.

    Args:
        runtime: the started xApp parts (policy, metrics, health).
        frozen_baseline: also track the prediction error of the never-updated offline model.
        request_timeout_s: answer deadline of subscriptions and controls, s.
        kpm_period_ms: KPM reporting period of a node without LT-LINKADAPT, ms (>= 1).
    """

    def __init__(self, runtime: XappRuntime, frozen_baseline: bool = False, request_timeout_s: float = 5.0,
                 kpm_period_ms: int = DEFAULT_KPM_PERIOD_MS) -> None:
        if isinstance(kpm_period_ms, bool) or not isinstance(kpm_period_ms, int) or kpm_period_ms < 1:
            raise ValueError(f"kpm_period_ms must be a positive integer, got {kpm_period_ms!r}")
        self.runtime = runtime
        self.kpm_period_ms = kpm_period_ms
        self.advisories: dict[str, AdvisoryMode] = {}
        """Advisory state per node name (kept across reconnects)."""
        self._advisory_series: AdvisorySeries | None = None
        self.kpm_series: KpmSeries = kpm_series(runtime.metrics)
        self.node_summaries: dict[str, dict[str, Any]] = {}
        """Last summary of every node seen (live or gone)."""
        self.policy = runtime.policy
        self.metrics = runtime.metrics
        self.request_timeout_s = request_timeout_s
        self.frozen: LightTuneModel | None = (
            load_offline_model(runtime.config.model_path) if frozen_baseline else None
        )
        self._frozen_state: dict[str, _FrozenBaseline] = {}
        self.cells: dict[str, CellCounters] = {}
        self.totals = Totals()
        self.nodes: dict[E2Connection, _Node] = {}
        self.cell_cap = CellCap(lambda: self.policy.config.max_cells_per_node, self.metrics)
        self.started = time.time()

    # -- endpoint factory and connection hooks
    def new_endpoint(self) -> RicEndpoint:
        """A RIC-side endpoint accepting the LT-LINKADAPT service model and E2SM-KPM."""
        return RicEndpoint(accept_oids=frozenset({SM_OID}) | KPM_OIDS, request_timeout_s=self.request_timeout_s)

    def on_connect(self, conn: E2Connection) -> None:
        self.nodes[conn] = _Node()
        log.info("E2 connection opened (%d live)", len(self.nodes))

    def on_disconnect(self, conn: E2Connection) -> None:
        node = self.nodes.pop(conn, None)
        self.totals.disconnects += 1
        if node is None:
            return
        self.node_summaries[node.name] = node.describe()
        self.cell_cap.forget_node(node.name)
        # errors that closed the link without an event (impossible frame length)
        missed = conn.endpoint.stats.decode_errors - node.decode_errors_seen
        if missed > 0:
            self.totals.e2ap_decode_errors += missed
            self.metrics.decode_errors.labels(kind="e2ap").inc(missed)
        for cell in node.cells:
            tuner = self.policy.cells.get(cell)
            counters = self.cells.get(cell)
            if tuner is not None and counters is not None and counters.last_ue_ids.size:
                tuner.forget(counters.last_ue_ids)
            self._frozen_state.pop(cell, None)
        self._update_health()
        log.info("E2 node %s disconnected: dropped its link state and pending decisions of cells %s",
                 node.name, ", ".join(sorted(node.cells)) or "-")

    def _update_health(self) -> None:
        confirmed = sum(1 for n in self.nodes.values() if n.subscriptions)
        self.runtime.health.set_subscriptions_up(confirmed > 0)
        self.metrics.subscriptions.labels(state="wanted").set(len(self.nodes))
        self.metrics.subscriptions.labels(state="confirmed").set(confirmed)

    def _cell(self, cell: str) -> CellCounters:
        counters = self.cells.get(cell)
        if counters is None:
            counters = self.cells[cell] = CellCounters()
        return counters

    # -- events
    async def on_event(self, conn: E2Connection, event: Event) -> None:
        """Handle one endpoint event; never raises for anything a peer can send."""
        node = self.nodes.setdefault(conn, _Node())
        try:
            if isinstance(event, IndicationReceived):
                await self._on_indication(conn, node, event.indication)
            elif isinstance(event, E2SetupReceived):
                await self._on_setup(conn, node, event.request)
            elif isinstance(event, ControlAcknowledged):
                self._on_control_answer(node, event.acknowledge.request_id, event.acknowledge.outcome, None)
            elif isinstance(event, ControlFailed):
                f = event.failure
                self._on_control_answer(node, f.request_id, f.outcome, f"{f.cause.group}/{f.cause.value}")
            elif isinstance(event, SubscriptionAccepted):
                node.subscriptions.add(event.response.request_id)
                self.totals.subscriptions_accepted += 1
                self._update_health()
                log.info("node %s: subscription %s active", node.name, event.response.request_id)
            elif isinstance(event, SubscriptionRejected):
                self.totals.subscriptions_rejected += 1
                log.warning("node %s refused subscription: %s", node.name, event.failure.cause)
            elif isinstance(event, SubscriptionDeleted):
                node.subscriptions.discard(event.request_id)
                self._update_health()
            elif isinstance(event, RequestTimedOut):
                self._on_timeout(node, event)
            elif isinstance(event, ProtocolErrorEvent):
                self._on_protocol_error(conn, node, event.error)
        except E2Error as exc:  # our own request refused by the endpoint state: log, keep serving
            log.warning("node %s: %s while handling %s", node.name, exc, type(event).__name__)

    def _on_protocol_error(self, conn: E2Connection, node: _Node, error: E2Error) -> None:
        if isinstance(error, E2DecodeError):
            self.totals.e2ap_decode_errors += 1
            node.decode_errors_seen = conn.endpoint.stats.decode_errors
            self.metrics.decode_errors.labels(kind="e2ap").inc()
        else:
            self.totals.e2ap_protocol_errors += 1
            self.metrics.decode_errors.labels(kind="e2ap_protocol").inc()

    async def _on_setup(self, conn: E2Connection, node: _Node, request: E.E2SetupRequest) -> None:
        self.totals.e2_setups += 1
        node.name = f"gnb-{request.global_e2_node_id.gnb_id}"
        endpoint = conn.endpoint
        assert isinstance(endpoint, RicEndpoint)
        log.info("E2 Setup from %s with %d RAN function(s)", node.name, len(request.ran_functions))
        sm_functions: list[int] = []
        csi_periods: list[int] = []
        kpm_functions: dict[int, KpmFunctionDefinition] = {}
        for function in request.ran_functions:
            if function.ran_function_id not in endpoint.ran_functions:
                self._log_refused_function(node, function)
                continue
            fid = function.ran_function_id
            if function.oid in KPM_OIDS:
                try:
                    kpm_functions[fid] = DEFAULT_CODEC.decode_ran_function_definition(function.definition, fid)
                except (E2DecodeError, ValueError) as exc:
                    self.totals.ran_function_errors += 1
                    log.warning("node %s: KPM function %d not usable: %s", node.name, fid, str(exc)[:300])
                continue
            try:
                definition = decode_ran_function_definition(function.definition)
            except E2DecodeError as exc:
                self.totals.ran_function_errors += 1
                log.warning("node %s: RAN function %d not usable: %s", node.name, fid, exc)
                continue
            log.info("node %s: function %d %s v%d.%d, CSI-RS periods %s ms, control %s", node.name,
                     fid, definition.short_name, *definition.version,
                     list(definition.report_periods_ms), definition.control_supported)
            sm_functions.append(fid)
            csi_periods.extend(definition.report_periods_ms)
        config = self.runtime.config
        try:
            plan = plan_node(node.name, bool(sm_functions), bool(kpm_functions), config.report_path,
                             config.tuner_mode)
        except ValueError as exc:
            log.warning("%s: nothing to subscribe", exc)
            return
        node.plan = plan
        if plan.advisory:
            node.advisory = self._advisory(node.name)
            node.advisory.startup_message()
        else:
            log.info("%s", plan.message)
        now = conn.now()
        if plan.report_path == "service_model":
            trigger = encode_event_trigger(EventTrigger(every_n_csirs_periods=1))
            action = E.RicAction(REPORT_ACTION_ID, "report", encode_action_definition(ActionDefinition()))
            for fid in sm_functions:
                _rid, out = endpoint.subscribe(fid, trigger, (action,), now)
                await conn.apply(out)
            return
        period_ms = csi_periods[0] if csi_periods else self.kpm_period_ms
        if sm_functions:  # control subscription first: the node then waits for our controls
            node.control_function = sm_functions[0]
            policy = E.RicAction(CONTROL_ACTION_ID, "policy", encode_action_definition(ActionDefinition()))
            _rid, out = endpoint.subscribe(node.control_function, encode_event_trigger(EventTrigger()),
                                           (policy,), now)
            await conn.apply(out)
        for fid, definition in kpm_functions.items():
            await self._subscribe_kpm(conn, node, request.global_e2_node_id.plmn_id, fid, definition, period_ms)
        self._report_kpm_coverage(node)

    def _report_kpm_coverage(self, node: _Node) -> None:
        """Log and publish, per node, whether its KPM functions allow advising (and learning)."""
        if not node.kpm_assessments:
            return
        self.kpm_series.publish_node(node.name, node.kpm_assessments.values())
        usable = [a for a in node.kpm_assessments.values() if a.advising_possible]
        if not usable:
            reasons = "; ".join(f"function {fid}: {a.reason}" for fid, a in sorted(node.kpm_assessments.items()))
            log.warning("node %s: advising is NOT possible (%s)", node.name, reasons)
        elif not any(a.learning_possible for a in usable):
            log.warning("node %s: advising possible with imputed features, but no fine-tuning (no HARQ counts)",
                        node.name)
        else:
            log.info("node %s: advising possible", node.name)

    def _log_refused_function(self, node: _Node, function: E.RanFunction) -> None:
        """Say why a RAN function was refused in E2 Setup when it is KPM v1 (by OID or content):
        the node then knows to offer KPM v2/v3, rather than guess at the generic cause."""
        v1 = detect_kpm_v1(function.definition)
        if function.oid != KPM_V1_OID and v1 is None:
            log.info("node %s: RAN function %d (OID %s) refused: not a service model this xApp speaks",
                     node.name, function.ran_function_id, function.oid)
            return
        self.totals.ran_function_errors += 1
        short_name = v1[0] if v1 is not None else "?"
        log.warning("node %s: RAN function %d (%s, OID %s) is E2SM-KPM v1, which is not supported "
                    "(E2SM-KPM v2.01/v2.03/v3.00 are): refused", node.name, function.ran_function_id,
                    short_name, function.oid)

    def _advisory(self, node_name: str) -> AdvisoryMode:
        advisory = self.advisories.get(node_name)
        if advisory is None:
            advisory = AdvisoryMode(self.policy, node_name, self.metrics, series=self._advisory_series)
            self._advisory_series = advisory.series
            self.advisories[node_name] = advisory
        return advisory

    async def _subscribe_kpm(self, conn: E2Connection, node: _Node, plmn: bytes, fid: int,
                             definition: KpmFunctionDefinition, period_ms: int) -> None:
        """Subscribe one KPM function (see the module docstring for the cell naming)."""
        endpoint = conn.endpoint
        assert isinstance(endpoint, RicEndpoint)
        cell_id = definition.instance
        if cell_id is not None and not 0 <= cell_id <= MAX_CELL_ID:
            cell_id = None
        cell = str(cell_id) if cell_id is not None else f"{node.name}/kpm-{fid}"
        try:
            kplan = plan_kpm_subscription(
                definition, period_ms, cell=CellGlobalId(plmn, cell_id) if cell_id is not None else None)
        except KpmSubscriptionUnavailable as exc:  # every missing measurement and its cost
            self.totals.ran_function_errors += 1
            if exc.assessment is not None:
                node.kpm_assessments[fid] = exc.assessment
            log.warning("node %s: KPM function %d not subscribed: %s", node.name, fid, exc)
            return
        except ValueError as exc:  # a PLMN the KPM model refuses
            self.totals.ran_function_errors += 1
            log.warning("node %s: KPM function %d not subscribed: %s", node.name, fid, exc)
            return
        if kplan.assessment is not None:
            node.kpm_assessments[fid] = kplan.assessment
        feed = KpmFeed(cell, cell_id, kplan, KpmNodeDecoder(node.name, kplan.codec, kplan.measurements, period_ms))
        freeze_startup_objects()  # the KPM codec just compiled is long-lived: out of the GC's scans
        if feed.advisory and node.advisory is None:
            node.advisory = self._advisory(node.name)
            log.warning("node %s: KPM function %d names no cell: its reports (%s) are advisory only",
                        node.name, fid, cell)
        node.kpm[fid] = feed
        log.info("node %s: KPM function %d -> cell %s, style %d every %d ms, %d measurements", node.name, fid,
                 cell, kplan.style, period_ms, len(kplan.measurements))
        if kplan.assessment is not None:
            log.log(logging.WARNING if kplan.assessment.missing else logging.INFO, "node %s: %s", node.name,
                    kplan.assessment.describe())
        action = E.RicAction(REPORT_ACTION_ID, "report", kplan.action_definition)
        _rid, out = endpoint.subscribe(fid, kplan.event_trigger, (action,), conn.now())
        await conn.apply(out)

    async def _on_indication(self, conn: E2Connection, node: _Node, ind: E.RicIndication) -> None:
        feed = node.kpm.get(ind.ran_function_id)
        if feed is not None:
            await self._on_kpm_indication(conn, node, feed, ind)
            return
        try:
            hdr, reports, n_dropped = decode_indication(ind.header, ind.message)
        except E2DecodeError as exc:
            self.totals.indication_decode_errors += 1
            self.metrics.decode_errors.labels(kind="indication").inc()
            log.warning("node %s: indication dropped: %s", node.name, exc)
            return
        cell = str(hdr.cell_id)
        if not self.cell_cap.admit(node.name, cell):
            self.totals.cells_refused += 1
            return
        node.cells.add(cell)
        counters = self._cell(cell)
        counters.indications += 1
        counters.ue_reports += len(reports) + n_dropped
        counters.last_period = hdr.period_index
        self.metrics.reports_received.labels(path="service_model").inc()
        if n_dropped:
            counters.ue_reports_dropped += n_dropped
            self.metrics.ue_reports_dropped.labels(reason="invalid").inc(n_dropped)
        await self._decide_and_control(conn, node, cell, hdr.cell_id, counters, reports, hdr.period_index,
                                       ind.ran_function_id)

    async def _on_kpm_indication(self, conn: E2Connection, node: _Node, feed: KpmFeed,
                                 ind: E.RicIndication) -> None:
        """A KPM report: decode, then advisory (no control) or the same decision + control path."""
        result = feed.decoder.decode(ind.header, ind.message)
        if result is None:  # counted and logged by the decoder
            self.totals.indication_decode_errors += 1
            self.metrics.decode_errors.labels(kind="indication").inc()
            return
        self.kpm_series.count_trailing(result.trailing_octets)  # logged by the decoder
        cell = feed.cell
        if not self.cell_cap.admit(node.name, cell):
            self.totals.cells_refused += 1
            return
        node.cells.add(cell)
        counters = self._cell(cell)
        counters.indications += 1
        n_dropped = result.drops.total
        reports = result.reports
        counters.ue_reports += len(reports) + n_dropped
        key = result.header.period_key_ms
        counters.last_period = key
        if n_dropped:
            counters.ue_reports_dropped += n_dropped
            self.metrics.ue_reports_dropped.labels(reason="invalid").inc(n_dropped)
        if node.control_function is None or feed.advisory:
            advisory = node.advisory
            assert advisory is not None
            if not len(reports):
                return
            try:
                outcome = advisory.on_reports(cell, reports, result.imputed_features)
            except ValueError as exc:
                counters.policy_errors += 1
                self.metrics.decode_errors.labels(kind="reports").inc()
                log.warning("cell %s: KPM reports refused: %s", cell, exc)
                return
            counters.samples += outcome.learned.n_samples
            counters.abs_error_sum += float(np.sum(outcome.learned.abs_error))
            counters.advisory_periods += 1
            return
        self.metrics.reports_received.labels(path="kpm").inc()
        assert feed.cell_id is not None
        await self._decide_and_control(conn, node, cell, feed.cell_id, counters, reports, key,
                                       node.control_function)

    async def _decide_and_control(self, conn: E2Connection, node: _Node, cell: str, cell_id: int,
                                  counters: CellCounters, reports: LinkReports, period_index: int,
                                  ran_function_id: int) -> None:
        """Decide for one cell's reports, answer with a control (empty in mode off), then
        fine-tune: the control leaves before the learning pass runs."""
        ue, ri, cqi = _EMPTY, _EMPTY, _EMPTY
        start = time.perf_counter()
        pending = None
        if len(reports):
            try:
                pending = self.policy.decide(cell, reports)
            except ValueError as exc:  # e.g. a UE id twice: the whole report is unusable
                counters.policy_errors += 1
                self.metrics.decode_errors.labels(kind="reports").inc()
                log.warning("cell %s: reports of period %d refused: %s", cell, period_index, exc)
            else:
                dec = pending.decisions
                if dec.control:
                    ue, ri, cqi = dec.ue_id, dec.rank, dec.cqi
        try:
            header, message = encode_control(cell_id, ue, ri, cqi, 1, period_index)
        except ValueError as exc:
            self.totals.control_encode_errors += 1
            log.error("cell %s: decisions not encodable (%s); answering with an empty control", cell, exc)
            header, message = encode_control(cell_id, _EMPTY, _EMPTY, _EMPTY, 1, period_index)
        endpoint = conn.endpoint
        assert isinstance(endpoint, RicEndpoint)
        rid, out = endpoint.send_control(ran_function_id, header, message, conn.now())
        node.controls[rid] = cell
        counters.controls_sent += 1
        self.metrics.control_sends.inc()
        counters.latencies_s.append(time.perf_counter() - start)
        await conn.apply(out)
        if pending is not None:
            result = self.policy.finish(pending)
            counters.last_ue_ids = reports.ue_id
            counters.samples += result.learned.n_samples
            counters.abs_error_sum += float(np.sum(result.learned.abs_error))
            if self.frozen is not None:
                self._track_frozen(cell, counters, reports, pending.decisions.rank, pending.decisions.cqi)

    def _track_frozen(
        self, cell: str, counters: CellCounters, reports: LinkReports, rank: np.ndarray, cqi: np.ndarray
    ) -> None:
        """Score last period's frozen predictions against this period's BLER, then predict anew."""
        assert self.frozen is not None
        state = self._frozen_state.get(cell)
        if state is not None and state.ue_id.size:
            label, valid = bler_label(reports.n_ack, reports.n_nack)
            pos = np.minimum(np.searchsorted(state.ue_id, reports.ue_id), state.ue_id.size - 1)
            have = valid & (state.ue_id[pos] == reports.ue_id)
            err = np.abs(state.pred[pos[have]] - label[have])
            counters.frozen_samples += int(err.size)
            counters.frozen_abs_error_sum += float(err.sum())
        pred = self.frozen.predict_many(build_features(reports, rank, cqi))
        order = np.argsort(reports.ue_id, kind="stable")
        self._frozen_state[cell] = _FrozenBaseline(reports.ue_id[order], np.asarray(pred)[order])

    def _on_control_answer(self, node: _Node, rid: E.RicRequestId, outcome: bytes | None, cause: str | None) -> None:
        cell = node.controls.pop(rid, None)
        if cell is None:
            return
        counters = self._cell(cell)
        if cause is None:
            counters.controls_acked += 1
        else:
            counters.controls_failed += 1
            self.metrics.control_failures.labels(reason=cause).inc()
            log.warning("cell %s: control %s failed: %s", cell, rid, cause)
        if outcome:
            try:
                result = decode_control_outcome(outcome)
            except E2DecodeError as exc:
                log.warning("cell %s: control outcome undecodable: %s", cell, exc)
                return
            rejected = ~result.accepted
            counters.ue_decisions_rejected += int(np.count_nonzero(rejected))
            tuner = self.policy.cells.get(cell)
            if tuner is not None and rejected.any():  # never applied: nothing to learn from
                tuner.forget(result.ue_id[rejected])
        elif cause is not None:
            tuner = self.policy.cells.get(cell)
            if tuner is not None and counters.last_ue_ids.size:
                tuner.forget(counters.last_ue_ids)

    def _on_timeout(self, node: _Node, event: RequestTimedOut) -> None:
        self.totals.request_timeouts += 1
        if event.kind == "control" and isinstance(event.key, E.RicRequestId):
            cell = node.controls.pop(event.key, None)
            if cell is not None:
                self._cell(cell).controls_timed_out += 1
                self.metrics.control_failures.labels(reason="timeout").inc()
        log.warning("node %s: %s request %s timed out", node.name, event.kind, event.key)

    # -- statistics
    def stats(self) -> dict[str, Any]:
        """Per-cell statistics (policy state + E2 counters) and totals, JSON-ready."""
        policy = self.policy.stats()
        cells: dict[str, Any] = {}
        for cell in sorted(set(policy) | set(self.cells)):
            entry: dict[str, Any] = {"mode": self.policy.mode_of(cell).value}
            entry.update(policy.get(cell, {}))
            entry.update(self._cell(cell).summary() if cell in self.cells else {})
            cells[cell] = entry
        nodes = dict(self.node_summaries)
        nodes.update({n.name: n.describe() for n in self.nodes.values()})
        return {
            "cells": cells,
            "nodes": nodes,
            "advisory": {name: json.loads(a.table_json()) for name, a in sorted(self.advisories.items())},
            "totals": asdict(self.totals),
            "live_nodes": len(self.nodes),
            "subscriptions": sum(len(n.subscriptions) for n in self.nodes.values()),
            "health": self.runtime.health.snapshot(),
            "uptime_s": time.time() - self.started,
        }


# --------------------------------------------------------------------------- service


class LocalXapp:
    """Runs a :class:`LocalE2Termination` behind an :class:`E2Server` until :meth:`stop`."""

    def __init__(
        self,
        runtime: XappRuntime,
        host: str = "0.0.0.0",
        port: int = E2_SCTP_PORT,
        transport: str = "auto",
        frozen_baseline: bool = False,
        request_timeout_s: float = 5.0,
        kpm_period_ms: int = DEFAULT_KPM_PERIOD_MS,
    ) -> None:
        self.runtime = runtime
        self.termination = LocalE2Termination(runtime, frozen_baseline, request_timeout_s, kpm_period_ms)
        self.server = E2Server(
            self.termination.new_endpoint, self.termination.on_event, host=host, port=port, transport=transport,
            on_connect=self.termination.on_connect, on_disconnect=self.termination.on_disconnect,
        )
        self._stop = asyncio.Event()
        self._stats_json = b"{}"
        self._advisory_json = b'{"nodes": {}}'

    def _stats_response(self, _body: bytes) -> tuple[int, str, bytes]:
        return 200, "application/json", self._stats_json

    def _advisory_response(self, _body: bytes) -> tuple[int, str, bytes]:
        return 200, "application/json", self._advisory_json

    def publish_stats(self) -> dict[str, Any]:
        """Refresh the JSON the HTTP thread serves (built on the event loop, read atomically).

        ``RECOMMENDATIONS_PATH`` serves ``{"nodes": {node: AdvisoryMode table}}``.
        """
        stats = self.termination.stats()
        self._stats_json = json.dumps(stats, sort_keys=True).encode()
        self._advisory_json = json.dumps({"nodes": stats["advisory"]}, sort_keys=True).encode()
        return stats

    async def run(self, ready_file: str | None = None, on_ready: Any = None) -> dict[str, Any]:
        """Serve until :meth:`stop`; returns the final statistics."""
        await self.server.start()
        if self.runtime.http is not None:
            self.runtime.http.add_route("GET", STATS_PATH, self._stats_response)
            self.runtime.http.add_route("GET", RECOMMENDATIONS_PATH, self._advisory_response)
        self.runtime.health.set_alive(True)
        self.runtime.health.set_loops_up(True)  # E2 server listening, HTTP serving: ready
        info = {
            "host": self.server.host, "port": self.server.port, "transport": self.server.transport,
            "http_port": self.runtime.http.port if self.runtime.http is not None else 0,
        }
        log.info("E2 termination listening on %s:%d (%s)", info["host"], info["port"], info["transport"])
        print(f"lighttune-xapp: listening for E2 on {info['host']}:{info['port']} ({info['transport']})",
              file=sys.stderr, flush=True)
        if ready_file:
            tmp = Path(ready_file).with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(ready_file)
        try:
            while not self._stop.is_set():
                self.publish_stats()
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=0.5)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.runtime.health.set_loops_up(False)
            await self.server.close()
            await asyncio.sleep(0)
        return self.publish_stats()

    def stop(self) -> None:
        """Ask :meth:`run` to return (signal-safe when called on the loop)."""
        self._stop.set()


def build_parser() -> argparse.ArgumentParser:
    """The ``lighttune-xapp --mode local`` command line."""
    p = argparse.ArgumentParser(
        prog="lighttune-xapp --mode local",
        description="LightTune xApp terminating E2 itself: accepts E2 nodes (e.g. 'e2sim run'), subscribes "
        "to the LT-LINKADAPT service model, answers every report with RI/CQI control and fine-tunes "
        "one BLER model per cell.",
        epilog="Example: lighttune-xapp --mode local --listen 127.0.0.1:36421 --transport tcp "
        "--cell-mode 1=off --cell-mode 2=ri_cqi --stats-out stats.json",
    )
    p.add_argument("--listen", default=f"0.0.0.0:{E2_SCTP_PORT}", metavar="HOST:PORT",
                   help=f"E2 listening address (default 0.0.0.0:{E2_SCTP_PORT}; port 0 picks a free one)")
    p.add_argument("--transport", choices=("auto", "sctp", "tcp"), default="auto",
                   help="E2 transport: SCTP, TCP with 4-byte length framing, or auto (SCTP if the kernel has it)")
    p.add_argument("--config", metavar="FILE", help="xApp descriptor (default: $CONFIG_FILE, else the checkout's, else the one shipped "
                   "in the package)")
    p.add_argument("--tuner-mode", choices=("off", "cqi", "ri_cqi"),
                   help="mode of every cell (default: the descriptor's tunerMode)")
    p.add_argument("--cell-mode", action="append", default=[], metavar="CELL=MODE",
                   help="per-cell mode override, repeatable, e.g. --cell-mode 1=off --cell-mode 2=cqi")
    p.add_argument("--model", metavar="FILE", help="offline model file (.ltm); default: the descriptor's modelPath")
    p.add_argument("--store-dir", metavar="DIR", help="persist fine-tuned models in DIR (default: in memory)")
    p.add_argument("--http-port", type=int, default=0,
                   help="health/metrics/stats HTTP port (0 = off, default 0)")
    p.add_argument("--http-host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--frozen-baseline", action="store_true",
                   help="also measure the prediction error of the never fine-tuned offline model")
    p.add_argument("--request-timeout", type=float, default=5.0, metavar="S",
                   help="answer deadline of subscriptions and controls, s (default 5)")
    p.add_argument("--report-path", choices=("service_model", "kpm"),
                   help="report path of a node offering both LT-LINKADAPT and E2SM-KPM (default: the "
                   "descriptor's reportPath); control always goes through LT-LINKADAPT")
    p.add_argument("--min-label-tx", type=int, metavar="N",
                   help="fewest HARQ first transmissions of a period to fine-tune on (default: the descriptor's "
                        "minLabelTx, 10); 1 learns from every period")
    p.add_argument("--kpm-period", type=int, default=DEFAULT_KPM_PERIOD_MS, metavar="MS",
                   help="KPM reporting period of a node offering E2SM-KPM only, ms (default %(default)s)")
    p.add_argument("--stats-out", metavar="FILE.json", help="write per-cell statistics to this file at exit")
    p.add_argument("--ready-file", metavar="FILE.json",
                   help="write {host, port, transport, http_port} here once listening")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging threshold on stderr (default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lighttune-xapp --mode local``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port = parse_host_port(args.listen)
        overrides = [parse_cell_mode(s) for s in args.cell_mode]
        if args.request_timeout <= 0:
            raise ValueError(f"--request-timeout must be > 0, got {args.request_timeout}")
        if args.kpm_period < 1:
            raise ValueError(f"--kpm-period must be >= 1 ms, got {args.kpm_period}")
        descriptor = read_descriptor(args.config)
        if args.report_path is not None:
            descriptor = dict(descriptor, controls=dict(descriptor.get("controls", {}), reportPath=args.report_path))
        if args.min_label_tx is not None:
            descriptor = dict(descriptor, controls=dict(descriptor.get("controls", {}), minLabelTx=args.min_label_tx))
        config = local_config(
            descriptor, mode=args.tuner_mode, store_dir=args.store_dir,
            model_path=args.model, http_port=args.http_port,
        )
        runtime = build_runtime(config, serve_http=args.http_port > 0, http_host=args.http_host)
    except (ValueError, OSError) as exc:  # ConfigError is a ValueError
        field_name = exc.field if isinstance(exc, ConfigError) else ""
        print(f"lighttune-xapp: {exc}" + (f" (field {field_name})" if field_name and field_name not in str(exc) else ""),
              file=sys.stderr)
        return 2
    for cell, mode in overrides:
        runtime.policy.set_cell_mode(cell, mode)
    keep_freed_heap_memory()
    freeze_startup_objects()
    app = LocalXapp(runtime, host, port, args.transport, args.frozen_baseline, args.request_timeout, args.kpm_period)

    async def serve() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app.stop)
        return await app.run(args.ready_file)

    code = 0
    stats: dict[str, Any] = {}
    try:
        stats = asyncio.run(serve())
    except OSError as exc:
        print(f"lighttune-xapp: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        code = 2
    finally:
        runtime.close()
        if not stats:
            stats = app.termination.stats()
        stats["models_saved_to"] = runtime.config.store_backend
        if args.stats_out:
            Path(args.stats_out).write_text(json.dumps(stats, indent=1, sort_keys=True))
        log.info("stopped; fine-tuned models saved (%s store)", runtime.config.store_backend)
    return code


if __name__ == "__main__":
    sys.exit(main())
