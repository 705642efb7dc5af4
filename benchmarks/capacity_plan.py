"""Capacity plan: xApp replicas and Redis (SDL) load for a RIC-scale deployment, from saved measurements.

Run from the repository root (reads only ``benchmarks/results/*.json``, measures nothing)::

    python benchmarks/capacity_plan.py [--cells 1000] [--ues-per-cell 100] [--period-ms 80]
        [--cells-per-node 1] [--intervals-s 1 10 60] [--max-utilisation 0.6] [--spare-replicas 1]
        [--lock-expiry-s 5] [--renewals-per-expiry 4] [--ownership-tick-s 0.25] [--kpm-results FILE]

It prints the Markdown tables of ``docs/capacity.md``. Inputs:

- per-core processing cost of one UE report, LT-LINKADAPT path: ``e2_loop_offline_v2.json``
  (``benchmarks/e2_loop.py`` on the current code and packaged offline-v2 model; one cell pinned
  to one CPU; E2AP decode -> report decode -> features/predict/RI-CQI-Tune -> control encode ->
  LightTune learning; best of 3 runs; ``field`` workload);
- the same for E2SM-KPM: ``e2_loop.json`` measured the KPM loop with the earlier offline-v1
  model only, so the KPM cost with the current model is **derived**: KPM(v1) measured + the cost
  per report the model change added on the LT-LINKADAPT path (``sm`` v2 - ``sm`` v1, same cell
  size and workload; the learning and decision stages the change touches are shared by both
  paths); ``--kpm-results FILE`` uses a KPM run of ``e2_loop.py`` on the current model instead;
- SDL costs: ``sdl_checkpoint.json`` (``benchmarks/sdl_checkpoint.py``): per checkpoint, load and
  lock refresh.

Ownership (``lighttune_xapp/ownership.py``, ``docs/replicas.md``): one SDL lock per E2 node
(``node/<MEID>``) and one membership lock per live replica (``member/<replica id>``), both with
the same expiry and renewed every expiry / ``renewals_per_expiry`` (one request each); every
ownership tick (min(renewal interval, 0.25 s)) each replica lists the members with one
``find_keys("member/*")`` (a Redis ``KEYS``).

The per-report cost is taken at the largest measured cell size not above ``--ues-per-cell``
(64 UEs for 100: per-indication overheads make smaller cells dearer per report); a second
figure interpolates linearly in cell size between the measured sizes (sensitivity only).

Sizing rule (:func:`replicas_needed`): the work of all replicas in core-seconds per second
(processing + checkpoint saves + node lock renewals, each from its measured cost) divided by the
highest utilisation a replica may run at less the replica's own membership renewals, rounded up,
plus spare replicas so that losing one replica (kill -9) leaves enough capacity. A replica is one Python process, one core (the
per-report work is single-threaded).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""``benchmarks/results/``."""

SM_RESULTS = "e2_loop_offline_v2.json"
"""LT-LINKADAPT loop with the current code and model."""
KPM_RESULTS = "e2_loop.json"
"""The run that measured both paths (KPM and LT-LINKADAPT) with the earlier offline-v1 model."""
SDL_RESULTS = "sdl_checkpoint.json"
"""``benchmarks/sdl_checkpoint.py``."""

DECODE_STAGES: tuple[str, ...] = ("e2ap_decode", "report_decode")
"""Loop stages that depend on the transport (``stage_us_per_ue`` keys of ``e2_loop.py``)."""


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Workload:
    """What the deployment must serve.

    Attributes:
        cells: cells (one LightTune model each).
        ues_per_cell: UEs reporting per cell.
        period_s: reporting period of every UE, s (CSI-RS period, e.g. 0.080).
        cells_per_node: cells per E2 node (one ownership lock ``node/<MEID>`` per node).
    """

    cells: int
    ues_per_cell: int
    period_s: float
    cells_per_node: int = 1

    def __post_init__(self) -> None:
        if self.cells < 1 or self.ues_per_cell < 1 or self.cells_per_node < 1:
            raise ValueError("cells, ues_per_cell and cells_per_node must be >= 1")
        if not self.period_s > 0:
            raise ValueError(f"period_s must be > 0, got {self.period_s!r}")

    @property
    def reports_per_s(self) -> float:
        """UE reports per second over all cells (1/s)."""
        return self.cells * self.ues_per_cell / self.period_s

    @property
    def nodes(self) -> int:
        """E2 nodes (= ownership locks)."""
        return math.ceil(self.cells / self.cells_per_node)


