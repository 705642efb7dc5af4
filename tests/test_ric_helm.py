"""The helm chart: real `helm lint` / `helm template`, objects validated with kubernetes-validate.

Needs a helm 3 binary (``scripts/install-test-deps`` installs one); the tests skip without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "lighttune-xapp"
DESCRIPTOR_DIR = ROOT / "xapp-descriptor"
DESCRIPTOR = json.loads((DESCRIPTOR_DIR / "config-file.json").read_text())
NAME = DESCRIPTOR["name"]
FULLNAME = f"ricxapp-{NAME}"


HELM = os.environ.get("HELM") or shutil.which("helm")
needs_helm = pytest.mark.skipif(HELM is None, reason="helm binary not found (scripts/install-test-deps installs it)")


def _run_helm(*args: str) -> str:
    assert HELM is not None
    out = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, f"helm {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _render(*set_args: str, namespace: str = "ricxapp") -> list[dict[str, Any]]:
    text = _run_helm("template", "lighttune", str(CHART), "--namespace", namespace, *set_args)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _by_kind_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict[str, Any]]:
    if HELM is None:
        pytest.skip("helm binary not found (scripts/install-test-deps installs it)")
    return _by_kind_name(_render())


def test_chart_files_equal_the_descriptor() -> None:
    for name in ("config-file.json", "schema.json"):
        assert (CHART / "files" / name).read_bytes() == (DESCRIPTOR_DIR / name).read_bytes(), (
            f"helm/lighttune-xapp/files/{name} differs from xapp-descriptor/{name}: copy it over"
        )


def test_chart_version_follows_the_descriptor() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["name"] == NAME
    assert chart["version"] == DESCRIPTOR["version"] == chart["appVersion"]


@needs_helm
def test_helm_lint() -> None:
    out = _run_helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out


def test_objects_pass_strict_kubernetes_validation(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    for obj in rendered.values():
        kubernetes_validate.validate(obj, version, strict=True)
    # strict mode really rejects unknown fields (so the loop above can fail)
    statefulset = json.loads(json.dumps(rendered[("StatefulSet", FULLNAME)]))
    statefulset["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, version, strict=True)


def test_names_and_namespace(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert set(rendered) == {
        ("StatefulSet", FULLNAME),
        ("Service", f"service-{FULLNAME}-rmr"),
        ("Service", f"service-{FULLNAME}-http"),
        ("Service", f"service-{FULLNAME}-pods"),
        ("Service", f"service-{FULLNAME}-0-http"),
        ("Service", f"service-{FULLNAME}-0-rmr"),
        ("ConfigMap", f"configmap-{FULLNAME}-appconfig"),
        ("ConfigMap", f"configmap-{FULLNAME}-appenv"),
        ("ConfigMap", f"configmap-{FULLNAME}-routes"),
    }
    assert {o["metadata"]["namespace"] for o in rendered.values()} == {"ricxapp"}
    pod = rendered[("StatefulSet", FULLNAME)]["spec"]["template"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["HOSTNAME"]["value"] == NAME  # ricxappframe's registration needs the xApp name
    selector = rendered[("StatefulSet", FULLNAME)]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    for service in (f"service-{FULLNAME}-rmr", f"service-{FULLNAME}-http"):
        assert rendered[("Service", service)]["spec"]["selector"] == selector


def test_ports_match_the_descriptor(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    declared = {p["name"]: p["port"] for p in DESCRIPTOR["messaging"]["ports"]}
    container = rendered[("StatefulSet", FULLNAME)]["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == declared
    rmr = rendered[("Service", f"service-{FULLNAME}-rmr")]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in rmr] == [("rmrdata", 4560), ("rmrroute", 4561)]
    http = rendered[("Service", f"service-{FULLNAME}-http")]["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in http] == [("http", declared["http"])]
    for port in rmr + http:
        assert port["targetPort"] == port["name"]


def test_probes_annotations_image_and_security(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    pod = rendered[("StatefulSet", FULLNAME)]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    for key in ("livenessProbe", "readinessProbe"):
        want = DESCRIPTOR[key]
        assert container[key]["httpGet"] == want["httpGet"]
        assert container[key]["initialDelaySeconds"] == want["initialDelaySeconds"]
        assert container[key]["periodSeconds"] == want["periodSeconds"]
    for key, value in DESCRIPTOR["annotations"].items():
        assert pod["metadata"]["annotations"][key] == value
    image = DESCRIPTOR["containers"][0]["image"]
    assert container["image"] == f"{image['registry']}/{image['name']}:{image['tag']}"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    assert set(container["resources"]) == {"requests", "limits"}


def test_environment_and_config_mount(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    env = rendered[("ConfigMap", f"configmap-{FULLNAME}-appenv")]["data"]
    assert env["CONFIG_FILE"] == "/opt/ric/config/config-file.json"
    assert env["RMR_RTG_SVC"] == "4561"
    assert env["RMR_SRC_ID"] == f"service-{FULLNAME}-rmr.ricxapp"
    assert env["APP_NAMESPACE"] == "ricxapp"
    # DBaaS comes whole from the RIC's ConfigMap (standalone or HA/sentinel), not a fixed host/port
    assert not any(key.startswith("DBAAS") for key in env)
    pod_spec = rendered[("StatefulSet", FULLNAME)]["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": f"configmap-{FULLNAME}-appenv"}},
                                    {"configMapRef": {"name": "dbaas-appconfig"}}]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v["configMap"]["name"] for v in pod_spec["volumes"]}
    assert volumes["appconfig"] == f"configmap-{FULLNAME}-appconfig"
    assert mounts["appconfig"] == "/opt/ric/config"
    routes = rendered[("ConfigMap", f"configmap-{FULLNAME}-routes")]["data"]
    seed_dir, seed_file = env["RMR_SEED_RT"].rsplit("/", 1)
    assert mounts[next(k for k, v in volumes.items() if v.endswith("-routes"))] == seed_dir
    table = routes[seed_file].splitlines()
    assert table[0] == "newrt|start" and table[-1] == "newrt|end"


def test_configmap_content_equals_the_descriptor(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    data = rendered[("ConfigMap", f"configmap-{FULLNAME}-appconfig")]["data"]
    assert data["config-file.json"] == (DESCRIPTOR_DIR / "config-file.json").read_text()
    assert data["schema.json"] == (DESCRIPTOR_DIR / "schema.json").read_text()


@needs_helm
def test_image_values_override_the_descriptor() -> None:
    objects = _by_kind_name(
        _render("--set", "image.registry=registry.example.org:5000", "--set", "image.tag=9.9.9")
    )
    container = objects[("StatefulSet", FULLNAME)]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"registry.example.org:5000/{DESCRIPTOR['containers'][0]['image']['name']}:9.9.9"


def test_readiness_probe_does_not_wait_for_subscriptions(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Kubernetes routes the xApp's http service only to Ready pods, and the Subscription
    Manager notifies through that service: the chart's readiness probe must answer 200
    before any subscription is confirmed, or the first notification can never arrive."""
    import urllib.error
    import urllib.request

    from lighttune_xapp.health import HealthServer, HealthState
    from lighttune_xapp.metrics import XappMetrics

    container = rendered[("StatefulSet", FULLNAME)]["spec"]["template"]["spec"]["containers"][0]
    probe = container["readinessProbe"]["httpGet"]
    http_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    assert probe["port"] in (http_port, "http")
    metrics = XappMetrics()
    state = HealthState(metrics)
    with HealthServer(state, metrics, port=0, host="127.0.0.1") as server:
        def status() -> int:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{probe['path']}", timeout=10) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        assert status() == 503  # nothing loaded yet
        state.set_model_loaded(True)
        state.set_loops_up(True)  # what RIC mode declares once RMR and HTTP run
        assert not state.subscriptions_up
        assert status() == 200


