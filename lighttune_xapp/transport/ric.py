"""RIC mode: the xApp inside the OSC near-RT RIC (RMR, Subscription Manager REST, SDL, A1).

This is the only module that imports ``ricxappframe`` (it loads the native RMR library,
``librmr_si.so``, at import time); the import happens inside :func:`run`, so ``--help``
and the message handling below work without it.

Message flow (message type numbers in :mod:`lighttune_xapp.transport.rmr_types`):

- ``RIC_INDICATION`` (12050) from E2 Termination, RMR SubId = the subscription's E2 event
  instance id, MEID = the E2 node's RAN name: E2AP decode -> LT-LINKADAPT decode ->
  ``policy.on_reports(cell, reports)``; when the decisions are to be sent, the service
  model's control header/message go into an E2AP RIC Control Request carrying the
  indication's RIC request id (requestor and instance of the subscription) and RAN function
  id, sent as ``RIC_CONTROL_REQ`` (12040) in a buffer allocated with the node's MEID (the
  routing manager routes it to the node's E2T by MEID; ``RMRXapp.rmr_send`` cannot set one).
- ``RIC_INDICATION`` of one of the node's E2SM-KPM functions: the KPM path of
  :mod:`lighttune_xapp.transport.ric_kpm` (the E2 manager's record of the node says what it
  offers; LT-LINKADAPT control on a node that has it, advisory mode on a KPM-only node). An
  indication for a RAN function the node was not subscribed to is counted
  (``decode_errors{kind="ran_function"}``) and dropped.
- ``RIC_CONTROL_ACK`` / ``RIC_CONTROL_FAILURE`` (12041/12042): decoded and counted
  (per-UE rejections of an acknowledged control count as control failures).
- ``RIC_SUB_RESP`` / ``RIC_SUB_FAILURE`` / ``RIC_SUB_DEL_RESP``: the routing manager routes
  them to subscribers; subscriptions are run through REST here, so they are only counted.
- ``A1_POLICY_REQ`` (20010): the per-cell mode policy (schema ``xapp-descriptor/a1-policy-type.json``),
  answered with ``A1_POLICY_RESP`` (20011) by return-to-sender, ``policy_type_id`` as a JSON
  number (the A1 mediator sends it as a string but reads a number back).

Every received RMR buffer is freed in a ``finally`` on every path; a handler error is
counted and logged, never raised into ricxappframe's dispatch loop.

Cells: in RIC mode a cell is named ``<MEID>/<NR cell identity>`` (e.g. ``gnb-1/4097``), so
two E2 nodes never share a model; A1 policies use the same names.

Readiness and stats: ``/ric/v1/health/ready`` answers 200 once the model is loaded and
the RMR and HTTP loops run, *not* waiting for the subscriptions (the Subscription
Manager's confirming notification comes through the xApp's Kubernetes service, which
routes only to Ready pods). ``GET /ric/v1/stats`` reports the subscription state per
subscription key (:meth:`SubscriptionKeeper.state`; a node offering KPM and LT-LINKADAPT
may have two), each node's plan (``nodes``, :mod:`~lighttune_xapp.transport.ric_kpm`), the
health flags and the per-cell policy figures;
Prometheus has ``lighttune_subscriptions_up`` and ``lighttune_subscriptions{state}``.

Replicas: several instances share the E2 nodes (:mod:`lighttune_xapp.ownership` for the SDL
locks, membership, rendezvous hashing and epochs; :mod:`.replicas` for how ownership drives
subscriptions, models and control). A replica subscribes to, fine-tunes and controls only
the nodes it owns, and every control carries the node's epoch in the LT-LINKADAPT control
header (``owner_epoch``). ``--replica-id`` / ``--lock-expiry`` set its id and the lock expiry.

Logging: the standard ``logging`` records of every module go to an mdclogpy ``Logger``
(one JSON line per entry on stdout) at the level given by ``--log-level`` (mdclogpy's own
default, ERROR, would hide the info lines).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lighttune_core.cell import Decisions
from lighttune_e2 import e2ap, service_model
from lighttune_e2.errors import E2Error
from lighttune_xapp.advisory import RECOMMENDATIONS_PATH
from lighttune_xapp.app import (
    XappRuntime,
    build_runtime,
    build_store,
    freeze_startup_objects,
    keep_freed_heap_memory,
    read_descriptor,
)
from lighttune_xapp.cell_cap import CellCap
from lighttune_xapp.config import TUNER_MODES, ConfigError, load_config
from lighttune_xapp.health import STATS_PATH
from lighttune_xapp.ownership import FencedStore, OwnershipManager, SdlCoordination
from lighttune_xapp.transport import rmr_types
from lighttune_xapp.transport.replicas import (
    DEFAULT_LOCK_EXPIRY_S,
    ReplicaGlue,
    ReplicaSubscriptionLog,
    default_replica_id,
)
from lighttune_xapp.transport.submgr import (
    DEFAULT_E2MGR_URL,
    DEFAULT_SUBMGR_URL,
    NOTIFICATION_PATH,
    E2ManagerClient,
    SubmgrClient,
    SubmgrError,
    SubscriptionKeeper,
    SubscriptionLog,
    node_of_key,
    subscription_params,
)

if TYPE_CHECKING:  # ric_kpm imports this module; run() imports it at start-up
    from lighttune_xapp.transport.ric_kpm import KpmRicService

__all__ = [
    "A1PolicyError",
    "CellModePolicy",
    "RicMessageHandler",
    "build_parser",
    "cell_key",
    "main",
    "parse_a1_policy",
    "run",
]

_log = logging.getLogger(__name__)

MAX_MEID_BYTES = 31
"""RMR's MEID field holds 32 bytes including the terminating NUL."""
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def cell_key(meid: str, nci: int) -> str:
    """The policy's name of a cell: ``"<MEID>/<NR cell identity in decimal>"``."""
    return f"{meid}/{int(nci)}"


