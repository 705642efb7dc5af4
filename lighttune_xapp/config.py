"""The xApp's run-time configuration: the descriptor's ``controls`` section.

The OSC app manager hands an xApp its descriptor (``config-file.json``) through the file
named by the environment variable ``CONFIG_FILE`` (mounted from the ConfigMap
``configmap-ricxapp-lighttune-xapp-appconfig`` at ``/opt/ric/config``); ricxappframe calls
its config handler with the parsed descriptor at start-up and whenever the file changes.
This module turns that descriptor into a frozen :class:`XappConfig`:

1. the ``controls`` section is validated against the controls schema
   (``xapp-descriptor/schema.json``, the same file the onboarder uses) with a draft-07
   validator;
2. semantic checks the schema cannot express follow: finite numbers, ports pairwise
   distinct and equal to the descriptor's ``messaging.ports`` of the same name, the A1
   policy type listed in the ``rmrdata`` port's ``policies``, the top-level ``rmr`` section
   (``protPort``, ``maxSize``, ``numWorkers`` and the message lists the app manager reads)
   agreeing with the ``rmrdata`` port, a ``directory`` for the file store.

Any failure raises :class:`ConfigError` whose message names the offending field
(``controls.delta`` ...). :class:`ConfigWatcher` keeps the running configuration and
replaces it only by a valid one, so a bad ConfigMap edit never stops the xApp.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from lighttune_core.cell import MIN_LABEL_TX
from lighttune_core.linkadapt.presets import DuPreset, get_preset, with_sinr_thresholds

__all__ = [
    "DEFAULT_MAX_CELLS_PER_NODE",
    "ConfigError",
    "ConfigWatcher",
    "TUNER_MODES",
    "REPORT_PATHS",
    "STORE_BACKENDS",
    "XappConfig",
    "find_controls_schema",
    "load_config",
    "load_config_file",
    "load_controls_schema",
]

_log = logging.getLogger(__name__)

TUNER_MODES: tuple[str, ...] = ("off", "cqi", "ri_cqi")
"""Decision modes: keep the DU's choice, CQI-Tune, RI-CQI-Tune."""
REPORT_PATHS: tuple[str, ...] = ("service_model", "kpm")
"""E2 report paths of a node offering both: our link-adaptation service model, or standard
E2SM-KPM (control through ours either way; a KPM-only node is advisory)."""
STORE_BACKENDS: tuple[str, ...] = ("sdl", "file", "memory")
"""Model-store backends (see :mod:`lighttune_xapp.store`)."""

DEFAULT_MAX_CELLS_PER_NODE = 64
"""Default of ``controls.maxCellsPerNode``: cells one E2 node may bring."""
DEFAULT_MAX_PREDICTIONS = 5000
"""Default ``controls.maxPredictionsPerDecision``: candidate rows one cell's decision may
predict per period. A UE has at most 15 candidates (3 ranks x 5 CQIs, the same-rank ones
among them), so a cell of up to 333 UEs never reaches it; in the 1,000-UE field workload it
bounds the first periods (up to ~11,800 rows exact) and left every RI-CQI-Tune choice as the
exact search's (benchmarks/search_budget.py, docs/results.md)."""

SCHEMA_FILE_NAME = "schema.json"
_REPO_SCHEMA = Path(__file__).resolve().parent.parent / "xapp-descriptor" / SCHEMA_FILE_NAME
# Descriptor port names that the controls' ports must agree with.
_PORT_NAMES: dict[str, str] = {"http": "http", "rmrData": "rmrdata", "rmrRoute": "rmrroute"}


