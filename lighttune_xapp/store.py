"""Model persistence: per-cell fine-tuned models survive an xApp restart.

A :class:`ModelStore` keeps one opaque model blob (``LightTuneModel.to_bytes()``) plus a
small JSON metadata dict per cell id. Backends:

- :class:`MemoryStore`: a dict (local mode and tests; nothing survives the process).
- :class:`FileStore`: one file per cell in a directory, written atomically (temporary
  file in the same directory, ``fsync``, ``os.replace``, ``fsync`` of the directory), so a
  crash leaves either the old or the new record, never a torn one.
- :class:`SdlStore`: the near-RT RIC's shared data layer through ``ricsdl`` (Redis),
  namespace ``lighttune`` by default; ``ricsdl`` reads ``DBAAS_SERVICE_HOST`` /
  ``DBAAS_SERVICE_PORT`` (and the sentinel variables) itself. ``ricsdl`` is imported only
  when an :class:`SdlStore` is created, so this module works without the ``ric`` extra.

Every backend stores the same self-checking record (:func:`encode_record`)::

    offset  size  field
    0       4     magic b"LTMS"
    4       2     format version, uint16 big-endian (FORMAT_VERSION)
    6       4     metadata length m, uint32 big-endian
    10      8     payload length p, uint64 big-endian
    18      32    SHA-256 over bytes [4, 18) + metadata + payload
    50      m     metadata, UTF-8 JSON object
    50+m    p     payload (the model blob)

Reading a record that is truncated, has a wrong magic or checksum raises
:class:`StoreError` with ``reason="corrupt"``; another format version raises it with
``reason="incompatible"``; a backend failure (Redis down, disk error) with
``reason="backend"``. :func:`restore` wraps a load into a :class:`RestoreResult` so the
caller falls back to the offline model and reports why, instead of crashing.

:class:`Checkpointer` saves the models of cells marked dirty at most once every
``interval_s`` seconds of the caller's clock (``now``), and all of them on :meth:`flush`.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "Checkpointer",
    "FileStore",
    "MemoryStore",
    "ModelStore",
    "RestoreResult",
    "SdlStore",
    "StoreError",
    "decode_record",
    "encode_record",
    "restore",
]

_log = logging.getLogger(__name__)

MAGIC = b"LTMS"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">4sHIQ32s")  # magic, version, meta length, payload length, sha256
_MAX_CELL_ID_CHARS = 256


class StoreError(Exception):
    """A model-store failure.

    Attributes:
        reason: ``"corrupt"`` (bad magic, truncated, checksum mismatch, bad metadata),
            ``"incompatible"`` (another record format version) or ``"backend"`` (the
            storage itself failed).
        cell_id: the cell concerned, when known.
    """

    def __init__(self, reason: str, message: str, cell_id: str | None = None) -> None:
        super().__init__(f"{reason}: {message}" if cell_id is None else f"{reason}: cell {cell_id!r}: {message}")
        self.reason = reason
        self.cell_id = cell_id


def _check_cell_id(cell_id: str) -> str:
    if not isinstance(cell_id, str) or not cell_id:
        raise ValueError(f"cell_id must be a non-empty string, got {cell_id!r}")
    if len(cell_id) > _MAX_CELL_ID_CHARS:
        raise ValueError(f"cell_id is longer than {_MAX_CELL_ID_CHARS} characters")
    return cell_id


def encode_record(blob: bytes, meta: dict[str, Any]) -> bytes:
    """Pack a model blob and its metadata into a checksummed record (layout in the module doc).

    Raises:
        ValueError: ``blob`` is not bytes or ``meta`` is not a JSON-serialisable dict.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise ValueError(f"blob must be bytes, got {type(blob).__name__}")
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    try:
        meta_bytes = json.dumps(meta, sort_keys=True, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta must be JSON-serialisable: {exc}") from exc
    payload = bytes(blob)
    lengths = struct.pack(">HIQ", FORMAT_VERSION, len(meta_bytes), len(payload))
    digest = hashlib.sha256(lengths + meta_bytes + payload).digest()
    return _HEADER.pack(MAGIC, FORMAT_VERSION, len(meta_bytes), len(payload), digest) + meta_bytes + payload


def decode_record(record: bytes, cell_id: str | None = None) -> tuple[bytes, dict[str, Any]]:
    """Unpack and verify a record from :func:`encode_record`; returns ``(blob, meta)``.

    Raises:
        StoreError: ``reason="corrupt"`` or ``"incompatible"``.
    """
    if len(record) < _HEADER.size:
        raise StoreError("corrupt", f"record of {len(record)} bytes is shorter than its header", cell_id)
    magic, version, meta_len, payload_len, digest = _HEADER.unpack_from(record)
    if magic != MAGIC:
        raise StoreError("corrupt", f"bad magic {magic!r}", cell_id)
    if version != FORMAT_VERSION:
        raise StoreError("incompatible", f"record format {version}, this xApp reads {FORMAT_VERSION}", cell_id)
    if len(record) != _HEADER.size + meta_len + payload_len:
        raise StoreError(
            "corrupt", f"length {len(record)} != header {_HEADER.size} + {meta_len} + {payload_len}", cell_id
        )
    body = record[_HEADER.size :]
    if hashlib.sha256(record[4:18] + body).digest() != digest:
        raise StoreError("corrupt", "checksum mismatch", cell_id)
    try:
        meta = json.loads(body[:meta_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError("corrupt", f"metadata is not JSON: {exc}", cell_id) from exc
    if not isinstance(meta, dict):
        raise StoreError("corrupt", "metadata is not a JSON object", cell_id)
    return bytes(body[meta_len:]), meta


class ModelStore(abc.ABC):
    """Per-cell model persistence. Implementations store :func:`encode_record` records."""

    def save(self, cell_id: str, blob: bytes, meta: dict[str, Any]) -> None:
        """Store (replace) the model of ``cell_id``.

        Raises:
            ValueError: bad ``cell_id``, ``blob`` or ``meta``.
            StoreError: ``reason="backend"`` when the storage fails.
        """
        self._put(_check_cell_id(cell_id), encode_record(blob, meta))

    def load(self, cell_id: str) -> tuple[bytes, dict[str, Any]] | None:
        """The ``(blob, meta)`` of ``cell_id``, or None if nothing is stored.

        Raises:
            StoreError: corrupt or incompatible record, or backend failure.
        """
        record = self._get(_check_cell_id(cell_id))
        return None if record is None else decode_record(record, cell_id)

    @abc.abstractmethod
    def cells(self) -> list[str]:
        """Sorted ids of the cells that have a stored record."""

    def delete(self, cell_id: str) -> bool:
        """Remove the record of ``cell_id``; True if there was one."""
        return self._remove(_check_cell_id(cell_id))

    @abc.abstractmethod
    def _put(self, cell_id: str, record: bytes) -> None: ...

    @abc.abstractmethod
    def _get(self, cell_id: str) -> bytes | None: ...

    @abc.abstractmethod
    def _remove(self, cell_id: str) -> bool: ...


class MemoryStore(ModelStore):
    """In-process store (records in a dict). Thread-safe."""

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def cells(self) -> list[str]:
        with self._lock:
            return sorted(self._records)

    def _put(self, cell_id: str, record: bytes) -> None:
        with self._lock:
            self._records[cell_id] = record

    def _get(self, cell_id: str) -> bytes | None:
        with self._lock:
            return self._records.get(cell_id)

    def _remove(self, cell_id: str) -> bool:
        with self._lock:
            return self._records.pop(cell_id, None) is not None


class FileStore(ModelStore):
    """One file per cell, ``cell-<hex of the UTF-8 cell id>.ltms``, written atomically."""

    SUFFIX = ".ltms"
    _NAME = re.compile(r"^cell-([0-9a-f]+)\.ltms$")

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError("backend", f"cannot create store directory {self.directory}: {exc}") from exc

    def path_of(self, cell_id: str) -> Path:
        """The file holding the record of ``cell_id``."""
        return self.directory / f"cell-{_check_cell_id(cell_id).encode('utf-8').hex()}{self.SUFFIX}"

    def cells(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            raise StoreError("backend", f"cannot list {self.directory}: {exc}") from exc
        out = []
        for name in names:
            match = self._NAME.match(name)
            if match:
                try:
                    out.append(bytes.fromhex(match.group(1)).decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    _log.warning("ignoring store file with an undecodable name: %s", name)
        return sorted(out)

    def _put(self, cell_id: str, record: bytes) -> None:
        target = self.path_of(cell_id)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=self.SUFFIX, dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(record)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._fsync_directory()
        except OSError as exc:
            raise StoreError("backend", f"cannot write {target}: {exc}", cell_id) from exc

    def _fsync_directory(self) -> None:
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return  # platforms without directory handles: the rename is still atomic
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _get(self, cell_id: str) -> bytes | None:
        path = self.path_of(cell_id)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError("backend", f"cannot read {path}: {exc}", cell_id) from exc

    def _remove(self, cell_id: str) -> bool:
        path = self.path_of(cell_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError("backend", f"cannot delete {path}: {exc}", cell_id) from exc
        self._fsync_directory()
        return True


class SdlStore(ModelStore):
    """Store in the RIC's shared data layer (``ricsdl.syncstorage.SyncStorage``).

    Keys are ``model/<cell id>`` in ``namespace``; values are records. The Redis address
    comes from ``DBAAS_SERVICE_HOST`` / ``DBAAS_SERVICE_PORT`` (read by ricsdl when the
    storage is created). Pass ``storage`` to share an existing SyncStorage (for example
    ricxappframe's ``xapp.sdl`` backend). SDL failures become ``StoreError("backend")``.
    """

    KEY_PREFIX = "model/"

    def __init__(self, namespace: str = "lighttune", storage: Any | None = None) -> None:
        if not namespace:
            raise ValueError("namespace must be a non-empty string")
        self.namespace = namespace
        from ricsdl.exceptions import SdlException  # deferred: ricsdl is the `ric` extra

        self._sdl_errors: tuple[type[BaseException], ...] = (SdlException,)
        if storage is None:
            from ricsdl.syncstorage import SyncStorage

            try:
                storage = SyncStorage()
            except SdlException as exc:
                raise StoreError("backend", f"cannot open SDL: {exc}") from exc
        self._storage = storage

    def _key(self, cell_id: str) -> str:
        return self.KEY_PREFIX + cell_id

    def healthy(self) -> bool:
        """Whether the SDL backend answers."""
        try:
            return bool(self._storage.is_active())
        except self._sdl_errors:
            return False

    def close(self) -> None:
        """Close the SDL connection."""
        self._storage.close()

    def cells(self) -> list[str]:
        try:
            keys = self._storage.find_keys(self.namespace, self.KEY_PREFIX + "*")
        except self._sdl_errors as exc:
            raise StoreError("backend", f"SDL find_keys failed: {exc}") from exc
        return sorted(key[len(self.KEY_PREFIX) :] for key in keys if key.startswith(self.KEY_PREFIX))

    def _put(self, cell_id: str, record: bytes) -> None:
        try:
            self._storage.set(self.namespace, {self._key(cell_id): record})
        except self._sdl_errors as exc:
            raise StoreError("backend", f"SDL set failed: {exc}", cell_id) from exc

    def _get(self, cell_id: str) -> bytes | None:
        key = self._key(cell_id)
        try:
            values = self._storage.get(self.namespace, {key})
        except self._sdl_errors as exc:
            raise StoreError("backend", f"SDL get failed: {exc}", cell_id) from exc
        value = values.get(key)
        return None if value is None else bytes(value)

    def _remove(self, cell_id: str) -> bool:
        key = self._key(cell_id)
        try:
            present = bool(self._storage.get(self.namespace, {key}))
            self._storage.remove(self.namespace, {key})
        except self._sdl_errors as exc:
            raise StoreError("backend", f"SDL remove failed: {exc}", cell_id) from exc
        return present


@dataclass(frozen=True)
class RestoreResult:
    """Outcome of :func:`restore`.

    ``status`` is ``"ok"`` (blob and meta set), ``"absent"`` (nothing stored: start from
    the offline model) or a :class:`StoreError` reason (``"corrupt"``, ``"incompatible"``,
    ``"backend"``; ``detail`` says more) — then the caller uses the offline model and
    reports the fallback.
    """

    cell_id: str
    status: str
    blob: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether a stored model was recovered."""
        return self.status == "ok"


def restore(store: ModelStore, cell_id: str) -> RestoreResult:
    """Load ``cell_id`` from ``store`` without raising on a bad record or backend."""
    try:
        loaded = store.load(cell_id)
    except StoreError as exc:
        _log.warning("stored model of cell %r unusable (%s); using the offline model", cell_id, exc)
        return RestoreResult(cell_id, exc.reason, detail=str(exc))
    if loaded is None:
        return RestoreResult(cell_id, "absent")
    blob, meta = loaded
    return RestoreResult(cell_id, "ok", blob, meta)


class Checkpointer:
    """Rate-limited saving of fine-tuned models.

    ``mark_dirty(cell_id)`` after a model changes; ``poll(now)`` saves every dirty cell if at
    least ``interval_s`` seconds passed since the previous save round (or none happened
    yet), taking ``(blob, meta)`` from ``snapshot(cell_id)``. A cell whose save fails stays
    dirty and is retried on the next round; failures are counted in ``failures`` and
    logged, never raised. ``now`` is any monotonic clock in seconds.
    """

    def __init__(
        self,
        store: ModelStore,
        snapshot: Callable[[str], tuple[bytes, dict[str, Any]]],
        interval_s: float = 1.0,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.store = store
        self.snapshot = snapshot
        self.interval_s = float(interval_s)
        self._dirty: set[str] = set()
        self._last_round: float | None = None
        self._lock = threading.Lock()
        self.saves = 0
        self.failures = 0

    def mark_dirty(self, cell_ids: str | Iterable[str]) -> None:
        """Flag one cell (or several) as changed since its last save."""
        with self._lock:
            if isinstance(cell_ids, str):
                self._dirty.add(cell_ids)
            else:
                self._dirty.update(cell_ids)

    @property
    def dirty(self) -> frozenset[str]:
        """Cells with unsaved changes."""
        with self._lock:
            return frozenset(self._dirty)

    def due(self, now: float) -> bool:
        """Whether :meth:`poll` at ``now`` would run a save round."""
        return self._last_round is None or now - self._last_round >= self.interval_s

    def poll(self, now: float) -> list[str]:
        """Save the dirty cells if a round is due at ``now``; returns the cells saved."""
        with self._lock:
            if not self._dirty or not self.due(now):
                return []
            self._last_round = now
        return self.flush()

    def discard(self, cell_ids: Iterable[str]) -> None:
        """Forget unsaved changes of these cells (their model moved to another replica)."""
        with self._lock:
            self._dirty.difference_update(cell_ids)

    def flush(self, only: Iterable[str] | None = None) -> list[str]:
        """Save every dirty cell now (shutdown), or only the dirty ones among ``only``
        (a handover); returns the cells saved."""
        with self._lock:
            if only is None:
                pending, self._dirty = sorted(self._dirty), set()
            else:
                pending = sorted(self._dirty.intersection(only))
                self._dirty.difference_update(pending)
        saved: list[str] = []
        failed: list[str] = []
        for cell_id in pending:
            try:
                blob, meta = self.snapshot(cell_id)
                self.store.save(cell_id, blob, meta)
            except (StoreError, ValueError, KeyError) as exc:
                failed.append(cell_id)
                _log.error("checkpoint of cell %r failed: %s", cell_id, exc)
            else:
                saved.append(cell_id)
        with self._lock:
            self._dirty.update(failed)
            self.saves += len(saved)
            self.failures += len(failed)
        return saved
