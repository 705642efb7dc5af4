"""Health probes and the metrics endpoint over HTTP.

The RIC's kubelet probes the paths named in the descriptor and Prometheus scrapes the
annotated path, all on the descriptor's ``http`` port (8080):

- ``GET /ric/v1/health/alive``: 200 while the service loop runs (the app can declare
  itself dead with :meth:`HealthState.set_alive` so Kubernetes restarts the pod);
- ``GET /ric/v1/health/ready``: 200 once the offline model is loaded **and** the message
  loops (RMR dispatch in RIC mode, the E2 server in local mode, and this HTTP server) are
  up, 503 before (body: JSON of the individual conditions, ``subscriptions_up`` included
  for information). Readiness does **not** wait for the E2 subscriptions: Kubernetes
  routes traffic only to Ready pods, and the Subscription Manager's notification that
  confirms a subscription arrives through the xApp's HTTP service — a pod that waited for
  it to become Ready would never receive it. Subscription state is reported in
  ``/ric/v1/stats`` and in the ``lighttune_subscriptions_up`` / ``lighttune_subscriptions``
  metrics instead;
- ``GET /ric/v1/metrics``: Prometheus text exposition of :class:`XappMetrics`.

The server is the standard library's ``ThreadingHTTPServer`` in a daemon thread; this
module does not import ricxappframe (which needs the native RMR library at import time),
so it works in local mode too. Extra routes (for example the Subscription Manager's
notification ``POST /ric/v1/subscriptions/response``) can be added with
:meth:`HealthServer.add_route`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from lighttune_xapp.metrics import CONTENT_TYPE, XappMetrics

__all__ = [
    "ALIVE_PATH",
    "METRICS_PATH",
    "READY_PATH",
    "STATS_PATH",
    "HealthServer",
    "HealthState",
    "Response",
    "RouteHandler",
]

_log = logging.getLogger(__name__)

ALIVE_PATH = "/ric/v1/health/alive"
READY_PATH = "/ric/v1/health/ready"
METRICS_PATH = "/ric/v1/metrics"
STATS_PATH = "/ric/v1/stats"

Response = tuple[int, str, bytes]
"""(HTTP status, content type, body)."""
RouteHandler = Callable[[bytes], Response]
"""Called with the request body; returns the response."""


class HealthState:
    """Liveness and readiness flags the application sets; thread-safe.

    Ready = alive and offline model loaded and message loops up. ``subscriptions_up`` is
    reported (probe body, ``lighttune_subscriptions_up``) but is no part of readiness: the
    notification that confirms a subscription can only reach a Ready pod.
    """

    def __init__(self, metrics: XappMetrics | None = None) -> None:
        self._lock = threading.Lock()
        self._alive = True
        self._model_loaded = False
        self._loops_up = False
        self._subscriptions_up = False
        self._metrics = metrics
        self._publish()

    def _ready_locked(self) -> bool:
        return self._alive and self._model_loaded and self._loops_up

    def _publish(self) -> None:
        if self._metrics is not None:
            with self._lock:
                ready, subscribed = self._ready_locked(), self._subscriptions_up
            self._metrics.ready.set(1.0 if ready else 0.0)
            self._metrics.subscriptions_up.set(1.0 if subscribed else 0.0)

    def set_alive(self, alive: bool) -> None:
        """Declare the service loop running (True) or broken beyond repair (False)."""
        with self._lock:
            self._alive = bool(alive)
        self._publish()

    def set_model_loaded(self, loaded: bool) -> None:
        """Declare whether the offline model is loaded."""
        with self._lock:
            self._model_loaded = bool(loaded)
        self._publish()

    def set_loops_up(self, up: bool) -> None:
        """Declare whether the message loops (RMR or E2 server, and HTTP) are running."""
        with self._lock:
            self._loops_up = bool(up)
        self._publish()

    def set_subscriptions_up(self, up: bool) -> None:
        """Declare whether the E2 subscriptions are established (reported, not readiness)."""
        with self._lock:
            self._subscriptions_up = bool(up)
        self._publish()

    @property
    def alive(self) -> bool:
        """Liveness."""
        return self._alive

    @property
    def ready(self) -> bool:
        """Readiness: alive, model loaded and message loops up."""
        with self._lock:
            return self._ready_locked()

    @property
    def subscriptions_up(self) -> bool:
        """Whether the E2 subscriptions are established."""
        with self._lock:
            return self._subscriptions_up

    def snapshot(self) -> dict[str, bool]:
        """All flags, for the probe response body."""
        with self._lock:
            return {
                "alive": self._alive,
                "model_loaded": self._model_loaded,
                "loops_up": self._loops_up,
                "subscriptions_up": self._subscriptions_up,
                "ready": self._ready_locked(),
            }


class HealthServer:
    """HTTP server for the health, readiness and metrics endpoints.

    Args:
        state: the flags the probes report.
        metrics: the registry served on :data:`METRICS_PATH`.
        port: TCP port (the descriptor's ``http`` port; 0 picks a free one, see :attr:`port`).
        host: bind address (default all interfaces, as a pod needs).
    """

    def __init__(self, state: HealthState, metrics: XappMetrics, port: int, host: str = "0.0.0.0") -> None:
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port!r}")
        self.state = state
        self.metrics = metrics
        self._routes: dict[tuple[str, str], RouteHandler] = {
            ("GET", ALIVE_PATH): self._alive,
            ("GET", READY_PATH): self._ready,
            ("GET", METRICS_PATH): self._metrics,
        }
        self._server = ThreadingHTTPServer((host, int(port)), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._server.server_address[1])

    def add_route(self, method: str, path: str, handler: RouteHandler) -> None:
        """Serve ``method path`` (exact path match, query string ignored) with ``handler``."""
        self._routes[(method.upper(), path)] = handler

    def start(self) -> None:
        """Serve in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("HealthServer already started")
        self._thread = threading.Thread(target=self._server.serve_forever, name="lighttune-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _alive(self, _body: bytes) -> Response:
        if self.state.alive:
            return HTTPStatus.OK, "application/json", b'{"status": "alive"}'
        return HTTPStatus.SERVICE_UNAVAILABLE, "application/json", b'{"status": "dead"}'

    def _ready(self, _body: bytes) -> Response:
        flags = self.state.snapshot()
        status = HTTPStatus.OK if flags["ready"] else HTTPStatus.SERVICE_UNAVAILABLE
        return status, "application/json", json.dumps(flags).encode()

    def _metrics(self, _body: bytes) -> Response:
        return HTTPStatus.OK, CONTENT_TYPE, self.metrics.render()

    def dispatch(self, method: str, target: str, body: bytes) -> Response:
        """Route one request; unknown paths give 404, known paths with another method 405."""
        path = urlsplit(target).path
        handler = self._routes.get((method, path))
        if handler is None:
            if any(p == path for (_m, p) in self._routes):
                return HTTPStatus.METHOD_NOT_ALLOWED, "text/plain", b"method not allowed\n"
            return HTTPStatus.NOT_FOUND, "text/plain", b"not found\n"
        try:
            return handler(body)
        except Exception:  # a handler bug must not kill the server thread
            _log.exception("HTTP handler for %s %s failed", method, path)
            return HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", b"internal error\n"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "lighttune-xapp"

            def _serve(self, method: str) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= 1 << 20:
                    status, ctype, payload = HTTPStatus.BAD_REQUEST, "text/plain", b"bad Content-Length\n"
                    self.close_connection = True
                else:
                    body = self.rfile.read(length) if length else b""
                    status, ctype, payload = server.dispatch(method, self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._serve("PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                self._serve("DELETE")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                _log.debug("http %s: " + format, self.address_string(), *args)

        return Handler
