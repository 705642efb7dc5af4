"""Sans-I/O E2 endpoints: the node side and the RIC side of one E2 link as state machines.

In the style of h11 / aioquic, an endpoint never touches a socket or a clock. It is fed

- ``receive_bytes(data, now)``: one received E2AP PDU (one SCTP message or TCP frame),
- ``timer(now)``: the current time, so that overdue requests time out,
- API calls (``subscribe``, ``send_indication``, ``send_control`` ...),

and every call returns ``(pdus_to_send, events)``: a list of encoded PDUs the caller writes
to the link and a list of :class:`Event` objects for the application. ``now`` is in seconds
on any monotonic clock.

Bad input never raises out of ``receive_bytes``: undecodable bytes and messages that are
illegal in the current state are counted in :attr:`EndpointStats`, answered with an E2AP
Error Indication where the procedure allows it, and reported as a :class:`ProtocolErrorEvent`
carrying the typed error (:class:`E2DecodeError` or :class:`E2ProtocolError`). API calls made
in the wrong state raise :class:`E2ProtocolError` (a bug of the caller, not of the peer).

Both sides use these machines: the xApp runs a :class:`RicEndpoint` per connected node, the
simulator (``e2sim``) runs an :class:`E2NodeEndpoint`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Optional, Union

from lighttune_e2 import e2ap as E
from lighttune_e2.errors import E2DecodeError, E2Error, E2ProtocolError

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT_S = 5.0
"""Time a request (setup, subscription, delete, control, reset) may stay unanswered, s."""

DEFAULT_RIC_REQUESTOR_ID = 1001
"""ricRequestorID of this xApp when it terminates E2 itself (OSC's Subscription Manager uses 123)."""


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ProtocolErrorEvent:
    """A received PDU was undecodable or illegal; it was counted and dropped."""

    error: E2Error


@dataclass(frozen=True)
class RequestTimedOut:
    """An outstanding request got no answer in time. ``kind``: setup, subscription,
    subscription_delete, control or reset; ``key`` is its transaction id or RicRequestId."""

    kind: str
    key: int | E.RicRequestId


@dataclass(frozen=True)
class ErrorIndicationReceived:
    """The peer reported an error with an E2AP Error Indication."""

    message: E.ErrorIndication


@dataclass(frozen=True)
class ResetDone:
    """All subscriptions and pending procedures of the link were dropped.
    ``initiated_by_peer``: the peer sent the Reset Request."""

    initiated_by_peer: bool


@dataclass(frozen=True)
class E2SetupReceived:
    """RIC side: a node set the link up (already answered with E2 Setup Response)."""

    request: E.E2SetupRequest


@dataclass(frozen=True)
class SubscriptionAccepted:
    """RIC side: the node accepted a subscription."""

    response: E.RicSubscriptionResponse


@dataclass(frozen=True)
class SubscriptionRejected:
    """RIC side: the node refused a subscription."""

    failure: E.RicSubscriptionFailure


@dataclass(frozen=True)
class SubscriptionDeleted:
    """RIC side: a subscription ended (delete confirmed, or refused as unknown by the node)."""

    request_id: E.RicRequestId
    confirmed: bool


@dataclass(frozen=True)
class IndicationReceived:
    """RIC side: an indication of an active subscription."""

    indication: E.RicIndication


@dataclass(frozen=True)
class ControlAcknowledged:
    """RIC side: the node executed a control request."""

    acknowledge: E.RicControlAcknowledge


@dataclass(frozen=True)
class ControlFailed:
    """RIC side: the node refused a control request."""

    failure: E.RicControlFailure


@dataclass(frozen=True)
class SetupCompleted:
    """Node side: the RIC accepted E2 Setup."""

    response: E.E2SetupResponse


@dataclass(frozen=True)
class SetupFailed:
    """Node side: the RIC refused E2 Setup."""

    failure: E.E2SetupFailure


@dataclass(frozen=True)
class SubscriptionStarted:
    """Node side: a subscription was accepted (answered); start producing indications."""

    request: E.RicSubscriptionRequest


@dataclass(frozen=True)
class SubscriptionEnded:
    """Node side: a subscription was deleted (answered); stop its indications."""

    request_id: E.RicRequestId
    ran_function_id: int


@dataclass(frozen=True)
class ControlReceived:
    """Node side: a control request to apply; answer with ``ack_control`` / ``fail_control``."""

    request: E.RicControlRequest


Event = Union[
    ProtocolErrorEvent, RequestTimedOut, ErrorIndicationReceived, ResetDone, E2SetupReceived,
    SubscriptionAccepted, SubscriptionRejected, SubscriptionDeleted, IndicationReceived,
    ControlAcknowledged, ControlFailed, SetupCompleted, SetupFailed, SubscriptionStarted,
    SubscriptionEnded, ControlReceived,
]
Output = tuple[list[bytes], list[Event]]
SubscriptionAdmission = Callable[[E.RicSubscriptionRequest], Optional[E.Cause]]
"""Node side: decides a RIC Subscription Request the endpoint found well-formed; returns
``None`` to admit it or the E2AP cause sent back in RIC Subscription Failure."""


@dataclass
class EndpointStats:
    """Counters of one endpoint (monotonic, for metrics)."""

    pdus_received: int = 0
    pdus_sent: int = 0
    decode_errors: int = 0
    protocol_errors: int = 0
    timeouts: int = 0
    indications: int = 0


class LinkState(Enum):
    """State of the E2 link as one endpoint sees it."""

    IDLE = "idle"  # no setup yet (node: not sent; RIC: not received)
    SETUP_PENDING = "setup_pending"  # node only: E2 Setup Request sent
    READY = "ready"


@dataclass
class _Pending:
    kind: str
    deadline: float
    message: E.E2apMessage


# --------------------------------------------------------------------------- common base


class _Endpoint:
    """What both sides share: decoding, stats, pending requests, reset, error indication."""

    def __init__(self, request_timeout_s: float) -> None:
        if not request_timeout_s > 0:
            raise ValueError(f"request_timeout_s must be > 0, got {request_timeout_s!r}")
        self.request_timeout_s = request_timeout_s
        self.state = LinkState.IDLE
        self.stats = EndpointStats()
        self._pending: dict[tuple[str, int | E.RicRequestId], _Pending] = {}
        self._next_transaction = 0

    # -- helpers
    def _send(self, msgs: list[E.E2apMessage]) -> list[bytes]:
        out = [E.encode(m) for m in msgs]
        self.stats.pdus_sent += len(out)
        return out

    def _new_transaction_id(self, kind: str) -> int:
        for _ in range(E.MAX_TRANSACTION_ID + 1):
            tid = self._next_transaction
            self._next_transaction = (tid + 1) % (E.MAX_TRANSACTION_ID + 1)
            if (kind, tid) not in self._pending:
                return tid
        raise E2ProtocolError(f"no free transaction id for {kind}: 256 requests outstanding")

    def _expect(self, kind: str, key: int | E.RicRequestId) -> _Pending:
        pending = self._pending.pop((kind, key), None)
        if pending is None:
            raise E2ProtocolError(f"unexpected answer: no outstanding {kind} request {key}")
        return pending

    def _violation(self, error: E2Error, reply: E.E2apMessage | None = None) -> Output:
        if isinstance(error, E2DecodeError):
            self.stats.decode_errors += 1
        else:
            self.stats.protocol_errors += 1
        log.warning("E2 %s dropped: %s", type(error).__name__, error)
        return (self._send([reply]) if reply is not None else []), [ProtocolErrorEvent(error)]

    def pending_requests(self) -> int:
        """Number of requests waiting for an answer."""
        return len(self._pending)

    # -- inputs
    def receive_bytes(self, data: bytes, now: float) -> Output:
        """Handle one received E2AP PDU; never raises for bad input (see module docstring)."""
        self.stats.pdus_received += 1
        try:
            msg = E.decode(data)
        except E2DecodeError as exc:
            cause = E.Cause("protocol", "transfer-syntax-error")
            return self._violation(exc, E.ErrorIndication(cause=cause))
        try:
            return self._handle(msg, now)
        except E2ProtocolError as exc:
            return self._violation(exc, self._error_reply(msg))

    def timer(self, now: float) -> Output:
        """Expire requests whose deadline is past ``now`` (s)."""
        events: list[Event] = []
        for key, pending in list(self._pending.items()):
            if pending.deadline <= now:
                del self._pending[key]
                self.stats.timeouts += 1
                events.append(RequestTimedOut(key[0], key[1]))
                self._on_timeout(pending)
        return [], events

    def next_deadline(self) -> float | None:
        """Earliest time ``timer`` has work to do, or None."""
        return min((p.deadline for p in self._pending.values()), default=None)

    def reset(self, now: float, cause: E.Cause | None = None) -> Output:
        """Start the Reset procedure: the answer drops every subscription of the link."""
        self._require_ready("reset")
        tid = self._new_transaction_id("reset")
        msg = E.ResetRequest(tid, cause or E.Cause("misc", "om-intervention"))
        self._pending[("reset", tid)] = _Pending("reset", now + self.request_timeout_s, msg)
        return self._send([msg]), []

    def error_indication(self, cause: E.Cause, request_id: E.RicRequestId | None = None,
                         ran_function_id: int | None = None) -> Output:
        """Send an Error Indication to the peer."""
        return self._send([E.ErrorIndication(None, request_id, ran_function_id, cause)]), []

    # -- for subclasses
    def _require_ready(self, what: str) -> None:
        if self.state is not LinkState.READY:
            raise E2ProtocolError(f"cannot {what}: E2 link is {self.state.value}, not ready")

    def _handle_common(self, msg: E.E2apMessage) -> Output | None:
        if isinstance(msg, E.ErrorIndication):
            return [], [ErrorIndicationReceived(msg)]
        if isinstance(msg, E.ResetRequest):
            self._require_ready("handle Reset Request")
            self._clear_link_state()
            return self._send([E.ResetResponse(msg.transaction_id)]), [ResetDone(True)]
        if isinstance(msg, E.ResetResponse):
            self._expect("reset", msg.transaction_id)
            self._clear_link_state()
            return [], [ResetDone(False)]
        return None

    def _error_reply(self, msg: E.E2apMessage) -> E.E2apMessage | None:
        """Error Indication for an illegal message (never answer an Error Indication)."""
        if isinstance(msg, E.ErrorIndication):
            return None
        return E.ErrorIndication(
            getattr(msg, "transaction_id", None), getattr(msg, "request_id", None),
            getattr(msg, "ran_function_id", None), E.Cause("protocol", "message-not-compatible-with-receiver-state"),
        )

    def _clear_link_state(self) -> None:
        self._pending = {k: v for k, v in self._pending.items() if k[0] in ("setup",)}

    def _on_timeout(self, pending: _Pending) -> None:
        return None

    def _handle(self, msg: E.E2apMessage, now: float) -> Output:
        raise E2ProtocolError(f"{type(msg).__name__} is not handled by {type(self).__name__}")


# --------------------------------------------------------------------------- RIC side


class RicEndpoint(_Endpoint):
    """RIC side of one E2 link: accepts E2 Setup, subscribes, receives indications, controls.

    Args:
        global_ric_id: this RIC's id, sent in E2 Setup Response.
        requestor_id: ricRequestorID of all requests (0..65535).
        accept_oids: service-model OIDs this RIC accepts in E2 Setup; ``None`` accepts every function.
        request_timeout_s: answer deadline of every request, s.
    """

    def __init__(
        self,
        global_ric_id: E.GlobalRicId = E.GlobalRicId(b"\x00\xf1\x10", 1),
        requestor_id: int = DEFAULT_RIC_REQUESTOR_ID,
        accept_oids: frozenset[str] | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        super().__init__(request_timeout_s)
        E.RicRequestId(requestor_id, 0)  # validates the range
        self.global_ric_id = global_ric_id
        self.requestor_id = requestor_id
        self.accept_oids = accept_oids
        self.node_id: E.GlobalE2NodeId | None = None
        self.ran_functions: dict[int, E.RanFunction] = {}
        self.subscriptions: dict[E.RicRequestId, E.RicSubscriptionRequest] = {}
        self._next_instance = 0

    def _new_request_id(self) -> E.RicRequestId:
        for _ in range(E.MAX_INSTANCE_ID + 1):
            rid = E.RicRequestId(self.requestor_id, self._next_instance)
            self._next_instance = (self._next_instance + 1) % (E.MAX_INSTANCE_ID + 1)
            busy = rid in self.subscriptions or any(k[1] == rid for k in self._pending)
            if not busy:
                return rid
        raise E2ProtocolError("no free RIC instance id")

    # -- API
    def subscribe(self, ran_function_id: int, event_trigger: bytes, actions: tuple[E.RicAction, ...],
                  now: float) -> tuple[E.RicRequestId, Output]:
        """Send a RIC Subscription Request; the answer arrives as an event."""
        self._require_ready("subscribe")
        if ran_function_id not in self.ran_functions:
            raise E2ProtocolError(f"cannot subscribe: node has no accepted RAN function {ran_function_id}")
        rid = self._new_request_id()
        msg = E.RicSubscriptionRequest(rid, ran_function_id, event_trigger, actions)
        self._pending[("subscription", rid)] = _Pending("subscription", now + self.request_timeout_s, msg)
        return rid, (self._send([msg]), [])

    def unsubscribe(self, request_id: E.RicRequestId, now: float) -> Output:
        """Send a RIC Subscription Delete Request for an active subscription."""
        self._require_ready("unsubscribe")
        sub = self.subscriptions.get(request_id)
        if sub is None:
            raise E2ProtocolError(f"cannot unsubscribe: no active subscription {request_id}")
        msg = E.RicSubscriptionDeleteRequest(request_id, sub.ran_function_id)
        self._pending[("subscription_delete", request_id)] = _Pending(
            "subscription_delete", now + self.request_timeout_s, msg
        )
        return self._send([msg]), []

    def send_control(self, ran_function_id: int, header: bytes, message: bytes, now: float,
                     ack: bool = True) -> tuple[E.RicRequestId, Output]:
        """Send a RIC Control Request; with ``ack`` the node's answer is tracked and awaited."""
        self._require_ready("send control")
        if ran_function_id not in self.ran_functions:
            raise E2ProtocolError(f"cannot control: node has no accepted RAN function {ran_function_id}")
        rid = self._new_request_id()
        msg = E.RicControlRequest(rid, ran_function_id, header, message, None, "ack" if ack else "noAck")
        if ack:
            self._pending[("control", rid)] = _Pending("control", now + self.request_timeout_s, msg)
        return rid, (self._send([msg]), [])

    # -- inputs
    def _clear_link_state(self) -> None:
        super()._clear_link_state()
        self.subscriptions.clear()

    def _handle(self, msg: E.E2apMessage, now: float) -> Output:
        if isinstance(msg, E.E2SetupRequest):
            return self._on_setup(msg)
        common = self._handle_common(msg)
        if common is not None:
            return common
        self._require_ready(f"handle {type(msg).__name__}")
        if isinstance(msg, E.RicIndication):
            sub = self.subscriptions.get(msg.request_id)
            if sub is None or sub.ran_function_id != msg.ran_function_id:
                raise E2ProtocolError(f"RIC Indication for unknown subscription {msg.request_id}")
            if msg.action_id not in {a.action_id for a in sub.actions}:
                raise E2ProtocolError(f"RIC Indication for action {msg.action_id} not in {msg.request_id}")
            self.stats.indications += 1
            return [], [IndicationReceived(msg)]
        if isinstance(msg, E.RicSubscriptionResponse):
            pending = self._expect("subscription", msg.request_id)
            assert isinstance(pending.message, E.RicSubscriptionRequest)
            self.subscriptions[msg.request_id] = pending.message
            return [], [SubscriptionAccepted(msg)]
        if isinstance(msg, E.RicSubscriptionFailure):
            self._expect("subscription", msg.request_id)
            return [], [SubscriptionRejected(msg)]
        if isinstance(msg, (E.RicSubscriptionDeleteResponse, E.RicSubscriptionDeleteFailure)):
            self._expect("subscription_delete", msg.request_id)
            self.subscriptions.pop(msg.request_id, None)
            return [], [SubscriptionDeleted(msg.request_id, isinstance(msg, E.RicSubscriptionDeleteResponse))]
        if isinstance(msg, E.RicControlAcknowledge):
            self._expect("control", msg.request_id)
            return [], [ControlAcknowledged(msg)]
        if isinstance(msg, E.RicControlFailure):
            self._expect("control", msg.request_id)
            return [], [ControlFailed(msg)]
        raise E2ProtocolError(f"{type(msg).__name__} is not expected by the RIC side")

    def _on_setup(self, msg: E.E2SetupRequest) -> Output:
        if self.state is LinkState.READY:
            raise E2ProtocolError("second E2 Setup Request on a link that is already set up")
        accepted, rejected = [], []
        for f in msg.ran_functions:
            if self.accept_oids is None or f.oid in self.accept_oids:
                accepted.append(E.RanFunctionIdItem(f.ran_function_id, f.revision))
                self.ran_functions[f.ran_function_id] = f
            else:
                rejected.append(E.RanFunctionRejected(f.ran_function_id, E.Cause("ricService", "ran-function-not-supported")))
        acks = tuple(E.E2NodeComponentAck(c.interface_type, c.component_id) for c in msg.component_configs)
        reply = E.E2SetupResponse(msg.transaction_id, self.global_ric_id, tuple(accepted), tuple(rejected), acks)
        self.node_id = msg.global_e2_node_id
        self.state = LinkState.READY
        return self._send([reply]), [E2SetupReceived(msg)]


# --------------------------------------------------------------------------- node side


class E2NodeEndpoint(_Endpoint):
    """E2 node side of one E2 link: E2 Setup, subscriptions of its RAN functions,
    indications out, controls in.

    Args:
        node_id: the node's global id.
        ran_functions: the RAN functions it offers (their ids must be distinct).
        component_configs: E2 node component configurations sent in E2 Setup (at least one).
        request_timeout_s: answer deadline of E2 Setup and Reset, s.
        admit: admission hook (:data:`SubscriptionAdmission`) asked after the endpoint's own
            checks (known function, fresh request id, distinct actions); ``None`` admits every
            such subscription. A hook that raises refuses the request with
            ``ricRequest/unspecified`` (counted as a protocol error), never the endpoint.
    """

    def __init__(
        self,
        node_id: E.GlobalE2NodeId,
        ran_functions: tuple[E.RanFunction, ...],
        component_configs: tuple[E.E2NodeComponentConfig, ...] = (E.E2NodeComponentConfig("f1", 0, b"", b""),),
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        admit: SubscriptionAdmission | None = None,
    ) -> None:
        super().__init__(request_timeout_s)
        ids = [f.ran_function_id for f in ran_functions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"ran_functions have duplicate ids {ids}")
        if not component_configs:
            raise ValueError("component_configs needs at least one component")
        self.node_id = node_id
        self.ran_functions = {f.ran_function_id: f for f in ran_functions}
        self.component_configs = tuple(component_configs)
        self.admit = admit
        self.accepted_functions: set[int] = set()
        self.subscriptions: dict[E.RicRequestId, E.RicSubscriptionRequest] = {}
        self._sn: dict[E.RicRequestId, int] = {}
        self._controls: set[E.RicRequestId] = set()

    # -- API
    def start_setup(self, now: float) -> Output:
        """Send E2 Setup Request (link must be idle)."""
        if self.state is not LinkState.IDLE:
            raise E2ProtocolError(f"cannot start E2 Setup: link is {self.state.value}")
        tid = self._new_transaction_id("setup")
        msg = E.E2SetupRequest(tid, self.node_id, tuple(self.ran_functions.values()), self.component_configs)
        self._pending[("setup", tid)] = _Pending("setup", now + self.request_timeout_s, msg)
        self.state = LinkState.SETUP_PENDING
        return self._send([msg]), []

    def send_indication(self, request_id: E.RicRequestId, action_id: int, header: bytes, message: bytes,
                        indication_type: str = "report") -> Output:
        """Send one RIC Indication of an active subscription (sequence number kept per subscription)."""
        self._require_ready("send an indication")
        sub = self.subscriptions.get(request_id)
        if sub is None:
            raise E2ProtocolError(f"cannot send indication: no active subscription {request_id}")
        if action_id not in {a.action_id for a in sub.actions}:
            raise E2ProtocolError(f"cannot send indication: action {action_id} not in subscription {request_id}")
        sn = self._sn[request_id]
        self._sn[request_id] = (sn + 1) % (E.MAX_INDICATION_SN + 1)
        msg = E.RicIndication(request_id, sub.ran_function_id, action_id, sn, indication_type, header, message)
        return self._send([msg]), []

    def ack_control(self, request: E.RicControlRequest, outcome: bytes | None = None) -> Output:
        """Answer a received control request as executed (nothing is sent if it asked for noAck)."""
        return self._answer_control(request, E.RicControlAcknowledge(
            request.request_id, request.ran_function_id, request.call_process_id, outcome))

    def fail_control(self, request: E.RicControlRequest, cause: E.Cause, outcome: bytes | None = None) -> Output:
        """Answer a received control request as failed."""
        return self._answer_control(request, E.RicControlFailure(
            request.request_id, request.ran_function_id, cause, request.call_process_id, outcome))

    def _answer_control(self, request: E.RicControlRequest, answer: E.E2apMessage) -> Output:
        if request.request_id not in self._controls:
            raise E2ProtocolError(f"no unanswered control request {request.request_id}")
        self._controls.discard(request.request_id)
        if request.ack_request == "noAck" and isinstance(answer, E.RicControlAcknowledge):
            return [], []
        return self._send([answer]), []

    # -- inputs
    def _clear_link_state(self) -> None:
        super()._clear_link_state()
        self.subscriptions.clear()
        self._sn.clear()
        self._controls.clear()

    def _on_timeout(self, pending: _Pending) -> None:
        if pending.kind == "setup":
            self.state = LinkState.IDLE

    def _handle(self, msg: E.E2apMessage, now: float) -> Output:
        if isinstance(msg, E.E2SetupResponse):
            self._expect("setup", msg.transaction_id)
            self.state = LinkState.READY
            self.accepted_functions = {a.ran_function_id for a in msg.accepted}
            return [], [SetupCompleted(msg)]
        if isinstance(msg, E.E2SetupFailure):
            self._expect("setup", msg.transaction_id)
            self.state = LinkState.IDLE
            return [], [SetupFailed(msg)]
        common = self._handle_common(msg)
        if common is not None:
            return common
        self._require_ready(f"handle {type(msg).__name__}")
        if isinstance(msg, E.RicSubscriptionRequest):
            return self._on_subscription(msg)
        if isinstance(msg, E.RicSubscriptionDeleteRequest):
            sub = self.subscriptions.get(msg.request_id)
            if sub is None or sub.ran_function_id != msg.ran_function_id:
                fail = E.RicSubscriptionDeleteFailure(msg.request_id, msg.ran_function_id,
                                                      E.Cause("ricRequest", "request-id-unknown"))
                return self._send([fail]), []
            del self.subscriptions[msg.request_id]
            del self._sn[msg.request_id]
            return (self._send([E.RicSubscriptionDeleteResponse(msg.request_id, msg.ran_function_id)]),
                    [SubscriptionEnded(msg.request_id, msg.ran_function_id)])
        if isinstance(msg, E.RicControlRequest):
            if msg.ran_function_id not in self.accepted_functions:
                fail = E.RicControlFailure(msg.request_id, msg.ran_function_id,
                                           E.Cause("ricRequest", "ran-function-id-invalid"))
                return self._send([fail]), []
            if msg.request_id in self._controls:
                raise E2ProtocolError(f"duplicate RIC control request {msg.request_id}")
            self._controls.add(msg.request_id)
            return [], [ControlReceived(msg)]
        raise E2ProtocolError(f"{type(msg).__name__} is not expected by the E2 node side")

    def _on_subscription(self, msg: E.RicSubscriptionRequest) -> Output:
        cause = None
        if msg.ran_function_id not in self.accepted_functions:
            cause = E.Cause("ricRequest", "ran-function-id-invalid")
        elif msg.request_id in self.subscriptions:
            cause = E.Cause("ricRequest", "duplicate-ric-request-id")
        elif len({a.action_id for a in msg.actions}) != len(msg.actions):
            cause = E.Cause("ricRequest", "duplicate-action")
        elif self.admit is not None:
            try:
                cause = self.admit(msg)
            except Exception as exc:  # a faulty hook refuses the request, never the link
                self.stats.protocol_errors += 1
                log.warning("subscription %s: admission hook failed: %r", msg.request_id, exc)
                cause = E.Cause("ricRequest", "unspecified")
        if cause is not None:
            return self._send([E.RicSubscriptionFailure(msg.request_id, msg.ran_function_id, cause)]), []
        self.subscriptions[msg.request_id] = msg
        self._sn[msg.request_id] = 0
        admitted = tuple(a.action_id for a in msg.actions)
        return (self._send([E.RicSubscriptionResponse(msg.request_id, msg.ran_function_id, admitted)]),
                [SubscriptionStarted(msg)])