@dataclass(frozen=True)
class PathCost:
    """Per-core cost of one transport's UE reports, from the loop benchmark.

    Attributes:
        name: transport (``LT-LINKADAPT`` or ``E2SM-KPM``).
        us_per_report: CPU time per UE report on one core, all stages, µs.
        measured_cell_ues: cell size (UEs) of the measurement used.
        decision_p99_ms: decision latency p99 of that cell (indication in -> control ready), ms.
        updates_per_1000_reports: LightTune fine-tuning updates per 1,000 reports (field workload).
        wire_bytes_per_report: E2AP indication octets per UE report, B.
        source: how the figure was obtained (files and keys).
        us_per_report_linear: per-report cost interpolated linearly in cell size between the
            measured sizes at ``ues_per_cell`` (µs), or None if only one size was measured.
    """

    name: str
    us_per_report: float
    measured_cell_ues: int
    decision_p99_ms: float
    updates_per_1000_reports: float
    wire_bytes_per_report: float
    source: str
    us_per_report_linear: float | None = None

    @property
    def reports_per_s_per_core(self) -> float:
        """UE reports one core processes per second (1/s)."""
        return 1e6 / self.us_per_report


@dataclass(frozen=True)
class SdlCost:
    """Measured SDL (Redis) cost per operation (``sdl_checkpoint.json``).

    Attributes:
        checkpoint_wall_ms: one model save on the xApp's serving thread (snapshot, record,
            SDL set, round trip), ms.
        checkpoint_requests: Redis requests per save (count).
        checkpoint_bytes_in: bytes into Redis per save, B.
        checkpoint_redis_cpu_ms: Redis CPU per save, ms.
        memory_bytes_per_cell: Redis memory per stored model, B.
        load_wall_ms: one model load on the xApp (SDL get, record check, model rebuild), ms.
        load_bytes_out: bytes out of Redis per load, B.
        refresh_wall_ms: one lock renewal on the xApp, ms.
        refresh_requests: Redis requests per renewal (count).
        refresh_bytes_in: bytes into Redis per renewal, B.
        refresh_redis_cpu_ms: Redis CPU per renewal, ms.
        measured_cells: the cells count of the checkpoint row used.
    """

    checkpoint_wall_ms: float
    checkpoint_requests: float
    checkpoint_bytes_in: float
    checkpoint_redis_cpu_ms: float
    memory_bytes_per_cell: float
    load_wall_ms: float
    load_bytes_out: float
    refresh_wall_ms: float
    refresh_requests: float
    refresh_bytes_in: float
    refresh_redis_cpu_ms: float
    measured_cells: int


@dataclass(frozen=True)
class SizingRules:
    """How much headroom a plan keeps, and how the ownership locks are renewed.

    The defaults are those of ``lighttune_xapp/ownership.py``: expiry 5 s, renewal every
    expiry / 4, protocol tick min(renewal interval, 0.25 s).

    Attributes:
        max_utilisation: highest share of its core a replica may be busy (0 < u <= 1).
        spare_replicas: replicas added on top, so the plan survives that many replica losses.
        lock_expiry_s: expiry of the node and membership locks, s.
        renewals_per_expiry: renewals per expiry period (4 = renew every 1/4 of the expiry).
        max_tick_s: longest ownership tick, s; each tick lists the members once.
    """

    max_utilisation: float = 0.6
    spare_replicas: int = 1
    lock_expiry_s: float = 5.0
    renewals_per_expiry: float = 4.0
    max_tick_s: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.max_utilisation <= 1:
            raise ValueError(f"max_utilisation must be in (0, 1], got {self.max_utilisation!r}")
        if self.spare_replicas < 0:
            raise ValueError("spare_replicas must be >= 0")
        if not (self.lock_expiry_s > 0 and self.renewals_per_expiry > 0 and self.max_tick_s > 0):
            raise ValueError("lock_expiry_s, renewals_per_expiry and max_tick_s must be > 0")

    @property
    def renewals_per_s_per_lock(self) -> float:
        """Renewals per second of one lock, node or membership (1/s)."""
        return self.renewals_per_expiry / self.lock_expiry_s

    @property
    def tick_s(self) -> float:
        """Ownership tick: min(renewal interval, ``max_tick_s``), s."""
        return min(self.lock_expiry_s / self.renewals_per_expiry, self.max_tick_s)

    @property
    def listings_per_s_per_replica(self) -> float:
        """Member listings (``find_keys("member/*")``) per second of one replica: one per tick (1/s)."""
        return 1.0 / self.tick_s


