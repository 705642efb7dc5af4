"""SDL cost of per-cell model checkpoints, model loads and ownership-lock renewals, on real Redis.

Run from the repository root (the ``ric`` extra installed; ``redis-server`` on the PATH)::

    nice .venv/bin/python benchmarks/sdl_checkpoint.py [--cells 100 1000] [--rounds 3]
        [--locks 1000] [--lock-rounds 5] [--lock-expiry-s 3] [--out FILE]

A private ``redis-server`` is started on a free loopback port (no RDB snapshots, no AOF:
``--save "" --appendonly no``) and the xApp's own persistence code talks to it: a
:class:`~lighttune_xapp.policy.LinkAdaptationPolicy` over an
:class:`~lighttune_xapp.store.SdlStore` (``ricsdl`` ``SyncStorage``, configured from
``DBAAS_SERVICE_HOST`` / ``DBAAS_SERVICE_PORT`` as in RIC mode), with the packaged offline
model in every cell. For each cells count ``N``:

- **checkpoint**: all ``N`` cells marked dirty, then one ``Checkpointer`` round
  (``policy.checkpoint()``: ``model.to_bytes()`` + record encoding with SHA-256 + one SDL
  ``set``), ``--rounds`` times. Per checkpoint: wall time (ms; the round runs on the xApp's
  serving thread), xApp CPU time (ms), record bytes, Redis commands, Redis network bytes in,
  Redis CPU (user + sys from ``INFO cpu``, ms), and Redis memory per stored cell (bytes).
- **load**: a fresh policy over the same store creates each of the ``N`` cells, which restores
  its model from SDL (one ``get``) and rebuilds it (``LightTuneModel.from_bytes``): the
  takeover path. Per load: wall and CPU time, Redis commands, Redis bytes out and CPU.

Locks (``--locks`` resources, ``ricsdl`` ``get_lock_resource`` with ``--lock-expiry-s``): one
``acquire`` each, then ``--lock-rounds`` rounds of ``refresh`` (the renewal an owner replica
does every ~1/3 of the expiry), then ``release``. Per operation: wall time, Redis commands and
Redis CPU.

Redis counters come from ``INFO commandstats`` / ``stats`` / ``cpu`` / ``memory`` deltas around
each timed block (the ``INFO`` calls themselves are not counted). Figures are printed and saved
to ``benchmarks/results/sdl_checkpoint.json``. The machine this runs on may be shared with other
jobs: wall times include waiting for a CPU, CPU times less so, counts and bytes not at all; the
output says so.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from results_file import RESULTS_DIR, save_results  # benchmarks/ is the script's directory

RESULTS = RESULTS_DIR / "sdl_checkpoint.json"
NAMESPACE = "lighttune-bench"
SHARED_MACHINE_NOTE = (
    "measured on a shared machine (2 cores, other jobs running): wall times include waiting for a "
    "CPU and are upper bounds; CPU times are less affected (caches are shared), command counts and "
    "bytes not at all"
)


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start a private ``redis-server`` on a free loopback port; returns (process, port).

    Persistence is off (no RDB, no AOF), as for a cache-only DBaaS.

    Raises:
        RuntimeError: no ``redis-server`` on the PATH, or it did not answer within 30 s.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on the PATH (Debian: apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError(f"redis-server did not answer on port {port} within 30 s")


@dataclass(frozen=True)
class RedisCounters:
    """Cumulative Redis server counters at one instant.

    Attributes:
        commands: calls of every command except ``INFO``, including commands run inside Lua
            scripts (count; ``INFO commandstats``).
        requests: requests (round trips) this process's Redis clients sent, ``INFO`` excluded
            (count; :class:`RequestCounter`). Redis itself counts the commands a Lua script
            runs like client commands, so ``commands`` can exceed ``requests``.
        cpu_s: server CPU time, user + sys, all threads (s).
        net_in_bytes: bytes received from clients (B).
        net_out_bytes: bytes sent to clients (B).
        used_memory_bytes: memory the allocator holds for data (B).
        by_command: calls per command name (count), ``INFO`` excluded.
    """

    commands: int
    requests: int
    cpu_s: float
    net_in_bytes: int
    net_out_bytes: int
    used_memory_bytes: int
    by_command: dict[str, int]


class RequestCounter:
    """Counts the requests redis-py connections of this process send (``INFO`` excluded).

    :meth:`install` wraps ``redis.connection.Connection.send_command``, the call every
    ``execute_command`` (and so every ricsdl operation and lock script) goes through.
    """

    def __init__(self) -> None:
        self.count = 0
        self._installed = False

    def install(self) -> None:
        """Wrap redis-py's ``Connection.send_command`` (once)."""
        if self._installed:
            return
        from redis.connection import Connection

        original = Connection.send_command
        counter = self

        def counting_send_command(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if not (args and str(args[0]).upper() == "INFO"):
                counter.count += 1
            return original(conn, *args, **kwargs)

        Connection.send_command = counting_send_command  # type: ignore[method-assign]
        self._installed = True


REQUESTS = RequestCounter()
"""The process-wide request counter that :func:`read_counters` reads."""


def read_counters(client: Any) -> RedisCounters:
    """Read :class:`RedisCounters` from ``client`` (a ``redis.Redis``) with one ``INFO all``."""
    info = client.info("all")
    by_command = {
        key[len("cmdstat_"):]: int(value["calls"])
        for key, value in info.items()
        if key.startswith("cmdstat_") and key != "cmdstat_info"
    }
    return RedisCounters(
        commands=sum(by_command.values()),
        requests=REQUESTS.count,
        cpu_s=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        net_in_bytes=int(info["total_net_input_bytes"]),
        net_out_bytes=int(info["total_net_output_bytes"]),
        used_memory_bytes=int(info["used_memory"]),
        by_command=by_command,
    )


def counter_delta(before: RedisCounters, after: RedisCounters, per: int) -> dict[str, Any]:
    """Redis cost between two readings, per operation (``per`` operations happened).

    Returns:
        ``redis_requests`` (client requests/op), ``redis_commands`` (count/op, with those
        inside Lua scripts), ``redis_commands_by_name`` (count/op per command),
        ``redis_cpu_ms`` (ms/op), ``redis_net_in_bytes`` and ``redis_net_out_bytes`` (B/op).
        The ``INFO`` reply that closes the block is part of ``net_out``; it is a few kB over
        the whole block, so its share per operation is small for large ``per``.
    """
    names = set(before.by_command) | set(after.by_command)
    by_name = {
        name: (after.by_command.get(name, 0) - before.by_command.get(name, 0)) / per
        for name in sorted(names)
        if after.by_command.get(name, 0) != before.by_command.get(name, 0)
    }
    return {
        "redis_requests": (after.requests - before.requests) / per,
        "redis_commands": (after.commands - before.commands) / per,
        "redis_commands_by_name": by_name,
        "redis_cpu_ms": (after.cpu_s - before.cpu_s) / per * 1e3,
        "redis_net_in_bytes": (after.net_in_bytes - before.net_in_bytes) / per,
        "redis_net_out_bytes": (after.net_out_bytes - before.net_out_bytes) / per,
    }


def _policy(store: Any) -> Any:
    """A RIC-mode-like policy (packaged descriptor, packaged offline model) over ``store``."""
    from lighttune_xapp.app import load_offline_model, local_config, read_descriptor
    from lighttune_xapp.policy import LinkAdaptationPolicy

    config = local_config(read_descriptor(), mode="ri_cqi")
    return LinkAdaptationPolicy(config, load_offline_model("builtin"), store)


def bench_cells(client: Any, cells: int, rounds: int) -> dict[str, Any]:
    """Checkpoint and load costs for ``cells`` cells (see the module doc); keys removed after.

    Args:
        client: ``redis.Redis`` to the server the SDL store uses (for ``INFO`` only).
        cells: number of cells (models) checkpointed per round and loaded.
        rounds: checkpoint rounds over all cells.
    """
    from lighttune_xapp.store import SdlStore

    store = SdlStore(namespace=NAMESPACE)
    ids = [f"cell-{i:05d}" for i in range(cells)]
    try:
        policy = _policy(store)
        for cell_id in ids:  # absent in SDL: each restore is one miss, not timed
            policy.cell(cell_id)
        mem_before = read_counters(client).used_memory_bytes
        wall = cpu = 0.0
        before = read_counters(client)
        for _ in range(rounds):
            policy.checkpointer.mark_dirty(ids)
            w0, c0 = time.perf_counter(), time.process_time()
            saved = policy.checkpoint()
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            if len(saved) != cells:
                raise RuntimeError(f"checkpoint round saved {len(saved)} of {cells} cells")
        after = read_counters(client)
        n_ck = rounds * cells
        record = store._get(ids[0])  # the stored record as Redis holds it
        record_bytes = len(record) if record is not None else 0
        checkpoint = {
            "checkpoints": n_ck,
            "wall_ms": wall / n_ck * 1e3,
            "xapp_cpu_ms": cpu / n_ck * 1e3,
            "record_bytes": record_bytes,
            "round_wall_ms": wall / rounds * 1e3,
            **counter_delta(before, after, n_ck),
            "redis_memory_bytes_per_cell": (after.used_memory_bytes - mem_before) / cells,
        }
        checkpoint["redis_cpu_cores_per_1000_checkpoints_per_s"] = checkpoint["redis_cpu_ms"]  # ms/op x 1000/s / 1000
        fresh = _policy(store)
        before = read_counters(client)
        w0, c0 = time.perf_counter(), time.process_time()
        for cell_id in ids:
            fresh.cell(cell_id)
        wall_l, cpu_l = time.perf_counter() - w0, time.process_time() - c0
        after = read_counters(client)
        restored = sum(1 for cell_id in ids if fresh.restore_status.get(cell_id) == "ok")
        if restored != cells:
            raise RuntimeError(f"{restored} of {cells} cells restored from SDL")
        load = {
            "loads": cells,
            "wall_ms": wall_l / cells * 1e3,
            "xapp_cpu_ms": cpu_l / cells * 1e3,
            **counter_delta(before, after, cells),
        }
        return {"cells": cells, "rounds": rounds, "checkpoint": checkpoint, "load": load}
    finally:
        for cell_id in ids:
            store.delete(cell_id)
        store.close()


def bench_locks(client: Any, locks: int, rounds: int, expiry_s: float) -> dict[str, Any]:
    """Cost of ``ricsdl`` lock operations on ``locks`` lock resources (one per E2 node).

    Args:
        client: ``redis.Redis`` to the server SDL uses (for ``INFO`` only).
        locks: number of lock resources.
        rounds: refresh rounds over all locks.
        expiry_s: lock expiration (s); the rounds finish well within it.
    """
    from ricsdl.syncstorage import SyncStorage

    storage = SyncStorage()
    try:
        resources = [storage.get_lock_resource(NAMESPACE, f"owner/node-{i:05d}", expiry_s) for i in range(locks)]
        out: dict[str, Any] = {"locks": locks, "rounds": rounds, "expiry_s": expiry_s}
        before = read_counters(client)
        w0 = time.perf_counter()
        for lock in resources:
            if not lock.acquire(retry_interval=0.01, retry_timeout=0.0):
                raise RuntimeError("a fresh lock resource was not acquired")
        wall = time.perf_counter() - w0
        out["acquire"] = {"wall_ms": wall / locks * 1e3, **counter_delta(before, read_counters(client), locks)}
        before = read_counters(client)
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            for lock in resources:
                lock.refresh()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        n = locks * rounds
        out["refresh"] = {"wall_ms": wall / n * 1e3, "xapp_cpu_ms": cpu / n * 1e3,
                          **counter_delta(before, read_counters(client), n)}
        if wall > expiry_s / 3:
            out["refresh"]["note"] = "a refresh round took longer than 1/3 of the expiry"
        before = read_counters(client)
        w0 = time.perf_counter()
        for lock in resources:
            lock.release()
        wall = time.perf_counter() - w0
        out["release"] = {"wall_ms": wall / locks * 1e3, **counter_delta(before, read_counters(client), locks)}
        return out
    finally:
        storage.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurements, print them and save them to ``--out``; returns the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[100, 1000], help="cells counts to measure")
    ap.add_argument("--rounds", type=int, default=3, help="checkpoint rounds per cells count")
    ap.add_argument("--locks", type=int, default=1000, help="lock resources (E2 nodes)")
    ap.add_argument("--lock-rounds", type=int, default=5, help="refresh rounds over all locks")
    ap.add_argument("--lock-expiry-s", type=float, default=3.0, help="lock expiration, s")
    ap.add_argument("--out", default=str(RESULTS), help="JSON file for the results")
    args = ap.parse_args(argv)

    import redis
    import ricsdl

    REQUESTS.install()

    results: dict[str, Any] = {
        "benchmark": "sdl_checkpoint",
        "command": "benchmarks/sdl_checkpoint.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "note": SHARED_MACHINE_NOTE,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_1min_before": os.getloadavg()[0],
        "redis_server": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip(),
        "redis_persistence": "off (--save '' --appendonly no)",
        "ricsdl": getattr(ricsdl, "__version__", "unknown"),
        "redis_py": redis.__version__,
    }
    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_redis(workdir)
        os.environ["DBAAS_SERVICE_HOST"], os.environ["DBAAS_SERVICE_PORT"] = "127.0.0.1", str(port)
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            results["per_cells"] = [bench_cells(client, n, args.rounds) for n in args.cells]
            results["locks"] = bench_locks(client, args.locks, args.lock_rounds, args.lock_expiry_s)
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=30)
    results["load_1min_after"] = os.getloadavg()[0]
    print(SHARED_MACHINE_NOTE)
    for row in results["per_cells"]:
        ck, ld = row["checkpoint"], row["load"]
        print(f"{row['cells']:>6} cells  checkpoint: {ck['wall_ms']:.3f} ms wall, {ck['xapp_cpu_ms']:.3f} ms xApp CPU, "
              f"{ck['record_bytes']:,} B record, {ck['redis_net_in_bytes']:,.0f} B into Redis, "
              f"{ck['redis_requests']:.2f} Redis requests, {ck['redis_commands']:.2f} cmds {ck['redis_commands_by_name']}, "
              f"Redis CPU {ck['redis_cpu_ms']:.4f} ms (= {ck['redis_cpu_cores_per_1000_checkpoints_per_s']:.3f} "
              f"cores per 1,000 checkpoints/s), Redis memory {ck['redis_memory_bytes_per_cell']:,.0f} B/cell")
        print(f"{'':>6}        load: {ld['wall_ms']:.3f} ms wall, {ld['xapp_cpu_ms']:.3f} ms xApp CPU, "
              f"{ld['redis_net_out_bytes']:,.0f} B out of Redis, {ld['redis_requests']:.2f} Redis requests, "
              f"Redis CPU {ld['redis_cpu_ms']:.4f} ms")
    lk = results["locks"]
    for op in ("acquire", "refresh", "release"):
        r = lk[op]
        print(f"lock {op:>7} ({lk['locks']} locks): {r['wall_ms']:.3f} ms wall, {r['redis_requests']:.2f} Redis requests, {r['redis_commands']:.2f} cmds "
              f"{r['redis_commands_by_name']}, Redis CPU {r['redis_cpu_ms']:.4f} ms")
    save_results(results, Path(args.out))
    return results


if __name__ == "__main__":
    main()
