"""Start-up of the xApp, shared by local mode and RIC mode.

:func:`build_runtime` turns a validated :class:`~lighttune_xapp.config.XappConfig` into the
running parts: the offline model, the model store, metrics, health flags (and optionally
the HTTP server for probes and metrics) and the :class:`~lighttune_xapp.policy.LinkAdaptationPolicy`.
Transports (``lighttune_xapp.local`` for E2 over SCTP/TCP, ``lighttune_xapp.transport.ric``
for RMR) only add their message handling on top.

Where the descriptor comes from, in order: an explicit path, ``$CONFIG_FILE`` (set in the
RIC image), the checkout's ``xapp-descriptor/config-file.json`` (local runs in a checkout),
then the default descriptor shipped in the package (``lighttune_xapp/descriptor/``, a copy
of the checkout's; an installed package outside a checkout).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import logging
import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lighttune_core.features import FEATURE_NAMES
from lighttune_core.training import STD_FLOOR
from lighttune_core.tuner import LightTuneModel
from lighttune_models import builtin_model_bytes
from lighttune_xapp.config import ConfigError, ConfigWatcher, XappConfig, load_config
from lighttune_xapp.health import HealthServer, HealthState
from lighttune_xapp.metrics import XappMetrics
from lighttune_xapp.policy import LinkAdaptationPolicy
from lighttune_xapp.store import FileStore, MemoryStore, ModelStore

_log = logging.getLogger(__name__)

BUILTIN_MODEL = "builtin"
"""``modelPath`` value that selects the offline model shipped inside the package."""

_REPO_DESCRIPTOR = Path(__file__).resolve().parents[1] / "xapp-descriptor" / "config-file.json"
DESCRIPTOR_FILE = "config-file.json"


def packaged_descriptor() -> Path:
    """The default descriptor shipped in the package (``lighttune_xapp/descriptor/``)."""
    return Path(str(resources.files("lighttune_xapp.descriptor").joinpath(DESCRIPTOR_FILE)))


def find_descriptor(path: str | os.PathLike[str] | None = None) -> Path:
    """The descriptor file to use (see module docstring for the search order).

    Raises:
        ConfigError: (field ``CONFIG_FILE``) when there is none.
    """
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise ConfigError("CONFIG_FILE", f"descriptor {candidate} does not exist")
        return candidate
    env = os.environ.get("CONFIG_FILE")
    if env:
        if not Path(env).is_file():
            raise ConfigError("CONFIG_FILE", f"$CONFIG_FILE names {env}, which does not exist")
        return Path(env)
    if _REPO_DESCRIPTOR.is_file():
        return _REPO_DESCRIPTOR
    packaged = packaged_descriptor()
    if packaged.is_file():
        return packaged
    raise ConfigError("CONFIG_FILE", "no descriptor: pass --config FILE or set CONFIG_FILE")


def read_descriptor(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Parse the descriptor JSON (see :func:`find_descriptor`)."""
    found = find_descriptor(path)
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError("CONFIG_FILE", f"cannot read descriptor {found}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("CONFIG_FILE", f"descriptor {found} is not a JSON object")
    return data


def load_offline_model(model_path: str) -> LightTuneModel:
    """The offline-trained model: the packaged default for ``"builtin"``, another packaged
    model for ``"builtin:NAME"`` (e.g. ``"builtin:offline-v4.ltm"``, the smaller and faster
    network of before offline-v5, ``lighttune_models/README.md``), else a ``.ltm`` file. Logs a
    warning for a model that scales a feature by less than ``training.STD_FLOOR`` (one that
    was constant in its training data).

    Raises:
        ConfigError: (field ``controls.modelPath``) when the file is missing or not a model.
    """
    try:
        if model_path == BUILTIN_MODEL:
            data = builtin_model_bytes()
        elif model_path.startswith(BUILTIN_MODEL + ":"):
            data = builtin_model_bytes(model_path[len(BUILTIN_MODEL) + 1:])
        else:
            data = Path(model_path).read_bytes()
    except OSError as exc:
        raise ConfigError("controls.modelPath", f"cannot read offline model {model_path!r}: {exc}") from exc
    try:
        model = LightTuneModel.from_bytes(data)
    except ValueError as exc:
        raise ConfigError("controls.modelPath", f"{model_path!r} is not a usable model: {exc}") from exc
    narrow = [FEATURE_NAMES[j] for j in np.flatnonzero(model.feature_scale < STD_FLOOR)]
    if narrow:
        _log.warning(
            "offline model %r standardises %s by a scale below %g: it was (nearly) constant in the model's "
            "training data, and a value it takes here that differs from the training one swamps "
            "the other inputs (offline-v2 to -v5 with the simulator's CSI age; "
            "lighttune_models/README.md). Retrain with this version's lighttune-train.",
            model_path, ", ".join(narrow), STD_FLOOR,
        )
    return model


def build_store(config: XappConfig) -> ModelStore:
    """The model store the configuration names (SDL needs ricsdl and a reachable Redis)."""
    if config.store_backend == "memory":
        return MemoryStore()
    if config.store_backend == "file":
        assert config.store_directory is not None
        return FileStore(config.store_directory)
    from lighttune_xapp.store import SdlStore

    return SdlStore(namespace=config.store_namespace)


@dataclass
class XappRuntime:
    """The running parts of the xApp, whatever the transport."""

    config: XappConfig
    watcher: ConfigWatcher
    metrics: XappMetrics
    health: HealthState
    policy: LinkAdaptationPolicy
    http: HealthServer | None

    def close(self) -> None:
        """Save unsaved fine-tuning and stop the HTTP server."""
        self.policy.close()
        if self.http is not None:
            self.http.stop()


def freeze_startup_objects() -> int:
    """Take every object alive now out of the cyclic garbage collector's scans (``gc.freeze``).

    The ASN.1 codecs (pycrate's E2AP module, the compiled E2SM-KPM specification), the models
    and the policy are tens of thousands of long-lived objects; a full (generation-2)
    collection walks all of them and was measured at 27 ms inside the decision loop
    (``benchmarks/e2_loop.py``, 46,000 objects), a latency spike every few hundred
    indications. Called once the xApp is up, and again when a new codec has been compiled.
    Garbage is collected first so that it is not frozen.

    Returns:
        The number of frozen objects (``gc.get_freeze_count()``).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


HEAP_TRIM_THRESHOLD_BYTES: int = 256 << 20
"""Free memory glibc may keep at the top of the heap before giving it back to the kernel."""
HEAP_MMAP_THRESHOLD_BYTES: int = 32 << 20
"""Allocations below this size come from the heap, not from a fresh ``mmap`` (glibc's largest
allowed threshold on 64-bit)."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>


def keep_freed_heap_memory(
    trim_threshold: int = HEAP_TRIM_THRESHOLD_BYTES, mmap_threshold: int = HEAP_MMAP_THRESHOLD_BYTES
) -> bool:
    """Let glibc's allocator reuse freed memory instead of returning it to the kernel.

    A 1,000-UE decision makes numpy temporaries of 0.1–0.5 MB. With glibc's defaults such an
    array is either its own ``mmap`` (above the 128 kB threshold) or grows a heap that is
    trimmed again on ``free``, so its pages are faulted in afresh on every indication.
    Measured on our VM (``benchmarks/e2_loop.py``, 1,000-UE field cell, three runs of three):
    100–220 minor page faults per indication, decision latency p50 4.1–5.7 ms and p99
    6.4–9.3 ms with glibc's defaults (``--default-malloc``); 0–2 faults, p50 3.5–4.5 ms and
    p99 4.2–7.0 ms with this setting. ``mallopt(M_TRIM_THRESHOLD)`` and ``mallopt(M_MMAP_THRESHOLD)``
    (which also turns off glibc's dynamic threshold) keep the memory in the process: its
    resident size stays at the high-water mark of one indication's temporaries (measured:
    89–90 MB either way after 1,000-UE cells through both report paths and the stress
    workload, well inside the chart's 1 GiB limit). Called once at xApp start-up.

    Returns:
        True when both settings took effect; False where there is no glibc ``mallopt``
        (musl, macOS) or it refused a value — the xApp then runs with the platform defaults.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        _log.info("no glibc mallopt: the allocator keeps its defaults")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))) and bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)))
    if not ok:
        _log.warning("mallopt refused trim threshold %d / mmap threshold %d", trim_threshold, mmap_threshold)
    return ok


def build_runtime(
    config: XappConfig,
    store: ModelStore | None = None,
    serve_http: bool = True,
    http_host: str = "0.0.0.0",
) -> XappRuntime:
    """Load the offline model, open the store, start probes/metrics, make the policy.

    Args:
        config: validated controls.
        store: overrides the configured store (tests, local runs).
        serve_http: start the health/metrics HTTP server on ``config.http_port``.
        http_host: address the HTTP server binds.
    """
    metrics = XappMetrics()
    health = HealthState(metrics)
    offline = load_offline_model(config.model_path)
    health.set_model_loaded(True)
    policy = LinkAdaptationPolicy(config, offline, store if store is not None else build_store(config), metrics)
    watcher = ConfigWatcher(config)
    watcher.subscribe(lambda _old, new: policy.apply_config(new))
    http = None
    if serve_http:
        http = HealthServer(health, metrics, host=http_host, port=config.http_port)
        http.start()
    _log.info("xApp runtime up: mode %s, delta %.2f, store %s", config.tuner_mode, config.delta, config.store_backend)
    return XappRuntime(config, watcher, metrics, health, policy, http)


def local_config(
    descriptor: dict[str, Any],
    *,
    mode: str | None = None,
    store_dir: str | None = None,
    model_path: str | None = None,
    http_port: int | None = None,
) -> XappConfig:
    """The descriptor's config with local-run overrides (validated like any config)."""
    controls = dict(descriptor.get("controls", {}))
    if mode is not None:
        controls["tunerMode"] = mode
    if model_path is not None:
        controls["modelPath"] = model_path
    if store_dir is not None:
        controls["store"] = {"backend": "file", "directory": store_dir}
    elif controls.get("store", {}).get("backend") == "sdl":
        controls["store"] = {"backend": "memory"}
    patched = dict(descriptor, controls=controls)
    config = load_config(patched)
    if http_port is not None:
        config = replace(config, http_port=http_port)
    return config
