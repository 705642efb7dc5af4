"""RIC mode's node plans and E2SM-KPM report path (issue 17, item 1).

In RIC mode the xApp never sees an E2 Setup: E2 Termination answers it and the E2 manager
keeps what the node offers in the R-NIB. This module reads it from the E2 manager
(``GET /v1/nodeb/{ranName}``, :meth:`~lighttune_xapp.transport.submgr.E2ManagerClient.nodeb`)
and serves each node as local mode does (:mod:`lighttune_xapp.local`,
:func:`lighttune_xapp.advisory.plan_node`):

* **what a node offers**: ``gnb.ranFunctions`` (``enb.ranFunctions`` for an eNB), each
  ``{ranFunctionId, ranFunctionDefinition, ranFunctionRevision, ranFunctionOid}``. The
  definition is the RANfunctionDefinition octets written as hex digits (the E2 manager
  takes it from E2T's XER form of E2 Setup; whitespace between the digits is ignored);
  kpimon-go reads it the same way. A function is LT-LINKADAPT when its OID is
  :data:`~lighttune_e2.service_model.SM_OID`, E2SM-KPM when its OID is the v3 or v2 KPM OID
  (:data:`KPM_OIDS`); without an OID (older E2 managers) the definition's content decides.
  Other functions (E2SM-RC, ...) are ignored. Malformed entries and undecodable definitions
  are counted (``lighttune_ran_function_errors_total{reason}``) and logged, never raised.
  A node the E2 manager does not describe (404, no answer, or no ``ranFunctions``) is served
  as before this module existed: one LT-LINKADAPT report subscription on RAN function
  :data:`~lighttune_e2.service_model.DEFAULT_RAN_FUNCTION_ID`; the E2 manager is asked again
  on every poll until it describes the node.
* **subscriptions** (:class:`PlannedSubscription`, one Subscription Manager request each,
  keyed by :func:`~lighttune_xapp.transport.submgr.subscription_key`: the RAN name for an
  LT-LINKADAPT report subscription on the default function id, the subscription every node
  had before this module, so its SDL record stays valid; ``<RAN name>#<function id>`` for any
  other, so a request whose content changes also changes key and is deleted and posted
  anew): with the report path ``service_model`` one LT-LINKADAPT report subscription; with
  the report path ``kpm`` (``controls.reportPath: kpm`` on a node offering both, or a KPM-only node) an
  LT-LINKADAPT *control subscription* (one ``policy`` action: "controls follow, no reports")
  when the node has the function, and one KPM subscription per KPM function (key
  ``<RAN name>#<function id>``) with the event trigger and action definition of
  :func:`~lighttune_e2.kpm.subscription.plan_kpm_subscription` (style 4, else 5; reporting
  and granularity period = the LT-LINKADAPT function's first CSI-RS period, or
  ``--kpm-period`` for a KPM-only node; ``cellGlobalID`` = the node's PLMN from
  ``globalNbId.plmnId`` + the cell named by the function's ``ranFunction-Instance``); a
  node with LT-LINKADAPT none of whose KPM functions is usable reports through LT-LINKADAPT
  instead (a problem of its plan). A plan
  is made once per connection of the node (a ``reportPath`` change applies to nodes that
  connect afterwards).
* **KPM indications** (RMR ``RIC_INDICATION`` whose RAN function is one of the node's KPM
  functions) go through the node's :class:`~lighttune_e2.kpm.reports.KpmNodeDecoder`, the
  decoder of local mode. Undecodable: ``lighttune_decode_errors_total{kind="indication"}``,
  logged by the decoder, dropped. Then, into cell ``<RAN name>/<cell id>`` (the
  LT-LINKADAPT cell of the same number, so both paths train one model):

  - a node with LT-LINKADAPT: decide, and send a RIC Control Request through LT-LINKADAPT
    on the control subscription (RIC request id = requestor of the indication, instance =
    the control subscription's E2 instance id; control header ``period_index`` = the KPM
    report's ``colletStartTime`` in ms since 1970), then fine-tune on the period;
  - a KPM-only node (or a KPM function that names no cell): advisory mode
    (:class:`~lighttune_xapp.advisory.AdvisoryMode`): no control; the recommendation table
    is served on :data:`~lighttune_xapp.advisory.RECOMMENDATIONS_PATH` as
    ``{"nodes": {RAN name: table}}`` and written to SDL (:class:`SdlAdvisoryBoard`, key
    ``advisory/<RAN name>`` of the xApp's namespace, the same JSON as one REST entry), at
    most once per ``publish_interval_s`` per node (the latest table is written by the
    main loop's :meth:`KpmRicService.poll` when no further report comes).

An indication for a RAN function the node was not subscribed to is counted
(``lighttune_decode_errors_total{kind="ran_function"}``) and dropped by the caller
(:class:`~lighttune_xapp.transport.ric.RicMessageHandler`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import Counter

from lighttune_e2 import e2ap, service_model
from lighttune_e2.errors import E2DecodeError, E2Error
from lighttune_e2.kpm.codec import DEFAULT_CODEC, KPM_V2_OID, KPM_V3_OID
from lighttune_e2.kpm.model import CellGlobalId
from lighttune_e2.kpm.model import RanFunctionDefinition as KpmFunctionDefinition
from lighttune_e2.kpm.reports import KpmNodeDecoder
from lighttune_e2.kpm.subscription import (
    KpmFunctionAssessment,
    KpmSubscriptionUnavailable,
    plan_kpm_subscription,
)
from lighttune_xapp.advisory import AdvisoryMode, AdvisorySeries, KpmFeed, NodePlan, plan_node
from lighttune_xapp.app import XappRuntime
from lighttune_xapp.cell_cap import CellCap
from lighttune_xapp.health import Response
from lighttune_xapp.kpm_metrics import kpm_series
from lighttune_xapp.transport import rmr_types
from lighttune_xapp.transport.ric import OutgoingMessage, cell_key
from lighttune_xapp.transport.submgr import E2ManagerClient, SubmgrError, subscription_key

__all__ = [
    "DEFAULT_KPM_PERIOD_MS",
    "KPM_OIDS",
    "KpmFeed",
    "KpmRicService",
    "NodebFunction",
    "PlannedSubscription",
    "RicNodePlan",
    "SdlAdvisoryBoard",
    "assumed_plan",
    "parse_nodeb_functions",
    "plan_ric_node",
    "plmn_of_nodeb",
]

_log = logging.getLogger(__name__)

KPM_OIDS: frozenset[str] = frozenset({KPM_V3_OID, KPM_V2_OID})
"""E2SM-KPM OIDs served (as in local mode)."""
DEFAULT_KPM_PERIOD_MS = 80
"""Reporting period of a KPM-only node, ms (a KPM definition states no CSI-RS period)."""
REPORT_ACTION_ID = 1
"""Action id of a report action (LT-LINKADAPT or KPM)."""
CONTROL_ACTION_ID = 2
"""Action id of the ``policy`` action of an LT-LINKADAPT control subscription."""
_HEX_SPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------- nodeb info


@dataclasses.dataclass(frozen=True)
class NodebFunction:
    """One RAN function of the E2 manager's node record.

    Attributes:
        ran_function_id: 0..4095.
        definition: RANfunctionDefinition octets.
        revision: 0..4095 (0 when absent).
        oid: the service model's OID, ``""`` when the record has none.
    """

    ran_function_id: int
    definition: bytes
    revision: int
    oid: str


def _int_in(value: Any, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        return None
    return value


def parse_nodeb_functions(info: Mapping[str, Any]) -> tuple[list[NodebFunction], list[str]]:
    """The RAN functions of a ``GET /v1/nodeb/{ranName}`` record, and one problem per bad entry.

    Reads ``gnb.ranFunctions`` (else ``enb.ranFunctions``). An entry without an id in
    0..4095 or whose definition is not hex digits is left out and described in the
    problems; a missing revision counts as 0, a missing OID as ``""``.
    """
    problems: list[str] = []
    block = info.get("gnb") if isinstance(info.get("gnb"), Mapping) else info.get("enb")
    if not isinstance(block, Mapping):
        return [], problems
    raw = block.get("ranFunctions") or []
    if not isinstance(raw, list):
        return [], ["ranFunctions is not a list"]
    out: list[NodebFunction] = []
    for i, entry in enumerate(raw):
        where = f"ranFunctions[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where} is not an object")
            continue
        fid = _int_in(entry.get("ranFunctionId"), 0, 4095)
        if fid is None:
            problems.append(f"{where}.ranFunctionId {entry.get('ranFunctionId')!r} is not in 0..4095")
            continue
        text = entry.get("ranFunctionDefinition")
        try:
            definition = bytes.fromhex(_HEX_SPACE.sub("", text)) if isinstance(text, str) else None
        except ValueError:
            definition = None
        if not definition:
            problems.append(f"{where} (function {fid}): ranFunctionDefinition is not a non-empty hex string")
            continue
        revision = _int_in(entry.get("ranFunctionRevision", 0), 0, 4095)
        oid = entry.get("ranFunctionOid") or ""
        out.append(NodebFunction(fid, definition, revision or 0, oid.strip() if isinstance(oid, str) else ""))
    return out, problems


def plmn_of_nodeb(info: Mapping[str, Any]) -> bytes | None:
    """The node's PLMN identity (3 octets) from ``globalNbId.plmnId`` (6 hex digits), or None."""
    global_id = info.get("globalNbId")
    text = global_id.get("plmnId") if isinstance(global_id, Mapping) else None
    if not isinstance(text, str):
        return None
    try:
        plmn = bytes.fromhex(text.strip())
    except ValueError:
        return None
    return plmn if len(plmn) == 3 else None


