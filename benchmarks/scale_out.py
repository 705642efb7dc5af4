"""Replicas sharing E2 nodes, measured: throughput for 1-3 replicas, takeover times, SDL load.

Runs the unmodified xApp in RIC mode as several replica processes with one private
redis-server, the stand-in submgr/E2 manager and one stand-in E2 termination endpoint per
replica (``tests/ric_harness.py`` :class:`ReplicaTestbed`, real RMR over TCP loopback):

1. **Throughput.** ``--nodes`` E2 nodes with one cell of ``--n-ues`` UEs each, driven in a
   closed loop: every node keeps ``--inflight`` indications in flight and sends the next
   when a control for it arrives, so every replica always has work queued. Measured
   over ``--window`` seconds with 1, then 2, then 3 replicas (each new one joins the running
   set and takes its share by handover): aggregate UE-reports/s (controls received x UEs
   per cell), per replica the UE-reports/s and the CPU it used (utime + stime from
   ``/proc``), and the CPU of the harness itself (driver, E2T endpoints, Redis), which
   shares the same cores.
2. **SDL load.** Redis commands per second (``INFO commandstats``) over the 3-replica
   window, by command, and again with no traffic (the ownership protocol alone), next to
   the replicas' own count of ownership SDL calls (``lighttune_ownership_sdl_ops``).
3. **Takeover.** With 3 replicas and every node reporting every 100 ms, ``--kills`` times:
   ``kill -9`` a replica at a random instant, measure for each of its nodes the time until
   another replica's first control, then restart the killed replica (same id) and wait
   until it has its share back. Prints the distribution over all taken-over nodes.

    nice .venv/bin/python benchmarks/scale_out.py [--window 15] [--kills 20] [--lock-expiry 1.5]

Prints the figures and saves them to ``benchmarks/results/scale_out.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_file import RESULTS_DIR, save_results  # noqa: E402
from ric_harness import (  # noqa: E402
    ControlSeen,
    ReplicaTestbed,
    indication_pdu,
    skip_reason,
    synthetic_reports,
    wait_until,
)
from lighttune_xapp.ownership import assign  # noqa: E402
from lighttune_xapp.transport import rmr_types  # noqa: E402

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its waited-for children), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the command: state(0) ppid ... utime(11) stime(12) cutime(13) cstime(14)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def redis_commands(port: int) -> dict[str, int]:
    """Calls per Redis command so far (``INFO commandstats``)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def settled(bed: ReplicaTestbed, replicas: list[str]) -> bool:
    """Whether every node has exactly the owner rendezvous hashing gives over ``replicas``."""
    want = assign(bed.nodes, replicas)
    owners = bed.owners()
    return all(owners.get(m) == [r] for m, r in want.items())