# --------------------------------------------------------------------------- A1


class A1PolicyError(ValueError):
    """An A1 policy request that cannot be applied; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class CellModePolicy:
    """One instance of the per-cell mode policy type.

    Attributes:
        cells: (cell id, mode) pairs, modes in ``off`` | ``cqi`` | ``ri_cqi``.
        default_mode: mode of cells not listed, or None (the configured mode applies).
    """

    cells: tuple[tuple[str, str], ...]
    default_mode: str | None = None


def parse_a1_policy(instance: Any) -> CellModePolicy:
    """Validate a policy instance against the policy type's ``create_schema``.

    The checks are those of ``xapp-descriptor/a1-policy-type.json``: an object with only
    ``cells`` (required; unique objects with exactly ``cell_id``, 1..128 characters, and
    ``mode``) and ``default_mode``.

    Raises:
        A1PolicyError: naming the offending field (``payload.cells[2].mode`` ...).
    """
    if not isinstance(instance, dict):
        raise A1PolicyError("payload", "must be a JSON object")
    extra = sorted(set(instance) - {"cells", "default_mode"})
    if extra:
        raise A1PolicyError(f"payload.{extra[0]}", "is not a property of the policy type")
    default = instance.get("default_mode")
    if "default_mode" in instance and default not in TUNER_MODES:
        raise A1PolicyError("payload.default_mode", f"must be one of {list(TUNER_MODES)}, got {default!r}")
    if "cells" not in instance:
        raise A1PolicyError("payload.cells", "is required")
    cells = instance["cells"]
    if not isinstance(cells, list):
        raise A1PolicyError("payload.cells", "must be a list")
    pairs: list[tuple[str, str]] = []
    for i, item in enumerate(cells):
        where = f"payload.cells[{i}]"
        if not isinstance(item, dict):
            raise A1PolicyError(where, "must be an object")
        extra = sorted(set(item) - {"cell_id", "mode"})
        if extra:
            raise A1PolicyError(f"{where}.{extra[0]}", "is not a property of a cell entry")
        cell_id, mode = item.get("cell_id"), item.get("mode")
        if not isinstance(cell_id, str) or not 1 <= len(cell_id) <= 128:
            raise A1PolicyError(f"{where}.cell_id", f"must be a string of 1..128 characters, got {cell_id!r}")
        if mode not in TUNER_MODES:
            raise A1PolicyError(f"{where}.mode", f"must be one of {list(TUNER_MODES)}, got {mode!r}")
        if (cell_id, mode) in pairs:
            raise A1PolicyError("payload.cells", f"entry {i} repeats an earlier entry (uniqueItems)")
        pairs.append((cell_id, mode))
    return CellModePolicy(tuple(pairs), default)


# --------------------------------------------------------------------------- handling


@dataclass(frozen=True)
class OutgoingMessage:
    """An RMR message to send: type, payload and the MEID to route by (None: by type)."""

    mtype: int
    payload: bytes
    meid: str | None = None


class RicMessageHandler:
    """Turns received RMR payloads into policy calls and messages to send (no RMR here).

    Thread-safety: ``lock`` serialises every use of the policy and of the (stateful) E2AP
    codec; the RMR dispatch thread and the shutdown path both take it.

    Args:
        runtime: the xApp runtime (config, policy, metrics).
        ran_function_id: RAN function id of LT-LINKADAPT at the nodes.
        handler_id: ``handler_id`` of A1 responses (the xApp name).
        node_of_instance: RMR SubId -> MEID, for indications without a MEID.
    """

    def __init__(
        self,
        runtime: XappRuntime,
        ran_function_id: int,
        handler_id: str,
        node_of_instance: Callable[[int], str | None] = lambda _sub: None,
    ) -> None:
        from prometheus_client import Counter

        self.runtime = runtime
        self.ran_function_id = ran_function_id
        self.handler_id = handler_id
        self.node_of_instance = node_of_instance
        self.kpm: KpmRicService | None = None
        """Node plans and the KPM path (RIC mode sets it; without it every node is LT-LINKADAPT)."""
        self.lock = threading.RLock()
        self.owner_epoch: Callable[[str], int | None] = lambda _node: 0
        """Fencing token for controls to a node, None when this replica must not handle it
        (several replicas: ``OwnershipManager.epoch_for``); 0 = one instance, not fenced."""
        self.on_not_owner: Callable[[], None] = lambda: None
        self.cell_cap = CellCap(lambda: runtime.policy.config.max_cells_per_node, runtime.metrics)
        self.a1_instances: dict[str, CellModePolicy] = {}
        self._a1_cells: set[str] = set()
        registry = runtime.metrics.registry
        self.rmr_received = Counter(
            "rmr_messages_received", "RMR messages received by type", ["type"], namespace="lighttune",
            registry=registry,
        )
        self.rmr_send_failures = Counter(
            "rmr_send_failures", "RMR sends that failed by type", ["type"], namespace="lighttune", registry=registry
        )
        self.control_acks = Counter(
            "control_acks", "RIC control acknowledgements received", namespace="lighttune", registry=registry
        )
        self.subscription_failures = Counter(
            "subscription_failures", "Subscription POSTs that failed, by HTTP status (0 = no answer)", ["status"],
            namespace="lighttune", registry=registry,
        )
        self.a1_requests = Counter(
            "a1_policy_requests", "A1 policy requests by outcome", ["status"], namespace="lighttune",
            registry=registry,
        )

    @property
    def metrics(self) -> Any:
        """The runtime's :class:`~lighttune_xapp.metrics.XappMetrics`."""
        return self.runtime.metrics

    def count_received(self, mtype: int) -> None:
        """Count one received RMR message by its type name."""
        self.rmr_received.labels(type=rmr_types.message_type_name(mtype)).inc()

    # ------------------------------------------------------------------ E2
    def on_indication(
        self, payload: bytes, meid: str | None, sub_id: int, send: Callable[[OutgoingMessage], None] | None = None
    ) -> OutgoingMessage | None:
        """Handle one RIC_INDICATION payload; returns the control request to send, if any.

        With ``send``, the control request is handed to it as soon as it is encoded, before
        the policy fine-tunes on the period's outcomes (:meth:`LinkAdaptationPolicy.finish`),
        and the caller must not send the returned message again.
        """
        with self.lock:
            try:
                msg = e2ap.decode(payload)
            except E2Error as exc:
                self.metrics.decode_errors.labels(kind="e2ap").inc()
                _log.error("RIC_INDICATION from %s (SubId %d): %s", meid or "?", sub_id, exc)
                return None
            if not isinstance(msg, e2ap.RicIndication):
                self.metrics.decode_errors.labels(kind="e2ap").inc()
                _log.error("RIC_INDICATION from %s carries a %s", meid or "?", type(msg).__name__)
                return None
            node = meid or self.node_of_instance(sub_id)
            if not node:
                self.metrics.decode_errors.labels(kind="routing").inc()
                _log.error("indication with SubId %d has no MEID and matches no subscription", sub_id)
                return None
            if self.owner_epoch(node) is None:  # another replica owns the node: no decision, no learning
                self.on_not_owner()
                return None
            if self.kpm is not None and self.kpm.handles(node, msg.ran_function_id):
                return self.kpm.on_indication(msg, node, send)
            ours = (
                self.kpm.lt_report_functions(node, self.ran_function_id)
                if self.kpm is not None else frozenset({self.ran_function_id})
            )
            if msg.ran_function_id not in ours:
                self.metrics.decode_errors.labels(kind="ran_function").inc()
                _log.error("indication from %s for RAN function %d, not one it is subscribed to (%s)",
                           node, msg.ran_function_id, ",".join(map(str, sorted(ours))) or "-")
                return None
            try:
                header, reports, n_dropped = service_model.decode_indication(msg.header, msg.message)
            except E2Error as exc:
                self.metrics.decode_errors.labels(kind="sm").inc()
                _log.error("LT-LINKADAPT indication from %s: %s", node, exc)
                return None
            self.metrics.reports_received.labels(path="service_model").inc()
            if n_dropped:
                self.metrics.ue_reports_dropped.labels(reason="invalid").inc(n_dropped)
            cell = cell_key(node, header.cell_id)
            if not self.cell_cap.admit(node, cell):
                return None
            self._first_sight(cell)
            pending = self.runtime.policy.decide(cell, reports)
            try:
                out = self._control_for(msg, node, cell, header, pending.decisions)
                if out is not None and send is not None:
                    send(out)
            finally:
                self.runtime.policy.finish(pending)
            return out

    def _control_for(
        self, msg: e2ap.RicIndication, node: str, cell: str, header: Any, decisions: Decisions
    ) -> OutgoingMessage | None:
        """The RIC Control Request carrying a cell's decisions, or None when none is due."""
        if not decisions.control or len(decisions.ue_id) == 0:
            return None
        epoch = self.owner_epoch(node)  # checked again: the lease may have ended while deciding
        if epoch is None:
            self.on_not_owner()
            return None
        try:
            ctrl_header, ctrl_message = service_model.encode_control(
                header.cell_id, decisions.ue_id, decisions.rank, decisions.cqi, 1, header.period_index,
                owner_epoch=epoch,
            )
            request = e2ap.RicControlRequest(
                request_id=msg.request_id,
                ran_function_id=msg.ran_function_id,
                header=ctrl_header,
                message=ctrl_message,
                ack_request="ack",
            )
            return OutgoingMessage(rmr_types.RIC_CONTROL_REQ, e2ap.encode(request), node)
        except (E2Error, ValueError) as exc:
            self.metrics.control_failures.labels(reason="encode").inc()
            _log.error("cannot encode the control for cell %s: %s", cell, exc)
            return None

    def _first_sight(self, cell: str) -> None:
        policy = self.runtime.policy
        if cell in policy.cells:
            return
        default = next((p.default_mode for p in reversed(self.a1_instances.values()) if p.default_mode), None)
        if default is not None and cell not in policy.mode_overrides:
            policy.set_cell_mode(cell, default)
        model = policy.cell(cell).model
        digest = hashlib.sha256(model.to_bytes()).hexdigest()
        _log.info(
            "cell %s model: restore=%s n_updates=%d sha256=%s",
            cell, policy.restore_status.get(cell, ""), model.n_updates, digest,
        )

    def on_control_ack(self, payload: bytes) -> None:
        """Handle RIC_CONTROL_ACK: count it, and per-UE rejections it reports."""
        with self.lock:
            try:
                msg = e2ap.decode(payload)
            except E2Error as exc:
                self.metrics.decode_errors.labels(kind="e2ap").inc()
                _log.error("RIC_CONTROL_ACK: %s", exc)
                return
            if not isinstance(msg, e2ap.RicControlAcknowledge):
                self.metrics.decode_errors.labels(kind="e2ap").inc()
                _log.error("RIC_CONTROL_ACK carries a %s", type(msg).__name__)
                return
            self.control_acks.inc()
            if msg.outcome:
                try:
                    outcome = service_model.decode_control_outcome(msg.outcome)
                except E2Error as exc:
                    self.metrics.decode_errors.labels(kind="sm").inc()
                    _log.error("RIC_CONTROL_ACK outcome: %s", exc)
                    return
                rejected = int((~outcome.accepted).sum())
                if rejected:
                    self.metrics.control_failures.labels(reason="ue_rejected").inc(rejected)

    def on_control_failure(self, payload: bytes) -> None:
        """Handle RIC_CONTROL_FAILURE: count and log its cause."""
        with self.lock:
            try:
                msg = e2ap.decode(payload)
            except E2Error as exc:
                self.metrics.decode_errors.labels(kind="e2ap").inc()
                _log.error("RIC_CONTROL_FAILURE: %s", exc)
                return
            if not isinstance(msg, e2ap.RicControlFailure):
                self.metrics.decode_errors.labels(kind="e2ap").inc()
                _log.error("RIC_CONTROL_FAILURE carries a %s", type(msg).__name__)
                return
            self.metrics.control_failures.labels(reason="e2_failure").inc()
            _log.warning("control refused by the node: %s/%s", msg.cause.group, msg.cause.value)

    # ------------------------------------------------------------------ A1
    def on_a1_request(self, payload: bytes, rmr_sub_id: int) -> bytes:
        """Handle A1_POLICY_REQ; returns the A1_POLICY_RESP payload.

        CREATE/UPDATE apply the instance (``policy.set_cell_mode`` per listed cell, the
        default mode for the other known and future cells); DELETE clears what the
        instance set. Invalid requests get status ERROR and are logged with the field.
        """
        config_type = self.runtime.watcher.config.a1_policy_type_id
        type_id: int = config_type if rmr_sub_id <= 0 else int(rmr_sub_id)
        instance_id = ""
        try:
            request = json.loads(payload.decode("utf-8"))
            if not isinstance(request, dict):
                raise A1PolicyError("request", "must be a JSON object")
            raw_type = request.get("policy_type_id")
            try:
                type_id = int(raw_type)  # the A1 mediator sends a decimal string
            except (TypeError, ValueError):
                raise A1PolicyError("policy_type_id", f"must be an integer, got {raw_type!r}") from None
            instance_id = request.get("policy_instance_id")
            if not isinstance(instance_id, str) or not instance_id:
                bad, instance_id = instance_id, ""
                raise A1PolicyError("policy_instance_id", f"must be a non-empty string, got {bad!r}")
            if type_id != config_type:
                raise A1PolicyError("policy_type_id", f"{type_id} is not this xApp's policy type {config_type}")
            operation = request.get("operation")
            if operation in ("CREATE", "UPDATE"):
                body = request.get("payload")
                if isinstance(body, str):
                    try:
                        body = json.loads(body)
                    except json.JSONDecodeError as exc:
                        raise A1PolicyError("payload", f"is not JSON: {exc}") from None
                policy = parse_a1_policy(body)
                with self.lock:
                    self.a1_instances.pop(instance_id, None)
                    self.a1_instances[instance_id] = policy
                    self._apply_a1()
                status = "OK"
            elif operation == "DELETE":
                with self.lock:
                    self.a1_instances.pop(instance_id, None)
                    self._apply_a1()
                status = "DELETED"
            else:
                raise A1PolicyError("operation", f"must be CREATE, UPDATE or DELETE, got {operation!r}")
            _log.info("A1 policy %s/%s %s: %s", type_id, instance_id, operation, status)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.metrics.decode_errors.labels(kind="a1").inc()
            _log.error("A1 policy request is not JSON: %s", exc)
            status = "ERROR"
        except A1PolicyError as exc:
            _log.error("A1 policy request %s/%s rejected: %s", type_id, instance_id or "?", exc)
            status = "ERROR"
        self.a1_requests.labels(status=status).inc()
        response = {
            "policy_type_id": type_id,
            "policy_instance_id": instance_id,
            "handler_id": self.handler_id,
            "status": status,
        }
        return json.dumps(response).encode("utf-8")

    def _apply_a1(self) -> None:
        """Recompute the per-cell overrides from the live instances (later ones win)."""
        policy = self.runtime.policy
        explicit: dict[str, str] = {}
        default: str | None = None
        for instance in self.a1_instances.values():
            explicit.update(dict(instance.cells))
            default = instance.default_mode or default
        targets = set(explicit) | self._a1_cells | set(policy.cells)
        for cell in sorted(targets):
            mode = explicit.get(cell, default)
            policy.set_cell_mode(cell, mode)
        self._a1_cells = set(explicit)


