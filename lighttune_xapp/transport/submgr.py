"""E2 subscriptions through the OSC Subscription Manager's REST API, and the E2 node list.

The xApp does not speak E2 subscription procedures itself in RIC mode: it asks the
Subscription Manager (submgr) over REST, and submgr runs RIC Subscription with the node
through E2 Termination. The API (swagger 2.0, base path ``/ric/v1``, the xApp frameworks'
``xapp_rest_api.yaml``):

- ``POST /ric/v1/subscriptions`` with a ``SubscriptionParams`` body -> 201
  ``{"SubscriptionId": ..., "SubscriptionInstances": [...]}``; 400 bad request, 404 unknown
  id on a resend, 503 when the node's E2 link is down.
- ``DELETE /ric/v1/subscriptions/{SubscriptionId}`` -> 204.
- Notification ``POST <xApp http>/ric/v1/subscriptions/response`` with a
  ``SubscriptionResponse``: one per E2 subscription, success (``E2EventInstanceId`` > 0, the
  RMR SubId of the indications that follow) or failure (``E2EventInstanceId`` 0 and
  ``ErrorCause``). submgr retries until it gets exactly HTTP 200; the notification may
  arrive *before* the 201 answer of the POST.

Why not ricxappframe's ``xapp_subscribe.NewSubscriber``: in ricxappframe 3.2.2 it posts
``subs_params.to_dict()``, i.e. the *snake_case Python attribute names*
(``client_endpoint``, ``ran_function_id``, ``http_port`` ...), which the real submgr does not
accept (defect 1); ``Subscribe`` posts to the URI as given while ``UnSubscribe`` appends
``/subscriptions/{id}`` (defect 2); non-2xx answers raise instead of returning (defect 4);
its notification handler is registered as ``None`` (defect 5) and the module needs the
undeclared ``six`` (defect 6). This module therefore builds the body with the API's JSON
names itself (:func:`subscription_params`), posts it with the standard library's HTTP
client to the exact paths above, treats every status explicitly, and parses notifications
itself (:func:`parse_notification`). Nothing here imports ricxappframe.

E2 nodes come from the configuration (``controls.e2Nodes``) and/or the E2 manager
(``GET /v1/nodeb/states``, nodes whose ``connectionStatus`` is ``CONNECTED``); what a node
offers (its RAN functions and their definitions) from ``GET /v1/nodeb/{ranName}``
(:meth:`E2ManagerClient.nodeb`).

A node may need more than one subscription (submgr takes one RAN function per request: a
node offering E2SM-KPM and LT-LINKADAPT gets one of each). The book is therefore keyed by
*subscription keys* (:func:`subscription_key`): the node's RAN name for its primary
subscription (the one every node had before: LT-LINKADAPT reports on the default function id,
so the SDL records of earlier versions stay valid), and ``<RAN name>#<RAN function id>`` for
any other; :func:`node_of_key` gives the node back. The keeper's ``expand``
hook turns the wanted nodes into their keys (default: one key per node, the RAN name).
:class:`SubscriptionBook` is the sans-I/O state of the subscriptions (which node needs a
POST, which is waiting for its notification, which E2 instance id belongs to which node);
:class:`SubscriptionKeeper` drives it with the REST clients and persists the subscription
ids in SDL so that a restarted xApp deletes the stale ones of its previous life.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "DEFAULT_E2MGR_URL",
    "DEFAULT_SUBMGR_URL",
    "NOTIFICATION_PATH",
    "SUBSCRIPTIONS_PATH",
    "E2ManagerClient",
    "KEY_SEPARATOR",
    "MemorySubscriptionLog",
    "SdlSubscriptionLog",
    "SubmgrClient",
    "SubmgrError",
    "SubscriptionBook",
    "SubscriptionInstance",
    "SubscriptionKeeper",
    "SubscriptionLog",
    "SubscriptionNotification",
    "node_of_key",
    "parse_notification",
    "subscription_key",
    "subscription_params",
]

_log = logging.getLogger(__name__)

DEFAULT_SUBMGR_URL = "http://service-ricplt-submgr-http.ricplt:8088"
"""submgr's REST server (it listens on 8088 on the pod; the headless Service reaches it)."""
DEFAULT_E2MGR_URL = "http://service-ricplt-e2mgr-http.ricplt:3800"
"""E2 manager's REST server."""
SUBSCRIPTIONS_PATH = "/ric/v1/subscriptions"
NOTIFICATION_PATH = "/ric/v1/subscriptions/response"
NODEB_STATES_PATH = "/v1/nodeb/states"
NODEB_PATH = "/v1/nodeb/"
KEY_SEPARATOR = "#"
"""Separates the RAN name from the RAN function id in a subscription key."""