class ClosedLoop:
    """Keeps ``inflight`` indications in flight per node; the next leaves when a control arrives."""

    def __init__(self, bed: ReplicaTestbed, n_ues: int, seed: int, inflight: int = 2) -> None:
        self.bed = bed
        self.inflight = inflight
        self.events: queue.Queue[ControlSeen] = queue.Queue()
        bed.control_listeners.append(self.events.put)
        rng = np.random.default_rng(seed)
        self.reports = {m: [synthetic_reports(n_ues, rng) for _ in range(4)] for m in bed.nodes}
        self.period = {m: 0 for m in bed.nodes}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _target(self, meid: str) -> tuple[str, int] | None:
        """(replica, E2 instance id) of the node's live subscription by a running replica."""
        running = set(self.bed.running())
        for _sub, instance, port in self.bed.platform.live_subscriptions(meid):
            replica = self.bed.replica_of_port.get(port)
            if replica in running:
                return replica, instance
        return None

    def _send(self, meid: str, target: tuple[str, int]) -> bool:
        replica, instance = target
        self.period[meid] += 1
        p = self.period[meid]
        pdu = indication_pdu(instance, 1, p, self.reports[meid][p % 4])
        return self.bed.e2t[replica].send(rmr_types.RIC_INDICATION, pdu, sub_id=instance, meid=meid,
                                          retry_s=0.05, check=False)

    def _run(self) -> None:
        pending = {m: 0 for m in self.bed.nodes}
        last_sent = {m: 0.0 for m in self.bed.nodes}
        sent_to: dict[str, tuple[str, int] | None] = {m: None for m in self.bed.nodes}
        while not self.stop.is_set():
            for meid in sorted(self.bed.nodes):
                target = self._target(meid)
                if target is None:
                    continue
                if target != sent_to[meid]:  # a new owner: what the old one had in flight is lost
                    sent_to[meid], pending[meid] = target, 0
                while pending[meid] < self.inflight and self._send(meid, target):
                    pending[meid] += 1
                    last_sent[meid] = time.monotonic()
            try:
                seen = self.events.get(timeout=0.05)
            except queue.Empty:
                seen = None
            while seen is not None:
                if sent_to[seen.meid] is not None and seen.replica == sent_to[seen.meid][0]:
                    pending[seen.meid] = max(0, pending[seen.meid] - 1)
                try:
                    seen = self.events.get_nowait()
                except queue.Empty:
                    seen = None
            # indications lost in a handover get no control: refill a node silent for 20 s
            # (far above a queued indication's wait, so the backlog stays inflight per node)
            for meid, at in last_sent.items():
                if pending[meid] and time.monotonic() - at > 20.0:
                    pending[meid] = 0

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.bed.control_listeners.remove(self.events.put)


def measure_window(bed: ReplicaTestbed, replicas: list[str], window_s: float, n_ues: int) -> dict[str, Any]:
    """Controls, UE-reports/s and CPU per replica over ``window_s`` of closed-loop traffic."""
    pids = {r: bed.replicas[r].proc.pid for r in replicas}  # type: ignore[union-attr]
    harness_pids = {f"e2t-{r}": bed.e2t[r].proc.pid for r in bed.e2t}
    harness_pids["redis"] = bed.redis.proc.pid
    cpu0 = {r: cpu_seconds(p) for r, p in pids.items()}
    hcpu0 = {k: cpu_seconds(p) for k, p in harness_pids.items()}
    self_cpu0 = time.process_time()
    cmds0 = redis_commands(bed.redis.port)
    t0 = time.monotonic()
    time.sleep(window_s)
    t1 = time.monotonic()
    cmds1 = redis_commands(bed.redis.port)
    cpu1 = {r: cpu_seconds(p) for r, p in pids.items()}
    hcpu1 = {k: cpu_seconds(p) for k, p in harness_pids.items()}
    self_cpu1 = time.process_time()
    controls = [c for c in bed.controls_since(t0) if c.at < t1]
    elapsed = t1 - t0
    per_replica = {
        r: {
            "ue_reports_per_s": sum(1 for c in controls if c.replica == r) * n_ues / elapsed,
            "cpu_percent": 100.0 * (cpu1[r] - cpu0[r]) / elapsed,
            "nodes": sum(1 for o in assign(bed.nodes, replicas).values() if o == r),
        }
        for r in replicas
    }
    calls = {k: cmds1.get(k, 0) - cmds0.get(k, 0) for k in cmds1}
    harness_cpu = {k: 100.0 * (hcpu1[k] - hcpu0[k]) / elapsed for k in harness_pids}
    harness_cpu["driver"] = 100.0 * (self_cpu1 - self_cpu0) / elapsed
    return {
        "replicas": len(replicas),
        "window_s": elapsed,
        "ue_reports_per_s": len(controls) * n_ues / elapsed,
        "indications_per_s": len(controls) / elapsed,
        "per_replica": per_replica,
        "harness_cpu_percent": harness_cpu,
        "redis_commands_per_s": sum(calls.values()) / elapsed,
        "redis_commands_per_s_by_command": {k: v / elapsed for k, v in sorted(calls.items()) if v},
    }


