"""Test harness for RIC mode: the platform around an unmodified xApp process.

- :class:`RedisServer`: a private ``redis-server`` on a free loopback port (SDL backend).
- :class:`E2TermEndpoint`: plays E2 Termination (and the A1 mediator) on RMR with
  ricxappframe's ``rmr`` module: sends RIC_INDICATION / A1_POLICY_REQ to the xApp, collects
  what the xApp sends (RIC_CONTROL_REQ routed to it by MEID, A1_POLICY_RESP by RTS).
- :class:`RicPlatformStub`: plays the Subscription Manager (``POST``/``DELETE
  /ric/v1/subscriptions``, notification to the xApp's HTTP port, resent until HTTP 200;
  an optional per-node admission check plays the E2 node's answer) and the E2 manager
  (``GET /v1/nodeb/states``, and ``GET /v1/nodeb/{ranName}`` with the RAN functions of the
  nodes given in ``nodeb_functions``, definitions as hex as the real E2 manager serves them)
  over HTTP.
- :class:`XappProcess`: ``python -m lighttune_xapp --mode ric`` with a descriptor of test
  ports (``CONFIG_FILE``), static RMR routes (``RMR_SEED_RT``; control requests routed by
  ``%meid`` through an MEID map) and ``DBAAS_SERVICE_HOST/PORT`` at the private Redis.
- :func:`synthetic_reports` / :func:`indication_pdu`: e2sim-like LinkReports carried in
  LT-LINKADAPT indications inside E2AP RIC Indication PDUs; :func:`kpm_indication_pdus`:
  the same reports as E2SM-KPM indications of an ``e2sim`` KPM RAN function.

RMR runs over TCP on loopback; every context here uses ``RMR_RTG_SVC=-1`` (static table,
no route manager) and ``RMR_SRC_ID=127.0.0.1`` so return-to-sender resolves locally.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from lighttune_core.report import LinkReports
from lighttune_e2 import e2ap, service_model
from e2sim.kpm_function import KpmPeriod, KpmRanFunction, KpmSubscription
from lighttune_e2.kpm.codec import KPM_V3_OID
from lighttune_e2.kpm.model import CellGlobalId
from lighttune_xapp.transport import rmr_types

REPO = Path(__file__).resolve().parents[1]
REDIS_BINARY = shutil.which("redis-server")
SUBMGR_REQUESTOR_ID = 123
"""RIC requestor id submgr uses towards E2 nodes."""


def rmr_library_available() -> bool:
    """Whether the native RMR library (librmr_si.so) can be loaded."""
    try:
        ctypes.CDLL("librmr_si.so")
    except OSError:
        return False
    return True


def skip_reason() -> str | None:
    """Why RIC-mode tests cannot run here (None when they can)."""
    if not rmr_library_available():
        return "librmr_si.so not found (scripts/install-test-deps installs RMR 4.9.4)"
    if REDIS_BINARY is None:
        return "redis-server not found (scripts/install-test-deps installs it)"
    return None


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


# --------------------------------------------------------------------------- Redis


class RedisServer:
    """A private redis-server (no persistence) on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        if REDIS_BINARY is None:
            raise RuntimeError("redis-server not found")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [REDIS_BINARY, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self._pong, 30, "redis-server to answer PING")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def env(self) -> dict[str, str]:
        """The SDL environment pointing at this server."""
        return {"DBAAS_SERVICE_HOST": "127.0.0.1", "DBAAS_SERVICE_PORT": str(self.port)}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# --------------------------------------------------------------------------- RMR (E2T)


@dataclass(frozen=True)
class RmrReceived:
    """One message an :class:`E2TermEndpoint` received."""

    mtype: int
    meid: str
    sub_id: int
    payload: bytes
    at: float


