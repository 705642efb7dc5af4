"""E2AP PDU codec: O-RAN E2AP (ASN.1 APER) bytes <-> frozen dataclasses of our own.

Two pure functions, :func:`encode` and :func:`decode`, convert between the wire bytes of
an ``E2AP-PDU`` and the message dataclasses of this module. The ASN.1 work is done by
pycrate's compiled E2AP module (``pycrate_asn1dir.E2AP``, the "version2" E2AP module line,
OIDs 1.3.6.1.4.1.53148.1.2.1.x); no pycrate type leaves this module.

Supported procedures (procedure code): E2 Setup (1), Error Indication (2), Reset (3),
RIC Control (4), RIC Indication (5), RIC Subscription (8), RIC Subscription Delete (9).

Fidelity: every IE of these messages is carried, except CriticalityDiagnostics and
TNLinformation, which are dropped on decode (we never send them). IE criticalities are the
ones the specification fixes; the procedure criticality of the PDU is kept in
``procedure_criticality`` when a peer sends a value other than the specification's (some
nodes send ``ignore`` for RIC Subscription), so such PDUs re-encode byte-identically.

Errors: :func:`decode` raises only :class:`~lighttune_e2.errors.E2DecodeError`, whatever
the bytes; :func:`encode` raises :class:`~lighttune_e2.errors.E2EncodeError` when a value
does not fit its ASN.1 type. Constructors raise ``ValueError`` naming the bad field.

Thread safety: both functions may be called from any number of threads. pycrate's compiled
ASN.1 objects are module-level and hold the value being encoded or decoded, so the pycrate
calls run under one module lock (``_PYCRATE_LOCK``); the values they hand back are fresh
Python objects, so the conversion to and from dataclasses runs outside it. Without the lock
a thread decoding a RIC Control Request could read the RIC Indication another thread was
encoding at that moment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union

from pycrate_asn1dir import E2AP as _E2AP

from lighttune_e2.errors import E2DecodeError, E2EncodeError

Criticality = Literal["reject", "ignore", "notify"]

_PDU = _E2AP.E2AP_PDU_Descriptions.E2AP_PDU
_PYCRATE_LOCK = threading.Lock()
"""Serialises every use of :data:`_PDU` (its value is shared state; see the module doc)."""
_IES = _E2AP.E2AP_IEs

MAX_TRANSACTION_ID = 255
MAX_REQUESTOR_ID = 65535
MAX_INSTANCE_ID = 65535
MAX_RAN_FUNCTION_ID = 4095
MAX_ACTION_ID = 255
MAX_INDICATION_SN = 65535

CAUSE_VALUES: dict[str, tuple[str, ...]] = {
    "ricRequest": tuple(_IES.CauseRICrequest._cont_rev.values()),
    "ricService": tuple(_IES.CauseRICservice._cont_rev.values()),
    "e2Node": tuple(_IES.CauseE2node._cont_rev.values()),
    "transport": tuple(_IES.CauseTransport._cont_rev.values()),
    "protocol": tuple(_IES.CauseProtocol._cont_rev.values()),
    "misc": tuple(_IES.CauseMisc._cont_rev.values()),
}
"""Cause groups of E2AP and the enumerated values of each (read from the ASN.1 module)."""

TIME_TO_WAIT_VALUES: tuple[str, ...] = tuple(_IES.TimeToWait._cont_rev.values())
RIC_TIME_TO_WAIT_VALUES: tuple[str, ...] = tuple(_IES.RICtimeToWait._cont_rev.values())
ACTION_TYPES: tuple[str, ...] = tuple(_IES.RICactionType._cont_rev.values())
INDICATION_TYPES: tuple[str, ...] = tuple(_IES.RICindicationType._cont_rev.values())
CONTROL_ACK_REQUESTS: tuple[str, ...] = tuple(_IES.RICcontrolAckRequest._cont_rev.values())

# interface type -> (E2nodeComponentID choice name, field of that choice, python type)
_COMPONENT_ID_FORMS: dict[str, tuple[str, str, type]] = {
    "ng": ("e2nodeComponentInterfaceTypeNG", "amf-name", str),
    "e1": ("e2nodeComponentInterfaceTypeE1", "gNB-CU-UP-ID", int),
    "f1": ("e2nodeComponentInterfaceTypeF1", "gNB-DU-ID", int),
    "w1": ("e2nodeComponentInterfaceTypeW1", "ng-eNB-DU-ID", int),
    "s1": ("e2nodeComponentInterfaceTypeS1", "mme-name", str),
}


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")


def _check_opt_int(name: str, value: Any, lo: int, hi: int) -> None:
    if value is not None:
        _check_int(name, value, lo, hi)


def _check_bytes(name: str, value: Any) -> None:
    if not isinstance(value, bytes):
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


# --------------------------------------------------------------------------- IE values


@dataclass(frozen=True)
class Cause:
    """E2AP Cause: a group (``ricRequest``, ``misc`` ...) and one value of that group."""

    group: str
    value: str

    def __post_init__(self) -> None:
        _check_choice("Cause.group", self.group, tuple(CAUSE_VALUES))
        _check_choice(f"Cause.value ({self.group})", self.value, CAUSE_VALUES[self.group])


@dataclass(frozen=True)
class RicRequestId:
    """RIC Request ID: ``requestor_id`` (0..65535, the xApp) and ``instance_id`` (0..65535)."""

    requestor_id: int
    instance_id: int

    def __post_init__(self) -> None:
        _check_int("RicRequestId.requestor_id", self.requestor_id, 0, MAX_REQUESTOR_ID)
        _check_int("RicRequestId.instance_id", self.instance_id, 0, MAX_INSTANCE_ID)


@dataclass(frozen=True)
class GlobalE2NodeId:
    """Global E2 node id of a gNB: PLMN (3 octets, TS 24.008 BCD), gNB id of 22..32 bits.

    ``gnb_cu_up_id`` / ``gnb_du_id`` (0 .. 2**36 - 1) are present for split gNBs.
    """

    plmn_id: bytes
    gnb_id: int
    gnb_id_bits: int = 32
    gnb_cu_up_id: int | None = None
    gnb_du_id: int | None = None

    def __post_init__(self) -> None:
        _check_bytes("GlobalE2NodeId.plmn_id", self.plmn_id)
        if len(self.plmn_id) != 3:
            raise ValueError(f"GlobalE2NodeId.plmn_id must be 3 octets, got {len(self.plmn_id)}")
        _check_int("GlobalE2NodeId.gnb_id_bits", self.gnb_id_bits, 22, 32)
        _check_int("GlobalE2NodeId.gnb_id", self.gnb_id, 0, 2**self.gnb_id_bits - 1)
        _check_opt_int("GlobalE2NodeId.gnb_cu_up_id", self.gnb_cu_up_id, 0, 2**36 - 1)
        _check_opt_int("GlobalE2NodeId.gnb_du_id", self.gnb_du_id, 0, 2**36 - 1)


@dataclass(frozen=True)
class GlobalRicId:
    """Global RIC id: PLMN (3 octets) and a 20-bit near-RT RIC id."""

    plmn_id: bytes
    ric_id: int

    def __post_init__(self) -> None:
        _check_bytes("GlobalRicId.plmn_id", self.plmn_id)
        if len(self.plmn_id) != 3:
            raise ValueError(f"GlobalRicId.plmn_id must be 3 octets, got {len(self.plmn_id)}")
        _check_int("GlobalRicId.ric_id", self.ric_id, 0, 2**20 - 1)


@dataclass(frozen=True)
class RanFunction:
    """A RAN function an E2 node offers: id (0..4095), definition (service-model bytes),
    revision (0..4095) and the service model's OID (printable string, 1..1000 chars)."""

    ran_function_id: int
    definition: bytes
    revision: int
    oid: str

    def __post_init__(self) -> None:
        _check_int("RanFunction.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)
        _check_bytes("RanFunction.definition", self.definition)
        _check_int("RanFunction.revision", self.revision, 0, MAX_RAN_FUNCTION_ID)
        if not isinstance(self.oid, str) or not 1 <= len(self.oid) <= 1000:
            raise ValueError(f"RanFunction.oid must be a string of 1..1000 chars, got {self.oid!r}")


@dataclass(frozen=True)
class RanFunctionIdItem:
    """An accepted RAN function: id and revision (both 0..4095)."""

    ran_function_id: int
    revision: int

    def __post_init__(self) -> None:
        _check_int("RanFunctionIdItem.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)
        _check_int("RanFunctionIdItem.revision", self.revision, 0, MAX_RAN_FUNCTION_ID)


@dataclass(frozen=True)
class RanFunctionRejected:
    """A rejected RAN function: id (0..4095) and why."""

    ran_function_id: int
    cause: Cause

    def __post_init__(self) -> None:
        _check_int("RanFunctionRejected.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)


def _check_component(prefix: str, interface_type: str, component_id: str | int) -> None:
    _check_choice(f"{prefix}.interface_type", interface_type, tuple(_COMPONENT_ID_FORMS))
    want = _COMPONENT_ID_FORMS[interface_type][2]
    if isinstance(component_id, bool) or not isinstance(component_id, want):
        raise ValueError(
            f"{prefix}.component_id must be {want.__name__} for interface {interface_type!r}, "
            f"got {component_id!r}"
        )


@dataclass(frozen=True)
class E2NodeComponentConfig:
    """One E2 node component configuration added at setup.

    ``interface_type`` is one of ng, e1, f1, w1, s1; ``component_id`` is the AMF/MME name (ng,
    s1) or the CU-UP / DU id (e1, f1, w1); the request/response parts are the interface's
    own setup messages (opaque octets).
    """

    interface_type: str
    component_id: str | int
    request_part: bytes
    response_part: bytes

    def __post_init__(self) -> None:
        _check_component("E2NodeComponentConfig", self.interface_type, self.component_id)
        _check_bytes("E2NodeComponentConfig.request_part", self.request_part)
        _check_bytes("E2NodeComponentConfig.response_part", self.response_part)


@dataclass(frozen=True)
class E2NodeComponentAck:
    """The RIC's acknowledgement of one component configuration."""

    interface_type: str
    component_id: str | int
    success: bool = True
    failure_cause: Cause | None = None

    def __post_init__(self) -> None:
        _check_component("E2NodeComponentAck", self.interface_type, self.component_id)


@dataclass(frozen=True)
class RicSubsequentAction:
    """What the node does after a report action: ``continue`` or ``wait`` (time_to_wait w1ms..w60s)."""

    action_type: str
    time_to_wait: str

    def __post_init__(self) -> None:
        _check_choice("RicSubsequentAction.action_type", self.action_type, ("continue", "wait"))
        _check_choice("RicSubsequentAction.time_to_wait", self.time_to_wait, RIC_TIME_TO_WAIT_VALUES)


@dataclass(frozen=True)
class RicAction:
    """One action of a subscription: id (0..255), type (report/insert/policy), definition."""

    action_id: int
    action_type: str = "report"
    definition: bytes | None = None
    subsequent_action: RicSubsequentAction | None = None

    def __post_init__(self) -> None:
        _check_int("RicAction.action_id", self.action_id, 0, MAX_ACTION_ID)
        _check_choice("RicAction.action_type", self.action_type, ACTION_TYPES)
        if self.definition is not None:
            _check_bytes("RicAction.definition", self.definition)


@dataclass(frozen=True)
class RicActionNotAdmitted:
    """An action the node refused, with the cause."""

    action_id: int
    cause: Cause

    def __post_init__(self) -> None:
        _check_int("RicActionNotAdmitted.action_id", self.action_id, 0, MAX_ACTION_ID)


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, kw_only=True)
class E2apMessage:
    """Base of all E2AP messages.

    ``procedure_criticality``: None means the specification's criticality of the procedure;
    a decoded PDU that carried another value keeps it here so it re-encodes unchanged.
    """

    procedure_criticality: Criticality | None = None


@dataclass(frozen=True)
class E2SetupRequest(E2apMessage):
    """E2 node -> RIC: set up the E2 link and announce the node's RAN functions."""

    transaction_id: int
    global_e2_node_id: GlobalE2NodeId
    ran_functions: tuple[RanFunction, ...]
    component_configs: tuple[E2NodeComponentConfig, ...]

    def __post_init__(self) -> None:
        _check_int("E2SetupRequest.transaction_id", self.transaction_id, 0, MAX_TRANSACTION_ID)
        if not self.component_configs:
            raise ValueError("E2SetupRequest.component_configs needs at least one component")
        object.__setattr__(self, "ran_functions", tuple(self.ran_functions))
        object.__setattr__(self, "component_configs", tuple(self.component_configs))


@dataclass(frozen=True)
class E2SetupResponse(E2apMessage):
    """RIC -> E2 node: link set up; which RAN functions were accepted or rejected."""

    transaction_id: int
    global_ric_id: GlobalRicId
    accepted: tuple[RanFunctionIdItem, ...]
    rejected: tuple[RanFunctionRejected, ...]
    component_acks: tuple[E2NodeComponentAck, ...]

    def __post_init__(self) -> None:
        _check_int("E2SetupResponse.transaction_id", self.transaction_id, 0, MAX_TRANSACTION_ID)
        if not self.component_acks:
            raise ValueError("E2SetupResponse.component_acks needs at least one component")
        object.__setattr__(self, "accepted", tuple(self.accepted))
        object.__setattr__(self, "rejected", tuple(self.rejected))
        object.__setattr__(self, "component_acks", tuple(self.component_acks))


@dataclass(frozen=True)
class E2SetupFailure(E2apMessage):
    """RIC -> E2 node: setup refused; optional time to wait (v1s..v60s) before retrying."""

    transaction_id: int
    cause: Cause
    time_to_wait: str | None = None

    def __post_init__(self) -> None:
        _check_int("E2SetupFailure.transaction_id", self.transaction_id, 0, MAX_TRANSACTION_ID)
        if self.time_to_wait is not None:
            _check_choice("E2SetupFailure.time_to_wait", self.time_to_wait, TIME_TO_WAIT_VALUES)


@dataclass(frozen=True)
class RicSubscriptionRequest(E2apMessage):
    """RIC -> node: subscribe to a RAN function with an event trigger and actions."""

    request_id: RicRequestId
    ran_function_id: int
    event_trigger: bytes
    actions: tuple[RicAction, ...]

    def __post_init__(self) -> None:
        _check_int("RicSubscriptionRequest.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)
        _check_bytes("RicSubscriptionRequest.event_trigger", self.event_trigger)
        if not self.actions:
            raise ValueError("RicSubscriptionRequest.actions needs at least one action")
        object.__setattr__(self, "actions", tuple(self.actions))


@dataclass(frozen=True)
class RicSubscriptionResponse(E2apMessage):
    """Node -> RIC: subscription accepted; admitted action ids and refused actions."""

    request_id: RicRequestId
    ran_function_id: int
    admitted: tuple[int, ...]
    not_admitted: tuple[RicActionNotAdmitted, ...] = ()

    def __post_init__(self) -> None:
        _check_int("RicSubscriptionResponse.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)
        if not self.admitted:
            raise ValueError("RicSubscriptionResponse.admitted needs at least one action id")
        for a in self.admitted:
            _check_int("RicSubscriptionResponse.admitted[]", a, 0, MAX_ACTION_ID)
        object.__setattr__(self, "admitted", tuple(self.admitted))
        object.__setattr__(self, "not_admitted", tuple(self.not_admitted))


@dataclass(frozen=True)
class RicSubscriptionFailure(E2apMessage):
    """Node -> RIC: subscription refused."""

    request_id: RicRequestId
    ran_function_id: int
    cause: Cause

    def __post_init__(self) -> None:
        _check_int("RicSubscriptionFailure.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)


@dataclass(frozen=True)
class RicSubscriptionDeleteRequest(E2apMessage):
    """RIC -> node: end a subscription."""

    request_id: RicRequestId
    ran_function_id: int

    def __post_init__(self) -> None:
        _check_int("RicSubscriptionDeleteRequest.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)


@dataclass(frozen=True)
class RicSubscriptionDeleteResponse(E2apMessage):
    """Node -> RIC: subscription ended."""

    request_id: RicRequestId
    ran_function_id: int

    def __post_init__(self) -> None:
        _check_int("RicSubscriptionDeleteResponse.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)


@dataclass(frozen=True)
class RicSubscriptionDeleteFailure(E2apMessage):
    """Node -> RIC: subscription could not be ended (usually: unknown request id)."""

    request_id: RicRequestId
    ran_function_id: int
    cause: Cause

    def __post_init__(self) -> None:
        _check_int("RicSubscriptionDeleteFailure.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)


@dataclass(frozen=True)
class RicIndication(E2apMessage):
    """Node -> RIC: one report of a subscription's action.

    ``sn`` (0..65535) is the optional indication sequence number; ``header`` and ``message``
    are service-model payloads (opaque here); ``call_process_id`` is optional.
    """

    request_id: RicRequestId
    ran_function_id: int
    action_id: int
    sn: int | None
    indication_type: str
    header: bytes
    message: bytes
    call_process_id: bytes | None = None

    def __post_init__(self) -> None:
        _check_int("RicIndication.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)
        _check_int("RicIndication.action_id", self.action_id, 0, MAX_ACTION_ID)
        _check_opt_int("RicIndication.sn", self.sn, 0, MAX_INDICATION_SN)
        _check_choice("RicIndication.indication_type", self.indication_type, INDICATION_TYPES)
        _check_bytes("RicIndication.header", self.header)
        _check_bytes("RicIndication.message", self.message)


@dataclass(frozen=True)
class RicControlRequest(E2apMessage):
    """RIC -> node: a control action (service-model header and message).

    ``ack_request`` is None (IE absent), ``"ack"`` or ``"noAck"``.
    """

    request_id: RicRequestId
    ran_function_id: int
    header: bytes
    message: bytes
    call_process_id: bytes | None = None
    ack_request: str | None = None

    def __post_init__(self) -> None:
        _check_int("RicControlRequest.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)
        _check_bytes("RicControlRequest.header", self.header)
        _check_bytes("RicControlRequest.message", self.message)
        if self.ack_request is not None:
            _check_choice("RicControlRequest.ack_request", self.ack_request, CONTROL_ACK_REQUESTS)


@dataclass(frozen=True)
class RicControlAcknowledge(E2apMessage):
    """Node -> RIC: control executed; optional service-model outcome bytes."""

    request_id: RicRequestId
    ran_function_id: int
    call_process_id: bytes | None = None
    outcome: bytes | None = None

    def __post_init__(self) -> None:
        _check_int("RicControlAcknowledge.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)


@dataclass(frozen=True)
class RicControlFailure(E2apMessage):
    """Node -> RIC: control refused or failed."""

    request_id: RicRequestId
    ran_function_id: int
    cause: Cause
    call_process_id: bytes | None = None
    outcome: bytes | None = None

    def __post_init__(self) -> None:
        _check_int("RicControlFailure.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)


@dataclass(frozen=True)
class ErrorIndication(E2apMessage):
    """Either side: a received message could not be handled. All IEs are optional."""

    transaction_id: int | None = None
    request_id: RicRequestId | None = None
    ran_function_id: int | None = None
    cause: Cause | None = None

    def __post_init__(self) -> None:
        _check_opt_int("ErrorIndication.transaction_id", self.transaction_id, 0, MAX_TRANSACTION_ID)
        _check_opt_int("ErrorIndication.ran_function_id", self.ran_function_id, 0, MAX_RAN_FUNCTION_ID)


@dataclass(frozen=True)
class ResetRequest(E2apMessage):
    """Either side: drop all subscriptions and pending procedures of the link."""

    transaction_id: int
    cause: Cause

    def __post_init__(self) -> None:
        _check_int("ResetRequest.transaction_id", self.transaction_id, 0, MAX_TRANSACTION_ID)


@dataclass(frozen=True)
class ResetResponse(E2apMessage):
    """Answer to :class:`ResetRequest`."""

    transaction_id: int

    def __post_init__(self) -> None:
        _check_int("ResetResponse.transaction_id", self.transaction_id, 0, MAX_TRANSACTION_ID)


E2apPdu = Union[
    E2SetupRequest, E2SetupResponse, E2SetupFailure,
    RicSubscriptionRequest, RicSubscriptionResponse, RicSubscriptionFailure,
    RicSubscriptionDeleteRequest, RicSubscriptionDeleteResponse, RicSubscriptionDeleteFailure,
    RicIndication, RicControlRequest, RicControlAcknowledge, RicControlFailure,
    ErrorIndication, ResetRequest, ResetResponse,
]

# --------------------------------------------------------------------------- IE <-> value

_IE_TRANSACTION = 49
_IE_REQUEST_ID = 29
_IE_RAN_FUNCTION_ID = 5
_IE_CAUSE = 1


def _cause_to(c: Cause) -> tuple[str, str]:
    return (c.group, c.value)


def _cause_from(v: Any) -> Cause:
    return Cause(v[0], v[1])


def _req_to(r: RicRequestId) -> dict[str, int]:
    return {"ricRequestorID": r.requestor_id, "ricInstanceID": r.instance_id}


def _req_from(v: Any) -> RicRequestId:
    return RicRequestId(v["ricRequestorID"], v["ricInstanceID"])


def _item_list(ie_id: int, type_name: str, values: list[Any], crit: Criticality = "ignore") -> list[dict[str, Any]]:
    return [{"id": ie_id, "criticality": crit, "value": (type_name, v)} for v in values]


def _items_from(v: Any) -> list[Any]:
    return [item["value"][1] for item in v]


def _component_id_to(interface_type: str, component_id: str | int) -> tuple[str, dict[str, Any]]:
    choice, fld, _ = _COMPONENT_ID_FORMS[interface_type]
    return (choice, {fld: component_id})


def _component_id_from(interface_type: str, v: Any) -> str | int:
    if interface_type not in _COMPONENT_ID_FORMS:
        raise E2DecodeError(f"unsupported E2 node component interface type {interface_type!r}")
    choice, fld, _ = _COMPONENT_ID_FORMS[interface_type]
    if v[0] != choice:
        raise E2DecodeError(f"component id {v[0]!r} does not match interface type {interface_type!r}")
    return v[1][fld]


def _node_id_to(n: GlobalE2NodeId) -> tuple[str, dict[str, Any]]:
    gnb: dict[str, Any] = {
        "global-gNB-ID": {"plmn-id": n.plmn_id, "gnb-id": ("gnb-ID", (n.gnb_id, n.gnb_id_bits))}
    }
    if n.gnb_cu_up_id is not None:
        gnb["gNB-CU-UP-ID"] = n.gnb_cu_up_id
    if n.gnb_du_id is not None:
        gnb["gNB-DU-ID"] = n.gnb_du_id
    return ("gNB", gnb)


def _node_id_from(v: Any) -> GlobalE2NodeId:
    if v[0] != "gNB":
        raise E2DecodeError(f"unsupported global E2 node id type {v[0]!r} (only gNB)")
    g = v[1]["global-gNB-ID"]
    value, bits = g["gnb-id"][1]
    return GlobalE2NodeId(
        g["plmn-id"], value, bits, v[1].get("gNB-CU-UP-ID"), v[1].get("gNB-DU-ID")
    )


def _action_to(a: RicAction) -> dict[str, Any]:
    d: dict[str, Any] = {"ricActionID": a.action_id, "ricActionType": a.action_type}
    if a.definition is not None:
        d["ricActionDefinition"] = a.definition
    if a.subsequent_action is not None:
        d["ricSubsequentAction"] = {
            "ricSubsequentActionType": a.subsequent_action.action_type,
            "ricTimeToWait": a.subsequent_action.time_to_wait,
        }
    return d


def _action_from(v: Any) -> RicAction:
    sub = v.get("ricSubsequentAction")
    return RicAction(
        v["ricActionID"],
        v["ricActionType"],
        v.get("ricActionDefinition"),
        None if sub is None else RicSubsequentAction(sub["ricSubsequentActionType"], sub["ricTimeToWait"]),
    )


IeList = list[tuple[int, Any]]


def _setup_req_to(m: E2SetupRequest) -> IeList:
    return [
        (_IE_TRANSACTION, m.transaction_id),
        (3, _node_id_to(m.global_e2_node_id)),
        (10, _item_list(8, "RANfunction-Item", [
            {"ranFunctionID": f.ran_function_id, "ranFunctionDefinition": f.definition,
             "ranFunctionRevision": f.revision, "ranFunctionOID": f.oid}
            for f in m.ran_functions
        ])),
        (50, _item_list(51, "E2nodeComponentConfigAddition-Item", [
            {"e2nodeComponentInterfaceType": c.interface_type,
             "e2nodeComponentID": _component_id_to(c.interface_type, c.component_id),
             "e2nodeComponentConfiguration": {"e2nodeComponentRequestPart": c.request_part,
                                              "e2nodeComponentResponsePart": c.response_part}}
            for c in m.component_configs
        ], "reject")),
    ]


def _setup_req_from(ies: dict[int, Any], crit: Criticality | None) -> E2SetupRequest:
    funcs = tuple(
        RanFunction(f["ranFunctionID"], f["ranFunctionDefinition"], f["ranFunctionRevision"], f["ranFunctionOID"])
        for f in _items_from(ies[10])
    )
    comps = tuple(
        E2NodeComponentConfig(
            c["e2nodeComponentInterfaceType"],
            _component_id_from(c["e2nodeComponentInterfaceType"], c["e2nodeComponentID"]),
            c["e2nodeComponentConfiguration"]["e2nodeComponentRequestPart"],
            c["e2nodeComponentConfiguration"]["e2nodeComponentResponsePart"],
        )
        for c in _items_from(ies[50])
    )
    return E2SetupRequest(ies[_IE_TRANSACTION], _node_id_from(ies[3]), funcs, comps, procedure_criticality=crit)


def _setup_resp_to(m: E2SetupResponse) -> IeList:
    ies: IeList = [
        (_IE_TRANSACTION, m.transaction_id),
        (4, {"pLMN-Identity": m.global_ric_id.plmn_id, "ric-ID": (m.global_ric_id.ric_id, 20)}),
    ]
    if m.accepted:
        ies.append((9, _item_list(6, "RANfunctionID-Item", [
            {"ranFunctionID": a.ran_function_id, "ranFunctionRevision": a.revision} for a in m.accepted
        ])))
    if m.rejected:
        ies.append((13, _item_list(7, "RANfunctionIDcause-Item", [
            {"ranFunctionID": r.ran_function_id, "cause": _cause_to(r.cause)} for r in m.rejected
        ])))
    acks = []
    for a in m.component_acks:
        ack: dict[str, Any] = {"updateOutcome": "success" if a.success else "failure"}
        if a.failure_cause is not None:
            ack["failureCause"] = _cause_to(a.failure_cause)
        acks.append({
            "e2nodeComponentInterfaceType": a.interface_type,
            "e2nodeComponentID": _component_id_to(a.interface_type, a.component_id),
            "e2nodeComponentConfigurationAck": ack,
        })
    ies.append((52, _item_list(53, "E2nodeComponentConfigAdditionAck-Item", acks, "reject")))
    return ies


def _setup_resp_from(ies: dict[int, Any], crit: Criticality | None) -> E2SetupResponse:
    ric = ies[4]
    accepted = tuple(
        RanFunctionIdItem(a["ranFunctionID"], a["ranFunctionRevision"]) for a in _items_from(ies.get(9, []))
    )
    rejected = tuple(
        RanFunctionRejected(r["ranFunctionID"], _cause_from(r["cause"])) for r in _items_from(ies.get(13, []))
    )
    acks = []
    for a in _items_from(ies[52]):
        ack = a["e2nodeComponentConfigurationAck"]
        fc = ack.get("failureCause")
        acks.append(E2NodeComponentAck(
            a["e2nodeComponentInterfaceType"],
            _component_id_from(a["e2nodeComponentInterfaceType"], a["e2nodeComponentID"]),
            ack["updateOutcome"] == "success",
            None if fc is None else _cause_from(fc),
        ))
    ric_id, bits = ric["ric-ID"]
    if bits != 20:
        raise E2DecodeError(f"GlobalRIC-ID.ric-ID must have 20 bits, got {bits}")
    return E2SetupResponse(
        ies[_IE_TRANSACTION], GlobalRicId(ric["pLMN-Identity"], ric_id), accepted, rejected, tuple(acks),
        procedure_criticality=crit,
    )


def _setup_fail_to(m: E2SetupFailure) -> IeList:
    ies: IeList = [(_IE_TRANSACTION, m.transaction_id), (_IE_CAUSE, _cause_to(m.cause))]
    if m.time_to_wait is not None:
        ies.append((31, m.time_to_wait))
    return ies


def _setup_fail_from(ies: dict[int, Any], crit: Criticality | None) -> E2SetupFailure:
    return E2SetupFailure(ies[_IE_TRANSACTION], _cause_from(ies[_IE_CAUSE]), ies.get(31), procedure_criticality=crit)


def _sub_req_to(m: RicSubscriptionRequest) -> IeList:
    return [
        (_IE_REQUEST_ID, _req_to(m.request_id)),
        (_IE_RAN_FUNCTION_ID, m.ran_function_id),
        (30, {
            "ricEventTriggerDefinition": m.event_trigger,
            "ricAction-ToBeSetup-List": _item_list(19, "RICaction-ToBeSetup-Item", [_action_to(a) for a in m.actions]),
        }),
    ]


def _sub_req_from(ies: dict[int, Any], crit: Criticality | None) -> RicSubscriptionRequest:
    det = ies[30]
    actions = tuple(_action_from(a) for a in _items_from(det["ricAction-ToBeSetup-List"]))
    return RicSubscriptionRequest(
        _req_from(ies[_IE_REQUEST_ID]), ies[_IE_RAN_FUNCTION_ID], det["ricEventTriggerDefinition"], actions,
        procedure_criticality=crit,
    )


def _sub_resp_to(m: RicSubscriptionResponse) -> IeList:
    ies: IeList = [
        (_IE_REQUEST_ID, _req_to(m.request_id)),
        (_IE_RAN_FUNCTION_ID, m.ran_function_id),
        (17, _item_list(14, "RICaction-Admitted-Item", [{"ricActionID": a} for a in m.admitted])),
    ]
    if m.not_admitted:
        ies.append((18, _item_list(16, "RICaction-NotAdmitted-Item", [
            {"ricActionID": n.action_id, "cause": _cause_to(n.cause)} for n in m.not_admitted
        ])))
    return ies


def _sub_resp_from(ies: dict[int, Any], crit: Criticality | None) -> RicSubscriptionResponse:
    admitted = tuple(a["ricActionID"] for a in _items_from(ies[17]))
    refused = tuple(
        RicActionNotAdmitted(n["ricActionID"], _cause_from(n["cause"])) for n in _items_from(ies.get(18, []))
    )
    return RicSubscriptionResponse(
        _req_from(ies[_IE_REQUEST_ID]), ies[_IE_RAN_FUNCTION_ID], admitted, refused, procedure_criticality=crit
    )


def _req_fn_to(m: Any) -> IeList:
    return [(_IE_REQUEST_ID, _req_to(m.request_id)), (_IE_RAN_FUNCTION_ID, m.ran_function_id)]


def _req_fn_cause_to(m: Any) -> IeList:
    return _req_fn_to(m) + [(_IE_CAUSE, _cause_to(m.cause))]


def _make_req_fn_from(cls: type) -> Callable[[dict[int, Any], Criticality | None], Any]:
    def from_ies(ies: dict[int, Any], crit: Criticality | None) -> Any:
        return cls(_req_from(ies[_IE_REQUEST_ID]), ies[_IE_RAN_FUNCTION_ID], procedure_criticality=crit)

    return from_ies


def _make_req_fn_cause_from(cls: type) -> Callable[[dict[int, Any], Criticality | None], Any]:
    def from_ies(ies: dict[int, Any], crit: Criticality | None) -> Any:
        return cls(
            _req_from(ies[_IE_REQUEST_ID]), ies[_IE_RAN_FUNCTION_ID], _cause_from(ies[_IE_CAUSE]),
            procedure_criticality=crit,
        )

    return from_ies


def _ind_to(m: RicIndication) -> IeList:
    ies: IeList = _req_fn_to(m) + [(15, m.action_id)]
    if m.sn is not None:
        ies.append((27, m.sn))
    ies += [(28, m.indication_type), (25, m.header), (26, m.message)]
    if m.call_process_id is not None:
        ies.append((20, m.call_process_id))
    return ies


def _ind_from(ies: dict[int, Any], crit: Criticality | None) -> RicIndication:
    return RicIndication(
        _req_from(ies[_IE_REQUEST_ID]), ies[_IE_RAN_FUNCTION_ID], ies[15], ies.get(27), ies[28], ies[25], ies[26],
        ies.get(20), procedure_criticality=crit,
    )


def _ctrl_req_to(m: RicControlRequest) -> IeList:
    ies = _req_fn_to(m)
    if m.call_process_id is not None:
        ies.append((20, m.call_process_id))
    ies += [(22, m.header), (23, m.message)]
    if m.ack_request is not None:
        ies.append((21, m.ack_request))
    return ies


def _ctrl_req_from(ies: dict[int, Any], crit: Criticality | None) -> RicControlRequest:
    return RicControlRequest(
        _req_from(ies[_IE_REQUEST_ID]), ies[_IE_RAN_FUNCTION_ID], ies[22], ies[23], ies.get(20), ies.get(21),
        procedure_criticality=crit,
    )


def _ctrl_ack_to(m: RicControlAcknowledge) -> IeList:
    ies = _req_fn_to(m)
    if m.call_process_id is not None:
        ies.append((20, m.call_process_id))
    if m.outcome is not None:
        ies.append((32, m.outcome))
    return ies


def _ctrl_ack_from(ies: dict[int, Any], crit: Criticality | None) -> RicControlAcknowledge:
    return RicControlAcknowledge(
        _req_from(ies[_IE_REQUEST_ID]), ies[_IE_RAN_FUNCTION_ID], ies.get(20), ies.get(32), procedure_criticality=crit
    )


def _ctrl_fail_to(m: RicControlFailure) -> IeList:
    ies = _req_fn_to(m)
    if m.call_process_id is not None:
        ies.append((20, m.call_process_id))
    ies.append((_IE_CAUSE, _cause_to(m.cause)))
    if m.outcome is not None:
        ies.append((32, m.outcome))
    return ies


def _ctrl_fail_from(ies: dict[int, Any], crit: Criticality | None) -> RicControlFailure:
    return RicControlFailure(
        _req_from(ies[_IE_REQUEST_ID]), ies[_IE_RAN_FUNCTION_ID], _cause_from(ies[_IE_CAUSE]), ies.get(20),
        ies.get(32), procedure_criticality=crit,
    )


def _err_to(m: ErrorIndication) -> IeList:
    ies: IeList = []
    if m.transaction_id is not None:
        ies.append((_IE_TRANSACTION, m.transaction_id))
    if m.request_id is not None:
        ies.append((_IE_REQUEST_ID, _req_to(m.request_id)))
    if m.ran_function_id is not None:
        ies.append((_IE_RAN_FUNCTION_ID, m.ran_function_id))
    if m.cause is not None:
        ies.append((_IE_CAUSE, _cause_to(m.cause)))
    return ies


def _err_from(ies: dict[int, Any], crit: Criticality | None) -> ErrorIndication:
    req = ies.get(_IE_REQUEST_ID)
    cause = ies.get(_IE_CAUSE)
    return ErrorIndication(
        ies.get(_IE_TRANSACTION), None if req is None else _req_from(req), ies.get(_IE_RAN_FUNCTION_ID),
        None if cause is None else _cause_from(cause), procedure_criticality=crit,
    )


def _reset_req_to(m: ResetRequest) -> IeList:
    return [(_IE_TRANSACTION, m.transaction_id), (_IE_CAUSE, _cause_to(m.cause))]


def _reset_req_from(ies: dict[int, Any], crit: Criticality | None) -> ResetRequest:
    return ResetRequest(ies[_IE_TRANSACTION], _cause_from(ies[_IE_CAUSE]), procedure_criticality=crit)


def _reset_resp_to(m: ResetResponse) -> IeList:
    return [(_IE_TRANSACTION, m.transaction_id)]


def _reset_resp_from(ies: dict[int, Any], crit: Criticality | None) -> ResetResponse:
    return ResetResponse(ies[_IE_TRANSACTION], procedure_criticality=crit)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _MessageSpec:
    cls: type
    procedure_code: int
    kind: str  # initiatingMessage | successfulOutcome | unsuccessfulOutcome
    value_name: str
    ie_set: str
    to_ies: Callable[[Any], IeList]
    from_ies: Callable[[dict[int, Any], Criticality | None], Any]
    default_criticality: str = ""
    ie_table: dict[int, tuple[str, str]] = field(default_factory=dict)


def _ie_table(ie_set: str) -> dict[int, tuple[str, str]]:
    """IE id -> (criticality, open-type name) as the E2AP module defines them."""
    obj = getattr(_E2AP.E2AP_PDU_Contents, ie_set)
    return {v["id"]: (v["criticality"], v["Value"]._typeref.called[1]) for v in obj._val.root}


def _procedure_criticality() -> dict[int, str]:
    return {
        p["procedureCode"]: p["criticality"]
        for p in _E2AP.E2AP_PDU_Descriptions.E2AP_ELEMENTARY_PROCEDURES._val.root
    }


_SPECS_RAW: list[tuple[type, int, str, str, str, Callable[[Any], IeList], Callable[..., Any]]] = [
    (E2SetupRequest, 1, "initiatingMessage", "E2setupRequest", "E2setupRequestIEs", _setup_req_to, _setup_req_from),
    (E2SetupResponse, 1, "successfulOutcome", "E2setupResponse", "E2setupResponseIEs", _setup_resp_to, _setup_resp_from),
    (E2SetupFailure, 1, "unsuccessfulOutcome", "E2setupFailure", "E2setupFailureIEs", _setup_fail_to, _setup_fail_from),
    (ErrorIndication, 2, "initiatingMessage", "ErrorIndication", "ErrorIndication_IEs", _err_to, _err_from),
    (ResetRequest, 3, "initiatingMessage", "ResetRequest", "ResetRequestIEs", _reset_req_to, _reset_req_from),
    (ResetResponse, 3, "successfulOutcome", "ResetResponse", "ResetResponseIEs", _reset_resp_to, _reset_resp_from),
    (RicControlRequest, 4, "initiatingMessage", "RICcontrolRequest", "RICcontrolRequest_IEs", _ctrl_req_to, _ctrl_req_from),
    (RicControlAcknowledge, 4, "successfulOutcome", "RICcontrolAcknowledge", "RICcontrolAcknowledge_IEs",
     _ctrl_ack_to, _ctrl_ack_from),
    (RicControlFailure, 4, "unsuccessfulOutcome", "RICcontrolFailure", "RICcontrolFailure_IEs", _ctrl_fail_to, _ctrl_fail_from),
    (RicIndication, 5, "initiatingMessage", "RICindication", "RICindication_IEs", _ind_to, _ind_from),
    (RicSubscriptionRequest, 8, "initiatingMessage", "RICsubscriptionRequest", "RICsubscriptionRequest_IEs",
     _sub_req_to, _sub_req_from),
    (RicSubscriptionResponse, 8, "successfulOutcome", "RICsubscriptionResponse", "RICsubscriptionResponse_IEs",
     _sub_resp_to, _sub_resp_from),
    (RicSubscriptionFailure, 8, "unsuccessfulOutcome", "RICsubscriptionFailure", "RICsubscriptionFailure_IEs",
     _req_fn_cause_to, _make_req_fn_cause_from(RicSubscriptionFailure)),
    (RicSubscriptionDeleteRequest, 9, "initiatingMessage", "RICsubscriptionDeleteRequest",
     "RICsubscriptionDeleteRequest_IEs", _req_fn_to, _make_req_fn_from(RicSubscriptionDeleteRequest)),
    (RicSubscriptionDeleteResponse, 9, "successfulOutcome", "RICsubscriptionDeleteResponse",
     "RICsubscriptionDeleteResponse_IEs", _req_fn_to, _make_req_fn_from(RicSubscriptionDeleteResponse)),
    (RicSubscriptionDeleteFailure, 9, "unsuccessfulOutcome", "RICsubscriptionDeleteFailure",
     "RICsubscriptionDeleteFailure_IEs", _req_fn_cause_to, _make_req_fn_cause_from(RicSubscriptionDeleteFailure)),
]

_PROC_CRIT = _procedure_criticality()
_BY_TYPE: dict[type, _MessageSpec] = {}
_BY_NAME: dict[str, _MessageSpec] = {}
for _cls, _code, _kind, _name, _ieset, _to, _from in _SPECS_RAW:
    _spec = _MessageSpec(_cls, _code, _kind, _name, _ieset, _to, _from, _PROC_CRIT[_code], _ie_table(_ieset))
    _BY_TYPE[_cls] = _spec
    _BY_NAME[_name] = _spec

PROCEDURE_CODES: dict[type, int] = {c: s.procedure_code for c, s in _BY_TYPE.items()}
"""Message class -> E2AP procedure code."""

_DROPPED_IES = frozenset({2, 48})  # CriticalityDiagnostics, TNLinformation


def encode(msg: E2apMessage) -> bytes:
    """Encode one E2AP message to APER bytes (one E2AP-PDU).

    Raises:
        E2EncodeError: unknown message type or a value outside its ASN.1 constraints.
    """
    spec = _BY_TYPE.get(type(msg))
    if spec is None:
        raise E2EncodeError(f"cannot encode {type(msg).__name__}: not an E2AP message of this codec")
    try:
        ies = [
            {"id": ie_id, "criticality": spec.ie_table[ie_id][0], "value": (spec.ie_table[ie_id][1], value)}
            for ie_id, value in spec.to_ies(msg)
        ]
        pdu = (spec.kind, {
            "procedureCode": spec.procedure_code,
            "criticality": msg.procedure_criticality or spec.default_criticality,
            "value": (spec.value_name, {"protocolIEs": ies}),
        })
        with _PYCRATE_LOCK:
            _PDU.set_val(pdu)
            return _PDU.to_aper()
    except Exception as exc:  # pycrate raises many unrelated types on bad values
        raise E2EncodeError(f"cannot encode {type(msg).__name__}: {exc}") from exc


def decode(data: bytes) -> E2apPdu:
    """Decode one APER E2AP-PDU into its message dataclass.

    Raises:
        E2DecodeError: for any bytes that are not a well-formed, supported E2AP PDU
            (including a missing mandatory IE, a duplicated IE or an unsupported procedure).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise E2DecodeError(f"E2AP PDU must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise E2DecodeError("empty E2AP PDU")
    try:
        with _PYCRATE_LOCK:
            _PDU.from_aper(bytes(data))
            kind, body = _PDU.get_val()
        name, content = body["value"]
        crit = body["criticality"]
    except Exception as exc:  # pycrate raises many unrelated types on bad bytes
        raise E2DecodeError(f"not a valid E2AP PDU: {type(exc).__name__}: {exc}") from None
    spec = _BY_NAME.get(name)
    if spec is None or spec.kind != kind:
        raise E2DecodeError(f"unsupported E2AP message {kind}/{name}")
    try:
        ies: dict[int, Any] = {}
        for ie in content["protocolIEs"]:
            ie_id = ie["id"]
            if ie_id in ies:
                raise E2DecodeError(f"{name}: IE {ie_id} appears twice")
            value = ie["value"]
            if ie_id not in spec.ie_table or ie_id in _DROPPED_IES or not isinstance(value, tuple):
                continue
            ies[ie_id] = value[1]
        return spec.from_ies(ies, None if crit == spec.default_criticality else crit)
    except E2DecodeError:
        raise
    except KeyError as exc:
        raise E2DecodeError(f"{name}: missing mandatory IE or field {exc}") from None
    except Exception as exc:  # a value of the right ASN.1 type but outside our model
        raise E2DecodeError(f"{name}: {type(exc).__name__}: {exc}") from None