def takeover_runs(bed: ReplicaTestbed, replicas: list[str], kills: int, expiry_s: float, seed: int
                  ) -> list[dict[str, Any]]:
    """``kills`` rounds of kill -9 / takeover / restart; per taken-over node its takeover time."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for k in range(kills):
        want = assign(bed.nodes, replicas)
        victim = replicas[k % len(replicas)]
        nodes = sorted(m for m, r in want.items() if r == victim)
        time.sleep(float(rng.uniform(0.0, 1.0)))  # a random phase against the lock renewals
        bed.replicas[victim].kill()
        killed_at = time.monotonic()
        survivors = [r for r in replicas if r != victim]
        after = assign(bed.nodes, survivors)

        def taken() -> dict[str, float] | None:
            firsts: dict[str, float] = {}
            for c in bed.controls_since(killed_at):
                if c.meid in nodes and c.replica == after[c.meid] and c.meid not in firsts:
                    firsts[c.meid] = c.at - killed_at
            return firsts if len(firsts) == len(nodes) else None

        firsts = wait_until(taken, 60, f"takeover of {victim}'s nodes")
        for meid in nodes:
            rows.append({"kill": k, "victim": victim, "meid": meid, "takeover_s": firsts[meid]})
        print(f"  kill {k + 1:2d}: {victim} ({len(nodes)} nodes) taken over in "
              f"{min(firsts.values()):.2f}..{max(firsts.values()):.2f} s", flush=True)
        bed.start_replica(victim)  # same id: it joins once its old membership lock expired
        wait_until(lambda: settled(bed, replicas), 120, "the restarted replica to get its share back")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=12, help="E2 nodes (default 12)")
    parser.add_argument("--n-ues", type=int, default=256, help="UEs per cell, one cell per node (default 256)")
    parser.add_argument("--window", type=float, default=15.0, help="throughput window per replica count, s")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 rounds for the takeover times")
    parser.add_argument("--takeover-ues", type=int, default=8,
                        help="UEs per cell while measuring takeovers, every 100 ms (default 8: well below capacity, "
                        "so no backlog delays the new owner's first indication)")
    parser.add_argument("--lock-expiry", type=float, default=1.5, help="replicas' --lock-expiry, s (default 1.5)")
    parser.add_argument("--inflight", type=int, default=2, help="indications in flight per node (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="keep the logs here (default: a temporary directory)")
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(f"scale_out: cannot run: {reason}")
        return 1

    def on_sigterm(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)  # run the finally below: the replicas and Redis are our children

    signal.signal(signal.SIGTERM, on_sigterm)
    names = ["lt-0", "lt-1", "lt-2"]
    nodes = tuple(f"gnb-{i:02d}" for i in range(args.nodes))
    out: dict[str, Any] = {
        "benchmark": "scale_out",
        "command": (f"benchmarks/scale_out.py --nodes {args.nodes} --n-ues {args.n_ues} --window {args.window:g} "
                    f"--kills {args.kills} --takeover-ues {args.takeover_ues} --lock-expiry {args.lock_expiry:g} "
                    f"--inflight {args.inflight} --seed {args.seed}"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "arch": platform.machine()},
        "setup": ("replicas = unmodified xApp processes in RIC mode (RMR 4.9.4 over TCP loopback, one private "
                  "redis-server, stand-in submgr/E2 manager and one stand-in E2T endpoint per replica); "
                  "the harness shares the machine's cores with the replicas"),
        "lock_expiry_s": args.lock_expiry,
        "load_average_at_start": list(os.getloadavg()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        bed = ReplicaTestbed(workdir, nodes, args.lock_expiry, n_ues=args.n_ues, seed=args.seed,
                             checkpointIntervalS=1.0)
        os.environ["DBAAS_SERVICE_HOST"] = "127.0.0.1"
        os.environ["DBAAS_SERVICE_PORT"] = str(bed.redis.port)
        try:
            for name in names:
                bed.add_replica(name)
            # 1. throughput with 1, 2, 3 replicas (each joins the running set)
            loop = ClosedLoop(bed, args.n_ues, args.seed, args.inflight)
            rows = []
            for count in (1, 2, 3):
                bed.start_replica(names[count - 1])
                wait_until(lambda c=count: settled(bed, names[:c]), 120, f"{count} replicas settled")
                if count == 1:
                    loop.start()
                time.sleep(3.0)  # warm-up: handovers done, models restored
                row = measure_window(bed, names[:count], args.window, args.n_ues)
                rows.append(row)
                per = ", ".join(f"{r} {v['ue_reports_per_s']:.0f}/s at {v['cpu_percent']:.0f}% CPU"
                                for r, v in row["per_replica"].items())
                print(f"{count} replica(s): {row['ue_reports_per_s']:8.0f} UE-reports/s "
                      f"({row['indications_per_s']:.1f} indications/s of {args.n_ues} UEs); {per}; "
                      f"Redis {row['redis_commands_per_s']:.0f} commands/s", flush=True)
            loop.close()
            out["throughput"] = rows

            def drained() -> bool:  # the replicas have answered every queued indication
                return not bed.controls_since(time.monotonic() - 1.0)

            wait_until(drained, 120, "the closed loop's queued indications to be answered", interval_s=0.2)
            # 2. SDL load without traffic: the ownership protocol alone
            ops0 = {r: bed.replicas[r].metric("lighttune_ownership_sdl_ops") for r in names}
            cmds0 = redis_commands(bed.redis.port)
            t0 = time.monotonic()
            time.sleep(10.0)
            elapsed = time.monotonic() - t0
            cmds1 = redis_commands(bed.redis.port)
            ops1 = {r: bed.replicas[r].metric("lighttune_ownership_sdl_ops") for r in names}
            idle_calls = {k: (cmds1.get(k, 0) - cmds0.get(k, 0)) / elapsed for k in cmds1}
            out["sdl_idle"] = {
                "replicas": len(names),
                "nodes": len(nodes),
                "redis_commands_per_s": sum(idle_calls.values()),
                "redis_commands_per_s_by_command": {k: v for k, v in sorted(idle_calls.items()) if v},
                "ownership_sdl_calls_per_s_per_replica": {r: (ops1[r] - ops0[r]) / elapsed for r in names},
            }
            print(f"no traffic: Redis {out['sdl_idle']['redis_commands_per_s']:.1f} commands/s for "
                  f"{len(names)} replicas x {len(nodes)} nodes (ownership SDL calls per replica: "
                  + ", ".join(f"{r} {v:.1f}/s" for r, v in out["sdl_idle"]["ownership_sdl_calls_per_s_per_replica"].items())
                  + ")", flush=True)
            # 3. takeover times, at a load well below capacity
            bed.n_ues = args.takeover_ues
            bed.start_traffic(0.1)
            print(f"takeover: {args.kills} kills, lock expiry {args.lock_expiry:g} s", flush=True)
            rows_k = takeover_runs(bed, names, args.kills, args.lock_expiry, args.seed)
            times = np.array([r["takeover_s"] for r in rows_k])
            out["takeover"] = {
                "kills": args.kills,
                "nodes_taken_over": len(rows_k),
                "report_period_s": 0.1,
                "ues_per_cell": args.takeover_ues,
                "takeover_s": {
                    "min": float(times.min()), "p50": float(np.percentile(times, 50)),
                    "p90": float(np.percentile(times, 90)), "p99": float(np.percentile(times, 99)),
                    "max": float(times.max()), "mean": float(times.mean()),
                },
                "definition": "kill -9 of the owner -> first RIC_CONTROL_REQ of the node from the new owner at E2T",
                "runs": rows_k,
            }
            s = out["takeover"]["takeover_s"]
            print(f"takeover over {len(rows_k)} nodes: min {s['min']:.2f} p50 {s['p50']:.2f} p90 {s['p90']:.2f} "
                  f"max {s['max']:.2f} s (lock expiry {args.lock_expiry:g} s)", flush=True)
            out["indication_send_failures"] = bed.indication_failures
        finally:
            bed.close()
    save_results(out, RESULTS_DIR / "scale_out.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