# --------------------------------------------------------------------------- reading results


def _cell_sizes(loop: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """The ``<prefix>_<n>_ues`` entries of an ``e2_loop`` ``loop`` dict, by ``n``."""
    out: dict[int, dict[str, Any]] = {}
    for key, value in loop.items():
        if key.startswith(prefix) and key.endswith("_ues") and isinstance(value, dict):
            size = key[len(prefix):-len("_ues")]
            if size.isdigit():
                out[int(size)] = value
    return out


def pick_cell_size(sizes: list[int], ues_per_cell: int) -> int:
    """The largest measured cell size not above ``ues_per_cell`` (the smallest if none is).

    Raises:
        ValueError: no sizes.
    """
    if not sizes:
        raise ValueError("no measured cell sizes")
    below = [s for s in sizes if s <= ues_per_cell]
    return max(below) if below else min(sizes)


def interpolate_us_per_report(points: dict[int, float], ues_per_cell: int) -> float | None:
    """Per-report cost at ``ues_per_cell`` with a cell-period time linear in cell size.

    ``points`` maps measured cell size n (UEs) -> µs per report c(n); the cell-period time
    T(n) = n c(n) is interpolated linearly between the two measured sizes around
    ``ues_per_cell`` (extrapolated from the nearest two outside them) and divided by
    ``ues_per_cell``. None with fewer than two sizes.
    """
    sizes = sorted(points)
    if len(sizes) < 2:
        return None
    lo = max([s for s in sizes[:-1] if s <= ues_per_cell], default=sizes[0])
    hi = sizes[sizes.index(lo) + 1]
    t_lo, t_hi = lo * points[lo], hi * points[hi]
    t = t_lo + (t_hi - t_lo) * (ues_per_cell - lo) / (hi - lo)
    return t / ues_per_cell


def _us_per_report(entry: dict[str, Any]) -> float:
    return 1e6 / float(entry["ue_reports_per_s"])


def _decode_us(entry: dict[str, Any]) -> float:
    return sum(float(entry["stage_us_per_ue"][s]) for s in DECODE_STAGES)


def _wire_bytes_per_report(entry: dict[str, Any]) -> float:
    return float(entry["indication_octets_mean"]) * float(entry["indications_per_period"]) / float(entry["ues"])


def measured_path_cost(loop: dict[str, Any], path: str, ues_per_cell: int, results_file: str) -> PathCost:
    """A transport's cost per report as measured in an ``e2_loop`` ``loop`` dict.

    Args:
        loop: the ``loop`` dict of an ``e2_loop.py`` result (``<path>_field_<n>_ues`` entries).
        path: ``"sm"`` (LT-LINKADAPT) or ``"kpm"`` (E2SM-KPM).
        ues_per_cell: planned cell size, UEs.
        results_file: the file name, for the ``source`` text.

    Raises:
        ValueError: unknown path, or no ``<path>_field_<n>_ues`` entry.
    """
    names = {"sm": "LT-LINKADAPT", "kpm": "E2SM-KPM"}
    if path not in names:
        raise ValueError(f"path must be one of {sorted(names)}, got {path!r}")
    sizes = _cell_sizes(loop, f"{path}_field_")
    n = pick_cell_size(list(sizes), ues_per_cell)
    e = sizes[n]
    return PathCost(
        name=names[path],
        us_per_report=_us_per_report(e),
        measured_cell_ues=n,
        decision_p99_ms=float(e["decision_latency_p99_ms"]),
        updates_per_1000_reports=float(e["finetune_updates_per_1000_reports"]),
        wire_bytes_per_report=_wire_bytes_per_report(e),
        source=f"{results_file} loop.{path}_field_{n}_ues (measured)",
        us_per_report_linear=interpolate_us_per_report({k: _us_per_report(v) for k, v in sizes.items()}, ues_per_cell),
    )


def sm_path_cost(sm_loop: dict[str, Any], ues_per_cell: int) -> PathCost:
    """LT-LINKADAPT cost per report from an ``e2_loop`` ``loop`` dict (``sm_field_<n>_ues``)."""
    return measured_path_cost(sm_loop, "sm", ues_per_cell, SM_RESULTS)


def kpm_path_cost(sm_loop_now: dict[str, Any], loop_before: dict[str, Any], ues_per_cell: int) -> PathCost:
    """E2SM-KPM cost per report with the current model, derived from two measured runs.

    ``loop_before`` (one run, earlier model) has ``kpm_field_<n>_ues`` and ``sm_field_<n>_ues``;
    ``sm_loop_now`` has ``sm_field_<n>_ues`` with the current model. Per cell size n:
    c_kpm_now(n) = c_kpm_before(n) + (c_sm_now(n) - c_sm_before(n)), in µs per report; the
    added term is floored at 0 (a faster model is not credited to KPM). Latency and update
    rate are those measured in the KPM run (earlier model); the update rate of the current
    model on the LT-LINKADAPT path is the larger of the two when it is larger.

    Raises:
        ValueError: no cell size measured in all three series.
    """
    kpm = _cell_sizes(loop_before, "kpm_field_")
    sm_before = _cell_sizes(loop_before, "sm_field_")
    sm_now = _cell_sizes(sm_loop_now, "sm_field_")
    common = sorted(set(kpm) & set(sm_before) & set(sm_now))
    if not common:
        raise ValueError("no cell size measured on the KPM path and on both LT-LINKADAPT runs")
    derived = {n: _us_per_report(kpm[n]) + max(0.0, _us_per_report(sm_now[n]) - _us_per_report(sm_before[n]))
               for n in common}
    n = pick_cell_size(common, ues_per_cell)
    e = kpm[n]
    return PathCost(
        name="E2SM-KPM",
        us_per_report=derived[n],
        measured_cell_ues=n,
        decision_p99_ms=float(e["decision_latency_p99_ms"]),
        updates_per_1000_reports=max(float(e["finetune_updates_per_1000_reports"]),
                                     float(sm_now[n]["finetune_updates_per_1000_reports"])),
        wire_bytes_per_report=_wire_bytes_per_report(e),
        source=(f"derived: {KPM_RESULTS} loop.kpm_field_{n}_ues + ({SM_RESULTS} loop.sm_field_{n}_ues"
                f" - {KPM_RESULTS} loop.sm_field_{n}_ues)"),
        us_per_report_linear=interpolate_us_per_report(derived, ues_per_cell),
    )


def sdl_cost(sdl: dict[str, Any], cells: int) -> SdlCost:
    """SDL costs from ``sdl_checkpoint.json``: the checkpoint row of the largest measured
    cells count not above ``cells`` (the smallest if none is), and the lock refresh."""
    rows = {int(r["cells"]): r for r in sdl["per_cells"]}
    n = pick_cell_size(list(rows), cells)
    ck, ld = rows[n]["checkpoint"], rows[n]["load"]
    rf = sdl["locks"]["refresh"]
    return SdlCost(
        checkpoint_wall_ms=float(ck["wall_ms"]),
        checkpoint_requests=float(ck["redis_requests"]),
        checkpoint_bytes_in=float(ck["redis_net_in_bytes"]),
        checkpoint_redis_cpu_ms=float(ck["redis_cpu_ms"]),
        memory_bytes_per_cell=float(ck["redis_memory_bytes_per_cell"]),
        load_wall_ms=float(ld["wall_ms"]),
        load_bytes_out=float(ld["redis_net_out_bytes"]),
        refresh_wall_ms=float(rf["wall_ms"]),
        refresh_requests=float(rf["redis_requests"]),
        refresh_bytes_in=float(rf["redis_net_in_bytes"]),
        refresh_redis_cpu_ms=float(rf["redis_cpu_ms"]),
        measured_cells=n,
    )


# --------------------------------------------------------------------------- the arithmetic


def replicas_needed(work_cores: float, rules: SizingRules, per_replica_cores: float = 0.0) -> int:
    """ceil(work_cores / (max_utilisation - per_replica_cores)) + spare_replicas (at least 1 + spare).

    Args:
        work_cores: work shared out among the replicas, core-seconds per second (cores).
        per_replica_cores: work every replica does whatever its share (its membership lock), cores.

    Raises:
        ValueError: negative work, or a per-replica cost that leaves no room under the limit.
    """
    if work_cores < 0 or per_replica_cores < 0:
        raise ValueError("work_cores and per_replica_cores must be >= 0")
    room = rules.max_utilisation - per_replica_cores
    if not room > 0:
        raise ValueError(f"per_replica_cores {per_replica_cores!r} leaves no room under the utilisation limit")
    return max(1, math.ceil(work_cores / room - 1e-9)) + rules.spare_replicas


@dataclass(frozen=True)
class PlanRow:
    """One transport at one checkpoint interval. Rates per second over the whole deployment.

    Attributes:
        transport: transport name.
        interval_s: checkpoint interval, s.
        reports_per_s: UE reports to process (1/s).
        processing_cores: report processing (cores).
        checkpoint_cores: model saves on the xApps' serving threads (cores).
        lock_cores: node and membership lock renewals on the xApps (cores).
        replicas: replicas by the sizing rule.
        checkpoints_per_s: model saves (1/s): every cell once per interval.
        renewals_per_s: node lock renewals (1/s): nodes x renewals per second per lock.
        member_renewals_per_s: membership lock renewals (1/s): replicas x renewals per second per lock.
        member_listings_per_s: ``find_keys("member/*")`` calls (1/s): replicas x ticks per second.
        redis_requests_per_s: Redis requests (1/s): saves, both kinds of renewal, listings.
        redis_mbyte_per_s_in: bytes into Redis, MB/s (10^6 B); listings not included (not measured).
        redis_cpu_cores: Redis CPU (cores); listings not included (not measured).
        redis_memory_mbyte: models held in Redis, MB.
        checkpoint_round_ms: one replica's save round (its cells, on its serving thread), ms.
        updates_at_risk_per_cell: fine-tuning updates a cell can lose when its replica dies
            (updates per second per cell x interval).
        takeover_cells: cells of one lost replica (cells / replicas).
        takeover_mbyte: bytes read from Redis to load them, MB.
        takeover_load_s: loading them all on one survivor, s.
    """

    transport: str
    interval_s: float
    reports_per_s: float
    processing_cores: float
    checkpoint_cores: float
    lock_cores: float
    replicas: int
    checkpoints_per_s: float
    renewals_per_s: float
    member_renewals_per_s: float
    member_listings_per_s: float
    redis_requests_per_s: float
    redis_mbyte_per_s_in: float
    redis_cpu_cores: float
    redis_memory_mbyte: float
    checkpoint_round_ms: float
    updates_at_risk_per_cell: float
    takeover_cells: float
    takeover_mbyte: float
    takeover_load_s: float

    @property
    def total_cores(self) -> float:
        """All work on the xApp replicas (cores)."""
        return self.processing_cores + self.checkpoint_cores + self.lock_cores


def plan_row(work: Workload, path: PathCost, sdl: SdlCost, rules: SizingRules, interval_s: float,
             us_per_report: float | None = None) -> PlanRow:
    """Size one transport at one checkpoint interval (pure arithmetic; units in :class:`PlanRow`).

    Assumes every cell has a fine-tuning update in every interval, so every cell is saved once
    per interval (an upper bound: the Checkpointer saves only cells marked dirty).

    Args:
        us_per_report: per-report cost to use instead of ``path.us_per_report`` (µs).
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
    cost_us = path.us_per_report if us_per_report is None else us_per_report
    reports = work.reports_per_s
    processing = reports * cost_us * 1e-6
    checkpoints = work.cells / interval_s
    renewals = work.nodes * rules.renewals_per_s_per_lock
    checkpoint_cores = checkpoints * sdl.checkpoint_wall_ms * 1e-3
    node_lock_cores = renewals * sdl.refresh_wall_ms * 1e-3
    member_cores_per_replica = rules.renewals_per_s_per_lock * sdl.refresh_wall_ms * 1e-3
    replicas = replicas_needed(processing + checkpoint_cores + node_lock_cores, rules, member_cores_per_replica)
    member_renewals = replicas * rules.renewals_per_s_per_lock
    listings = replicas * rules.listings_per_s_per_replica
    all_renewals = renewals + member_renewals
    cells_per_replica = work.cells / replicas
    updates_per_s_per_cell = work.ues_per_cell / work.period_s * path.updates_per_1000_reports / 1000.0
    return PlanRow(
        transport=path.name,
        interval_s=interval_s,
        reports_per_s=reports,
        processing_cores=processing,
        checkpoint_cores=checkpoint_cores,
        lock_cores=node_lock_cores + replicas * member_cores_per_replica,
        replicas=replicas,
        checkpoints_per_s=checkpoints,
        renewals_per_s=renewals,
        member_renewals_per_s=member_renewals,
        member_listings_per_s=listings,
        redis_requests_per_s=checkpoints * sdl.checkpoint_requests + all_renewals * sdl.refresh_requests + listings,
        redis_mbyte_per_s_in=(checkpoints * sdl.checkpoint_bytes_in + all_renewals * sdl.refresh_bytes_in) / 1e6,
        redis_cpu_cores=(checkpoints * sdl.checkpoint_redis_cpu_ms + all_renewals * sdl.refresh_redis_cpu_ms) * 1e-3,
        redis_memory_mbyte=work.cells * sdl.memory_bytes_per_cell / 1e6,
        checkpoint_round_ms=cells_per_replica * sdl.checkpoint_wall_ms,
        updates_at_risk_per_cell=updates_per_s_per_cell * interval_s,
        takeover_cells=cells_per_replica,
        takeover_mbyte=cells_per_replica * sdl.load_bytes_out / 1e6,
        takeover_load_s=cells_per_replica * sdl.load_wall_ms * 1e-3,
    )


# --------------------------------------------------------------------------- output


def _fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def render(work: Workload, paths: list[PathCost], sdl: SdlCost, rules: SizingRules,
           intervals_s: list[float]) -> str:
    """The Markdown of the plan: inputs, one table per transport, and the sensitivity line."""
    lines = [
        f"Workload: {work.cells:,} cells x {work.ues_per_cell} UEs, every {work.period_s * 1e3:g} ms = "
        f"{_fmt(work.reports_per_s)} UE-reports/s; {work.nodes:,} E2 nodes ({work.cells_per_node} cell(s) per node). "
        f"Rule: replicas = ceil(cores / {rules.max_utilisation:g}) + {rules.spare_replicas}; node and membership "
        f"locks: expiry {rules.lock_expiry_s:g} s, renewed {rules.renewals_per_expiry:g}x per expiry "
        f"({rules.renewals_per_s_per_lock:g}/s per lock); one member listing per replica every "
        f"{rules.tick_s:g} s ({rules.listings_per_s_per_replica:g}/s per replica).",
        "",
        "| transport | cost per report (µs, one core) | UE-reports/s per core | cell size measured | "
        "decision p99 (ms) | fine-tuning updates / 1,000 reports | E2 bytes / report | source |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in paths:
        lines.append(f"| {p.name} | {p.us_per_report:.1f} | {_fmt(p.reports_per_s_per_core)} | {p.measured_cell_ues} | "
                     f"{p.decision_p99_ms:.1f} | {p.updates_per_1000_reports:.1f} | {p.wire_bytes_per_report:.0f} | "
                     f"{p.source} |")
    lines += [
        "",
        f"SDL per operation ({SDL_RESULTS}, {sdl.measured_cells:,}-cell row): checkpoint {sdl.checkpoint_wall_ms:.3f} ms "
        f"on the xApp, {sdl.checkpoint_requests:.2f} request, {_fmt(sdl.checkpoint_bytes_in)} B in, "
        f"{sdl.checkpoint_redis_cpu_ms * 1e3:.1f} µs Redis CPU; load {sdl.load_wall_ms:.3f} ms, "
        f"{_fmt(sdl.load_bytes_out)} B out; lock refresh {sdl.refresh_wall_ms:.3f} ms, "
        f"{sdl.refresh_requests:.2f} request, {sdl.refresh_redis_cpu_ms * 1e3:.1f} µs Redis CPU; "
        f"Redis memory {_fmt(sdl.memory_bytes_per_cell)} B per model.",
    ]
    for p in paths:
        rows = [plan_row(work, p, sdl, rules, t) for t in intervals_s]
        lines += [
            "",
            f"**{p.name}** — {_fmt(rows[0].reports_per_s)} UE-reports/s = {rows[0].processing_cores:.1f} cores of "
            f"processing at {_fmt(p.reports_per_s_per_core)} UE-reports/s per core",
            "",
            "| checkpoint interval (s) | xApp cores (process + ckpt + locks) | **replicas** | checkpoints/s | "
            "lock renewals/s (node + member) | member listings/s | Redis requests/s | Redis in (MB/s) | "
            "Redis CPU (cores) | Redis memory (MB) | save round per replica (ms) | "
            "updates lost per cell on a kill (≤) | takeover: cells, MB, s on one survivor |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r.interval_s:g} | {r.processing_cores:.1f} + {r.checkpoint_cores:.3f} + {r.lock_cores:.3f} | "
                f"**{r.replicas}** | {_fmt(r.checkpoints_per_s)} | {_fmt(r.renewals_per_s)} + "
                f"{_fmt(r.member_renewals_per_s, 1)} | {_fmt(r.member_listings_per_s)} | {_fmt(r.redis_requests_per_s)} | {r.redis_mbyte_per_s_in:.1f} | {r.redis_cpu_cores:.3f} | "
                f"{r.redis_memory_mbyte:.0f} | {r.checkpoint_round_ms:.1f} | {_fmt(r.updates_at_risk_per_cell)} | "
                f"{r.takeover_cells:.1f}, {r.takeover_mbyte:.2f}, {r.takeover_load_s:.3f} |")
        if p.us_per_report_linear is not None:
            alt = plan_row(work, p, sdl, rules, intervals_s[0], p.us_per_report_linear)
            lines += ["", f"Sensitivity: with the per-report cost interpolated linearly in cell size "
                          f"({p.us_per_report_linear:.1f} µs at {work.ues_per_cell} UEs), {p.name} needs "
                          f"{alt.replicas} replicas ({alt.total_cores:.1f} cores of work)."]
    return "\n".join(lines)


def load_inputs(results_dir: Path, work: Workload, kpm_results: str | None = None) -> tuple[list[PathCost], SdlCost]:
    """Read the saved results and return (the two transports' costs, the SDL costs).

    Args:
        results_dir: directory of the benchmark JSON files.
        work: the workload (its cell size and cells count pick the rows used).
        kpm_results: an ``e2_loop.py`` result file (in ``results_dir``) whose KPM cases were
            measured with the current model; None derives the KPM cost (:func:`kpm_path_cost`).
    """
    sm_now = json.loads((results_dir / SM_RESULTS).read_text())["loop"]
    sdl = json.loads((results_dir / SDL_RESULTS).read_text())
    if kpm_results is None:
        before = json.loads((results_dir / KPM_RESULTS).read_text())["loop"]
        kpm = kpm_path_cost(sm_now, before, work.ues_per_cell)
    else:
        kpm_loop = json.loads((results_dir / kpm_results).read_text())["loop"]
        kpm = measured_path_cost(kpm_loop, "kpm", work.ues_per_cell, kpm_results)
    return [sm_path_cost(sm_now, work.ues_per_cell), kpm], sdl_cost(sdl, work.cells)


def main(argv: list[str] | None = None) -> str:
    """Print (and return) the plan for the workload and rules on the command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--ues-per-cell", type=int, default=100)
    ap.add_argument("--period-ms", type=float, default=80.0, help="reporting period of every UE, ms")
    ap.add_argument("--cells-per-node", type=int, default=1, help="cells per E2 node (one lock per node)")
    ap.add_argument("--intervals-s", type=float, nargs="+", default=[1.0, 10.0, 60.0],
                    help="checkpoint intervals to tabulate, s")
    ap.add_argument("--max-utilisation", type=float, default=SizingRules.max_utilisation)
    ap.add_argument("--spare-replicas", type=int, default=SizingRules.spare_replicas)
    ap.add_argument("--lock-expiry-s", type=float, default=SizingRules.lock_expiry_s)
    ap.add_argument("--renewals-per-expiry", type=float, default=SizingRules.renewals_per_expiry)
    ap.add_argument("--ownership-tick-s", type=float, default=SizingRules.max_tick_s,
                    help="longest ownership tick, s (one member listing per replica per tick)")
    ap.add_argument("--results-dir", default=str(RESULTS_DIR), help="directory of the saved benchmark JSON")
    ap.add_argument("--kpm-results", default=None,
                    help="e2_loop.py result file (in --results-dir) with KPM cases measured on the current model; "
                         "default: derive the KPM cost from e2_loop.json and the LT-LINKADAPT runs")
    args = ap.parse_args(argv)
    work = Workload(args.cells, args.ues_per_cell, args.period_ms / 1e3, args.cells_per_node)
    rules = SizingRules(args.max_utilisation, args.spare_replicas, args.lock_expiry_s, args.renewals_per_expiry,
                        args.ownership_tick_s)
    paths, sdl = load_inputs(Path(args.results_dir), work, args.kpm_results)
    text = render(work, paths, sdl, rules, args.intervals_s)
    print(text)
    return text


if __name__ == "__main__":
    main()