def write_harness_routes(path: Path, xapp_rmr_port: int) -> Path:
    """Static routes of the harness endpoints: everything E2T/A1 send goes to the xApp."""
    lines = ["newrt|start"]
    for mtype in (rmr_types.RIC_INDICATION, rmr_types.RIC_CONTROL_ACK, rmr_types.RIC_CONTROL_FAILURE,
                  rmr_types.A1_POLICY_REQ, rmr_types.RIC_SUB_RESP):
        lines.append(f"rte|{mtype}|127.0.0.1:{xapp_rmr_port}")
    lines.append("newrt|end")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_xapp_routes(path: Path, meid_owners: dict[str, int]) -> Path:
    """Static routes of the xApp: RIC_CONTROL_REQ by ``%meid``, MEID map node -> E2T port."""
    lines = ["newrt|start", f"mse|{rmr_types.RIC_CONTROL_REQ}|-1|%meid", "newrt|end", "", "meid_map|start|harness"]
    for meid, port in sorted(meid_owners.items()):
        lines.append(f"mme_ar|127.0.0.1:{port}|{meid}")
    lines.append(f"meid_map|end|{len(meid_owners)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class E2TermEndpoint:
    """An RMR endpoint playing E2 Termination / the A1 mediator (see module doc).

    The RMR context lives in a child process (``python tests/ric_harness.py e2t PORT
    ROUTES``) so that :meth:`close` is a real E2T death: its sockets close with the process,
    as when the E2T pod restarts. Messages cross the pipe as JSON lines (payloads in hex).

    Args:
        port: RMR data port to listen on.
        routes: static route table file (:func:`write_harness_routes`).
    """

    def __init__(self, port: int, routes: Path) -> None:
        self.port = port
        env = {k: v for k, v in os.environ.items() if not k.startswith("RMR_")}
        env.update(RMR_SEED_RT=str(routes), RMR_RTG_SVC="-1", RMR_SRC_ID="127.0.0.1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "e2t", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=str(REPO),
        )
        self.received: queue.Queue[RmrReceived] = queue.Queue()
        self._acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_child, name=f"e2t-{port}", daemon=True)
        self._reader.start()
        if not self._ready.wait(60):
            self.close()
            raise RuntimeError(f"E2T endpoint on port {port} did not become ready")

    def _read_child(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            event = json.loads(raw)
            kind = event.pop("event")
            if kind == "ready":
                self._ready.set()
            elif kind == "sent":
                self._acks.put(event)
            else:
                self.received.put(
                    RmrReceived(event["mtype"], event["meid"], event["sub_id"], bytes.fromhex(event["payload"]),
                                time.monotonic())
                )

    def send(self, mtype: int, payload: bytes, sub_id: int = -1, meid: str | None = None, retry_s: float = 10.0,
             check: bool = True) -> bool:
        """Send one message; the child retries for ``retry_s`` while RMR has no connection.

        Returns whether it was sent; with ``check`` a failure raises AssertionError.
        """
        assert self.proc.stdin is not None
        line = json.dumps({"mtype": mtype, "sub_id": sub_id, "meid": meid or "", "payload": payload.hex(),
                           "retry_s": retry_s})
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        ack = self._acks.get(timeout=60)
        if not ack["ok"] and check:
            raise AssertionError(f"RMR send of {rmr_types.message_type_name(mtype)} failed: state {ack['state']}")
        return bool(ack["ok"])

    def expect(self, mtype: int, timeout_s: float = 30.0) -> RmrReceived:
        """The next received message of type ``mtype`` (others are dropped); AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {rmr_types.message_type_name(mtype)} within {timeout_s:.0f} s")
            try:
                msg = self.received.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if msg.mtype == mtype:
                return msg

    def drain(self) -> list[RmrReceived]:
        """Everything received and not yet taken."""
        out = []
        while True:
            try:
                out.append(self.received.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Kill the endpoint (its RMR sockets close with it); idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


def _e2t_child(port: int) -> None:
    """Child side of :class:`E2TermEndpoint`: RMR <-> JSON lines on stdin/stdout."""
    from ricxappframe.rmr import rmr

    out_lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    mrc = rmr.rmr_init(str(port).encode(), rmr.RMR_MAX_RCV_BYTES, rmr.RMRFL_MTCALL)
    while not rmr.rmr_ready(mrc):
        time.sleep(0.05)

    def receive() -> None:
        while True:
            sbuf = rmr.rmr_alloc_msg(mrc, 4096)
            try:
                sbuf = rmr.rmr_torcv_msg(mrc, sbuf, 1000)
                if sbuf.contents.state == rmr.RMR_OK:
                    meid = rmr.rmr_get_meid(sbuf) or b""
                    emit({"event": "message", "mtype": int(sbuf.contents.mtype),
                          "meid": meid.decode("utf-8", "replace"), "sub_id": int(sbuf.contents.sub_id),
                          "payload": rmr.get_payload(sbuf).hex()})
            finally:
                rmr.rmr_free_msg(sbuf)

    threading.Thread(target=receive, daemon=True).start()
    emit({"event": "ready"})
    for line in sys.stdin:
        request = json.loads(line)
        payload = bytes.fromhex(request["payload"])
        deadline = time.monotonic() + float(request.get("retry_s", 10.0))
        while True:
            sbuf = rmr.rmr_alloc_msg(mrc, max(len(payload), 1), payload=payload, mtype=request["mtype"],
                                     meid=request["meid"].encode() or None, gen_transaction_id=True)
            if request["sub_id"] >= 0:
                sbuf.contents.sub_id = request["sub_id"]
            try:
                sbuf = rmr.rmr_send_msg(mrc, sbuf)
                state = int(sbuf.contents.state)
            finally:
                rmr.rmr_free_msg(sbuf)
            if state == rmr.RMR_OK or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        emit({"event": "sent", "ok": state == rmr.RMR_OK, "state": state})


# --------------------------------------------------------------------------- submgr + e2mgr


@dataclass
class RicPlatformStub:
    """Subscription Manager and E2 manager over HTTP (see module doc).

    ``nodes`` maps RAN name -> connectionStatus; a POST for a node that is not CONNECTED
    gets 503 as from the real submgr when the E2 link is down.

    Notifications reach the xApp as in Kubernetes, through its service, which routes only
    to Ready pods: the stub sends one only while the xApp's readiness probe
    (``/ric/v1/health/ready``) answers 200, and retries (``gated`` counts the attempts held
    back) until then.
    """

    nodes: dict[str, str] = field(default_factory=dict)
    nodeb_functions: dict[str, list[e2ap.RanFunction]] = field(default_factory=dict)
    plmn: bytes = b"\x00\xf1\x10"
    admit: dict[str, Callable[[dict[str, Any]], str | None]] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    instance_of: dict[str, int] = field(default_factory=dict)
    notify_status: list[tuple[str, int]] = field(default_factory=list)
    events: list[tuple[float, str, str, str]] = field(default_factory=list)
    """(monotonic time, "post" | "delete" | "confirmed", MEID, subscription id), in order."""
    gated: int = 0
    _next_id: int = 1000
    _next_instance: int = 100
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/v1/nodeb/states":
                    with stub._lock:
                        nodes = [{"inventoryName": m, "connectionStatus": s,
                                  "globalNbId": {"plmnId": "02F829", "nbId": "0000000000000001"}}
                                 for m, s in sorted(stub.nodes.items())]
                    self._reply(200, nodes)
                elif self.path.startswith("/v1/nodeb/"):
                    info = stub.nodeb_info(urllib.parse.unquote(self.path[len("/v1/nodeb/"):]))
                    if info is None:
                        self._reply(404, {"errorCode": "404", "errorMessage": "RAN not found"})
                    else:
                        self._reply(200, info)
                else:
                    self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/ric/v1/subscriptions":
                    self._reply(404, {"error": "not found"})
                    return
                status, body = stub._subscribe(raw)
                self._reply(status, body)

            def do_DELETE(self) -> None:  # noqa: N802
                prefix = "/ric/v1/subscriptions/"
                if not self.path.startswith(prefix):
                    self._reply(404)
                    return
                sub_id = self.path[len(prefix):]
                with stub._lock:
                    stub.deletes.append(sub_id)
                    gone = stub.live.pop(sub_id, None)
                    if gone is not None:
                        stub.events.append((time.monotonic(), "delete", str(gone["Meid"]), sub_id))
                self._reply(204 if gone is not None else 404)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _subscribe(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return 400, {"error": "not JSON"}
        with self._lock:
            self.posts.append(body)
        required = ("ClientEndpoint", "Meid", "RANFunctionID", "SubscriptionDetails")
        if not isinstance(body, dict) or any(k not in body for k in required):
            return 400, {"error": f"missing one of {required}"}
        admit = self.admit.get(body["Meid"])
        error = admit(body) if admit is not None else None
        with self._lock:
            if self.nodes.get(body["Meid"]) != "CONNECTED":
                return 503, {"error": "E2 link down"}
            sub_id = str(self._next_id)
            self._next_id += 1
            if error is None:  # the node accepted: the E2 subscription lives
                instance = self._next_instance
                self._next_instance += 1
                self.live[sub_id] = body
                self.instance_of[sub_id] = instance
                self.events.append((time.monotonic(), "post", str(body["Meid"]), sub_id))
            else:  # the node refused: submgr notifies the failure and keeps nothing
                instance = 0
                self.refused.append((body["Meid"], error))
        endpoint = body["ClientEndpoint"]
        event_id = body["SubscriptionDetails"][0]["XappEventInstanceId"]
        threading.Thread(
            target=self._notify, args=(endpoint["Host"], endpoint["HTTPPort"], sub_id, event_id, instance, error),
            daemon=True,
        ).start()
        return 201, {"SubscriptionId": sub_id, "SubscriptionInstances": []}

    @staticmethod
    def _pod_ready(host: str, port: int) -> bool:
        """Whether the xApp's readiness probe answers 200 (Kubernetes' routing condition)."""
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/ric/v1/health/ready", timeout=5) as response:
                return int(response.status) == 200
        except OSError:  # HTTPError (503) included
            return False

    def _notify(self, host: str, port: int, sub_id: str, event_id: int, instance: int,
                error: str | None = None) -> None:
        """Send the notification, resending (10 tries) until the answer is exactly 200."""
        outcome: dict[str, Any] = {"XappEventInstanceId": event_id, "E2EventInstanceId": instance}
        if error is not None:
            outcome.update(ErrorCause=error, ErrorSource="E2Node")
        note = {"SubscriptionId": sub_id, "SubscriptionInstances": [outcome]}
        data = json.dumps(note).encode()
        deadline = time.monotonic() + 60.0
        while not self._pod_ready(host, port):  # no Ready endpoint behind the service yet
            with self._lock:
                self.gated += 1
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        for _ in range(10):
            time.sleep(0.05)
            request = urllib.request.Request(
                f"http://{host}:{port}/ric/v1/subscriptions/response", data=data, method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    status = int(response.status)
            except urllib.error.HTTPError as exc:
                status = int(exc.code)
            except OSError:
                status = 0
            with self._lock:
                self.notify_status.append((sub_id, status))
                if status == 200:
                    meid = str(self.live.get(sub_id, {}).get("Meid", ""))
                    self.events.append((time.monotonic(), "confirmed", meid, sub_id))
            if status == 200:
                return
            time.sleep(0.5)

    def live_instance(self, meid: str, ran_function_id: int | None = None) -> tuple[str, int] | None:
        """(subscription id, E2 instance id) of the live subscription of ``meid`` (to RAN
        function ``ran_function_id``, or any), if any."""
        with self._lock:
            for sub_id, body in self.live.items():
                if body["Meid"] == meid and ran_function_id in (None, body["RANFunctionID"]):
                    return sub_id, self.instance_of[sub_id]
        return None

    def live_subscriptions(self, meid: str) -> list[tuple[str, int, int]]:
        """(subscription id, E2 instance id, subscriber's RMR port) of every live subscription of ``meid``."""
        with self._lock:
            return [(sub_id, self.instance_of[sub_id], int(body["ClientEndpoint"]["RMRPort"]))
                    for sub_id, body in sorted(self.live.items()) if body["Meid"] == meid]

    def nodeb_info(self, meid: str) -> dict[str, Any] | None:
        """The E2 manager's record of ``meid`` (None: unknown, 404), as ``GET /v1/nodeb/{ranName}``
        serves it: ``gnb.ranFunctions`` with the definitions as hex strings."""
        with self._lock:
            functions = self.nodeb_functions.get(meid)
            status = self.nodes.get(meid, "DISCONNECTED")
        if functions is None:
            return None
        return {
            "ranName": meid, "connectionStatus": status, "nodeType": "GNB",
            "globalNbId": {"plmnId": self.plmn.hex().upper(), "nbId": "0000000000000001"},
            "gnb": {"ranFunctions": [
                {"ranFunctionId": f.ran_function_id, "ranFunctionDefinition": f.definition.hex().upper(),
                 "ranFunctionRevision": f.revision, "ranFunctionOid": f.oid}
                for f in functions
            ]},
        }

    def set_node(self, meid: str, status: str) -> None:
        with self._lock:
            self.nodes[meid] = status

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- indications


def synthetic_reports(n_ues: int, rng: np.random.Generator, ue_offset: int = 0) -> LinkReports:
    """e2sim-like per-UE reports of one CSI-RS period (all fields in range)."""
    ri = rng.integers(1, 5, n_ues)
    snr = rng.uniform(0.0, 30.0, n_ues)
    layers = snr[:, None] - 3.0 * np.arange(4)[None, :] + rng.normal(0.0, 1.0, (n_ues, 4))
    layers = np.where(np.arange(4)[None, :] < ri[:, None], layers, np.nan)
    n_tx = rng.integers(20, 80, n_ues)
    n_nack = rng.binomial(n_tx, rng.uniform(0.0, 0.9, n_ues))
    return LinkReports(
        ue_id=np.arange(ue_offset, ue_offset + n_ues, dtype=np.int64),
        ri=ri.astype(np.int64),
        cqi=rng.integers(1, 16, n_ues).astype(np.int64),
        sinr_layers_db=layers,
        csirs_snr_db=snr,
        rank=ri.astype(np.int64),
        mcs=rng.integers(0, 29, n_ues).astype(np.int64),
        olla_offset_db=rng.uniform(-3.0, 3.0, n_ues),
        n_ack=(n_tx - n_nack).astype(np.int64),
        n_nack=n_nack.astype(np.int64),
        served_bits=(rng.integers(1000, 100000, n_ues)).astype(np.int64),
        csi_age_ms=rng.uniform(0.0, 40.0, n_ues),
        cqi_table=1,
    )


def indication_pdu(e2_instance_id: int, cell_id: int, period: int, reports: LinkReports) -> bytes:
    """An E2AP RIC Indication PDU carrying LT-LINKADAPT reports of one cell-period."""
    header, message = service_model.encode_indication(cell_id, period, period * 10, reports)
    return e2ap.encode(
        e2ap.RicIndication(
            request_id=e2ap.RicRequestId(SUBMGR_REQUESTOR_ID, e2_instance_id),
            ran_function_id=service_model.DEFAULT_RAN_FUNCTION_ID,
            action_id=1,
            sn=period % 65536,
            indication_type="report",
            header=header,
            message=message,
        )
    )


class StandInNode:
    """The RAN functions of one E2 node behind the stand-in platform, and its answers.

    What the E2 manager lists for the node (:attr:`functions`), how the node answers the
    subscriptions submgr forwards (:meth:`admit`, the stub's admission hook: KPM action
    definitions are judged by ``e2sim``'s :class:`KpmRanFunction`, as the simulated node
    does), and the KPM indications it sends (:meth:`kpm_indication_pdus`).

    Args:
        meid: the node's RAN name.
        lt_function_id: RAN function id of LT-LINKADAPT, or None for a KPM-only node.
        kpm_cells: KPM RAN function id -> NR cell identity it reports (``ranFunction-Instance``).
        plmn: the node's PLMN identity (3 octets, the stub's ``globalNbId.plmnId``).
    """

    def __init__(self, meid: str, lt_function_id: int | None, kpm_cells: dict[int, int],
                 plmn: bytes = b"\x00\xf1\x10") -> None:
        self.meid = meid
        self.lt_function_id = lt_function_id
        self.kpm = {fid: KpmRanFunction(CellGlobalId(plmn, nci), oid=KPM_V3_OID, ran_function_id=fid)
                    for fid, nci in kpm_cells.items()}
        self.functions: list[e2ap.RanFunction] = [f.ran_function() for f in self.kpm.values()]
        if lt_function_id is not None:
            definition = service_model.encode_ran_function_definition(service_model.RanFunctionDefinition())
            self.functions.insert(0, e2ap.RanFunction(lt_function_id, definition, 0, service_model.SM_OID))
        self.accepted: dict[int, KpmSubscription | str] = {}
        """RAN function id -> the accepted KPM subscription, or the LT-LINKADAPT action type."""

    def admit(self, body: dict[str, Any]) -> str | None:
        """The node's answer to one ``SubscriptionParams``: None to accept, else the cause."""
        fid = int(body["RANFunctionID"])
        (details,) = body["SubscriptionDetails"]
        (action,) = details["ActionToBeSetupList"]
        trigger = bytes(details["EventTriggers"])
        definition = bytes(action.get("ActionDefinition") or b"")
        if fid in self.kpm:
            if action["ActionType"] != "report":
                return "action-not-supported: KPM takes report actions"
            decision = self.kpm[fid].handle_subscription(trigger, definition or None)
            if decision.subscription is None:
                assert decision.cause is not None
                return f"{decision.cause.value}: {decision.detail}"
            self.accepted[fid] = decision.subscription
            return None
        if fid == self.lt_function_id:
            try:
                service_model.decode_event_trigger(trigger)
                service_model.decode_action_definition(definition)
            except Exception as exc:  # noqa: BLE001 - any refusal becomes the cause
                return f"action-not-supported: {exc}"
            if action["ActionType"] not in ("report", "policy"):
                return "action-not-supported: LT-LINKADAPT takes report and policy actions"
            self.accepted[fid] = str(action["ActionType"])
            return None
        return "ran-function-id-invalid"

    def kpm_indication_pdus(self, fid: int, instance: int, reports: LinkReports, start_unix_s: float,
                            sn: int = 0) -> list[bytes]:
        """E2AP RIC Indication PDUs carrying one period of ``reports`` through KPM function ``fid``,
        built for the subscription the node accepted (its measurements, style, granularity)."""
        subscription = self.accepted[fid]
        assert isinstance(subscription, KpmSubscription), f"KPM function {fid} has no accepted subscription"
        period = KpmPeriod(reports, float(subscription.granularity_period_ms), start_unix_s, n_rb=106,
                           n_slots=max(2 * subscription.granularity_period_ms, 1))
        return [
            e2ap.encode(e2ap.RicIndication(
                request_id=e2ap.RicRequestId(SUBMGR_REQUESTOR_ID, instance), ran_function_id=fid, action_id=1,
                sn=sn % 65536, indication_type="report", header=header, message=message,
            ))
            for header, message in self.kpm[fid].build_indications(subscription, period)
        ]


# --------------------------------------------------------------------------- the xApp


def make_descriptor(workdir: Path, model_path: Path, **controls: Any) -> dict[str, Any]:
    """The repository descriptor with free ports, the given model and control overrides."""
    descriptor = json.loads((REPO / "xapp-descriptor" / "config-file.json").read_text(encoding="utf-8"))
    ports = {"http": free_port(), "rmrData": free_port(), "rmrRoute": free_port()}
    names = {"http": "http", "rmrData": "rmrdata", "rmrRoute": "rmrroute"}
    for port in descriptor["messaging"]["ports"]:
        for key, name in names.items():
            if port["name"] == name:
                port["port"] = ports[key]
    descriptor["rmr"]["protPort"] = f"tcp:{ports['rmrData']}"
    descriptor["controls"].update(ports=ports, modelPath=str(model_path))
    descriptor["controls"].update(controls)
    return descriptor


class XappProcess:
    """The unmodified xApp in RIC mode as a child process (see module doc).

    Args:
        workdir: directory for the descriptor, schema, route table and log.
        descriptor: the descriptor to run with (written to ``config-file.json``).
        platform: the submgr/E2 manager stub.
        redis: the SDL backend.
        meid_owners: MEID -> RMR port of the E2T endpoint that owns it.
        poll_interval_s: the xApp's node-list / subscription poll period.
    """

    def __init__(self, workdir: Path, descriptor: dict[str, Any], platform: RicPlatformStub, redis: RedisServer,
                 meid_owners: dict[str, int], poll_interval_s: float = 0.3, extra_args: tuple[str, ...] = (),
                 nice: int = 0) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / "config-file.json"
        self.write_descriptor(descriptor)
        shutil.copy(REPO / "xapp-descriptor" / "schema.json", workdir / "schema.json")
        self.routes = write_xapp_routes(workdir / "xapp-routes.rt", meid_owners)
        self.platform = platform
        self.redis = redis
        self.poll_interval_s = poll_interval_s
        self.log_path = workdir / "xapp.log"
        self.extra_args = tuple(extra_args)
        self.nice = nice
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def descriptor(self) -> dict[str, Any]:
        return json.loads(self.config_file.read_text(encoding="utf-8"))

    @property
    def http_port(self) -> int:
        return int(self.descriptor["controls"]["ports"]["http"])

    @property
    def rmr_port(self) -> int:
        return int(self.descriptor["controls"]["ports"]["rmrData"])

    def write_descriptor(self, descriptor: dict[str, Any]) -> None:
        """Rewrite the descriptor in place (same inode, so inotify sees MODIFY)."""
        with open(self.config_file, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(descriptor, indent=2))

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RMR_", "HOSTNAME"))}
        env.update(self.redis.env())
        env.update(
            CONFIG_FILE=str(self.config_file),
            RMR_SEED_RT=str(self.routes),
            RMR_RTG_SVC="-1",
            RMR_SRC_ID="127.0.0.1",
            PYTHONUNBUFFERED="1",
        )
        self.runs += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== run {self.runs} =====\n".encode())
        self._log_handle = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lighttune_xapp", "--mode", "ric", "--submgr-url", self.platform.url,
             "--e2mgr-url", self.platform.url, "--client-host", "127.0.0.1",
             "--poll-interval", str(self.poll_interval_s), "--log-level", "INFO", *self.extra_args],
            cwd=str(REPO), env=env, stdout=self._log_handle, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None,
        )

    def log_text(self, this_run_only: bool = True) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        if this_run_only:
            text = text.rsplit(f"===== run {self.runs} =====", 1)[-1]
        return text

    def wait_log(self, pattern: str, timeout_s: float = 60.0) -> re.Match[str]:
        """The first match of ``pattern`` in this run's log; AssertionError (with the log tail) on timeout."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            self.assert_running()
            return regex.search(self.log_text())

        try:
            return wait_until(found, timeout_s, f"log line /{pattern}/")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- xApp log tail ---\n{self.log_text()[-4000:]}") from None

    def assert_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"xApp exited with {self.proc.returncode}\n{self.log_text()[-4000:]}")

    def http_get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()
        except OSError:
            return 0, b""

    def metrics(self) -> dict[str, float]:
        """Prometheus samples ``name{labels}`` -> value (empty when unreachable)."""
        status, body = self.http_get("/ric/v1/metrics")
        out: dict[str, float] = {}
        if status != 200:
            return out
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def terminate(self, timeout_s: float = 90.0) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout_s)
        self._log_handle.close()
        return code

    def kill(self) -> None:
        """SIGKILL (no shutdown code runs)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
        self._log_handle.close()

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
            self._log_handle.close()