class ConfigError(ValueError):
    """An invalid xApp configuration; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class XappConfig:
    """Validated xApp controls.

    Attributes:
        tuner_mode: ``"off"`` | ``"cqi"`` | ``"ri_cqi"``.
        delta: fine-tuning threshold δ on |ŷ - y| (BLER, unitless, 0 < δ <= 1).
        learning_rate: online SGD step size (> 0).
        cell_allow_list: cell ids to tune; empty tuple = every cell.
        checkpoint_interval_s: minimum time between model-store saves, seconds (> 0).
        report_path: ``"service_model"`` | ``"kpm"``.
        http_port, rmr_data_port, rmr_route_port: listening TCP ports.
        model_path: offline model file every cell starts from.
        store_backend: ``"sdl"`` | ``"file"`` | ``"memory"``.
        store_namespace: SDL namespace (default ``"lighttune"``).
        store_directory: directory of the file store (``None`` unless backend is ``file``).
        a1_policy_type_id: A1 policy type id of the per-cell mode policy.
        name, version: the descriptor's xApp name and version (``""`` when absent).
        max_cells_per_node: most cells one E2 node may bring (default 64); reports of a
            further cell are refused.
        du_preset: the DU's link-adaptation loop (``"srsran"``, ``"oai"``, ``"sionna"``;
            :mod:`lighttune_core.linkadapt.presets`): the policies score candidates by the
            bits the DU will deliver under it (``controls.duPreset``, default ``srsran``).
        du_sinr_thresholds: with ``sionna`` only, the DU's own SINR thresholds (dB) as
            ``(CQI 1 .. 15 [15], MCS 0 .. 28 of table 1 [29])`` (``controls.duSinrThresholds``); None: the
            gap-to-capacity defaults. :meth:`link_preset` combines them with ``du_preset``.
        min_label_tx: fewest first transmissions of a period for LightTune to learn from it
            (``controls.minLabelTx``, default 10; :class:`~lighttune_core.cell.CellTuner`).
        calibrate: rank candidates through each cell's online calibration of the model's
            labels (``controls.calibrate``, default true; :mod:`lighttune_core.calibration`).
        check_rank_changes: pass RI-CQI-Tune's rank changes through each cell's A/B check
            in delivered bits (``controls.checkRankChanges``, default true;
            :class:`~lighttune_core.calibration.RankChangeCheck`).
        probe_du_choice: with ``calibrate``, apply the DU's own choice to some of the
            back-offs whose label the calibration has no evidence for
            (``controls.probeDuChoice``, default true; :class:`~lighttune_core.cell.CellTuner`).
        max_predictions: cap on the candidate rows one cell's decision predicts per period
            (``controls.maxPredictionsPerDecision``, default :data:`DEFAULT_MAX_PREDICTIONS`;
            0 in the descriptor, None here: the exact search;
            :class:`~lighttune_core.linkadapt.tune.SearchBudget`).
    """

    tuner_mode: str
    delta: float
    learning_rate: float
    cell_allow_list: tuple[str, ...]
    checkpoint_interval_s: float
    report_path: str
    http_port: int
    rmr_data_port: int
    rmr_route_port: int
    model_path: str
    store_backend: str
    store_namespace: str
    store_directory: str | None
    a1_policy_type_id: int
    name: str = ""
    version: str = ""
    max_cells_per_node: int = DEFAULT_MAX_CELLS_PER_NODE
    du_preset: str = "srsran"
    min_label_tx: int = MIN_LABEL_TX
    calibrate: bool = True
    check_rank_changes: bool = True
    probe_du_choice: bool = True
    max_predictions: int | None = DEFAULT_MAX_PREDICTIONS
    du_sinr_thresholds: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def link_preset(self) -> DuPreset:
        """The DU preset the policies score with: ``du_preset``, carrying
        ``du_sinr_thresholds`` when given (CQI 0 maps to −inf, "out of range").

        Raises:
            ValueError: malformed thresholds (``load_config`` has checked them already).
        """
        if self.du_sinr_thresholds is None:
            return get_preset(self.du_preset)
        cqi_db, mcs_db = self.du_sinr_thresholds
        return with_sinr_thresholds(self.du_preset, np.r_[-np.inf, cqi_db], np.asarray(mcs_db))

    def cell_allowed(self, cell_id: str) -> bool:
        """Whether the xApp tunes ``cell_id`` (always true with an empty allow-list)."""
        return not self.cell_allow_list or cell_id in self.cell_allow_list

    @property
    def control_enabled(self) -> bool:
        """Whether decisions are sent to a DU: any tuning mode, whatever the report path.

        Control always goes through our LT-LINKADAPT service model: a node offering it is
        controlled whether its reports come through it or through E2SM-KPM
        (``report_path``); only a node offering KPM alone gets advisory mode, which is a
        property of the node, not of this configuration
        (:func:`lighttune_xapp.advisory.plan_node`).
        """
        return self.tuner_mode != "off"


def find_controls_schema() -> Path:
    """Locate the controls schema file.

    Looked for, in order: ``$XAPP_DESCRIPTOR_PATH/schema.json`` (set by the chart), the
    directory of ``$CONFIG_FILE`` (the ConfigMap mounts both files side by side), the
    checkout's ``xapp-descriptor/schema.json``, and the copy shipped in the package
    (``lighttune_xapp/descriptor/schema.json``).

    Raises:
        ConfigError: (field ``schema``) when none exists.
    """
    candidates: list[Path] = []
    descriptor_dir = os.environ.get("XAPP_DESCRIPTOR_PATH")
    if descriptor_dir:
        candidates.append(Path(descriptor_dir) / SCHEMA_FILE_NAME)
    config_file = os.environ.get("CONFIG_FILE")
    if config_file:
        candidates.append(Path(config_file).parent / SCHEMA_FILE_NAME)
    candidates.append(_REPO_SCHEMA)
    candidates.append(Path(str(resources.files("lighttune_xapp.descriptor").joinpath(SCHEMA_FILE_NAME))))
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError("schema", "controls schema not found in " + ", ".join(map(str, candidates)))


def load_controls_schema(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read and check the controls JSON schema (draft-07) from ``path`` or the default place."""
    schema_path = Path(path) if path is not None else find_controls_schema()
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError("schema", f"cannot read {schema_path}: {exc}") from exc
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError("schema", f"{schema_path} is not a valid draft-07 schema: {exc.message}") from exc
    return schema


