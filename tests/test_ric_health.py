"""Health probes and Prometheus metrics served over loopback HTTP."""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lighttune_xapp.health import ALIVE_PATH, METRICS_PATH, READY_PATH, HealthServer, HealthState
from lighttune_xapp.metrics import BatchHistogram, XappMetrics


@pytest.fixture()
def served() -> Iterator[tuple[HealthServer, HealthState, XappMetrics]]:
    metrics = XappMetrics()
    state = HealthState(metrics)
    server = HealthServer(state, metrics, port=0, host="127.0.0.1")
    server.start()
    try:
        yield server, state, metrics
    finally:
        server.stop()


def _get(port: int, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_ready_once_model_and_loops_are_up_without_waiting_for_subscriptions(
    served: tuple[HealthServer, HealthState, XappMetrics],
) -> None:
    """Readiness must not wait for the subscriptions: the Subscription Manager's
    notification that confirms one reaches the pod only through its Kubernetes service,
    which routes to Ready pods only (a deadlock at deploy time otherwise)."""
    server, state, metrics = served
    assert _get(server.port, ALIVE_PATH)[0] == 200
    status, ctype, body = _get(server.port, READY_PATH)
    assert status == 503 and ctype == "application/json"
    assert json.loads(body) == {"alive": True, "model_loaded": False, "loops_up": False,
                                "subscriptions_up": False, "ready": False}
    state.set_model_loaded(True)
    assert _get(server.port, READY_PATH)[0] == 503
    state.set_loops_up(True)
    status, _, body = _get(server.port, READY_PATH)
    assert status == 200 and json.loads(body)["subscriptions_up"] is False  # reported, not required
    s = _samples(metrics.render().decode())
    assert s[("lighttune_ready", ())] == 1 and s[("lighttune_subscriptions_up", ())] == 0
    state.set_subscriptions_up(True)
    assert json.loads(_get(server.port, READY_PATH)[2])["subscriptions_up"] is True
    assert _samples(metrics.render().decode())[("lighttune_subscriptions_up", ())] == 1
    state.set_subscriptions_up(False)  # E2 link lost: still ready (the notification of the renewal must get in)
    assert _get(server.port, READY_PATH)[0] == 200
    state.set_loops_up(False)  # shutting down
    assert _get(server.port, READY_PATH)[0] == 503


def test_dead_service_loop_fails_liveness(served: tuple[HealthServer, HealthState, XappMetrics]) -> None:
    server, state, _ = served
    state.set_model_loaded(True)
    state.set_loops_up(True)
    state.set_alive(False)
    assert _get(server.port, ALIVE_PATH)[0] == 503
    assert _get(server.port, READY_PATH)[0] == 503


def test_metrics_endpoint_exposes_counters(served: tuple[HealthServer, HealthState, XappMetrics]) -> None:
    server, state, metrics = served
    metrics.reports_received.labels(path="service_model").inc(3)
    metrics.ue_reports_dropped.labels(reason="out_of_range").inc()
    metrics.decode_errors.labels(kind="e2ap").inc(2)
    metrics.count_decisions(["cqi", "ri_cqi", "cqi", "keep"])
    metrics.finetune_updates.inc()
    metrics.control_sends.inc(4)
    metrics.control_failures.labels(reason="timeout").inc()
    metrics.decision_latency.observe(0.003)
    metrics.observe_prediction_errors([0.1, 0.5, math.nan, 0.0], [0.0, 0.0, 0.2, 0.0])
    state.set_model_loaded(True)
    state.set_loops_up(True)

    status, ctype, body = _get(server.port, METRICS_PATH)
    assert status == 200 and ctype.startswith("text/plain")
    s = _samples(body.decode())
    assert s[("lighttune_reports_received_total", (("path", "service_model"),))] == 3
    assert s[("lighttune_ue_reports_dropped_total", (("reason", "out_of_range"),))] == 1
    assert s[("lighttune_decode_errors_total", (("kind", "e2ap"),))] == 2
    assert s[("lighttune_decisions_total", (("kind", "cqi"),))] == 2
    assert s[("lighttune_decisions_total", (("kind", "keep"),))] == 1
    assert s[("lighttune_finetune_updates_total", ())] == 1
    assert s[("lighttune_control_sends_total", ())] == 4
    assert s[("lighttune_control_failures_total", (("reason", "timeout"),))] == 1
    assert s[("lighttune_decision_latency_seconds_count", ())] == 1
    # errors 0.1, 0.5, 0.0 (the NaN pair is skipped)
    assert s[("lighttune_prediction_abs_error_count", ())] == 3
    assert s[("lighttune_prediction_abs_error_sum", ())] == pytest.approx(0.6)
    assert s[("lighttune_prediction_abs_error_bucket", (("le", "0.05"),))] == 1
    assert s[("lighttune_prediction_abs_error_bucket", (("le", "0.1"),))] == 2  # le is inclusive
    assert s[("lighttune_prediction_abs_error_bucket", (("le", "+Inf"),))] == 3
    assert s[("lighttune_ready", ())] == 1


def test_unknown_path_method_and_extra_route(served: tuple[HealthServer, HealthState, XappMetrics]) -> None:
    server, _, _ = served
    assert _get(server.port, "/nope")[0] == 404
    assert _get(server.port, ALIVE_PATH, method="POST", body=b"{}")[0] == 405
    assert _get(server.port, ALIVE_PATH + "?verbose=1")[0] == 200

    received: list[bytes] = []
    server.add_route("POST", "/ric/v1/subscriptions/response", lambda body: (received.append(body) or (200, "text/plain", b"")))
    assert _get(server.port, "/ric/v1/subscriptions/response", method="POST", body=b'{"SubscriptionId": "x"}')[0] == 200
    assert received == [b'{"SubscriptionId": "x"}']

    def broken(_body: bytes) -> tuple[int, str, bytes]:
        raise RuntimeError("handler bug")

    server.add_route("GET", "/broken", broken)
    assert _get(server.port, "/broken")[0] == 500
    assert _get(server.port, ALIVE_PATH)[0] == 200  # still serving


def test_separate_instances_have_separate_registries() -> None:
    a, b = XappMetrics(), XappMetrics()
    a.finetune_updates.inc(5)
    assert _samples(b.render().decode())[("lighttune_finetune_updates_total", ())] == 0


def test_batch_histogram_validation_and_shapes() -> None:
    with pytest.raises(ValueError, match="buckets"):
        BatchHistogram("h", "doc", [0.2, 0.1])
    with pytest.raises(ValueError, match="shape"):
        XappMetrics().observe_prediction_errors([0.1, 0.2], [0.1])
    hist = BatchHistogram("h", "doc", [1.0, 2.0])
    assert hist.observe_many([[0.5, 1.0], [1.5, 9.0]]) == 4
    family = next(iter(hist.collect()))
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == "h_bucket"}
    assert buckets == {"1.0": 2, "2.0": 3, "+Inf": 4}


def test_modules_do_not_import_ricxappframe() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lighttune_xapp.health, lighttune_xapp.metrics, lighttune_xapp.config, lighttune_xapp.store;"
        "print(any(m.startswith(('ricxappframe', 'ricsdl')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