def iter_controls(e2t: E2TermEndpoint) -> Iterator[RmrReceived]:
    """Control requests received so far by ``e2t``."""
    for msg in e2t.drain():
        if msg.mtype == rmr_types.RIC_CONTROL_REQ:
            yield msg


class RicTestbed:
    """Redis, the submgr/E2 manager stub, one E2T endpoint per node and the xApp process.

    Args:
        workdir: scratch directory.
        nodes: RAN names of the E2 nodes (each gets its own E2T endpoint, all CONNECTED).
        stand_ins: nodes the E2 manager describes (their RAN functions) and that judge
            their subscriptions (:class:`StandInNode`); the other nodes are unknown to the
            E2 manager's ``/v1/nodeb/{ranName}`` (404) and accept every subscription.
        controls: descriptor control overrides (``checkpointIntervalS`` ...).
    """

    def __init__(self, workdir: Path, nodes: tuple[str, ...] = ("gnb-a",),
                 stand_ins: tuple[StandInNode, ...] = (), **controls: Any) -> None:
        from lighttune_core.tuner import LightTuneModel

        self.workdir = workdir
        self.model_path = workdir / "offline.ltm"
        self.redis = RedisServer(workdir)
        self.stand_ins = {node.meid: node for node in stand_ins}
        nodes = tuple(dict.fromkeys(nodes + tuple(self.stand_ins)))
        self.platform = RicPlatformStub(
            nodes={meid: "CONNECTED" for meid in nodes},
            nodeb_functions={meid: node.functions for meid, node in self.stand_ins.items()},
            admit={meid: node.admit for meid, node in self.stand_ins.items()},
        )
        self.e2t_ports = {meid: free_port() for meid in nodes}
        descriptor = make_descriptor(workdir, self.model_path, **controls)
        # the offline model with the learning rate the xApp will set from the controls, so
        # that a cell started from it has the file's bytes
        lr = float(descriptor["controls"]["learningRate"])
        self.model_path.write_bytes(LightTuneModel(seed=0, lr=lr).to_bytes())
        self.xapp = XappProcess(workdir / "xapp", descriptor, self.platform, self.redis, self.e2t_ports)
        self.harness_routes = write_harness_routes(workdir / "harness-routes.rt", self.xapp.rmr_port)
        self.e2t: dict[str, E2TermEndpoint] = {}
        for meid in nodes:
            self.open_e2t(meid)

    def open_e2t(self, meid: str) -> E2TermEndpoint:
        """(Re)start the E2T endpoint owning ``meid`` on its port."""
        endpoint = E2TermEndpoint(self.e2t_ports[meid], self.harness_routes)
        self.e2t[meid] = endpoint
        return endpoint

    def start_xapp(self) -> None:
        """Start the xApp, wait until it is ready and every node's subscription is confirmed."""
        self.xapp.start()
        self.xapp.wait_log("RIC mode up", 120)
        wait_until(lambda: self.xapp.http_get("/ric/v1/health/ready")[0] == 200, 60, "readiness 200")
        wait_until(self.subscriptions_up, 60, "every subscription confirmed")

    def subscriptions_up(self) -> bool:
        """Whether the xApp's ``/ric/v1/stats`` says every wanted node's subscription is confirmed."""
        status, body = self.xapp.http_get("/ric/v1/stats")
        return status == 200 and bool(json.loads(body)["subscriptions"]["up"])

    def instance(self, meid: str, ran_function_id: int | None = None) -> int:
        """E2 instance id (RMR SubId) of the live subscription of ``meid`` (to ``ran_function_id``)."""
        live = wait_until(lambda: self.platform.live_instance(meid, ran_function_id), 60,
                          f"a live subscription of {meid}")
        return int(live[1])

    def send_indication(self, meid: str, cell_id: int, period: int, reports: LinkReports) -> None:
        """One RIC_INDICATION from ``meid``'s E2T, SubId and MEID set as E2T sets them."""
        instance = self.instance(meid)
        self.e2t[meid].send(rmr_types.RIC_INDICATION, indication_pdu(instance, cell_id, period, reports),
                            sub_id=instance, meid=meid)

    def send_kpm_period(self, meid: str, fid: int, reports: LinkReports, start_unix_s: float, sn: int = 0) -> int:
        """One period of ``reports`` from ``meid``'s KPM function ``fid`` as its E2T forwards
        it (SubId = the KPM subscription's E2 instance id, MEID set); returns the PDUs sent."""
        instance = self.instance(meid, fid)
        pdus = self.stand_ins[meid].kpm_indication_pdus(fid, instance, reports, start_unix_s, sn)
        for pdu in pdus:
            self.e2t[meid].send(rmr_types.RIC_INDICATION, pdu, sub_id=instance, meid=meid)
        return len(pdus)

    def close(self) -> None:
        self.xapp.stop_quietly()
        for endpoint in self.e2t.values():
            try:
                endpoint.close()
            except Exception:  # the endpoint may already be closed by a restart test
                pass
        self.platform.close()
        self.redis.stop()