def _dotted(prefix: str, path: Iterable[Any]) -> str:
    out = prefix
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _schema_check(controls: Any, schema: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(controls), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    error = errors[0]
    field = _dotted("controls", error.path)
    if error.validator == "required" or error.validator == "additionalProperties":
        # The message names the missing/unexpected key; append it to the field path.
        missing = [p for p in error.message.split("'")[1::2] if p]
        if missing:
            field = f"{field}.{missing[0]}"
    raise ConfigError(field, error.message)


def _finite(field: str, value: float) -> float:
    if not math.isfinite(value):
        raise ConfigError(field, f"must be a finite number, got {value!r}")
    return float(value)


def _descriptor_ports(descriptor: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    messaging = descriptor.get("messaging")
    if messaging is None:
        return {}
    if not isinstance(messaging, Mapping) or not isinstance(messaging.get("ports"), list):
        raise ConfigError("messaging.ports", "must be a list of port objects")
    ports: dict[str, Mapping[str, Any]] = {}
    for i, port in enumerate(messaging["ports"]):
        if not isinstance(port, Mapping) or not isinstance(port.get("name"), str):
            raise ConfigError(f"messaging.ports[{i}].name", "each port needs a string name")
        ports[port["name"]] = port
    return ports


def _check_rmr_section(descriptor: Mapping[str, Any], rmrdata: Mapping[str, Any], rmr_data_port: int) -> None:
    """The descriptor's top-level ``rmr`` section, when present, must agree with the rmrdata port.

    The app manager takes the message lists and policies from ``rmr`` when it exists and then
    ignores ``messaging.ports`` (routes would silently differ otherwise); ``protPort`` is
    ``"tcp:<rmr data port>"``, ``maxSize`` (bytes) and ``numWorkers`` positive integers.
    """
    rmr = descriptor.get("rmr")
    if rmr is None:
        return
    if not isinstance(rmr, Mapping):
        raise ConfigError("rmr", "must be an object")
    if rmr.get("protPort") != f"tcp:{rmr_data_port}":
        raise ConfigError("rmr.protPort", f"{rmr.get('protPort')!r} must be 'tcp:{rmr_data_port}' (the rmrdata port)")
    for key in ("maxSize", "numWorkers"):
        value = rmr.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"rmr.{key}", f"must be a positive integer, got {value!r}")
    for key in ("txMessages", "rxMessages", "policies"):
        ours, theirs = rmr.get(key), rmrdata.get(key, [])
        if not isinstance(ours, list) or sorted(map(str, ours)) != sorted(map(str, theirs)):
            raise ConfigError(f"rmr.{key}", f"{ours!r} differs from the rmrdata port's {theirs!r}")


def load_config(descriptor: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> XappConfig:
    """Validate an xApp descriptor and return its controls as an :class:`XappConfig`.

    Args:
        descriptor: the parsed descriptor (the whole ``config-file.json`` object, as
            ricxappframe passes it to the config handler). Its ``controls`` section is
            required; ``messaging.ports`` is optional and, when present, cross-checked.
        schema: the controls schema; default :func:`load_controls_schema`.

    Raises:
        ConfigError: schema violation or semantic error, naming the field.
    """
    if not isinstance(descriptor, Mapping):
        raise ConfigError("descriptor", f"must be a JSON object, got {type(descriptor).__name__}")
    if "controls" not in descriptor:
        raise ConfigError("controls", "the descriptor has no controls section")
    controls = descriptor["controls"]
    _schema_check(controls, schema if schema is not None else load_controls_schema())

    delta = _finite("controls.delta", controls["delta"])
    learning_rate = _finite("controls.learningRate", controls["learningRate"])
    interval = _finite("controls.checkpointIntervalS", controls["checkpointIntervalS"])

    ports = {key: int(controls["ports"][key]) for key in _PORT_NAMES}
    seen: dict[int, str] = {}
    for key, number in ports.items():
        if number in seen:
            raise ConfigError(f"controls.ports.{key}", f"port {number} is also used by controls.ports.{seen[number]}")
        seen[number] = key
    declared = _descriptor_ports(descriptor)
    if declared:
        for key, port_name in _PORT_NAMES.items():
            if port_name not in declared:
                raise ConfigError("messaging.ports", f"no port named {port_name!r} (controls.ports.{key} needs one)")
            if declared[port_name].get("port") != ports[key]:
                raise ConfigError(
                    f"controls.ports.{key}",
                    f"{ports[key]} differs from messaging port {port_name!r} = {declared[port_name].get('port')!r}",
                )
        policies = declared["rmrdata"].get("policies", [])
        if controls["a1PolicyTypeId"] not in policies:
            raise ConfigError(
                "controls.a1PolicyTypeId",
                f"{controls['a1PolicyTypeId']} is not in the rmrdata port's policies {policies!r}",
            )
        _check_rmr_section(descriptor, declared["rmrdata"], ports["rmrData"])

    thresholds = controls.get("duSinrThresholds")
    du_sinr_thresholds = None
    if thresholds is not None:
        du_sinr_thresholds = (tuple(map(float, thresholds["cqiDb"])), tuple(map(float, thresholds["mcsDb"])))

    store = controls["store"]
    directory = store.get("directory")
    if store["backend"] == "file" and not directory:
        raise ConfigError("controls.store.directory", "the file store needs a directory")

    config = XappConfig(
        tuner_mode=controls["tunerMode"],
        delta=delta,
        learning_rate=learning_rate,
        cell_allow_list=tuple(controls["cellAllowList"]),
        checkpoint_interval_s=interval,
        report_path=controls["reportPath"],
        http_port=ports["http"],
        rmr_data_port=ports["rmrData"],
        rmr_route_port=ports["rmrRoute"],
        model_path=controls["modelPath"],
        store_backend=store["backend"],
        store_namespace=store.get("namespace", "lighttune"),
        store_directory=directory if store["backend"] == "file" else None,
        a1_policy_type_id=int(controls["a1PolicyTypeId"]),
        name=str(descriptor.get("name", "")),
        version=str(descriptor.get("version", "")),
        max_cells_per_node=int(controls.get("maxCellsPerNode", DEFAULT_MAX_CELLS_PER_NODE)),
        du_preset=str(controls.get("duPreset", "srsran")),
        min_label_tx=int(controls.get("minLabelTx", MIN_LABEL_TX)),
        calibrate=bool(controls.get("calibrate", True)),
        check_rank_changes=bool(controls.get("checkRankChanges", True)),
        probe_du_choice=bool(controls.get("probeDuChoice", True)),
        max_predictions=int(controls.get("maxPredictionsPerDecision", DEFAULT_MAX_PREDICTIONS)) or None,
        du_sinr_thresholds=du_sinr_thresholds,
    )
    try:
        config.link_preset()
    except ValueError as exc:
        raise ConfigError("controls.duSinrThresholds", f"{exc} (they belong to duPreset sionna)") from None
    return config


def load_config_file(path: str | os.PathLike[str] | None = None) -> XappConfig:
    """Read the descriptor from ``path`` (default: env ``CONFIG_FILE``) and validate it.

    Raises:
        ConfigError: field ``CONFIG_FILE`` when no path is known or the file is not
            readable JSON; otherwise as :func:`load_config`.
    """
    if path is None:
        path = os.environ.get("CONFIG_FILE")
        if not path:
            raise ConfigError("CONFIG_FILE", "environment variable not set and no path given")
    try:
        descriptor = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError("CONFIG_FILE", f"cannot read descriptor {path}: {exc}") from exc
    return load_config(descriptor)


class ConfigWatcher:
    """Holds the running :class:`XappConfig` and swaps it only for a valid one.

    ``apply(descriptor)`` is what ricxappframe's ``config_handler`` calls with each new
    descriptor; ``poll_file()`` does the same for a plain file watched by modification time
    (local mode). An invalid descriptor is logged and counted in ``rejected``; the running
    configuration stays. Listeners registered with :meth:`subscribe` get ``(old, new)``
    after each accepted change. Thread-safe.
    """

    def __init__(self, initial: XappConfig, schema: Mapping[str, Any] | None = None) -> None:
        self._config = initial
        self._schema = dict(schema) if schema is not None else load_controls_schema()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[XappConfig, XappConfig], None]] = []
        self._file_mtime_ns: int | None = None
        self.rejected = 0
        self.last_error: ConfigError | None = None

    @property
    def config(self) -> XappConfig:
        """The configuration in force."""
        return self._config

    def subscribe(self, listener: Callable[[XappConfig, XappConfig], None]) -> None:
        """Call ``listener(old, new)`` after every accepted change."""
        self._listeners.append(listener)

    def apply(self, descriptor: Mapping[str, Any]) -> ConfigError | None:
        """Validate ``descriptor``; install it if valid. Returns the error, or None on success."""
        try:
            new = load_config(descriptor, self._schema)
        except ConfigError as exc:
            with self._lock:
                self.rejected += 1
                self.last_error = exc
            _log.error("config rejected, keeping the running one: %s", exc)
            return exc
        with self._lock:
            old, self._config = self._config, new
        if new != old:
            _log.info("config applied: %s", new)
            for listener in self._listeners:
                try:
                    listener(old, new)
                except Exception:  # a listener bug must not break the config loop
                    _log.exception("config listener %r failed", listener)
        return None

    def poll_file(self, path: str | os.PathLike[str]) -> ConfigError | None:
        """Re-read ``path`` if its modification time changed since the last poll and apply it."""
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError as exc:
            error = ConfigError("CONFIG_FILE", f"cannot stat {path}: {exc}")
            with self._lock:
                self.rejected += 1
                self.last_error = error
            return error
        if mtime == self._file_mtime_ns:
            return None
        self._file_mtime_ns = mtime
        try:
            descriptor = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            error = ConfigError("CONFIG_FILE", f"cannot read descriptor {path}: {exc}")
            with self._lock:
                self.rejected += 1
                self.last_error = error
            _log.error("config rejected, keeping the running one: %s", error)
            return error
        return self.apply(descriptor)