def subscription_key(meid: str, ran_function_id: int | None = None) -> str:
    """The book's key of one subscription of node ``meid``.

    ``ran_function_id=None`` names the node's primary subscription (key = the RAN name);
    another subscription of the same node is ``"<meid>#<ran_function_id>"``.
    """
    return meid if ran_function_id is None else f"{meid}{KEY_SEPARATOR}{int(ran_function_id)}"


def node_of_key(key: str) -> str:
    """The RAN name of a subscription key (inverse of :func:`subscription_key`)."""
    head, sep, tail = key.rpartition(KEY_SEPARATOR)
    return head if sep and head and tail.isdigit() else key

_ACTION_TYPES = ("insert", "policy", "report")
_SUBSEQUENT_TYPES = ("continue", "wait")
_TIME_TO_WAIT = (
    "zero", "w1ms", "w2ms", "w5ms", "w10ms", "w20ms", "w30ms", "w40ms", "w50ms", "w100ms",
    "w200ms", "w500ms", "w1s", "w2s", "w5s", "w10s", "w20s", "w60s",
)


class SubmgrError(Exception):
    """A REST call to the Subscription Manager or E2 manager failed.

    Attributes:
        status: HTTP status, or 0 when no answer arrived (connection refused, timeout).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def subscription_params(
    *,
    meid: str,
    ran_function_id: int,
    client_host: str,
    http_port: int,
    rmr_port: int,
    event_trigger: bytes,
    action_definition: bytes | None,
    xapp_event_instance_id: int = 1,
    action_id: int = 1,
    action_type: str = "report",
    subsequent_action: tuple[str, str] | None = ("continue", "zero"),
    subscription_id: str | None = None,
) -> dict[str, Any]:
    """The ``SubscriptionParams`` JSON body of one node's subscription (API key names).

    Args:
        meid: the E2 node's RAN (inventory) name.
        ran_function_id: 0..4095.
        client_host: host submgr notifies (``service-ricxapp-<name>-http.ricxapp`` in a RIC;
            submgr derives the RMR host by replacing ``http`` with ``rmr`` in it).
        http_port, rmr_port: the xApp's HTTP and RMR data ports, 1..65535.
        event_trigger: encoded RICeventTriggerDefinition (service-model bytes); sent as a
            list of ints 0..255, as the API declares.
        action_definition: encoded RICactionDefinition, or None to leave it out.
        xapp_event_instance_id: 0..65535, echoed in the notification.
        action_id: 0..255; action_type: ``"report"`` | ``"insert"`` | ``"policy"``.
        subsequent_action: (``"continue"``|``"wait"``, time to wait ``"zero"``..``"w60s"``) or None.
        subscription_id: only when resending the same request.

    Raises:
        ValueError: naming the argument that is out of range.
    """
    if not isinstance(meid, str) or not meid:
        raise ValueError(f"meid must be a non-empty string, got {meid!r}")
    if not isinstance(client_host, str) or not client_host:
        raise ValueError(f"client_host must be a non-empty string, got {client_host!r}")
    _check_int("ran_function_id", ran_function_id, 0, 4095)
    _check_int("http_port", http_port, 1, 65535)
    _check_int("rmr_port", rmr_port, 1, 65535)
    _check_int("xapp_event_instance_id", xapp_event_instance_id, 0, 65535)
    _check_int("action_id", action_id, 0, 255)
    if action_type not in _ACTION_TYPES:
        raise ValueError(f"action_type must be one of {_ACTION_TYPES}, got {action_type!r}")
    if not isinstance(event_trigger, (bytes, bytearray)):
        raise ValueError("event_trigger must be bytes")
    action: dict[str, Any] = {"ActionID": action_id, "ActionType": action_type}
    if action_definition is not None:
        if not isinstance(action_definition, (bytes, bytearray)):
            raise ValueError("action_definition must be bytes or None")
        action["ActionDefinition"] = list(bytes(action_definition))
    if subsequent_action is not None:
        kind, wait = subsequent_action
        if kind not in _SUBSEQUENT_TYPES:
            raise ValueError(f"subsequent_action type must be one of {_SUBSEQUENT_TYPES}, got {kind!r}")
        if wait not in _TIME_TO_WAIT:
            raise ValueError(f"subsequent_action time to wait must be one of {_TIME_TO_WAIT}, got {wait!r}")
        action["SubsequentAction"] = {"SubsequentActionType": kind, "TimeToWait": wait}
    body: dict[str, Any] = {
        "ClientEndpoint": {"Host": client_host, "HTTPPort": http_port, "RMRPort": rmr_port},
        "Meid": meid,
        "RANFunctionID": ran_function_id,
        "SubscriptionDetails": [
            {
                "XappEventInstanceId": xapp_event_instance_id,
                "EventTriggers": list(bytes(event_trigger)),
                "ActionToBeSetupList": [action],
            }
        ],
    }
    if subscription_id is not None:
        body["SubscriptionId"] = str(subscription_id)
    return body


@dataclass(frozen=True)
class SubscriptionInstance:
    """One E2 subscription's outcome in a notification.

    ``e2_event_instance_id`` > 0 on success (the RMR SubId of its indications), 0 on
    failure with ``error_cause``/``error_source``/``timeout_type`` saying why.
    """

    xapp_event_instance_id: int
    e2_event_instance_id: int
    error_cause: str = ""
    error_source: str = ""
    timeout_type: str = ""

    @property
    def ok(self) -> bool:
        """Whether the E2 subscription was set up."""
        return self.e2_event_instance_id > 0 and not self.error_cause


@dataclass(frozen=True)
class SubscriptionNotification:
    """A parsed ``SubscriptionResponse`` notification."""

    subscription_id: str
    instances: tuple[SubscriptionInstance, ...]


def _int_field(obj: Mapping[str, Any], name: str, where: str) -> int:
    value = obj.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}.{name} must be a non-negative integer, got {value!r}")
    return value


def _str_field(obj: Mapping[str, Any], name: str, where: str) -> str:
    value = obj.get(name) or ""
    if not isinstance(value, str):
        raise ValueError(f"{where}.{name} must be a string, got {value!r}")
    return value


def parse_notification(body: bytes) -> SubscriptionNotification:
    """Parse submgr's notification body.

    Raises:
        ValueError: not JSON, or a field of the wrong type (the message names it).
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"SubscriptionResponse: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("SubscriptionResponse must be a JSON object")
    sub_id = data.get("SubscriptionId")
    if not isinstance(sub_id, (str, int)) or isinstance(sub_id, bool) or sub_id == "":
        raise ValueError(f"SubscriptionResponse.SubscriptionId must be a non-empty string, got {sub_id!r}")
    raw = data.get("SubscriptionInstances") or []
    if not isinstance(raw, list):
        raise ValueError("SubscriptionResponse.SubscriptionInstances must be a list")
    instances = []
    for i, item in enumerate(raw):
        where = f"SubscriptionResponse.SubscriptionInstances[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be an object")
        instances.append(
            SubscriptionInstance(
                _int_field(item, "XappEventInstanceId", where),
                _int_field(item, "E2EventInstanceId", where),
                _str_field(item, "ErrorCause", where),
                _str_field(item, "ErrorSource", where),
                _str_field(item, "TimeoutType", where),
            )
        )
    return SubscriptionNotification(str(sub_id), tuple(instances))