# --------------------------------------------------------------------------- replicas


@dataclass(frozen=True)
class ControlSeen:
    """One RIC_CONTROL_REQ as the stand-in E2 termination received it.

    Attributes:
        at: monotonic receive time (this process's clock), seconds.
        meid: the node it was routed to.
        replica: the replica that sent it (each replica's controls reach its own endpoint).
        epoch: LT-LINKADAPT ``ControlHeader.owner_epoch``.
        cell_id, period: the cell and the report period it answers.
    """

    at: float
    meid: str
    replica: str
    epoch: int
    cell_id: int
    period: int


class ReplicaTestbed:
    """Redis, the submgr/E2 manager stub and several xApp replicas sharing the E2 nodes.

    Every replica is an unmodified xApp process (:class:`XappProcess`, ``--replica-id``,
    ``--lock-expiry``) with its own stand-in E2 termination endpoint: the endpoint sends the
    indications of the subscriptions that replica made (as E2T routes them by subscription)
    and receives the replica's controls (its route table maps every MEID to it), so the
    control log says which replica sent what. :meth:`start_traffic` plays every node: one
    LT-LINKADAPT indication per node and period to each live subscription of the node, as
    E2T does (a dead subscriber's send fails after ``dead_retry_s``).

    Args:
        workdir: scratch directory.
        nodes: RAN names of the E2 nodes (all CONNECTED).
        lock_expiry_s: the replicas' ``--lock-expiry``.
        n_ues: UEs per cell (one cell, id 1, per node).
        seed: seed of the reports.
        controls: descriptor control overrides (``checkpointIntervalS`` ...).
    """

    def __init__(self, workdir: Path, nodes: tuple[str, ...], lock_expiry_s: float, n_ues: int = 8, seed: int = 0,
                 poll_interval_s: float = 0.5, nice: int = 0, **controls: Any) -> None:
        from lighttune_core.tuner import LightTuneModel

        self.workdir = workdir
        self.nodes = nodes
        self.lock_expiry_s = lock_expiry_s
        self.n_ues = n_ues
        self.poll_interval_s = poll_interval_s
        self.nice = nice
        self.controls_overrides = controls
        self.model_path = workdir / "offline.ltm"
        self.redis = RedisServer(workdir)
        self.platform = RicPlatformStub(nodes={meid: "CONNECTED" for meid in nodes})
        lr = float(make_descriptor(workdir, self.model_path, **controls)["controls"]["learningRate"])
        self.model_path.write_bytes(LightTuneModel(seed=0, lr=lr).to_bytes())
        self.replicas: dict[str, XappProcess] = {}
        self.e2t: dict[str, E2TermEndpoint] = {}
        self.replica_of_port: dict[int, str] = {}
        self.controls: list[ControlSeen] = []
        self.control_listeners: list[Callable[[ControlSeen], None]] = []
        """Called (in a collector thread) with every control received."""
        self.indications_sent = 0
        self.indication_failures = 0
        self._rngs = {meid: np.random.default_rng([seed, i]) for i, meid in enumerate(nodes)}
        self._period = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._traffic: threading.Thread | None = None
        self._collectors: list[threading.Thread] = []

    # ------------------------------------------------------------------ replicas
    def add_replica(self, replica_id: str) -> XappProcess:
        """Create (not start) a replica with its own E2T endpoint; :meth:`start_replica` starts it."""
        rdir = self.workdir / replica_id
        rdir.mkdir(parents=True, exist_ok=True)
        descriptor = make_descriptor(rdir, self.model_path, **self.controls_overrides)
        e2t_port = free_port()
        xapp = XappProcess(
            rdir, descriptor, self.platform, self.redis, {meid: e2t_port for meid in self.nodes},
            poll_interval_s=self.poll_interval_s,
            extra_args=("--replica-id", replica_id, "--lock-expiry", str(self.lock_expiry_s)), nice=self.nice,
        )
        routes = write_harness_routes(rdir / "e2t-routes.rt", xapp.rmr_port)
        endpoint = E2TermEndpoint(e2t_port, routes)
        self.replicas[replica_id] = xapp
        self.e2t[replica_id] = endpoint
        self.replica_of_port[xapp.rmr_port] = replica_id
        collector = threading.Thread(target=self._collect, args=(replica_id, endpoint), daemon=True)
        collector.start()
        self._collectors.append(collector)
        return xapp

    def start_replica(self, replica_id: str, start: bool = True) -> None:
        """Start a replica added before (``start=False``: already started) and wait until it
        serves (readiness 200)."""
        xapp = self.replicas[replica_id]
        if start:
            xapp.start()
        xapp.wait_log("RIC mode up", 120)
        wait_until(lambda: xapp.http_get("/ric/v1/health/ready")[0] == 200, 60, f"readiness of {replica_id}")

    def running(self) -> list[str]:
        """Replicas whose process runs."""
        return [r for r, x in self.replicas.items() if x.proc is not None and x.proc.poll() is None]

    def stats(self, replica_id: str) -> dict[str, Any] | None:
        """The replica's ``/ric/v1/stats`` (None when it does not answer)."""
        status, body = self.replicas[replica_id].http_get("/ric/v1/stats")
        return json.loads(body) if status == 200 else None

    def owners(self) -> dict[str, list[str]]:
        """MEID -> the running replicas that say they own it (each list should have one entry)."""
        out: dict[str, list[str]] = {}
        for replica in self.running():
            stats = self.stats(replica)
            if stats is None:
                continue
            for meid in stats["ownership"]["nodes"]:
                out.setdefault(meid, []).append(replica)
        return out

    def epochs(self) -> dict[str, int]:
        """MEID -> epoch, as the owners report it."""
        out: dict[str, int] = {}
        for replica in self.running():
            stats = self.stats(replica)
            if stats is not None:
                out.update({m: int(e) for m, e in stats["ownership"]["nodes"].items()})
        return out

    # ------------------------------------------------------------------ traffic
    def _collect(self, replica_id: str, endpoint: E2TermEndpoint) -> None:
        while not self._stop.is_set():
            try:
                msg = endpoint.received.get(timeout=0.2)
            except queue.Empty:
                continue
            if msg.mtype != rmr_types.RIC_CONTROL_REQ:
                continue
            request = e2ap.decode(msg.payload)
            assert isinstance(request, e2ap.RicControlRequest)
            header, _acc, _rej = service_model.decode_control(request.header, request.message)
            seen = ControlSeen(msg.at, msg.meid, replica_id, header.owner_epoch, header.cell_id, header.period_index)
            with self._lock:
                self.controls.append(seen)
            for listener in self.control_listeners:
                listener(seen)

    def send_period(self, dead_retry_s: float = 0.05) -> None:
        """One report period: an indication from every node to each of its live subscriptions."""
        self._period += 1
        for meid in self.nodes:
            reports = synthetic_reports(self.n_ues, self._rngs[meid])
            for _sub_id, instance, rmr_port in self.platform.live_subscriptions(meid):
                replica = self.replica_of_port.get(rmr_port)
                if replica is None:
                    continue
                proc = self.replicas[replica].proc
                if proc is None or proc.poll() is not None:
                    # a dead subscriber: E2T's send fails on that route alone; here it would
                    # hold up the other nodes' sends while RMR gives up on the connection
                    with self._lock:
                        self.indication_failures += 1
                    continue
                ok = self.e2t[replica].send(rmr_types.RIC_INDICATION, indication_pdu(instance, 1, self._period, reports),
                                            sub_id=instance, meid=meid, retry_s=dead_retry_s, check=False)
                with self._lock:
                    self.indications_sent += 1
                    self.indication_failures += 0 if ok else 1

    def start_traffic(self, period_s: float = 0.1) -> None:
        """Play report periods every ``period_s`` in a background thread until :meth:`close`."""

        def loop() -> None:
            while not self._stop.is_set():
                started = time.monotonic()
                self.send_period()
                self._stop.wait(max(0.0, period_s - (time.monotonic() - started)))

        self._traffic = threading.Thread(target=loop, name="traffic", daemon=True)
        self._traffic.start()

    def controls_since(self, t: float) -> list[ControlSeen]:
        """Controls received at or after monotonic time ``t``."""
        with self._lock:
            return [c for c in self.controls if c.at >= t]

    def close(self) -> None:
        """Stop traffic and every process (replicas killed: the test has checked what it needs)."""
        self._stop.set()
        if self._traffic is not None:
            self._traffic.join(30)
        for xapp in self.replicas.values():
            xapp.stop_quietly()
        for endpoint in self.e2t.values():
            try:
                endpoint.close()
            except Exception:  # already gone
                pass
        self.platform.close()
        self.redis.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "e2t":
        _e2t_child(int(sys.argv[2]))
    else:
        sys.exit("usage: ric_harness.py e2t PORT  (child process of E2TermEndpoint)")