# --------------------------------------------------------------------------- logging


class MdcLogHandler(logging.Handler):
    """Forwards standard ``logging`` records to an mdclogpy ``Logger`` (same level numbers)."""

    def __init__(self, mdc_logger: Any) -> None:
        super().__init__()
        self.mdc_logger = mdc_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = f"{record.name}: {self.format(record)}"
            level = record.levelno
            if level >= logging.ERROR:
                self.mdc_logger.error(message)
            elif level >= logging.WARNING:
                self.mdc_logger.warning(message)
            elif level >= logging.INFO:
                self.mdc_logger.info(message)
            else:
                self.mdc_logger.debug(message)
        except Exception:  # logging must never take the xApp down
            self.handleError(record)


def setup_logging(level_name: str) -> Any:
    """Route the root logger through mdclogpy at ``level_name``; returns the mdclogpy Logger."""
    from mdclogpy import Level, Logger

    level = getattr(Level, level_name)
    mdc = Logger(name="lighttune-xapp", level=level)
    mdc.set_level(level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, MdcLogHandler):
            root.removeHandler(handler)
    root.addHandler(MdcLogHandler(mdc))
    root.setLevel(int(level))
    return mdc


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """The ``lighttune-xapp --mode ric`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="lighttune-xapp --mode ric",
        description=(
            "Run the LightTune xApp inside the OSC near-RT RIC: E2 indications and control over "
            "RMR, subscriptions through the Subscription Manager's REST API, fine-tuned models "
            "in SDL (Redis at $DBAAS_SERVICE_HOST:$DBAAS_SERVICE_PORT), A1 per-cell mode policy."
        ),
        epilog=(
            "Environment: CONFIG_FILE (descriptor), DBAAS_SERVICE_HOST/PORT (SDL), RMR_SEED_RT or "
            "RMR_RTG_SVC (RMR routes), SUBMGR_URL, E2MGR_URL, LOG_LEVEL."
        ),
    )
    parser.add_argument(
        "--config", metavar="FILE", default=None,
        help="xApp descriptor (config-file.json); default $CONFIG_FILE",
    )
    parser.add_argument(
        "--rmr-port", type=int, default=None, metavar="PORT",
        help="RMR data port to listen on; default the descriptor's rmrdata port (controls.ports.rmrData)",
    )
    parser.add_argument(
        "--submgr-url", default=os.environ.get("SUBMGR_URL", DEFAULT_SUBMGR_URL), metavar="URL",
        help=f"Subscription Manager REST server (default $SUBMGR_URL or {DEFAULT_SUBMGR_URL})",
    )
    parser.add_argument(
        "--e2mgr-url", default=os.environ.get("E2MGR_URL", DEFAULT_E2MGR_URL), metavar="URL",
        help=f"E2 manager REST server for the node list; '' to use only the configured nodes "
        f"(default $E2MGR_URL or {DEFAULT_E2MGR_URL})",
    )
    parser.add_argument(
        "--e2-nodes", default=None, metavar="MEID[,MEID...]",
        help="E2 nodes (RAN names) to subscribe to, added to the descriptor's controls.e2Nodes",
    )
    parser.add_argument(
        "--client-host", default=os.environ.get("SUBSCRIPTION_CLIENT_HOST") or None, metavar="HOST",
        help="host the Subscription Manager notifies (default $SUBSCRIPTION_CLIENT_HOST, which the chart "
        "sets to the pod's own service-<pod>-http.<ns>, else service-<ns>-<name>-http.<ns>, <ns> = "
        "$APP_NAMESPACE, set by the chart to the release namespace, else ricxapp)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=5.0, metavar="SECONDS",
        help="how often to re-read the E2 node list and retry missing subscriptions (default 5)",
    )
    parser.add_argument(
        "--replica-id", default=None, metavar="NAME",
        help="this replica's id among the replicas sharing the E2 nodes (default $REPLICA_ID, $POD_NAME, "
        "else <host>-<pid>)",
    )
    parser.add_argument(
        "--lock-expiry", type=float, default=float(os.environ.get("LOCK_EXPIRY_S", DEFAULT_LOCK_EXPIRY_S)),
        metavar="SECONDS",
        help="expiry of the SDL ownership locks: a dead replica's nodes are taken over after this plus "
        f"one subscription round trip (default $LOCK_EXPIRY_S or {DEFAULT_LOCK_EXPIRY_S:g})",
    )
    parser.add_argument(
        "--kpm-period", type=int, default=os.environ.get("KPM_PERIOD_MS", "80"), metavar="MS",
        help="E2SM-KPM reporting period of a node offering KPM without LT-LINKADAPT, ms (default "
        "$KPM_PERIOD_MS or 80; a node with LT-LINKADAPT reports at its CSI-RS period)",
    )
    parser.add_argument(
        "--log-level", choices=_LOG_LEVELS, default=os.environ.get("LOG_LEVEL", "INFO").upper(),
        help="log level of the mdclogpy output (default $LOG_LEVEL or INFO)",
    )
    return parser


def _configured_nodes(descriptor: Mapping[str, Any], extra: str | None) -> list[str]:
    controls = descriptor.get("controls", {})
    nodes = controls.get("e2Nodes", []) if isinstance(controls, Mapping) else []
    out = [n for n in nodes if isinstance(n, str) and n]
    if extra:
        out += [n.strip() for n in extra.split(",") if n.strip()]
    for meid in out:
        if len(meid.encode("utf-8")) > MAX_MEID_BYTES:
            raise ConfigError("controls.e2Nodes", f"{meid!r} is longer than RMR's {MAX_MEID_BYTES}-byte MEID")
    return sorted(set(out))


def default_client_host(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The xApp's http service as the chart names it: ``service-<ns>-<name>-http.<ns>``.

    ``<ns>`` is ``$APP_NAMESPACE`` (the chart sets it to the release namespace), else ``ricxapp``.
    """
    env = os.environ if environ is None else environ
    namespace = env.get("APP_NAMESPACE") or "ricxapp"
    return f"service-{namespace}-{name}-http.{namespace}"


