"""Cost of persisting fine-tuned models, per store backend.

Run from the repository root:

    python benchmarks/store_speed.py [--cells N] [--rounds R]

A model of the [13, 32, 32] network is about 12 KB of float64 weights; the blob used here
is 16 KiB of seeded random bytes. For each backend (memory, file with fsync, SDL on a
private ``redis-server`` started on a free loopback port when the binary exists) it times
``save`` and ``load`` per cell and one ``Checkpointer`` round over ``N`` dirty cells, and
saves the figures to ``benchmarks/results/store_speed.json``. The checkpoint interval
(default 1 s) bounds the store traffic: one round per interval at most.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from lighttune_xapp.store import Checkpointer, FileStore, MemoryStore, ModelStore, SdlStore
from results_file import save_results  # benchmarks/ is the script's directory

RESULTS = Path(__file__).resolve().parent / "results" / "store_speed.json"
BLOB_BYTES = 16 * 1024


def _time_backend(store: ModelStore, cells: int, rounds: int, blob: bytes) -> dict[str, float]:
    ids = [f"cell-{i}" for i in range(cells)]
    meta = {"updates": 1, "format": "bench"}
    start = time.perf_counter()
    for _ in range(rounds):
        for cell in ids:
            store.save(cell, blob, meta)
    save_s = (time.perf_counter() - start) / (rounds * cells)
    start = time.perf_counter()
    for _ in range(rounds):
        for cell in ids:
            store.load(cell)
    load_s = (time.perf_counter() - start) / (rounds * cells)
    ckpt = Checkpointer(store, lambda cell: (blob, meta), interval_s=1.0)
    ckpt.mark_dirty(ids)
    start = time.perf_counter()
    saved = ckpt.poll(0.0)
    round_s = time.perf_counter() - start
    assert len(saved) == cells
    for cell in ids:
        store.delete(cell)
    return {"save_ms": save_s * 1e3, "load_ms": load_s * 1e3, f"checkpoint_round_{cells}_cells_ms": round_s * 1e3}


def _start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    blob = np.random.default_rng(7).bytes(BLOB_BYTES)
    results: dict[str, Any] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "blob_bytes": BLOB_BYTES,
        "cells": args.cells,
        "rounds": args.rounds,
    }
    with tempfile.TemporaryDirectory() as workdir:
        results["memory"] = _time_backend(MemoryStore(), args.cells, args.rounds, blob)
        results["file_fsync"] = _time_backend(FileStore(Path(workdir) / "models"), args.cells, args.rounds, blob)
        redis = _start_redis(workdir)
        if redis is None:
            results["sdl_redis"] = "skipped: no redis-server"
        else:
            proc, port = redis
            os.environ["DBAAS_SERVICE_HOST"], os.environ["DBAAS_SERVICE_PORT"] = "127.0.0.1", str(port)
            try:
                store = SdlStore(namespace="lighttune-bench")
                results["sdl_redis"] = _time_backend(store, args.cells, args.rounds, blob)
                store.close()
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    save_results(results, RESULTS)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
