"""Model persistence: record format, memory/file/SDL backends, restore fallback, checkpointing.

The SDL tests run against a real ``redis-server`` started on a free loopback port
(``scripts/install-test-deps`` installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lighttune_xapp.store import (
    FORMAT_VERSION,
    Checkpointer,
    FileStore,
    MemoryStore,
    ModelStore,
    SdlStore,
    StoreError,
    decode_record,
    encode_record,
    restore,
)

ROOT = Path(__file__).resolve().parent.parent
REDIS = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if REDIS is None:
        pytest.skip("redis-server binary not found (scripts/install-test-deps installs it)")
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture()
def sdl_env(redis_port: int, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("DBAAS_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("DBAAS_SERVICE_PORT", str(redis_port))
    for var in ("DBAAS_SERVICE_SENTINEL_PORT", "DBAAS_MASTER_NAME", "DBAAS_NODE_COUNT"):
        monkeypatch.delenv(var, raising=False)
    return redis_port


@pytest.fixture()
def sdl_store(sdl_env: int, request: pytest.FixtureRequest) -> Iterator[SdlStore]:
    # A namespace per test keeps tests independent on the shared server.
    store = SdlStore(namespace=f"lighttune-test-{request.node.name}"[:64].replace("[", "-").replace("]", ""))
    for cell in store.cells():
        store.delete(cell)
    yield store
    for cell in store.cells():
        store.delete(cell)
    store.close()


@pytest.fixture(params=["memory", "file", "sdl"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ModelStore:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "file":
        return FileStore(tmp_path / "models")
    return request.getfixturevalue("sdl_store")


# --- record format ---------------------------------------------------------------------


def test_record_round_trip_and_header_layout() -> None:
    blob = bytes(range(256)) * 3
    record = encode_record(blob, {"version": 3, "cell": "c1"})
    assert record[:4] == b"LTMS"
    assert struct.unpack(">H", record[4:6])[0] == FORMAT_VERSION
    assert decode_record(record) == (blob, {"version": 3, "cell": "c1"})


@pytest.mark.parametrize("position", [0, 5, 12, 20, 60, -1])
def test_any_flipped_byte_is_detected(position: int) -> None:
    record = bytearray(encode_record(b"model-weights" * 10, {"k": 1}))
    record[position] ^= 0x01
    with pytest.raises(StoreError) as info:
        decode_record(bytes(record), "c1")
    assert info.value.reason in ("corrupt", "incompatible")
    assert info.value.cell_id == "c1"


def test_truncated_and_other_version_records() -> None:
    record = encode_record(b"abc", {})
    for cut in (0, 10, len(record) - 1):
        with pytest.raises(StoreError) as info:
            decode_record(record[:cut])
        assert info.value.reason == "corrupt"
    future = record[:4] + struct.pack(">H", FORMAT_VERSION + 1) + record[6:]
    with pytest.raises(StoreError) as info:
        decode_record(future)
    assert info.value.reason == "incompatible"


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="meta"):
        encode_record(b"x", {"bad": object()})
    with pytest.raises(ValueError, match="meta"):
        encode_record(b"x", {"nan": float("nan")})
    with pytest.raises(ValueError, match="blob"):
        encode_record("text", {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cell_id"):
        MemoryStore().save("", b"x", {})


# --- every backend ---------------------------------------------------------------------


def test_store_round_trip(store: ModelStore) -> None:
    assert store.load("cell-a") is None and store.cells() == []
    store.save("cell-a", b"\x00\x01weights", {"updates": 5})
    store.save("cell/b:7*", b"other", {})  # ids with separators and glob characters
    assert store.load("cell-a") == (b"\x00\x01weights", {"updates": 5})
    assert store.load("cell/b:7*") == (b"other", {})
    assert store.cells() == ["cell-a", "cell/b:7*"]
    store.save("cell-a", b"newer", {"updates": 6})
    assert store.load("cell-a") == (b"newer", {"updates": 6})
    assert store.delete("cell-a") and not store.delete("cell-a")
    assert store.cells() == ["cell/b:7*"]


def test_restore_reports_absent_and_ok(store: ModelStore) -> None:
    assert restore(store, "c9").status == "absent"
    store.save("c9", b"blob", {"m": 1})
    result = restore(store, "c9")
    assert result.ok and result.blob == b"blob" and result.meta == {"m": 1}


# --- file backend ----------------------------------------------------------------------


def test_file_store_corruption_falls_back(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.save("c1", b"weights" * 100, {"n": 1})
    path = store.path_of("c1")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as info:
        store.load("c1")
    assert info.value.reason == "corrupt"
    result = restore(store, "c1")
    assert result.status == "corrupt" and result.blob is None and "checksum" in result.detail


def test_file_store_leaves_no_temporary_files_and_survives_reopen(tmp_path: Path) -> None:
    FileStore(tmp_path).save("c1", b"w", {})
    FileStore(tmp_path).save("c1", b"w2", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == [FileStore(tmp_path).path_of("c1").name]
    assert FileStore(tmp_path).load("c1") == (b"w2", {})


def test_file_store_backend_error_is_typed(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "d")
    shutil.rmtree(tmp_path / "d")
    (tmp_path / "d").write_text("now a file")
    with pytest.raises(StoreError) as info:
        store.save("c1", b"w", {})
    assert info.value.reason == "backend"
    assert restore(store, "c1").status == "backend"


# --- SDL backend against a real redis --------------------------------------------------


def test_sdl_corrupted_blob_detected(sdl_store: SdlStore) -> None:
    sdl_store.save("c1", b"weights", {"n": 2})
    key = SdlStore.KEY_PREFIX + "c1"
    raw = sdl_store._storage.get(sdl_store.namespace, {key})[key]
    sdl_store._storage.set(sdl_store.namespace, {key: raw[:-1] + bytes([raw[-1] ^ 0x55])})
    result = restore(sdl_store, "c1")
    assert result.status == "corrupt" and result.blob is None


def test_sdl_write_in_one_process_read_in_a_fresh_one(sdl_env: int, tmp_path: Path) -> None:
    namespace = "lighttune-restart-test"
    writer = textwrap.dedent(
        f"""
        import os, sys
        from lighttune_xapp.store import SdlStore
        store = SdlStore(namespace={namespace!r})
        for cell in store.cells():
            store.delete(cell)
        store.save("cell-7", bytes(range(200)), {{"updates": 42}})
        sys.stdout.write("saved\\n"); sys.stdout.flush()
        os._exit(0)  # no clean shutdown: the data must already be in redis
        """
    )
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", writer], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "saved"

    fresh = SdlStore(namespace=namespace)
    try:
        assert fresh.cells() == ["cell-7"]
        assert fresh.load("cell-7") == (bytes(range(200)), {"updates": 42})
        assert fresh.healthy()
    finally:
        fresh.delete("cell-7")
        fresh.close()


def test_sdl_backend_down_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ricsdl")
    monkeypatch.setenv("DBAAS_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("DBAAS_SERVICE_PORT", str(_free_port()))  # nothing listens there
    store = SdlStore(namespace="lighttune-down")
    assert not store.healthy()
    with pytest.raises(StoreError) as info:
        store.save("c1", b"w", {})
    assert info.value.reason == "backend"
    assert restore(store, "c1").status == "backend"


# --- checkpointer ----------------------------------------------------------------------


def test_checkpointer_rate_limits_saves() -> None:
    store = MemoryStore()
    versions = {"c1": 0, "c2": 0}
    ckpt = Checkpointer(store, lambda cell: (str(versions[cell]).encode(), {"v": versions[cell]}), interval_s=1.0)

    assert ckpt.poll(0.0) == []  # nothing dirty
    ckpt.mark_dirty("c1")
    assert ckpt.poll(10.0) == ["c1"]  # first round runs at once
    versions["c1"] = 1
    ckpt.mark_dirty(["c1", "c2"])
    assert ckpt.poll(10.5) == []  # within the interval: held back
    assert ckpt.dirty == {"c1", "c2"}
    assert store.load("c1") == (b"0", {"v": 0})
    assert ckpt.poll(11.0) == ["c1", "c2"]
    assert store.load("c1") == (b"1", {"v": 1}) and ckpt.dirty == frozenset()
    assert ckpt.saves == 3 and ckpt.failures == 0


def test_checkpointer_retries_failed_saves(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "d")
    ckpt = Checkpointer(store, lambda cell: (b"w", {}), interval_s=0.5)
    shutil.rmtree(tmp_path / "d")
    (tmp_path / "d").write_text("blocks the directory")
    ckpt.mark_dirty("c1")
    assert ckpt.poll(0.0) == []
    assert ckpt.failures == 1 and ckpt.dirty == {"c1"}
    (tmp_path / "d").unlink()
    (tmp_path / "d").mkdir()
    assert ckpt.poll(0.2) == []  # not due yet
    assert ckpt.poll(0.6) == ["c1"]
    assert store.load("c1") == (b"w", {})


def test_checkpointer_flush_and_bad_interval() -> None:
    store = MemoryStore()
    ckpt = Checkpointer(store, lambda cell: (b"x", {}), interval_s=100.0)
    ckpt.mark_dirty("c1")
    ckpt.poll(0.0)
    ckpt.mark_dirty("c2")
    assert ckpt.poll(1.0) == []
    assert ckpt.flush() == ["c2"]
    with pytest.raises(ValueError, match="interval_s"):
        Checkpointer(store, lambda cell: (b"x", {}), interval_s=0)