def _http(method: str, url: str, body: Any | None, timeout_s: float) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read() or b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SubmgrError(0, f"{method} {url}: {exc}") from None


class SubmgrClient:
    """REST client of the Subscription Manager.

    Args:
        base_url: scheme, host and port, e.g. :data:`DEFAULT_SUBMGR_URL`.
        timeout_s: per-request timeout, seconds.
    """

    def __init__(self, base_url: str = DEFAULT_SUBMGR_URL, timeout_s: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"submgr URL must be http(s)://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)

    def subscribe(self, params: Mapping[str, Any]) -> str:
        """POST one ``SubscriptionParams``; returns the ``SubscriptionId`` submgr allocated.

        Raises:
            SubmgrError: no answer, a status other than 200/201, or an answer without id.
        """
        url = self.base_url + SUBSCRIPTIONS_PATH
        status, body = _http("POST", url, dict(params), self.timeout_s)
        if status not in (200, 201):
            raise SubmgrError(status, f"POST {url}: {body[:200].decode('utf-8', 'replace')}")
        try:
            answer = json.loads(body.decode("utf-8"))
            sub_id = answer["SubscriptionId"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SubmgrError(status, f"POST {url}: answer has no SubscriptionId ({exc})") from None
        if not isinstance(sub_id, (str, int)) or isinstance(sub_id, bool) or sub_id == "":
            raise SubmgrError(status, f"POST {url}: bad SubscriptionId {sub_id!r}")
        return str(sub_id)

    def unsubscribe(self, subscription_id: str) -> bool:
        """DELETE one subscription; True if deleted, False if submgr did not know it (404).

        Raises:
            SubmgrError: no answer or another error status.
        """
        url = f"{self.base_url}{SUBSCRIPTIONS_PATH}/{urllib.parse.quote(str(subscription_id), safe='')}"
        status, body = _http("DELETE", url, None, self.timeout_s)
        if status in (200, 204):
            return True
        if status == 404:
            return False
        raise SubmgrError(status, f"DELETE {url}: {body[:200].decode('utf-8', 'replace')}")


class E2ManagerClient:
    """The E2 manager's node list (``GET /v1/nodeb/states``).

    Args:
        base_url: scheme, host and port, e.g. :data:`DEFAULT_E2MGR_URL`.
        timeout_s: per-request timeout, seconds.
    """

    def __init__(self, base_url: str = DEFAULT_E2MGR_URL, timeout_s: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"E2 manager URL must be http(s)://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)

    def connected_nodes(self) -> list[str]:
        """Inventory names of the nodes whose ``connectionStatus`` is ``CONNECTED``, sorted.

        Raises:
            SubmgrError: no answer, an error status, or a body that is not a node list.
        """
        url = self.base_url + NODEB_STATES_PATH
        status, body = _http("GET", url, None, self.timeout_s)
        if status != 200:
            raise SubmgrError(status, f"GET {url}")
        try:
            nodes = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SubmgrError(status, f"GET {url}: not JSON ({exc})") from None
        if not isinstance(nodes, list):
            raise SubmgrError(status, f"GET {url}: expected a list of nodes")
        return sorted(
            {
                n["inventoryName"]
                for n in nodes
                if isinstance(n, dict)
                and isinstance(n.get("inventoryName"), str)
                and n["inventoryName"]
                and n.get("connectionStatus") == "CONNECTED"
            }
        )

    def nodeb(self, ran_name: str) -> dict[str, Any] | None:
        """The E2 manager's record of one node (``GET /v1/nodeb/{ranName}``), or None on 404.

        The record is the JSON form of the R-NIB ``NodebInfo``: ``ranName``,
        ``connectionStatus``, ``globalNbId`` {``plmnId``, ``nbId``} (hex strings) and, for an
        E2 node, ``gnb`` (or ``enb``) {``ranFunctions``: [{``ranFunctionId``,
        ``ranFunctionDefinition`` (the octets as hex), ``ranFunctionRevision``,
        ``ranFunctionOid``}]} (``lighttune_xapp.transport.ric_kpm`` reads it).

        Raises:
            SubmgrError: no answer, another error status, or a body that is not a JSON object.
        """
        url = self.base_url + NODEB_PATH + urllib.parse.quote(ran_name, safe="")
        status, body = _http("GET", url, None, self.timeout_s)
        if status == 404:
            return None
        if status != 200:
            raise SubmgrError(status, f"GET {url}")
        try:
            info = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SubmgrError(status, f"GET {url}: not JSON ({exc})") from None
        if not isinstance(info, dict):
            raise SubmgrError(status, f"GET {url}: expected a JSON object")
        return info


# --------------------------------------------------------------------------- persistence


class SubscriptionLog(Protocol):
    """Where subscription ids survive a restart: node (MEID) -> SubscriptionId."""

    def save(self, meid: str, subscription_id: str) -> None:
        """Record the live subscription of ``meid``."""

    def forget(self, meid: str) -> None:
        """Drop the record of ``meid``."""

    def load(self) -> dict[str, str]:
        """All records."""


class MemorySubscriptionLog:
    """A :class:`SubscriptionLog` in a dict (nothing survives the process)."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()

    def save(self, meid: str, subscription_id: str) -> None:
        with self._lock:
            self._ids[meid] = subscription_id

    def forget(self, meid: str) -> None:
        with self._lock:
            self._ids.pop(meid, None)

    def load(self) -> dict[str, str]:
        with self._lock:
            return dict(self._ids)


class SdlSubscriptionLog:
    """A :class:`SubscriptionLog` in SDL: keys ``subscription/<meid>`` of ``namespace``.

    Args:
        storage: a ``ricsdl.syncstorage.SyncStorage`` (or anything with its ``set``,
            ``get``, ``remove`` and ``find_and_get`` methods).
        namespace: SDL namespace (the xApp's model-store namespace).
        on_error: exception types of the backend to log instead of raising.
    """

    KEY_PREFIX = "subscription/"

    def __init__(self, storage: Any, namespace: str, on_error: tuple[type[BaseException], ...] = ()) -> None:
        self._storage = storage
        self.namespace = namespace
        self._errors = on_error

    def save(self, meid: str, subscription_id: str) -> None:
        try:
            self._storage.set(self.namespace, {self.KEY_PREFIX + meid: subscription_id.encode("utf-8")})
        except self._errors as exc:
            _log.error("cannot persist subscription %s of %s in SDL: %s", subscription_id, meid, exc)

    def forget(self, meid: str) -> None:
        try:
            self._storage.remove(self.namespace, {self.KEY_PREFIX + meid})
        except self._errors as exc:
            _log.error("cannot remove the subscription record of %s from SDL: %s", meid, exc)

    def load(self) -> dict[str, str]:
        try:
            found = self._storage.find_and_get(self.namespace, self.KEY_PREFIX + "*")
        except self._errors as exc:
            _log.error("cannot read subscription records from SDL: %s", exc)
            return {}
        out: dict[str, str] = {}
        for key, value in found.items():
            try:
                out[key[len(self.KEY_PREFIX) :]] = bytes(value).decode("utf-8")
            except (UnicodeDecodeError, TypeError):
                _log.warning("ignoring unreadable subscription record %s", key)
        return out


# --------------------------------------------------------------------------- state


@dataclass
class _NodeSubscription:
    meid: str
    subscription_id: str | None = None
    e2_instance_id: int = 0
    failed: str = ""


@dataclass
class SubscriptionBook:
    """Sans-I/O state of the xApp's E2 subscriptions. Thread-safe.

    Entries are keyed by subscription key (:func:`subscription_key`; the RAN name for a
    node's primary subscription), named ``meid`` below for that common case.

    A node is *wanted* while it is connected (or configured); it needs a POST when wanted
    and without a subscription id; it is *confirmed* once a successful notification for its
    id arrived. Notifications for ids not yet known (they may overtake the 201 answer)
    are kept and applied when :meth:`posted` registers the id.
    """

    _nodes: dict[str, _NodeSubscription] = field(default_factory=dict)
    _by_instance: dict[int, str] = field(default_factory=dict)
    _early: dict[str, SubscriptionNotification] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_wanted(self, meids: Iterable[str]) -> tuple[list[str], list[str]]:
        """Make ``meids`` the wanted nodes; returns (added, removed) node names.

        A removed node's subscription record is dropped (its E2 link went away: the
        subscription must be made again when it reconnects).
        """
        wanted = set(meids)
        with self._lock:
            added = sorted(wanted - self._nodes.keys())
            removed = sorted(self._nodes.keys() - wanted)
            for meid in removed:
                node = self._nodes.pop(meid)
                self._by_instance.pop(node.e2_instance_id, None)
            for meid in added:
                self._nodes[meid] = _NodeSubscription(meid)
        return added, removed

    def wanted(self) -> list[str]:
        """The wanted nodes, sorted."""
        with self._lock:
            return sorted(self._nodes)

    def needing_post(self) -> list[str]:
        """Wanted nodes without a subscription id (never posted, or failed)."""
        with self._lock:
            return sorted(m for m, n in self._nodes.items() if n.subscription_id is None)

    def posted(self, meid: str, subscription_id: str) -> None:
        """Register the id submgr gave for ``meid`` (applies an early notification)."""
        with self._lock:
            node = self._nodes.get(meid)
            if node is None:
                return
            node.subscription_id = subscription_id
            node.failed = ""
            early = self._early.pop(subscription_id, None)
        if early is not None:
            self.on_notification(early)

    def on_notification(self, note: SubscriptionNotification) -> str | None:
        """Apply a notification; returns the node it concerns (None if kept for later).

        A failed instance clears the node's id so the next :meth:`needing_post` retries it.
        """
        with self._lock:
            node = next((n for n in self._nodes.values() if n.subscription_id == note.subscription_id), None)
            if node is None:
                self._early[note.subscription_id] = note
                if len(self._early) > 64:  # notifications for ids nobody will claim
                    self._early.pop(next(iter(self._early)))
                return None
            good = [i for i in note.instances if i.ok]
            if good and len(good) == len(note.instances):
                self._by_instance.pop(node.e2_instance_id, None)
                node.e2_instance_id = good[0].e2_event_instance_id
                self._by_instance[node.e2_instance_id] = node.meid
                node.failed = ""
            else:
                bad = next((i for i in note.instances if not i.ok), None)
                node.failed = (
                    f"{bad.error_source or 'submgr'}: {bad.error_cause or bad.timeout_type or 'no instance'}"
                    if bad is not None
                    else "notification without instances"
                )
                self._by_instance.pop(node.e2_instance_id, None)
                node.e2_instance_id = 0
            return node.meid

    def forget_id(self, meid: str) -> None:
        """Drop the id of ``meid`` (to post again)."""
        with self._lock:
            node = self._nodes.get(meid)
            if node is not None:
                self._by_instance.pop(node.e2_instance_id, None)
                node.subscription_id, node.e2_instance_id = None, 0

    def all_confirmed(self) -> bool:
        """Whether there is at least one wanted node and every one is confirmed."""
        with self._lock:
            return bool(self._nodes) and all(n.e2_instance_id > 0 for n in self._nodes.values())

    def node_of_instance(self, e2_instance_id: int) -> str | None:
        """The key (:func:`subscription_key`) whose confirmed subscription has this E2 instance
        id (RMR SubId); :func:`node_of_key` gives its node."""
        with self._lock:
            return self._by_instance.get(int(e2_instance_id))

    def instance_of(self, key: str) -> int:
        """E2 instance id of the confirmed subscription ``key``, 0 when it has none."""
        with self._lock:
            node = self._nodes.get(key)
            return node.e2_instance_id if node is not None else 0

    def subscription_ids(self) -> dict[str, str]:
        """Node -> subscription id of every node that has one."""
        with self._lock:
            return {m: n.subscription_id for m, n in self._nodes.items() if n.subscription_id is not None}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per node: subscription id, E2 instance id, last failure."""
        with self._lock:
            return {
                m: {"subscription_id": n.subscription_id, "e2_instance_id": n.e2_instance_id, "failed": n.failed}
                for m, n in sorted(self._nodes.items())
            }


class SubscriptionKeeper:
    """Keeps one subscription per wanted E2 node alive through submgr.

    Call :meth:`start` once (deletes the subscriptions a previous run left in the log),
    :meth:`poll` periodically (learns the nodes, posts what is missing), hand every
    notification body to :meth:`on_notification_body` (returns the HTTP answer), and call
    :meth:`shutdown` on exit (deletes every subscription).

    Args:
        submgr: the REST client.
        params_for: ``params_for(key) -> SubscriptionParams`` dict (``key`` from ``expand``).
        log: persistence of subscription ids.
        configured_nodes: nodes from the configuration (always wanted, also while the E2
            manager does not answer).
        e2mgr: E2 manager client, or None to rely on ``configured_nodes`` only.
        on_ready: called with True when every wanted node is confirmed, False when not.
        on_post_error: called with the node and error of a failed POST (metrics).
        expand: ``expand(nodes) -> keys``: the subscription keys (:func:`subscription_key`) of
            the wanted nodes, called on every :meth:`poll` with the sorted node list; None
            for one subscription per node (key = RAN name).
    """

    def __init__(
        self,
        submgr: SubmgrClient,
        params_for: Callable[[str], dict[str, Any]],
        log: SubscriptionLog,
        configured_nodes: Sequence[str] = (),
        e2mgr: E2ManagerClient | None = None,
        on_ready: Callable[[bool], None] | None = None,
        on_post_error: Callable[[str, SubmgrError], None] | None = None,
        expand: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        self.submgr = submgr
        self.params_for = params_for
        self.log = log
        self.configured_nodes = tuple(configured_nodes)
        self.e2mgr = e2mgr
        self.on_ready = on_ready
        self.on_post_error = on_post_error
        self.expand = expand
        self.book = SubscriptionBook()
        self.owns: Callable[[str], bool] = lambda _meid: True
        """Whether this replica owns a node (several replicas: :mod:`.replicas`); only owned nodes are subscribed."""
        self.candidates: list[str] = []
        """Every node found by the last :meth:`poll`, owned or not."""
        self._ready: bool | None = None
        self._poll_lock = threading.Lock()
        self.notifications = 0
        self.bad_notifications = 0

    def start(self) -> list[str]:
        """Delete the subscriptions persisted by a previous run; returns the ids deleted."""
        deleted = []
        for meid, sub_id in sorted(self.log.load().items()):
            try:
                gone = self.submgr.unsubscribe(sub_id)
            except SubmgrError as exc:
                _log.warning("cannot delete stale subscription %s of %s: %s", sub_id, meid, exc)
                continue
            _log.info("stale subscription %s of %s %s", sub_id, meid, "deleted" if gone else "already gone")
            self.log.forget(meid)
            deleted.append(sub_id)
        return deleted

    def wanted_nodes(self) -> list[str]:
        """Configured nodes plus, when an E2 manager is set, its connected nodes.

        Raises:
            SubmgrError: the E2 manager did not answer (the caller keeps the old list).
        """
        nodes = set(self.configured_nodes)
        if self.e2mgr is not None:
            nodes.update(self.e2mgr.connected_nodes())
        return sorted(nodes)

    def poll(self) -> None:
        """Refresh the node list and post the missing subscriptions (never raises SubmgrError)."""
        with self._poll_lock:
            try:
                wanted = self.wanted_nodes()
            except SubmgrError as exc:
                # configured nodes are wanted whatever the E2 manager says; the nodes it
                # reported before are kept until it answers again
                _log.warning("E2 manager unreachable, keeping the node list: %s", exc)
                wanted = sorted({node_of_key(k) for k in self.book.wanted()} | set(self.configured_nodes))
            self.candidates = list(wanted)
            wanted = [meid for meid in wanted if self.owns(meid)]
            keys = sorted(set(self.expand(wanted))) if self.expand is not None else wanted
            added, removed = self.book.set_wanted(keys)
            for key in removed:
                _log.info("subscription %s no longer wanted (node disconnected or its functions changed); "
                          "renewed when wanted again", key)
                self._delete_logged(key)
            for key in added:
                _log.info("subscription %s wanted", key)
            for meid in self.book.needing_post():
                self._post(meid)
            self._publish()

    def _delete_logged(self, meid: str) -> None:
        sub_id = self.log.load().get(meid)
        if sub_id is None:
            return
        try:
            self.submgr.unsubscribe(sub_id)
        except SubmgrError as exc:
            _log.warning("cannot delete subscription %s of %s: %s", sub_id, meid, exc)
            return
        self.log.forget(meid)

    def _post(self, meid: str) -> None:
        try:
            params = self.params_for(meid)
            sub_id = self.submgr.subscribe(params)
        except SubmgrError as exc:
            _log.warning("subscription for %s failed, will retry: %s", meid, exc)
            if self.on_post_error is not None:
                self.on_post_error(meid, exc)
            return
        self.log.save(meid, sub_id)
        self.book.posted(meid, sub_id)
        _log.info("subscription %s requested for E2 node %s", sub_id, meid)

    def _publish(self) -> None:
        ready = self.book.all_confirmed()
        if ready != self._ready:
            self._ready = ready
            if self.on_ready is not None:
                self.on_ready(ready)

    def state(self) -> dict[str, Any]:
        """Subscription state for ``/ric/v1/stats``: counts by state and per-node detail.

        ``wanted`` nodes; ``requested`` = posted and waiting for the confirming notification;
        ``confirmed`` = notification with an E2 instance id arrived; ``up`` = at least one
        wanted node and all confirmed.
        """
        nodes = self.book.snapshot()
        confirmed = sum(1 for n in nodes.values() if n["e2_instance_id"])
        requested = sum(1 for n in nodes.values() if n["subscription_id"] is not None and not n["e2_instance_id"])
        return {
            "up": bool(nodes) and confirmed == len(nodes),
            "wanted": len(nodes),
            "requested": requested,
            "confirmed": confirmed,
            "configured_nodes": list(self.configured_nodes),
            "nodes": nodes,
            "notifications": self.notifications,
            "bad_notifications": self.bad_notifications,
        }

    def on_notification_body(self, body: bytes) -> tuple[int, str, bytes]:
        """Handle ``POST /ric/v1/subscriptions/response``; returns (status, type, body).

        A readable notification is answered with exactly 200 (submgr resends otherwise);
        an unreadable one with 400 and the reason.
        """
        try:
            note = parse_notification(body)
        except ValueError as exc:
            self.bad_notifications += 1
            _log.error("bad subscription notification: %s", exc)
            return 400, "text/plain", f"{exc}\n".encode()
        self.notifications += 1
        meid = self.book.on_notification(note)
        if meid is None:
            _log.info("notification for subscription %s kept until its POST answer", note.subscription_id)
        else:
            state = self.book.snapshot().get(meid, {})
            if state.get("e2_instance_id"):
                _log.info("subscription %s of %s confirmed: E2 instance %d", note.subscription_id, meid,
                          state["e2_instance_id"])
            else:
                _log.error("subscription %s of %s failed: %s", note.subscription_id, meid, state.get("failed"))
                self.book.forget_id(meid)
                self.log.forget(meid)
        self._publish()
        return 200, "application/json", b"{}"

    def shutdown(self) -> list[str]:
        """Delete every subscription this run made; returns the ids deleted."""
        deleted = []
        for meid, sub_id in sorted(self.book.subscription_ids().items()):
            try:
                self.submgr.unsubscribe(sub_id)
            except SubmgrError as exc:
                _log.error("cannot delete subscription %s of %s: %s", sub_id, meid, exc)
                continue
            self.book.forget_id(meid)
            self.log.forget(meid)
            deleted.append(sub_id)
        self._publish()
        return deleted