@needs_helm
def test_namespace_is_the_release_namespace() -> None:
    objects = _by_kind_name(_render(namespace="ricxapp-test"))
    fullname = f"ricxapp-test-{NAME}"
    assert ("StatefulSet", fullname) in objects and ("Service", f"service-{fullname}-http") in objects
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"ricxapp-test"}
    env = objects[("ConfigMap", f"configmap-{fullname}-appenv")]["data"]
    assert env["RMR_SRC_ID"] == f"service-{fullname}-rmr.ricxapp-test" and env["APP_NAMESPACE"] == "ricxapp-test"
    from lighttune_xapp.transport.ric import default_client_host

    # the host the xApp gives submgr for notifications is the http Service the chart made
    host = default_client_host(NAME, {"APP_NAMESPACE": env["APP_NAMESPACE"]})
    assert host == f"service-{fullname}-http.ricxapp-test"
    assert default_client_host(NAME, {}) == f"service-{FULLNAME}-http.ricxapp"


@needs_helm
def test_image_pull_secrets_and_dbaas_overrides() -> None:
    objects = _by_kind_name(_render("--set", "imagePullSecrets[0].name=regcred", "--set", "dbaas.configMap=",
                                    "--set", "dbaas.host=redis.example", "--set", "dbaas.port=6380"))
    version = kubernetes_validate.latest_version()
    for obj in objects.values():
        kubernetes_validate.validate(obj, version, strict=True)
    pod = objects[("StatefulSet", FULLNAME)]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": f"configmap-{FULLNAME}-appenv"}}]
    env = objects[("ConfigMap", f"configmap-{FULLNAME}-appenv")]["data"]
    assert (env["DBAAS_SERVICE_HOST"], env["DBAAS_SERVICE_PORT"]) == ("redis.example", "6380")