# --------------------------------------------------------------------------- plans


@dataclasses.dataclass(frozen=True)
class PlannedSubscription:
    """One Subscription Manager request of a node (the fields of ``SubscriptionParams``).

    Attributes:
        key: the book key (:func:`~lighttune_xapp.transport.submgr.subscription_key`).
        meid: the node's RAN name.
        ran_function_id: 0..4095.
        kind: ``"lt_report"``, ``"lt_control"`` or ``"kpm"``.
        event_trigger: RICeventTriggerDefinition octets.
        action_definition: RICactionDefinition octets.
        action_type: ``"report"`` or ``"policy"``.
        action_id: 0..255.
        subsequent_action: (type, time to wait) of a report action, None for a policy action.
    """

    key: str
    meid: str
    ran_function_id: int
    kind: str
    event_trigger: bytes
    action_definition: bytes
    action_type: str = "report"
    action_id: int = REPORT_ACTION_ID
    subsequent_action: tuple[str, str] | None = ("continue", "zero")


@dataclasses.dataclass
class RicNodePlan:
    """How one E2 node is served in RIC mode.

    Attributes:
        meid: the RAN name.
        source: ``"e2mgr"`` (from the node's record) or ``"assumed"`` (no record:
            LT-LINKADAPT on the default id, asked again on the next poll).
        plan: the report path / control / advisory choice, None when nothing is usable.
        lt_report_functions: LT-LINKADAPT functions subscribed for reports.
        control_function: the LT-LINKADAPT function that carries controls decided from KPM
            reports (report path ``kpm`` with LT-LINKADAPT), else None.
        subscriptions: the node's Subscription Manager requests.
        kpm: subscribed KPM functions by RAN function id.
        assessments: every KPM function's assessment (subscribed or not).
        problems: why functions of the node are not used (logged once).
    """

    meid: str
    source: str
    plan: NodePlan | None
    lt_report_functions: frozenset[int] = frozenset()
    control_function: int | None = None
    subscriptions: tuple[PlannedSubscription, ...] = ()
    kpm: dict[int, KpmFeed] = dataclasses.field(default_factory=dict)
    assessments: dict[int, KpmFunctionAssessment] = dataclasses.field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def advisory(self) -> bool:
        """Some reports of the node are served in advisory mode (no control)."""
        return bool(self.plan is not None and self.plan.advisory) or any(f.advisory for f in self.kpm.values())

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for ``/ric/v1/stats``."""
        feeds = {
            str(fid): {
                "cell": feed.cell, "style": feed.plan.style, "period_ms": feed.plan.period_ms,
                "measurements": list(feed.plan.measurements), "missing_measurements": list(feed.plan.missing),
                "advisory": feed.advisory, **feed.decoder.stats(),
            }
            for fid, feed in sorted(self.kpm.items())
        }
        return {
            "source": self.source,
            "plan": None if self.plan is None else self.plan.message,
            "report_path": None if self.plan is None else self.plan.report_path,
            "control": bool(self.lt_report_functions) or self.control_function is not None,
            "advisory": self.advisory,
            "subscriptions": {s.key: {"ran_function_id": s.ran_function_id, "kind": s.kind} for s in self.subscriptions},
            "kpm": feeds,
            "kpm_functions": {str(fid): a.as_json() for fid, a in sorted(self.assessments.items())},
            "problems": list(self.problems),
        }


def _lt_report_subscription(meid: str, fid: int) -> PlannedSubscription:
    trigger = service_model.encode_event_trigger(service_model.EventTrigger(every_n_csirs_periods=1))
    action = service_model.encode_action_definition(service_model.ActionDefinition())
    key = subscription_key(meid) if fid == service_model.DEFAULT_RAN_FUNCTION_ID else subscription_key(meid, fid)
    return PlannedSubscription(key, meid, fid, "lt_report", trigger, action)


def assumed_plan(meid: str, ran_function_id: int = service_model.DEFAULT_RAN_FUNCTION_ID) -> RicNodePlan:
    """The plan of a node the E2 manager does not describe: LT-LINKADAPT reports and control."""
    plan = NodePlan(meid, "service_model", True, False,
                    f"node {meid}: no RAN functions from the E2 manager; assuming LT-LINKADAPT on "
                    f"function {ran_function_id}")
    return RicNodePlan(meid, "assumed", plan, frozenset({ran_function_id}), None,
                       (_lt_report_subscription(meid, ran_function_id),))


def _classify(function: NodebFunction) -> tuple[str, Any]:
    """(``"lt"``, LT definition) | (``"kpm"``, KPM definition) | (``"other"``, None) |
    (``"bad"``, reason) for one function."""
    if function.oid == service_model.SM_OID or not function.oid:
        try:
            return "lt", service_model.decode_ran_function_definition(function.definition)
        except E2DecodeError as exc:
            if function.oid:
                return "bad", f"LT-LINKADAPT function {function.ran_function_id}: {exc}"
    if function.oid in KPM_OIDS or not function.oid:
        try:
            return "kpm", DEFAULT_CODEC.decode_ran_function_definition(function.definition, function.ran_function_id)
        except (E2DecodeError, ValueError) as exc:
            if function.oid:
                return "bad", f"KPM function {function.ran_function_id}: {str(exc)[:200]}"
    return "other", None


def plan_ric_node(
    meid: str,
    functions: Iterable[NodebFunction],
    report_path: str,
    tuner_mode: str,
    kpm_period_ms: int = DEFAULT_KPM_PERIOD_MS,
    plmn: bytes | None = None,
) -> RicNodePlan:
    """Plan a node from the RAN functions the E2 manager lists (rules in the module docstring).

    Args:
        meid: the RAN name.
        functions: :func:`parse_nodeb_functions` output.
        report_path: ``controls.reportPath`` (``service_model`` | ``kpm``).
        tuner_mode: ``controls.tunerMode``.
        kpm_period_ms: KPM reporting period when the node has no LT-LINKADAPT, ms (>= 1).
        plmn: the node's PLMN identity (3 octets) for the KPM ``cellGlobalID``, or None.

    Never raises for what a node offers: unusable functions end in ``problems``.
    """
    problems: list[str] = []
    lt: list[tuple[int, service_model.RanFunctionDefinition]] = []
    kpm_defs: dict[int, KpmFunctionDefinition] = {}
    for function in functions:
        kind, value = _classify(function)
        if kind == "lt":
            lt.append((function.ran_function_id, value))
        elif kind == "kpm":
            kpm_defs[function.ran_function_id] = value
        elif kind == "bad":
            problems.append(value)
    try:
        node_plan = plan_node(meid, bool(lt), bool(kpm_defs), report_path, tuner_mode)
    except ValueError as exc:
        problems.append(str(exc))
        return RicNodePlan(meid, "e2mgr", None, problems=tuple(problems))
    if node_plan.report_path == "service_model":
        subs = tuple(_lt_report_subscription(meid, fid) for fid, _d in lt)
        return RicNodePlan(meid, "e2mgr", node_plan, frozenset(fid for fid, _d in lt), None, subs,
                           problems=tuple(problems))
    periods = [p for _fid, d in lt for p in d.report_periods_ms]
    period_ms = periods[0] if periods else int(kpm_period_ms)
    subscriptions: list[PlannedSubscription] = []
    control_function = None
    if lt:
        control_function = lt[0][0]
        subscriptions.append(PlannedSubscription(
            subscription_key(meid, control_function), meid, control_function, "lt_control",
            service_model.encode_event_trigger(service_model.EventTrigger()),
            service_model.encode_action_definition(service_model.ActionDefinition()),
            action_type="policy", action_id=CONTROL_ACTION_ID, subsequent_action=None,
        ))
    feeds: dict[int, KpmFeed] = {}
    assessments: dict[int, KpmFunctionAssessment] = {}
    for fid, definition in sorted(kpm_defs.items()):
        cell_id = definition.instance
        if cell_id is not None and not 0 <= cell_id <= service_model.MAX_CELL_ID:
            cell_id = None
        cell = cell_key(meid, cell_id) if cell_id is not None else f"{meid}/kpm-{fid}"
        try:
            kplan = plan_kpm_subscription(
                definition, period_ms,
                cell=CellGlobalId(plmn, cell_id) if cell_id is not None and plmn is not None else None,
            )
        except KpmSubscriptionUnavailable as exc:
            if exc.assessment is not None:
                assessments[fid] = exc.assessment
            problems.append(f"KPM function {fid} not subscribed: {exc}")
            continue
        except ValueError as exc:
            problems.append(f"KPM function {fid} not subscribed: {exc}")
            continue
        if kplan.assessment is not None:
            assessments[fid] = kplan.assessment
        feeds[fid] = KpmFeed(cell, cell_id, kplan, KpmNodeDecoder(meid, kplan.codec, kplan.measurements, period_ms))
        subscriptions.append(PlannedSubscription(
            subscription_key(meid, fid), meid, fid, "kpm", kplan.event_trigger, kplan.action_definition,
        ))
    if lt and not feeds:  # no KPM function gives reports: LT-LINKADAPT gives them rather than none
        problems.append("no usable KPM function: reports through LT-LINKADAPT")
        fallback = NodePlan(meid, "service_model", node_plan.control, False,
                            f"node {meid}: reports and control through LT-LINKADAPT (no usable KPM function)")
        return RicNodePlan(meid, "e2mgr", fallback, frozenset(fid for fid, _d in lt), None,
                           tuple(_lt_report_subscription(meid, fid) for fid, _d in lt), {}, assessments,
                           tuple(problems))
    return RicNodePlan(meid, "e2mgr", node_plan, frozenset(), control_function, tuple(subscriptions), feeds,
                       assessments, tuple(problems))


# --------------------------------------------------------------------------- SDL


class SdlAdvisoryBoard:
    """Advisory recommendation tables in SDL: key ``advisory/<RAN name>`` of ``namespace``.

    The value is the node's table as UTF-8 JSON (:meth:`AdvisoryMode.table_json`, the same
    object as the node's entry of the REST answer).

    Args:
        storage: a ``ricsdl.syncstorage.SyncStorage`` (or anything with its ``set`` and
            ``remove`` methods).
        namespace: SDL namespace (the xApp's model-store namespace).
        on_error: exception types of the backend to log instead of raising.
    """

    KEY_PREFIX = "advisory/"

    def __init__(self, storage: Any, namespace: str, on_error: tuple[type[BaseException], ...] = ()) -> None:
        self._storage = storage
        self.namespace = namespace
        self._errors = on_error

    def publish(self, meid: str, table: bytes) -> bool:
        """Write one node's table; False (logged) when SDL fails."""
        try:
            self._storage.set(self.namespace, {self.KEY_PREFIX + meid: bytes(table)})
        except self._errors as exc:
            _log.error("cannot publish the advisory table of %s in SDL: %s", meid, exc)
            return False
        return True


# --------------------------------------------------------------------------- service


class KpmRicService:
    """Node plans, KPM indications and advisory publication of RIC mode (module docstring).

    Thread-safety: plans and per-node state are read and changed under ``lock`` (the
    message handler's lock: KPM indications are handled inside it); the E2 manager is
    asked outside it.

    Args:
        runtime: the xApp runtime (config, policy, metrics).
        lock: the :class:`~lighttune_xapp.transport.ric.RicMessageHandler`'s lock.
        cell_cap: the handler's per-node cell cap.
        first_sight: called with a cell name before its first decision (restore logging, A1).
        e2mgr: the E2 manager client, or None to assume LT-LINKADAPT everywhere.
        board: where advisory tables go in SDL, or None.
        kpm_period_ms: reporting period of a KPM-only node, ms (>= 1).
        publish_interval_s: minimum time between two SDL writes of one node's table, s.
        clock: monotonic clock, s.
    """

    def __init__(
        self,
        runtime: XappRuntime,
        lock: threading.RLock,
        cell_cap: CellCap,
        first_sight: Callable[[str], None],
        e2mgr: E2ManagerClient | None = None,
        board: SdlAdvisoryBoard | None = None,
        kpm_period_ms: int = DEFAULT_KPM_PERIOD_MS,
        publish_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(kpm_period_ms, bool) or not isinstance(kpm_period_ms, int) or kpm_period_ms < 1:
            raise ValueError(f"kpm_period_ms must be a positive integer, got {kpm_period_ms!r}")
        if publish_interval_s < 0:
            raise ValueError(f"publish_interval_s must be >= 0, got {publish_interval_s}")
        self.runtime = runtime
        self.lock = lock
        self.cell_cap = cell_cap
        self.first_sight = first_sight
        self.e2mgr = e2mgr
        self.board = board
        self.kpm_period_ms = kpm_period_ms
        self.publish_interval_s = float(publish_interval_s)
        self.clock = clock
        self.instance_of: Callable[[str], int] = lambda _key: 0
        """Subscription key -> confirmed E2 instance id (set to the keeper's book)."""
        self.owner_epoch: Callable[[str], int | None] = lambda _meid: 0
        """Fencing token for controls to a node (several replicas: ``OwnershipManager.epoch_for``),
        None when this replica must not control it; 0 = one instance."""
        self.plans: dict[str, RicNodePlan] = {}
        self.advisories: dict[str, AdvisoryMode] = {}
        self._advisory_series: AdvisorySeries | None = None
        self._dirty: set[str] = set()
        self._published_at: dict[str, float] = {}
        self._logged_assumed: set[str] = set()
        self.kpm_series = kpm_series(runtime.metrics)
        registry = runtime.metrics.registry
        self.ran_function_errors = Counter(
            "ran_function_errors", "RAN functions of E2 manager node records that cannot be used, by reason",
            ["reason"], namespace="lighttune", registry=registry,
        )
        self.advisory_sdl_writes = Counter(
            "advisory_sdl_writes", "Advisory recommendation tables written to SDL, by result", ["result"],
            namespace="lighttune", registry=registry,
        )

    @property
    def metrics(self) -> Any:
        """The runtime's :class:`~lighttune_xapp.metrics.XappMetrics`."""
        return self.runtime.metrics

    # ------------------------------------------------------------------ plans
    def expand(self, meids: list[str]) -> list[str]:
        """The subscription keys of the wanted nodes (the keeper's ``expand`` hook).

        Plans nodes not planned yet (or planned on an assumption) from the E2 manager;
        forgets the plans of nodes no longer wanted (a node that reconnects is asked again).
        """
        with self.lock:
            gone = set(self.plans) - set(meids)
            for meid in gone:
                del self.plans[meid]
            todo = [m for m in meids if m not in self.plans or self.plans[m].source == "assumed"]
        for meid in todo:
            try:
                plan = self._plan_from_e2mgr(meid)
            except Exception as exc:  # a record no rule foresaw must not stop the poll loop
                _log.exception("node %s: cannot plan from the E2 manager's record", meid)
                self.ran_function_errors.labels(reason="internal").inc()
                plan = RicNodePlan(meid, "e2mgr", None, problems=(f"planning failed: {exc!r}"[:300],))
            with self.lock:
                old = self.plans.get(meid)
                self.plans[meid] = plan
            if old is None or old.source != plan.source:
                self._announce(plan)
        with self.lock:
            return [s.key for m in meids if m in self.plans for s in self.plans[m].subscriptions]

    def _plan_from_e2mgr(self, meid: str) -> RicNodePlan:
        """Ask the E2 manager for the node's record and plan it (I/O; never raises)."""
        if self.e2mgr is None:
            return assumed_plan(meid)
        try:
            info = self.e2mgr.nodeb(meid)
        except SubmgrError as exc:
            if meid not in self._logged_assumed:
                _log.warning("E2 manager has no answer for node %s (%s); assuming LT-LINKADAPT until it has", meid, exc)
                self._logged_assumed.add(meid)
            return assumed_plan(meid)
        functions, problems = parse_nodeb_functions(info or {})
        for problem in problems:
            self.ran_function_errors.labels(reason="nodeb_entry").inc()
            _log.error("node %s: E2 manager record: %s", meid, problem)
        if not functions:
            if meid not in self._logged_assumed:
                _log.info("E2 manager lists no RAN functions of node %s; assuming LT-LINKADAPT", meid)
                self._logged_assumed.add(meid)
            return assumed_plan(meid)
        self._logged_assumed.discard(meid)
        config = self.runtime.watcher.config
        plan = plan_ric_node(meid, functions, config.report_path, config.tuner_mode, self.kpm_period_ms,
                             plmn_of_nodeb(info or {}))
        for problem in plan.problems:
            self.ran_function_errors.labels(reason="unusable").inc()
        return plan

    def _announce(self, plan: RicNodePlan) -> None:
        """Log the node's plan and problems; publish its KPM coverage gauges."""
        for problem in plan.problems:
            _log.warning("node %s: %s", plan.meid, problem)
        if plan.plan is None:
            _log.warning("node %s: no usable RAN function, nothing subscribed", plan.meid)
            return
        if plan.plan.advisory:
            with self.lock:
                self._advisory(plan.meid).startup_message()
        else:
            _log.info("%s", plan.plan.message)
        for fid, feed in sorted(plan.kpm.items()):
            _log.info("node %s: KPM function %d -> cell %s, style %d every %d ms, %d measurements%s", plan.meid,
                      fid, feed.cell, feed.plan.style, feed.plan.period_ms, len(feed.plan.measurements),
                      " (advisory: the function names no cell)" if feed.advisory else "")
        if plan.assessments:
            self.kpm_series.publish_node(plan.meid, plan.assessments.values())

    def subscription(self, key: str) -> PlannedSubscription:
        """The planned subscription of ``key``.

        Raises:
            KeyError: no plan has that key.
        """
        with self.lock:
            for plan in self.plans.values():
                for sub in plan.subscriptions:
                    if sub.key == key:
                        return sub
        raise KeyError(key)

    def lt_report_functions(self, meid: str, default: int) -> frozenset[int]:
        """LT-LINKADAPT functions whose reports ``meid`` sends (``{default}`` for an unplanned node)."""
        with self.lock:
            plan = self.plans.get(meid)
            return frozenset({default}) if plan is None else plan.lt_report_functions

    def handles(self, meid: str, ran_function_id: int) -> bool:
        """Whether ``ran_function_id`` is a subscribed KPM function of ``meid``."""
        with self.lock:
            plan = self.plans.get(meid)
            return plan is not None and ran_function_id in plan.kpm

    # ------------------------------------------------------------------ indications
    def on_indication(
        self, msg: e2ap.RicIndication, meid: str, send: Callable[[OutgoingMessage], None] | None = None
    ) -> OutgoingMessage | None:
        """Handle one KPM indication of ``meid`` (call with :meth:`handles` true, under ``lock``).

        Returns the LT-LINKADAPT control request, if one is due (with ``send``, it was
        already handed to it before the policy fine-tunes, and must not be sent again).
        Never raises for what a node can send.
        """
        plan = self.plans[meid]
        feed = plan.kpm[msg.ran_function_id]
        result = feed.decoder.decode(msg.header, msg.message)
        if result is None:  # logged by the decoder
            self.metrics.decode_errors.labels(kind="indication").inc()
            return None
        self.kpm_series.count_trailing(result.trailing_octets)
        if result.drops.total:
            self.metrics.ue_reports_dropped.labels(reason="invalid").inc(result.drops.total)
        if not self.cell_cap.admit(meid, feed.cell):
            return None
        reports = result.reports
        if not len(reports):
            return None
        self.first_sight(feed.cell)
        if plan.control_function is None or feed.advisory:
            advisory = self._advisory(meid)
            try:
                advisory.on_reports(feed.cell, reports, result.imputed_features)
            except ValueError as exc:
                self.metrics.decode_errors.labels(kind="reports").inc()
                _log.warning("cell %s: KPM reports refused: %s", feed.cell, exc)
                return None
            self._dirty.add(meid)
            self.poll()
            return None
        self.metrics.reports_received.labels(path="kpm").inc()
        policy = self.runtime.policy
        try:
            pending = policy.decide(feed.cell, reports)
        except ValueError as exc:  # e.g. a UE id twice: the report is unusable
            self.metrics.decode_errors.labels(kind="reports").inc()
            _log.warning("cell %s: KPM reports refused: %s", feed.cell, exc)
            return None
        try:
            out = self._control(msg, plan, feed, result.header.period_key_ms, pending.decisions)
            if out is not None and send is not None:
                send(out)
        finally:
            policy.finish(pending)
        return out

    def _control(self, msg: e2ap.RicIndication, plan: RicNodePlan, feed: KpmFeed, period_key_ms: int,
                 decisions: Any) -> OutgoingMessage | None:
        """The LT-LINKADAPT control request carrying decisions taken on a KPM report, or None."""
        if not decisions.control or len(decisions.ue_id) == 0:
            return None
        assert plan.control_function is not None and feed.cell_id is not None
        instance = self.instance_of(subscription_key(plan.meid, plan.control_function))
        if instance <= 0:
            self.metrics.control_failures.labels(reason="no_control_subscription").inc()
            _log.warning("cell %s: control subscription of %s not confirmed yet; decisions not sent", feed.cell,
                         plan.meid)
            return None
        epoch = self.owner_epoch(plan.meid)  # the lease may have ended while deciding
        if epoch is None:
            return None
        try:
            header, message = service_model.encode_control(
                feed.cell_id, decisions.ue_id, decisions.rank, decisions.cqi, 1, period_key_ms, owner_epoch=epoch
            )
            request = e2ap.RicControlRequest(
                request_id=e2ap.RicRequestId(msg.request_id.requestor_id, instance),
                ran_function_id=plan.control_function,
                header=header,
                message=message,
                ack_request="ack",
            )
            return OutgoingMessage(rmr_types.RIC_CONTROL_REQ, e2ap.encode(request), plan.meid)
        except (E2Error, ValueError) as exc:
            self.metrics.control_failures.labels(reason="encode").inc()
            _log.error("cannot encode the control for cell %s: %s", feed.cell, exc)
            return None

    # ------------------------------------------------------------------ advisory
    def _advisory(self, meid: str) -> AdvisoryMode:
        advisory = self.advisories.get(meid)
        if advisory is None:
            advisory = AdvisoryMode(self.runtime.policy, meid, self.metrics, series=self._advisory_series)
            self._advisory_series = advisory.series
            self.advisories[meid] = advisory
        return advisory

    def poll(self, now: float | None = None) -> list[str]:
        """Write the changed advisory tables whose interval has passed to SDL; returns the nodes written."""
        written: list[str] = []
        with self.lock:
            if self.board is None or not self._dirty:
                return written
            t = self.clock() if now is None else now
            for meid in sorted(self._dirty):
                last = self._published_at.get(meid)
                if last is not None and t - last < self.publish_interval_s:
                    continue
                ok = self.board.publish(meid, self.advisories[meid].table_json())
                self.advisory_sdl_writes.labels(result="ok" if ok else "error").inc()
                self._published_at[meid] = t
                if ok:
                    self._dirty.discard(meid)
                    written.append(meid)
        return written

    def flush(self) -> list[str]:
        """Write every changed advisory table now (shutdown); returns the nodes written."""
        with self.lock:
            self._published_at.clear()
        return self.poll()

    def recommendations_json(self) -> bytes:
        """``{"nodes": {RAN name: advisory table}}`` as JSON."""
        with self.lock:
            tables = {meid: json.loads(a.table_json()) for meid, a in sorted(self.advisories.items())}
        return json.dumps({"nodes": tables}, sort_keys=True).encode()

    def recommendations_response(self, _body: bytes) -> Response:
        """HTTP handler of :data:`~lighttune_xapp.advisory.RECOMMENDATIONS_PATH`."""
        return 200, "application/json", self.recommendations_json()

    def describe(self) -> dict[str, Any]:
        """Per node: its plan (``/ric/v1/stats`` ``nodes``)."""
        with self.lock:
            return {meid: plan.describe() for meid, plan in sorted(self.plans.items())}