def main(argv: list[str] | None = None) -> int:
    """Console entry of RIC mode; returns the process exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return run(args)
    except ConfigError as exc:
        _log.error("cannot start: %s", exc)
        code = 2
    except Exception:
        _log.exception("RIC mode failed")
        code = 1
    # ricxappframe's RMR and registration threads are not daemons: leave without them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(args: argparse.Namespace) -> int:
    """Start the xApp in RIC mode and serve until SIGTERM/SIGINT; returns the exit code."""
    descriptor = read_descriptor(args.config)
    config = load_config(descriptor)
    nodes = _configured_nodes(descriptor, args.e2_nodes)
    rmr_port = args.rmr_port if args.rmr_port is not None else config.rmr_data_port
    if args.poll_interval <= 0:
        raise ConfigError("--poll-interval", f"must be > 0, got {args.poll_interval}")

    from ricsdl.exceptions import SdlException
    from ricsdl.syncstorage import SyncStorage

    from lighttune_xapp.store import SdlStore, StoreError

    try:
        storage = SyncStorage()
    except SdlException as exc:
        raise ConfigError("DBAAS_SERVICE_HOST", f"cannot open SDL: {exc}") from exc
    # E2 nodes are shared among replicas through SDL locks (lighttune_xapp.ownership)
    replica_id = args.replica_id or default_replica_id()
    if not args.lock_expiry > 0:
        raise ConfigError("--lock-expiry", f"must be > 0, got {args.lock_expiry}")
    manager = OwnershipManager(
        SdlCoordination(storage, config.store_namespace, (SdlException,)), replica_id, args.lock_expiry, list
    )
    try:
        inner = SdlStore(config.store_namespace, storage=storage) if config.store_backend == "sdl" else None
        store = FencedStore(inner if inner is not None else build_store(config), manager.may_write)
    except StoreError as exc:
        raise ConfigError("controls.store", str(exc)) from exc
    sub_log: SubscriptionLog = ReplicaSubscriptionLog(storage, config.store_namespace, replica_id, (SdlException,))
    try:
        runtime = build_runtime(config, store=store, serve_http=True)
    except StoreError as exc:
        raise ConfigError("controls.store", str(exc)) from exc
    assert runtime.http is not None
    keep_freed_heap_memory()
    freeze_startup_objects()

    handler = RicMessageHandler(
        runtime, service_model.DEFAULT_RAN_FUNCTION_ID, config.name or "lighttune-xapp",
    )
    client_host = args.client_host or default_client_host(config.name or "lighttune-xapp")
    e2mgr = E2ManagerClient(args.e2mgr_url) if args.e2mgr_url else None
    kpm = _kpm_service(handler, e2mgr, storage, config.store_namespace, args.kpm_period, (SdlException,))

    def params_for(key: str) -> dict[str, Any]:
        cfg = runtime.watcher.config
        sub = kpm.subscription(key)
        return subscription_params(
            meid=sub.meid, ran_function_id=sub.ran_function_id, client_host=client_host,
            http_port=cfg.http_port, rmr_port=rmr_port, event_trigger=sub.event_trigger,
            action_definition=sub.action_definition, action_id=sub.action_id, action_type=sub.action_type,
            subsequent_action=sub.subsequent_action,
        )

    def on_post_error(meid: str, exc: SubmgrError) -> None:
        handler.subscription_failures.labels(status=str(exc.status)).inc()

    keeper = SubscriptionKeeper(
        SubmgrClient(args.submgr_url),
        params_for,
        sub_log,
        configured_nodes=nodes,
        e2mgr=e2mgr,
        on_ready=runtime.health.set_subscriptions_up,
        on_post_error=on_post_error,
        expand=kpm.expand,
    )
    handler.node_of_instance = lambda sub: _node_of_subscription(keeper, sub)
    kpm.instance_of = keeper.book.instance_of
    glue = ReplicaGlue(manager, handler, keeper, runtime.metrics.registry)
    handler.on_not_owner = glue.count_dropped
    runtime.http.add_route("POST", NOTIFICATION_PATH, keeper.on_notification_body)
    runtime.http.add_route("GET", RECOMMENDATIONS_PATH, kpm.recommendations_response)
    runtime.http.add_route("GET", STATS_PATH, lambda _body: ric_stats_response(runtime, handler, keeper, glue))
    bind_subscription_gauges(runtime.metrics, keeper)

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        _log.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    adapter = _RmrAdapter(handler, keeper, args.e2_nodes)
    xapp = adapter.start(rmr_port)
    # RMR dispatching and HTTP serving: ready now, before any subscription (the
    # notification that confirms one reaches only a Ready pod's service)
    runtime.health.set_loops_up(True)
    _log.info(
        "RIC mode up: RMR port %d, submgr %s, E2 manager %s, configured nodes %s, replica %s",
        rmr_port, args.submgr_url, args.e2mgr_url or "-", ",".join(nodes) or "-", replica_id,
    )
    try:
        keeper.start()
        glue.start()
        next_poll = 0.0
        tick = min(0.25, config.checkpoint_interval_s / 2)
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_poll:
                keeper.poll()
                next_poll = now + args.poll_interval
            with handler.lock:  # save fine-tuning even when no report arrives
                runtime.policy.checkpointer.poll(time.monotonic())
            kpm.poll()  # the latest advisory tables reach SDL even when no report follows
            stop.wait(tick)
    finally:
        runtime.health.set_loops_up(False)
        adapter.stopping = True
        glue.stop()  # handover: checkpoint, unsubscribe and release every owned node
        deleted = keeper.shutdown()
        _log.info("deleted subscriptions %s", ", ".join(deleted) or "-")
        kpm.flush()
        with handler.lock:
            runtime.close()
        xapp.stop()
        _log.info("stopped")
    return 0


def _kpm_service(
    handler: RicMessageHandler, e2mgr: E2ManagerClient | None, storage: Any, namespace: str, kpm_period_ms: int,
    sdl_errors: tuple[type[BaseException], ...],
) -> KpmRicService:
    """The node plans / KPM path of ``handler``, advisory tables published in SDL ``namespace``."""
    from lighttune_xapp.transport.ric_kpm import KpmRicService, SdlAdvisoryBoard

    if kpm_period_ms < 1:
        raise ConfigError("--kpm-period", f"must be >= 1 ms, got {kpm_period_ms}")
    kpm = KpmRicService(
        handler.runtime, handler.lock, handler.cell_cap, handler._first_sight, e2mgr=e2mgr,
        board=SdlAdvisoryBoard(storage, namespace, sdl_errors), kpm_period_ms=kpm_period_ms,
    )
    handler.kpm = kpm
    return kpm


def _node_of_subscription(keeper: SubscriptionKeeper, sub_id: int) -> str | None:
    """The node whose confirmed subscription has E2 instance id ``sub_id`` (RMR SubId)."""
    key = keeper.book.node_of_instance(sub_id)
    return None if key is None else node_of_key(key)


def bind_subscription_gauges(metrics: Any, keeper: SubscriptionKeeper) -> None:
    """Make ``lighttune_subscriptions{state=wanted|requested|confirmed}`` read ``keeper`` at scrape time."""
    for state in ("wanted", "requested", "confirmed"):
        metrics.subscriptions.labels(state=state).set_function(lambda s=state: float(keeper.state()[s]))


def ric_stats_response(
    runtime: XappRuntime, handler: RicMessageHandler, keeper: SubscriptionKeeper, glue: ReplicaGlue | None = None
) -> tuple[int, str, bytes]:
    """``GET /ric/v1/stats`` in RIC mode: health flags, subscription state, per-cell policy stats,
    node ownership."""
    with handler.lock:
        cells = runtime.policy.stats()
    body = {
        "health": runtime.health.snapshot(),
        "subscriptions": keeper.state(),
        "cells": cells,
        "cells_refused": dict(handler.cell_cap.refused),
    }
    if handler.kpm is not None:
        body["nodes"] = handler.kpm.describe()
    if glue is not None:
        body["ownership"] = glue.state()
    return 200, "application/json", json.dumps(body, sort_keys=True, default=str).encode()


class _RmrAdapter:
    """ricxappframe glue: RMRXapp, handler registration, sending with a MEID."""

    def __init__(self, handler: RicMessageHandler, keeper: SubscriptionKeeper, extra_nodes: str | None) -> None:
        self.handler = handler
        self.keeper = keeper
        self.extra_nodes = extra_nodes
        self.stopping = False
        self.xapp: Any = None

    def start(self, rmr_port: int) -> Any:
        """Create the RMRXapp (waits for a route table), register handlers, start dispatching."""
        from ricxappframe.rmr import rmr
        from ricxappframe.xapp_frame import RMRXapp

        self._rmr = rmr

        def post_init(xapp: Any) -> None:
            from mdclogpy import Level

            # ricxappframe's own logger defaults to ERROR; follow --log-level.
            xapp.logger.set_level(Level(logging.getLogger().level))
            self.xapp = xapp

        self.xapp = RMRXapp(
            self._on_other, config_handler=self._on_config, rmr_port=rmr_port, post_init=post_init,
        )
        # RMRXapp calls post_init before it creates its dispatch table, so the callbacks
        # are registered here, after construction and before the dispatch loop starts.
        for mtype, fn in (
            (rmr_types.RIC_INDICATION, self._on_indication),
            (rmr_types.RIC_CONTROL_ACK, self._on_control_ack),
            (rmr_types.RIC_CONTROL_FAILURE, self._on_control_failure),
            (rmr_types.A1_POLICY_REQ, self._on_a1),
        ):
            self.xapp.register_callback(fn, mtype)
        self.xapp.run(thread=True, rmr_timeout=1)
        return self.xapp

    # Every handler frees the received buffer in `finally`, whatever happens.
    def _guarded(self, name: str, summary: dict[str, Any], sbuf: Any, body: Callable[[], Any]) -> None:
        buf = sbuf
        try:
            mtype = int(summary[self._rmr.RMR_MS_MSG_TYPE])
            self.handler.count_received(mtype)
            if not self.stopping:
                replaced = body()
                if replaced is not None:
                    buf = replaced
        except Exception:  # a handler bug must never stop ricxappframe's dispatch loop
            _log.exception("%s handler failed", name)
        finally:
            self.xapp.rmr_free(buf)

    def _payload(self, summary: dict[str, Any]) -> bytes:
        payload = summary[self._rmr.RMR_MS_PAYLOAD]
        return b"" if payload is None else bytes(payload)

    def _on_indication(self, _xapp: Any, summary: dict[str, Any], sbuf: Any) -> None:
        def body() -> None:
            raw_meid = summary.get(self._rmr.RMR_MS_MEID)
            meid = raw_meid.decode("utf-8", "replace").rstrip("\x00") if raw_meid else None
            # the control leaves before the policy fine-tunes on the period
            self.handler.on_indication(self._payload(summary), meid, int(summary[self._rmr.RMR_MS_SUB_ID]), self.send)

        self._guarded("RIC_INDICATION", summary, sbuf, body)

    def _on_control_ack(self, _xapp: Any, summary: dict[str, Any], sbuf: Any) -> None:
        self._guarded("RIC_CONTROL_ACK", summary, sbuf, lambda: self.handler.on_control_ack(self._payload(summary)))

    def _on_control_failure(self, _xapp: Any, summary: dict[str, Any], sbuf: Any) -> None:
        self._guarded(
            "RIC_CONTROL_FAILURE", summary, sbuf, lambda: self.handler.on_control_failure(self._payload(summary))
        )

    def _on_a1(self, _xapp: Any, summary: dict[str, Any], sbuf: Any) -> None:
        def body() -> Any:
            answer = self.handler.on_a1_request(self._payload(summary), int(summary[self._rmr.RMR_MS_SUB_ID]))
            returned = self._rmr.rmr_rts_msg(self.xapp._mrc, sbuf, payload=answer, mtype=rmr_types.A1_POLICY_RESP)
            if returned.contents.state != self._rmr.RMR_OK:
                self.handler.rmr_send_failures.labels(type="A1_POLICY_RESP").inc()
                _log.error("A1_POLICY_RESP not sent: RMR state %d", returned.contents.state)
            return returned  # the buffer RMR handed back is the one to free

        self._guarded("A1_POLICY_REQ", summary, sbuf, body)

    def _on_other(self, _xapp: Any, summary: dict[str, Any], sbuf: Any) -> None:
        def body() -> None:
            mtype = int(summary[self._rmr.RMR_MS_MSG_TYPE])
            if mtype not in (rmr_types.RIC_SUB_RESP, rmr_types.RIC_SUB_FAILURE, rmr_types.RIC_SUB_DEL_RESP):
                _log.warning("unexpected RMR message type %s", rmr_types.message_type_name(mtype))

        self._guarded("default", summary, sbuf, body)

    def _on_config(self, _xapp: Any, descriptor: dict[str, Any]) -> None:
        runtime = self.handler.runtime
        try:
            with self.handler.lock:
                error = runtime.watcher.apply(descriptor)
            if error is not None:
                runtime.metrics.config_rejections.inc()
                return
            self.keeper.configured_nodes = tuple(_configured_nodes(descriptor, self.extra_nodes))
        except ConfigError as exc:
            runtime.metrics.config_rejections.inc()
            _log.error("config rejected, keeping the running one: %s", exc)
        except Exception:  # the config loop of ricxappframe must keep running
            _log.exception("config handler failed")

    def send(self, out: OutgoingMessage, retries: int = 100) -> bool:
        """Send one message, routed by ``out.meid`` when set; the buffer is always freed."""
        rmr = self._rmr
        name = rmr_types.message_type_name(out.mtype)
        meid = out.meid.encode("utf-8") if out.meid else None
        if meid is not None and len(meid) > MAX_MEID_BYTES:
            self.handler.rmr_send_failures.labels(type=name).inc()
            _log.error("%s not sent: MEID %r is longer than %d bytes", name, out.meid, MAX_MEID_BYTES)
            return False
        sbuf = rmr.rmr_alloc_msg(
            self.xapp._mrc, len(out.payload), payload=out.payload, gen_transaction_id=True, mtype=out.mtype, meid=meid,
        )
        try:
            for attempt in range(retries):
                sbuf = rmr.rmr_send_msg(self.xapp._mrc, sbuf)
                state = sbuf.contents.state
                if state == rmr.RMR_OK:
                    if out.mtype == rmr_types.RIC_CONTROL_REQ:
                        self.handler.metrics.control_sends.inc()
                    return True
                if state != rmr.RMR_ERR_RETRY:
                    break
                if attempt >= 10:
                    time.sleep(0.001)
            self.handler.rmr_send_failures.labels(type=name).inc()
            if out.mtype == rmr_types.RIC_CONTROL_REQ:
                self.handler.metrics.control_failures.labels(reason="rmr_send").inc()
            _log.error("%s to %s not sent: RMR state %d", name, out.meid or "-", state)
            return False
        finally:
            rmr.rmr_free_msg(sbuf)
