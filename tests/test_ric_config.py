"""xApp configuration: the descriptor's controls section -> XappConfig, and hot reload."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from lighttune_xapp.config import ConfigError, ConfigWatcher, XappConfig, load_config, load_config_file, load_controls_schema

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR = json.loads((ROOT / "xapp-descriptor" / "config-file.json").read_text())


@pytest.fixture()
def descriptor() -> dict[str, Any]:
    return copy.deepcopy(DESCRIPTOR)


def test_shipped_descriptor_loads(descriptor: dict[str, Any]) -> None:
    config = load_config(descriptor)
    assert config == XappConfig(
        tuner_mode="ri_cqi",
        delta=0.3,
        learning_rate=0.0003,
        cell_allow_list=(),
        checkpoint_interval_s=1.0,
        report_path="service_model",
        http_port=8080,
        rmr_data_port=4560,
        rmr_route_port=4561,
        model_path=descriptor["controls"]["modelPath"],
        store_backend="sdl",
        store_namespace="lighttune",
        store_directory=None,
        a1_policy_type_id=descriptor["controls"]["a1PolicyTypeId"],
        name="lighttune-xapp",
        version=descriptor["version"],
        max_cells_per_node=64,
    )
    assert config.cell_allowed("any-cell")
    assert config.control_enabled


def test_allow_list_and_advisory_mode(descriptor: dict[str, Any]) -> None:
    descriptor["controls"]["cellAllowList"] = ["cell-1", "cell-2"]
    descriptor["controls"]["reportPath"] = "kpm"
    config = load_config(descriptor)
    assert config.cell_allowed("cell-2") and not config.cell_allowed("cell-3")
    assert config.control_enabled  # control goes through our service model whatever the report path
    assert not load_config({**descriptor, "controls": {**descriptor["controls"], "tunerMode": "off"}}).control_enabled


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c.update(tunerMode="always"), "controls.tunerMode"),
        (lambda c: c.update(delta=0), "controls.delta"),
        (lambda c: c.update(delta=1.5), "controls.delta"),
        (lambda c: c.update(delta=float("nan")), "controls.delta"),
        (lambda c: c.update(learningRate=-0.1), "controls.learningRate"),
        (lambda c: c.update(learningRate=float("inf")), "controls.learningRate"),
        (lambda c: c.update(checkpointIntervalS=0), "controls.checkpointIntervalS"),
        (lambda c: c.update(cellAllowList=["a", "a"]), "controls.cellAllowList"),
        (lambda c: c.update(cellAllowList=[""]), "controls.cellAllowList[0]"),
        (lambda c: c.update(reportPath="mdt"), "controls.reportPath"),
        (lambda c: c.pop("modelPath"), "controls.modelPath"),
        (lambda c: c.update(unknownKnob=1), "controls.unknownKnob"),
        (lambda c: c["ports"].update(http="8080"), "controls.ports.http"),
        (lambda c: c["ports"].update(rmrData=8080), "controls.ports.rmrData"),
        (lambda c: c["ports"].update(rmrRoute=70000), "controls.ports.rmrRoute"),
        (lambda c: c["store"].update(backend="file"), "controls.store.directory"),
        (lambda c: c.update(a1PolicyTypeId=1), "controls.a1PolicyTypeId"),
        (lambda c: c.update(maxCellsPerNode=0), "controls.maxCellsPerNode"),
        (lambda c: c.update(maxCellsPerNode=2.5), "controls.maxCellsPerNode"),
    ],
)
def test_invalid_controls_name_the_field(descriptor: dict[str, Any], mutate: Any, field: str) -> None:
    mutate(descriptor["controls"])
    with pytest.raises(ConfigError) as info:
        load_config(descriptor)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_ports_must_match_the_messaging_ports(descriptor: dict[str, Any]) -> None:
    # Swap the descriptor's port numbers: controls are internally fine but disagree.
    ports = {p["name"]: p for p in descriptor["messaging"]["ports"]}
    ports["http"]["port"] = 8081
    with pytest.raises(ConfigError) as info:
        load_config(descriptor)
    assert info.value.field == "controls.ports.http"
    del descriptor["messaging"]["ports"][2]  # rmrroute
    ports["http"]["port"] = 8080
    with pytest.raises(ConfigError, match="rmrroute"):
        load_config(descriptor)


def test_controls_alone_without_messaging_are_accepted(descriptor: dict[str, Any]) -> None:
    config = load_config({"controls": descriptor["controls"]})
    assert config.http_port == 8080 and config.name == ""


def test_missing_controls_or_not_an_object() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"name": "x"})
    assert info.value.field == "controls"
    with pytest.raises(ConfigError):
        load_config([])  # type: ignore[arg-type]


def test_file_store_directory_is_kept(descriptor: dict[str, Any]) -> None:
    descriptor["controls"]["store"] = {"backend": "file", "directory": "models-store"}
    config = load_config(descriptor)
    assert (config.store_backend, config.store_directory) == ("file", "models-store")


def test_load_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, descriptor: dict[str, Any]) -> None:
    path = tmp_path / "config-file.json"
    path.write_text(json.dumps(descriptor))
    # The chart mounts schema.json next to config-file.json; the schema is found there.
    (tmp_path / "schema.json").write_text((ROOT / "xapp-descriptor" / "schema.json").read_text())
    monkeypatch.setenv("CONFIG_FILE", str(path))
    monkeypatch.delenv("XAPP_DESCRIPTOR_PATH", raising=False)
    assert load_config_file().tuner_mode == "ri_cqi"
    monkeypatch.delenv("CONFIG_FILE")
    with pytest.raises(ConfigError) as info:
        load_config_file()
    assert info.value.field == "CONFIG_FILE"
    path.write_text("{not json")
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert info.value.field == "CONFIG_FILE"


def test_watcher_keeps_running_config_on_invalid_update(descriptor: dict[str, Any]) -> None:
    watcher = ConfigWatcher(load_config(descriptor))
    changes: list[tuple[XappConfig, XappConfig]] = []
    watcher.subscribe(lambda old, new: changes.append((old, new)))

    bad = copy.deepcopy(descriptor)
    bad["controls"]["delta"] = 3.0
    error = watcher.apply(bad)
    assert isinstance(error, ConfigError) and error.field == "controls.delta"
    assert watcher.config.delta == 0.3 and watcher.rejected == 1 and not changes

    good = copy.deepcopy(descriptor)
    good["controls"]["tunerMode"] = "cqi"
    assert watcher.apply(good) is None
    assert watcher.config.tuner_mode == "cqi"
    assert len(changes) == 1 and changes[0][0].tuner_mode == "ri_cqi"


def test_watcher_polls_file_by_mtime(tmp_path: Path, descriptor: dict[str, Any]) -> None:
    path = tmp_path / "config-file.json"
    path.write_text(json.dumps(descriptor))
    watcher = ConfigWatcher(load_config(descriptor))
    assert watcher.poll_file(path) is None

    descriptor["controls"]["tunerMode"] = "off"
    path.write_text(json.dumps(descriptor))
    os.utime(path, ns=(1, 10**18))  # a distinct mtime even on coarse-clock file systems
    assert watcher.poll_file(path) is None
    assert watcher.config.tuner_mode == "off"

    path.write_text("{broken")
    os.utime(path, ns=(1, 2 * 10**18))
    assert watcher.poll_file(path) is not None
    assert watcher.config.tuner_mode == "off" and watcher.rejected == 1


def test_schema_is_valid_draft7() -> None:
    schema = load_controls_schema(ROOT / "xapp-descriptor" / "schema.json")
    assert schema["type"] == "object"


def test_failing_listener_does_not_break_apply(descriptor: dict[str, Any]) -> None:
    watcher = ConfigWatcher(load_config(descriptor))
    seen: list[str] = []

    def broken(old: XappConfig, new: XappConfig) -> None:
        raise RuntimeError("listener bug")

    watcher.subscribe(broken)
    watcher.subscribe(lambda old, new: seen.append(new.tuner_mode))
    changed = copy.deepcopy(descriptor)
    changed["controls"]["tunerMode"] = "cqi"
    assert watcher.apply(changed) is None
    assert watcher.config.tuner_mode == "cqi" and seen == ["cqi"]


def test_max_cells_per_node_defaults_to_64_and_is_read(descriptor: dict[str, Any]) -> None:
    del descriptor["controls"]["maxCellsPerNode"]  # a descriptor written before the control existed
    assert load_config(descriptor).max_cells_per_node == 64
    descriptor["controls"]["maxCellsPerNode"] = 3
    assert load_config(descriptor).max_cells_per_node == 3