def test_grace_period_covers_ricxappframes_shutdown_sleep(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    """ricxappframe's stop() sleeps 10 s after deregistering; subscriptions are deleted (REST,
    5 s timeout per node) and models saved before it: Kubernetes' default 30 s is too tight."""
    import importlib.util
    import re

    pod = rendered[("StatefulSet", FULLNAME)]["spec"]["template"]["spec"]
    spec = importlib.util.find_spec("ricxappframe")  # read, not imported (that needs librmr)
    sleep_s = 10.0  # the figure documented in values.yaml, without the ric extra
    if spec is not None and spec.origin is not None:
        source = (Path(spec.origin).parent / "xapp_frame.py").read_text()
        body = re.search(r"def xapp_shutdown\(self\):(.*?)\n    def ", source, re.S)
        assert body is not None
        sleep_s = sum(map(float, re.findall(r"time\.sleep\(([0-9.]+)\)", body.group(1))))
        assert sleep_s >= 10.0
    assert pod["terminationGracePeriodSeconds"] >= sleep_s + 2 * 5 + 10  # two node deletes, saves, RMR


def test_port_names_are_valid_and_documented(rendered: dict[tuple[str, str], dict[str, Any]]) -> None:
    """The app manager's onboarder names container ports as the descriptor does; the older
    "rmrdata-<container>" form cannot be used: it exceeds Kubernetes' 15-character port names."""
    import re

    container = rendered[("StatefulSet", FULLNAME)]["spec"]["template"]["spec"]["containers"][0]
    iana = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?=[a-z0-9]))*$")
    for port in container["ports"]:
        assert iana.match(port["name"]), port["name"]
    assert not iana.match(f"rmrdata-{container['name']}")
    assert "15 characters" in (CHART / "templates" / "statefulset.yaml").read_text()


def test_descriptor_rmr_section_agrees_with_the_rmrdata_port() -> None:
    """appmgr reads the message lists and policies from the top-level rmr section when there
    is one (and then ignores messaging.ports), as OSC example descriptors carry it."""
    from lighttune_xapp.config import ConfigError, load_config

    rmr = DESCRIPTOR["rmr"]
    port = next(p for p in DESCRIPTOR["messaging"]["ports"] if p["name"] == "rmrdata")
    assert rmr["protPort"] == f"tcp:{port['port']}"
    assert rmr["maxSize"] >= 32768 and rmr["numWorkers"] == 1
    for key in ("txMessages", "rxMessages", "policies"):
        assert sorted(map(str, rmr[key])) == sorted(map(str, port[key]))
    for key, value in (("protPort", "tcp:4562"), ("maxSize", 0), ("rxMessages", ["RIC_INDICATION"])):
        bad = json.loads(json.dumps(DESCRIPTOR))
        bad["rmr"][key] = value
        with pytest.raises(ConfigError) as info:
            load_config(bad)
        assert info.value.field == f"rmr.{key}"


@needs_helm
def test_three_replicas_validate_and_each_gets_its_own_services() -> None:
    """``replicas=3``: a StatefulSet of 3 whose pods each have service-<pod>-http/-rmr selecting
    that pod alone; the replica id, the submgr ClientEndpoint host and RMR's source id are the
    pod's own (the replica's subscriptions' notifications and indications must reach it)."""
    objects = _by_kind_name(_render("--set", "replicas=3", "--set", "ownership.lockExpirySeconds=2"))
    version = kubernetes_validate.latest_version()
    for obj in objects.values():
        kubernetes_validate.validate(obj, version, strict=True)
    sts = objects[("StatefulSet", FULLNAME)]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    headless = objects[("Service", sts["spec"]["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"
    for i in range(3):
        pod = f"{FULLNAME}-{i}"
        http = objects[("Service", f"service-{pod}-http")]["spec"]
        rmr = objects[("Service", f"service-{pod}-rmr")]["spec"]
        for spec in (http, rmr):
            assert spec["selector"]["statefulset.kubernetes.io/pod-name"] == pod
        assert [p["name"] for p in http["ports"]] == ["http"]
        assert [p["name"] for p in rmr["ports"]] == ["rmrdata", "rmrroute"]
    assert ("Service", f"service-{FULLNAME}-3-http") not in objects
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["REPLICA_ID"]["value"] == "$(POD_NAME)"
    assert env["SUBSCRIPTION_CLIENT_HOST"]["value"] == "service-$(POD_NAME)-http.ricxapp"
    assert env["RMR_SRC_ID"]["value"] == "service-$(POD_NAME)-rmr.ricxapp"
    assert env["LOCK_EXPIRY_S"]["value"] == "2"
    # submgr derives the RMR host by replacing "http" with "rmr" in the ClientEndpoint host:
    # for a pod that is its own rmr Service
    host = env["SUBSCRIPTION_CLIENT_HOST"]["value"].replace("$(POD_NAME)", f"{FULLNAME}-1")
    assert host.replace("http", "rmr").split(".")[0] == f"service-{FULLNAME}-1-rmr"
    # the env list refers to POD_NAME only after defining it (Kubernetes expands in order)
    names = [e["name"] for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names.index("POD_NAME") < min(names.index(n) for n in ("REPLICA_ID", "RMR_SRC_ID"))
