"""The xApp descriptor is what the OSC app manager accepts, and says what the xApp does."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lighttune_xapp.config import load_config
from lighttune_xapp.health import ALIVE_PATH, METRICS_PATH, READY_PATH

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR_DIR = ROOT / "xapp-descriptor"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def descriptor() -> dict[str, Any]:
    return _json(DESCRIPTOR_DIR / "config-file.json")


@pytest.fixture(scope="module")
def controls_schema() -> dict[str, Any]:
    return _json(DESCRIPTOR_DIR / "schema.json")


@pytest.fixture(scope="module")
def onboarder_schema(controls_schema: dict[str, Any]) -> dict[str, Any]:
    """The app manager's root schema with our controls schema in place, as the onboarder builds it."""
    root = _json(ROOT / "tests" / "data" / "appmgr-xapp-schema.json")
    root["properties"]["controls"] = controls_schema
    jsonschema.Draft7Validator.check_schema(root)
    return root


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    return [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(instance)]


def test_descriptor_valid_for_the_app_manager(descriptor: dict[str, Any], onboarder_schema: dict[str, Any]) -> None:
    assert _errors(onboarder_schema, descriptor) == []


def test_controls_valid_against_our_schema(descriptor: dict[str, Any], controls_schema: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(controls_schema)
    assert _errors(controls_schema, descriptor["controls"]) == []
    load_config(descriptor, controls_schema)  # and the semantic checks pass


def test_the_app_manager_schema_catches_the_known_gotchas(
    descriptor: dict[str, Any], onboarder_schema: dict[str, Any]
) -> None:
    # Guards that the copied schema is the strict one: the forms the onboarder guide shows fail.
    bad = copy.deepcopy(descriptor)
    bad["metrics"] = [{"objectName": "x", "objectInstance": "y", "name": "n", "type": "counter", "description": "d"}]
    assert _errors(onboarder_schema, bad)
    bad = copy.deepcopy(descriptor)
    bad["containers"][0]["command"] = "lighttune-xapp --mode ric"
    assert _errors(onboarder_schema, bad)
    bad = copy.deepcopy(descriptor)
    bad["controls"]["delta"] = "0.3"
    assert _errors(onboarder_schema, bad)


def test_identity_ports_and_messages(descriptor: dict[str, Any]) -> None:
    assert descriptor["name"] == "lighttune-xapp"
    ports = {p["name"]: p for p in descriptor["messaging"]["ports"]}
    assert {name: p["port"] for name, p in ports.items()} == {"http": 8080, "rmrdata": 4560, "rmrroute": 4561}
    assert all(p["container"] == descriptor["containers"][0]["name"] for p in ports.values())
    rmr = ports["rmrdata"]
    assert set(rmr["rxMessages"]) == {
        "RIC_INDICATION",
        "RIC_CONTROL_ACK",
        "RIC_CONTROL_FAILURE",
        "RIC_SUB_RESP",
        "RIC_SUB_FAILURE",
        "RIC_SUB_DEL_RESP",
        "A1_POLICY_REQ",
    }
    assert set(rmr["txMessages"]) == {
        "RIC_CONTROL_REQ",
        "RIC_SUB_REQ",
        "RIC_SUB_DEL_REQ",
        "A1_POLICY_RESP",
        "A1_POLICY_QUERY",
    }
    assert rmr["policies"] == [descriptor["controls"]["a1PolicyTypeId"]]


def test_probes_and_scrape_annotations_point_at_the_served_paths(descriptor: dict[str, Any]) -> None:
    http_port = descriptor["controls"]["ports"]["http"]
    assert descriptor["livenessProbe"]["httpGet"] == {"path": ALIVE_PATH, "port": http_port}
    assert descriptor["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": http_port}
    annotations = descriptor["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(http_port)
    assert annotations["prometheus.io/path"] == METRICS_PATH


def test_a1_policy_type(descriptor: dict[str, Any]) -> None:
    policy_type = _json(DESCRIPTOR_DIR / "a1-policy-type.json")
    assert policy_type["policy_type_id"] == descriptor["controls"]["a1PolicyTypeId"]
    assert set(policy_type) >= {"name", "description", "policy_type_id", "create_schema"}
    schema = policy_type["create_schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    good = {"default_mode": "off", "cells": [{"cell_id": "cell-1", "mode": "ri_cqi"}, {"cell_id": "c2", "mode": "cqi"}]}
    assert _errors(schema, good) == []
    assert _errors(schema, {"cells": [{"cell_id": "cell-1", "mode": "aggressive"}]})
    assert _errors(schema, {"cells": [{"cell_id": "cell-1"}]})
