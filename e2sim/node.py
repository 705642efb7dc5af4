"""``e2sim run``: the simulated gNB-DU as a live E2 node in front of a RIC (or the local xApp).

The node connects to the RIC's E2 address (SCTP, or TCP with length-prefixed frames: see
:mod:`lighttune_e2.transport`), reconnecting with backoff, and offers one RAN
function of the LT-LINKADAPT service model that covers all its cells. Per cell it runs a
:class:`~e2sim.du.DU` fed by a live :class:`~e2sim.channel.LinkChannel` or a recorded trace.

Per CSI-RS period and subscribed cell it sends **one RIC Indication holding every UE of the
cell** (header: cell id, period index, simulated time in ms). A RIC Control Request for that
cell and period is decoded and applied with :meth:`DU.apply_control` for the next period;
it is answered with RIC Control Acknowledge carrying the per-UE outcome (accepted / reason),
or RIC Control Failure when the whole request is unusable (undecodable, unknown cell, or
stale: its period is over). An empty decision list is a valid control: the DU keeps its own
choice (that is how the xApp answers for a cell in mode ``off``).

Clocks
------
* ``lockstep`` (default): after sending a period's indications the simulation waits until
  every indicated cell got its control, or ``--control-timeout`` passes (counted per cell as
  a control timeout; the DU then keeps its own choice). Deterministic: the same seed gives the
  same numbers on every run, as fast as the two processes allow. The run starts when the
  subscription is up; if the link is lost it waits up to ``--link-wait`` s for a new one,
  then stops early (results are still written, exit status 3).
* ``realtime``: slots follow the wall clock (slot duration of the scenario, 0.5 ms at
  30 kHz); controls are applied when they arrive. A control applied after slots of its period
  already ran is *late* (counted, with the slots it missed); one for a period that has ended
  is *stale* and refused. When the CPU cannot keep pace, the slots that started behind their
  wall-clock time are counted.

``--compare [SCHEMES]``: one cell per scheme (default ``olla,cqi,ri_cqi``: cells 1, 2, 3) that
share the channel realisation and the HARQ random numbers (common random numbers, as in
:mod:`e2sim.experiment`), so running the xApp with cell modes off / cqi / ri_cqi compares
OLLA, CQI-Tune and RI-CQI-Tune on exactly the same radio conditions. The results then give
each scheme's throughput gain over the ``olla`` cell with its 95 % interval over UEs
(:func:`e2sim.experiment.paired_gain`).

At the end a table of throughput and BLER per cell goes to stdout and ``--results FILE.json``
gets the full figures (per-UE throughput included).

Standard E2SM-KPM (``--kpm``, ``--kpm-only``)
----------------------------------------------
``--kpm`` offers, beside LT-LINKADAPT, one E2SM-KPM RAN function per cell
(:class:`e2sim.kpm_function.KpmRanFunction`, ids 2, 3, ...; ``ranFunction-Instance`` = the
cell's NR cell identity, so KPM and LT-LINKADAPT reports of a cell carry the same cell
number); ``--kpm-only`` offers KPM alone, as a third-party gNB would (the xApp then runs in
advisory mode); ``--kpm-oid v3|v2`` picks the advertised OID. A KPM subscription is admitted
or refused (RIC Subscription Failure with the E2AP cause) by the function; per period and
KPM subscription the node sends every format-3 indication of the cell (a large cell is split
into several), every ``reporting_period_ms / CSI period`` periods.

Who waits for controls in lock-step: a cell reported through LT-LINKADAPT (a subscription
with a report action) waits for one control per indication, as above. A cell reported
through KPM waits for one control per KPM indication only while an LT-LINKADAPT *control
subscription* is active (an LT-LINKADAPT subscription whose actions are all of type
``policy``: "I control, send no reports"); without one (advisory) the simulation never
waits. A control answering a KPM report names the report's period by its collection start
time: header ``period_index`` = ``colletStartTime`` in ms since 1970.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from e2sim.channel import LinkChannel, Scenario, SlotSINR
from e2sim.channel.scenario import CORRELATION_LEVELS, CSI_PERIODS_MS, SNR_RANGES_DB
from e2sim.du import DU, DuRandomness, PeriodOutcome
from e2sim.experiment import SCHEME_TITLES, SCHEMES, ChannelSource, paired_gain
from e2sim.kpm_function import (
    KPM_RAN_FUNCTION_ID,
    KpmPeriod,
    KpmRanFunction,
    KpmSubscription,
)
from e2sim.traces import TraceReplay
from lighttune_core.linkadapt.presets import PRESET_NAMES
from lighttune_e2 import e2ap as E
from lighttune_e2.endpoints import (
    ControlReceived,
    E2NodeEndpoint,
    Event,
    ProtocolErrorEvent,
    SetupCompleted,
    SetupFailed,
    SubscriptionEnded,
    SubscriptionStarted,
)
from lighttune_e2.errors import E2DecodeError, E2Error
from lighttune_e2.kpm.codec import KPM_V2_OID, KPM_V3_OID
from lighttune_e2.kpm.model import CellGlobalId
from lighttune_e2.service_model import (
    DEFAULT_RAN_FUNCTION_ID,
    REJECT_NONE,
    REJECT_RI_OUT_OF_RANGE,
    REJECT_UNKNOWN_CELL,
    REJECT_UNKNOWN_UE,
    SM_OID,
    RanFunctionDefinition,
    control_reject_reasons,
    decode_action_definition,
    decode_control,
    decode_event_trigger,
    encode_control_outcome,
    encode_indication,
    encode_ran_function_definition,
)
from lighttune_e2.transport import E2_SCTP_PORT, E2Client, E2Connection

log = logging.getLogger(__name__)

EXIT_LINK_LOST = 3
"""Exit status of a lock-step run that stopped early because no subscription came back."""
DEFAULT_PLMN = b"\x00\xf1\x10"
KPM_MODES: tuple[str, ...] = ("off", "beside", "only")
"""E2SM-KPM offer of the node: none, beside LT-LINKADAPT, or KPM alone."""
KPM_OIDS: dict[str, str] = {"v3": KPM_V3_OID, "v2": KPM_V2_OID}
"""``--kpm-oid`` choices."""


def parse_ric_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, port 36421) → (host, port); ValueError naming the value."""
    host, sep, port_s = text.rpartition(":")
    if not sep:
        return text, E2_SCTP_PORT
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"--ric {text!r}: port {port_s!r} is not an integer") from None
    if not 1 <= port <= 65535 or not host:
        raise ValueError(f"--ric {text!r}: expected HOST:PORT with a port in 1 .. 65535")
    return host, port


# --------------------------------------------------------------------------- cells


@dataclass
class SimCell:
    """One simulated cell and its counters.

    Attributes:
        cell_id: NR cell identity carried in indication and control headers.
        label: the scheme name in ``--compare`` runs (``olla``, ``cqi``, ``ri_cqi``), else ``""``.
        du: the cell's DU.
        source: its own channel source (None in ``--compare``, where the source is shared).
        bits: int64 [U] ACKed bits per UE so far.
    """

    cell_id: int
    label: str
    du: DU
    source: ChannelSource | None
    bits: np.ndarray
    n_ack: int = 0
    n_nack: int = 0
    periods: int = 0
    indications_sent: int = 0
    controls_received: int = 0
    controls_applied: int = 0
    controls_failed: int = 0
    control_timeouts: int = 0
    late_controls: int = 0
    late_slots: int = 0
    stale_controls: int = 0
    ue_decisions_applied: int = 0
    ue_decisions_rejected: int = 0
    awaiting_period: int = -1
    """Period index (KPM: ``IndicationHeader.period_key_ms``) whose control is awaited (-1: none)."""
    awaiting_controls: int = 0
    """Controls still awaited for ``awaiting_period`` (one per indication sent)."""
    kpm_period_key: int = -1
    """Key of the last period reported through KPM (-1: none)."""
    kpm_indications_sent: int = 0
    period_start_slot: int = 0
    """First slot of the period in progress."""

    def result(self, run_s: float) -> dict[str, Any]:
        thr = self.bits / run_s if run_s > 0 else np.zeros_like(self.bits, dtype=float)
        total = self.n_ack + self.n_nack
        out: dict[str, Any] = {
            "cell_id": self.cell_id,
            "scheme": self.label,
            "throughput_mbps_per_ue": float(thr.mean() / 1e6),
            "cell_throughput_mbps": float(thr.sum() / 1e6),
            "bler": self.n_nack / total if total else None,
            "ue_throughput_bps": [float(v) for v in thr],
        }
        for name in ("n_ack", "n_nack", "periods", "indications_sent", "kpm_indications_sent", "controls_received",
                     "controls_applied",
                     "controls_failed", "control_timeouts", "late_controls", "late_slots", "stale_controls",
                     "ue_decisions_applied", "ue_decisions_rejected"):
            out[name] = getattr(self, name)
        return out


def build_cells(
    scenario: Scenario,
    n_cells: int,
    compare: Sequence[str] = (),
    traces: Sequence[str] = (),
    first_cell_id: int = 1,
) -> tuple[list[SimCell], ChannelSource | None, DuRandomness | None]:
    """The node's cells.

    Without ``compare``: ``n_cells`` independent cells, cell ``i`` with seed ``seed + i`` and
    its own live channel, or trace ``traces[i]`` (then one trace per cell, scenario from the
    trace). With ``compare``: one cell per scheme on one shared source and one shared
    :class:`DuRandomness` (common random numbers).

    Returns:
        (cells, shared source or None, shared HARQ randomness or None).
    """
    if compare:
        unknown = sorted(set(compare) - set(SCHEMES))
        if unknown or len(set(compare)) != len(compare):
            raise ValueError(f"--compare: schemes must be distinct values of {', '.join(SCHEMES)}, got {list(compare)}")
        if len(traces) > 1:
            raise ValueError("--compare shares one channel: give at most one --trace")
        source: ChannelSource = TraceReplay(traces[0]) if traces else LinkChannel(scenario)
        # a trace records the channel only: the DU's scheduler interval is the caller's
        sc = source.scenario.with_du_of(scenario)
        cells = [
            SimCell(first_cell_id + i, name, DU(sc, subband_n_rb=source.subband_n_rb), None,
                    np.zeros(sc.n_ue, dtype=np.int64))
            for i, name in enumerate(compare)
        ]
        return cells, source, DuRandomness(sc.seed, sc.n_ue, sc.csi_snr_error_db)
    if n_cells < 1:
        raise ValueError(f"--cells must be >= 1, got {n_cells}")
    if traces and len(traces) != n_cells:
        raise ValueError(f"give one --trace per cell: {len(traces)} trace(s) for {n_cells} cell(s)")
    cells = []
    for i in range(n_cells):
        src: ChannelSource = TraceReplay(traces[i]) if traces else LinkChannel(replace(scenario, seed=scenario.seed + i))
        sc = src.scenario.with_du_of(scenario)
        cells.append(SimCell(first_cell_id + i, "", DU(sc, subband_n_rb=src.subband_n_rb), src,
                             np.zeros(sc.n_ue, dtype=np.int64)))
    periods = {c.du.scenario.csi_period_slots for c in cells}
    if len(periods) != 1:
        raise ValueError("all cells of a node must share the CSI-RS period (check the traces' scenarios)")
    return cells, None, None


# --------------------------------------------------------------------------- node


@dataclass
class _Subscription:
    conn: E2Connection
    request_id: E.RicRequestId
    action_id: int
    every_n_periods: int


@dataclass
class _KpmSubscription:
    conn: E2Connection
    request_id: E.RicRequestId
    action_id: int
    every_n_periods: int
    cell: SimCell
    function: KpmRanFunction
    subscription: KpmSubscription


@dataclass
class NodeStats:
    """Counters of the E2 side of the node."""

    connects: int = 0
    setups: int = 0
    setup_failures: int = 0
    subscriptions: int = 0
    kpm_subscriptions: int = 0
    control_subscriptions: int = 0
    subscriptions_refused: int = 0
    protocol_errors: int = 0
    control_decode_errors: int = 0
    slots_behind: int = 0
    link_waits: int = 0


class E2SimNode:
    """The simulated E2 node: cells + DU simulation + E2 client, on one asyncio loop.

    Args:
        cells, shared_source, shared_harq: from :func:`build_cells`.
        duration_s: simulated time, s.
        clock: ``lockstep`` or ``realtime``.
        control_timeout_s: lock-step wait for a period's controls, s.
        link_wait_s: lock-step wait for a (new) subscription, s.
        gnb_id: the node's gNB id.
        progress: tqdm bar on stderr.
        kpm: ``off``, ``beside`` (E2SM-KPM beside LT-LINKADAPT) or ``only`` (KPM alone).
        kpm_oid: OID the KPM functions advertise (``KPM_V3_OID`` or ``KPM_V2_OID``).
    """

    def __init__(
        self,
        cells: list[SimCell],
        shared_source: ChannelSource | None,
        shared_harq: DuRandomness | None,
        duration_s: float,
        clock: str = "lockstep",
        control_timeout_s: float = 5.0,
        link_wait_s: float = 60.0,
        gnb_id: int = 1,
        progress: bool = True,
        kpm: str = "off",
        kpm_oid: str = KPM_V3_OID,
    ) -> None:
        if kpm not in KPM_MODES:
            raise ValueError(f"kpm must be one of {KPM_MODES}, got {kpm!r}")
        if clock not in ("lockstep", "realtime"):
            raise ValueError(f"--clock must be lockstep or realtime, got {clock!r}")
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"--duration must be > 0 s, got {duration_s!r}")
        if control_timeout_s <= 0 or link_wait_s <= 0:
            raise ValueError("--control-timeout and --link-wait must be > 0 s")
        self.cells = cells
        self.by_id = {c.cell_id: c for c in cells}
        self.shared_source = shared_source
        self.shared_harq = shared_harq
        self.scenario = cells[0].du.scenario
        self.slot_s = self.scenario.slot_s
        self.n_slots = int(round(duration_s / self.slot_s))
        if self.n_slots < 2 * self.scenario.csi_period_slots:
            raise ValueError(f"--duration {duration_s:g} s is shorter than two CSI periods "
                             f"({2 * self.scenario.csi_period_ms} ms)")
        for c in cells:
            src = c.source if c.source is not None else shared_source
            if isinstance(src, TraceReplay) and src.n_slots < self.n_slots:
                raise ValueError(f"trace {src.path.name} holds {src.n_slots} slots, the run needs {self.n_slots}")
        self.clock = clock
        self.control_timeout_s = control_timeout_s
        self.link_wait_s = link_wait_s
        self.progress = progress
        self.stats = NodeStats()
        self.subscription: _Subscription | None = None
        self.control_subscription: _Subscription | None = None
        self.kpm_subscriptions: dict[E.RicRequestId, _KpmSubscription] = {}
        self.epoch_unix_s = time.time()
        """Wall-clock time of slot 0 (KPM header times), s since 1970."""
        self.slot = 0
        self.aborted: str | None = None
        self._changed = asyncio.Event()
        max_ues = max(c.du.n_ue for c in cells)
        definition = RanFunctionDefinition(
            report_periods_ms=(self.scenario.csi_period_ms,), max_ues_per_indication=min(max(max_ues, 1), 65535),
            max_rank=self.scenario.max_rank, control_supported=True, cqi_table=self.scenario.cqi_table,
        )
        self.ran_function = E.RanFunction(DEFAULT_RAN_FUNCTION_ID, encode_ran_function_definition(definition), 1, SM_OID)
        self.kpm_mode = kpm
        self.kpm_functions: dict[int, tuple[KpmRanFunction, SimCell]] = {}
        if kpm != "off":
            for i, c in enumerate(cells):
                fn = KpmRanFunction(CellGlobalId(DEFAULT_PLMN, c.cell_id), oid=kpm_oid,
                                    ran_function_id=KPM_RAN_FUNCTION_ID + i)
                self.kpm_functions[fn.ran_function_id] = (fn, c)
        functions = [] if kpm == "only" else [self.ran_function]
        functions += [fn.ran_function() for fn, _c in self.kpm_functions.values()]
        self.ran_functions: tuple[E.RanFunction, ...] = tuple(functions)
        self.node_id = E.GlobalE2NodeId(DEFAULT_PLMN, gnb_id)

    # -- E2 side
    def new_endpoint(self) -> E2NodeEndpoint:
        return E2NodeEndpoint(self.node_id, self.ran_functions, admit=self.admit_subscription)

    def admit_subscription(self, request: E.RicSubscriptionRequest) -> E.Cause | None:
        """Admission hook of the endpoint: KPM functions decide their report actions.

        LT-LINKADAPT subscriptions are admitted (a bad payload falls back to the defaults);
        a KPM subscription is refused with the first refused report action's cause, or
        ``action-not-supported`` when it has no report action.
        """
        entry = self.kpm_functions.get(request.ran_function_id)
        if entry is None:
            return None
        fn, _cell = entry
        reports = [a for a in request.actions if a.action_type == "report"]
        if not reports:
            return E.Cause("ricRequest", "action-not-supported")
        for action in reports:
            decision = fn.handle_subscription(request.event_trigger, action.definition)
            if not decision.accepted:
                assert decision.cause is not None
                self.stats.subscriptions_refused += 1
                log.warning("KPM subscription %s of cell %d refused (%s/%s): %s", request.request_id,
                            fn.cell.cell_identity, decision.cause.group, decision.cause.value, decision.detail)
                return decision.cause
        return None

    def on_connect(self, conn: E2Connection) -> None:
        self.stats.connects += 1
        self.subscription = None
        self.control_subscription = None
        self.kpm_subscriptions.clear()
        for c in self.cells:
            c.awaiting_period = -1
            c.awaiting_controls = 0
        self._changed.set()

    @staticmethod
    def _alive(sub: _Subscription | _KpmSubscription | None) -> bool:
        return sub is not None and not sub.conn.closed.is_set() and sub.request_id in sub.conn.endpoint.subscriptions

    def _link_up(self) -> bool:
        """Some report subscription (LT-LINKADAPT or KPM) is active."""
        return self._alive(self.subscription) or any(self._alive(k) for k in self.kpm_subscriptions.values())

    async def on_event(self, conn: E2Connection, event: Event) -> None:
        """Node-side events; anything a peer can send is answered or counted, never raised."""
        try:
            if isinstance(event, ControlReceived):
                await self._on_control(conn, event.request)
            elif isinstance(event, SetupCompleted):
                self.stats.setups += 1
                log.info("E2 Setup accepted by the RIC")
            elif isinstance(event, SetupFailed):
                self.stats.setup_failures += 1
                log.warning("E2 Setup refused: %s", event.failure.cause)
            elif isinstance(event, SubscriptionStarted):
                self._on_subscription(conn, event.request)
            elif isinstance(event, SubscriptionEnded):
                if self.subscription is not None and self.subscription.request_id == event.request_id:
                    self.subscription = None
                if self.control_subscription is not None and self.control_subscription.request_id == event.request_id:
                    self.control_subscription = None
                self.kpm_subscriptions.pop(event.request_id, None)
            elif isinstance(event, ProtocolErrorEvent):
                self.stats.protocol_errors += 1
        except E2Error as exc:
            self.stats.protocol_errors += 1
            log.warning("E2 %s while handling %s", exc, type(event).__name__)
        self._changed.set()

    def _on_subscription(self, conn: E2Connection, request: E.RicSubscriptionRequest) -> None:
        if request.ran_function_id in self.kpm_functions:
            self._on_kpm_subscription(conn, request)
            return
        if request.actions and all(a.action_type == "policy" for a in request.actions):
            self.control_subscription = _Subscription(conn, request.request_id, request.actions[0].action_id, 1)
            self.stats.control_subscriptions += 1
            log.info("control subscription %s: cells reported through KPM wait for controls", request.request_id)
            return
        every = 1
        try:
            trigger = decode_event_trigger(request.event_trigger)
            if trigger.every_n_csirs_periods is not None:
                every = trigger.every_n_csirs_periods
            else:
                assert trigger.period_ms is not None
                every = max(1, math.ceil(trigger.period_ms / self.scenario.csi_period_ms))
            for a in request.actions:
                if a.definition:
                    adef = decode_action_definition(a.definition)
                    if 0 < adef.max_ues < max(c.du.n_ue for c in self.cells):
                        log.warning("action asks at most %d UEs per indication; all UEs are sent", adef.max_ues)
        except E2DecodeError as exc:
            log.warning("subscription %s: %s; reporting every period", request.request_id, exc)
        report = [a for a in request.actions if a.action_type == "report"] or list(request.actions)
        self.subscription = _Subscription(conn, request.request_id, report[0].action_id, every)
        self.stats.subscriptions += 1
        log.info("subscribed: %s, report every %d CSI-RS period(s)", request.request_id, every)

    def _on_kpm_subscription(self, conn: E2Connection, request: E.RicSubscriptionRequest) -> None:
        """An admitted KPM subscription: its (first) report action drives the cell's KPM reports."""
        fn, cell = self.kpm_functions[request.ran_function_id]
        action = next(a for a in request.actions if a.action_type == "report")
        decision = fn.handle_subscription(request.event_trigger, action.definition)
        if decision.subscription is None:  # admitted a moment ago: cannot change
            log.warning("KPM subscription %s no longer admissible: %s", request.request_id, decision.detail)
            return
        every = max(1, math.ceil(decision.subscription.reporting_period_ms / self.scenario.csi_period_ms))
        self.kpm_subscriptions[request.request_id] = _KpmSubscription(
            conn, request.request_id, action.action_id, every, cell, fn, decision.subscription)
        self.stats.kpm_subscriptions += 1
        log.info("KPM subscription %s of cell %d: style %d, %d measurements, report every %d CSI-RS period(s)",
                 request.request_id, cell.cell_id, decision.subscription.style,
                 len(decision.subscription.measurements), every)

    async def _on_control(self, conn: E2Connection, request: E.RicControlRequest) -> None:
        endpoint = conn.endpoint
        assert isinstance(endpoint, E2NodeEndpoint)
        try:
            hdr, acc, rej = decode_control(request.header, request.message)
        except E2DecodeError as exc:
            self.stats.control_decode_errors += 1
            log.warning("control %s undecodable: %s", request.request_id, exc)
            await conn.apply(endpoint.fail_control(request, E.Cause("ricRequest", "control-message-invalid")))
            return
        cell = self.by_id.get(hdr.cell_id)
        if cell is None:
            ue = np.concatenate([acc.ue_id, rej.ue_id])
            outcome = encode_control_outcome(ue, np.zeros(ue.size, bool), np.full(ue.size, REJECT_UNKNOWN_CELL))
            await conn.apply(endpoint.fail_control(request, E.Cause("ricRequest", "control-message-invalid"), outcome))
            return
        cell.controls_received += 1
        du = cell.du
        by_kpm = cell.kpm_period_key >= 0 and not self._alive(self.subscription)
        latest = cell.kpm_period_key if by_kpm else du.period_index - 1
        if hdr.period_index != latest or (
            self.clock == "lockstep" and cell.awaiting_period != hdr.period_index
        ):
            cell.stale_controls += 1
            cell.controls_failed += 1
            await conn.apply(endpoint.fail_control(request, E.Cause("ricRequest", "control-timer-expired")))
            return
        applied, _reasons = du.apply_control(acc.ue_id, acc.ri, acc.cqi)
        known = np.isin(acc.ue_id, du.ue_ids)
        reason_acc = np.where(applied, REJECT_NONE, np.where(known, REJECT_RI_OUT_OF_RANGE, REJECT_UNKNOWN_UE))
        reason_rej = control_reject_reasons(rej.ri, rej.cqi, rej.valid_periods, np.ones(len(rej), bool))
        ue = np.concatenate([acc.ue_id, rej.ue_id])
        accepted = np.concatenate([applied, np.zeros(len(rej), bool)])
        reasons = np.concatenate([reason_acc, reason_rej]).astype(np.int64)
        cell.ue_decisions_applied += int(applied.sum())
        cell.ue_decisions_rejected += int(ue.size - applied.sum())
        cell.controls_applied += 1
        ran = self.slot - cell.period_start_slot if self.clock == "realtime" else 0
        if ran > 0:
            cell.late_controls += 1
            cell.late_slots += ran
        if cell.awaiting_period == hdr.period_index:
            cell.awaiting_controls -= 1
            if cell.awaiting_controls <= 0:
                cell.awaiting_period = -1
        await conn.apply(endpoint.ack_control(request, encode_control_outcome(ue, accepted, reasons)))

    # -- simulation
    def _step_slot(self) -> list[tuple[SimCell, PeriodOutcome]]:
        closed = []
        if self.shared_source is not None:
            slot: SlotSINR = self.shared_source.step()
            assert self.shared_harq is not None
            u = self.shared_harq.harq_uniforms()
            for c in self.cells:
                out = c.du.step(slot, u)
                if out is not None:
                    closed.append((c, out))
        else:
            for c in self.cells:
                assert c.source is not None
                out = c.du.step(c.source.step())
                if out is not None:
                    closed.append((c, out))
        self.slot += 1
        return closed

    def _account(self, cell: SimCell, out: PeriodOutcome) -> None:
        rep = out.reports
        cell.bits += rep.served_bits
        cell.n_ack += int(rep.n_ack.sum())
        cell.n_nack += int(rep.n_nack.sum())
        cell.periods += 1
        cell.period_start_slot = self.slot

    async def _send_indications(self, closed: list[tuple[SimCell, PeriodOutcome]]) -> list[SimCell]:
        """Send this period's indications (when subscribed and due); returns the cells whose
        controls are awaited."""
        sent = await self._send_kpm_indications(closed)
        sub = self.subscription
        if not self._alive(sub) or sub is None:
            return sent
        for cell, out in closed:
            if out.period_index % sub.every_n_periods != 0:
                continue
            time_ms = int(round(out.end_slot * self.slot_s * 1e3))
            header, message = encode_indication(cell.cell_id, out.period_index, time_ms, out.reports)
            endpoint = sub.conn.endpoint
            assert isinstance(endpoint, E2NodeEndpoint)
            cell.awaiting_period = out.period_index
            cell.awaiting_controls = 1
            cell.indications_sent += 1
            sent.append(cell)
            try:
                await sub.conn.apply(endpoint.send_indication(sub.request_id, sub.action_id, header, message))
            except (ConnectionError, OSError, E2Error) as exc:
                log.warning("indication of cell %d not sent: %s", cell.cell_id, exc)
                cell.awaiting_period = -1
        return sent

    async def _send_kpm_indications(self, closed: list[tuple[SimCell, PeriodOutcome]]) -> list[SimCell]:
        """Send the due KPM indications; returns the cells whose controls are awaited
        (those with an active LT-LINKADAPT control subscription)."""
        subs = [k for k in self.kpm_subscriptions.values() if self._alive(k)]
        if not subs:
            return []
        control = self._alive(self.control_subscription)
        outcomes = {id(cell): out for cell, out in closed}
        awaited: list[SimCell] = []
        for ks in subs:
            cell = ks.cell
            out = outcomes.get(id(cell))
            if out is None or out.period_index % ks.every_n_periods != 0:
                continue
            start = self.epoch_unix_s + out.start_slot * self.slot_s
            messages = ks.function.build_indications(ks.subscription, KpmPeriod.from_outcome(out, cell.du, start))
            if not messages:
                continue
            cell.kpm_period_key = ks.function.codec.decode_indication_header(messages[0][0]).period_key_ms
            endpoint = ks.conn.endpoint
            assert isinstance(endpoint, E2NodeEndpoint)
            if control:
                cell.awaiting_period = cell.kpm_period_key
                cell.awaiting_controls = len(messages)
                awaited.append(cell)
            for header, message in messages:
                try:
                    await ks.conn.apply(endpoint.send_indication(ks.request_id, ks.action_id, header, message))
                except (ConnectionError, OSError, E2Error) as exc:
                    log.warning("KPM indication of cell %d not sent: %s", cell.cell_id, exc)
                    cell.awaiting_period = -1
                    cell.awaiting_controls = 0
                    break
                cell.kpm_indications_sent += 1
        return awaited

    async def _wait(self, condition: Any, timeout_s: float) -> bool:
        """Wait until ``condition()`` holds or ``timeout_s`` passes; returns whether it holds."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.2))
            except asyncio.TimeoutError:
                pass
        return True

    async def simulate(self) -> None:
        """Run the cells for the configured duration under the chosen clock."""
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.n_slots, desc="e2sim", unit="slot", file=sys.stderr, mininterval=0.5,
                       unit_scale=False, dynamic_ncols=True)
        if not await self._wait(self._link_up, self.link_wait_s):
            self.aborted = f"no subscription from the RIC within {self.link_wait_s:g} s"
            if bar is not None:
                bar.close()
            return
        t0 = time.monotonic()
        last = 0
        try:
            while self.slot < self.n_slots:
                closed = self._step_slot()
                for cell, out in closed:
                    self._account(cell, out)
                if closed:
                    if self.clock == "lockstep" and not self._link_up():
                        self.stats.link_waits += 1
                        if not await self._wait(self._link_up, self.link_wait_s):
                            self.aborted = f"E2 link lost and no new subscription within {self.link_wait_s:g} s"
                            break
                    sent = await self._send_indications(closed)
                    if self.clock == "lockstep" and sent:
                        done = await self._wait(lambda: all(c.awaiting_period < 0 for c in sent),
                                                self.control_timeout_s)
                        if not done:
                            for c in sent:
                                if c.awaiting_period >= 0:
                                    c.control_timeouts += 1
                                    c.awaiting_period = -1
                                    c.awaiting_controls = 0
                if self.clock == "realtime":
                    ahead = t0 + self.slot * self.slot_s - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                    else:
                        self.stats.slots_behind += 1
                        await asyncio.sleep(0)
                if bar is not None and (closed or self.slot == self.n_slots):
                    bar.update(self.slot - last)
                    last = self.slot
        finally:
            if bar is not None:
                bar.close()

    def results(self) -> dict[str, Any]:
        """Per-cell figures, the gains of a ``--compare`` run and the node counters."""
        run_s = self.slot * self.slot_s
        cells = [c.result(run_s) for c in self.cells]
        out: dict[str, Any] = {
            "scenario": self.scenario.to_dict(),
            "clock": self.clock,
            "simulated_s": run_s,
            "completed": self.slot >= self.n_slots and self.aborted is None,
            "aborted": self.aborted,
            "cells": cells,
            "node": vars(self.stats).copy(),
        }
        olla = next((c for c in self.cells if c.label == "olla"), None)
        if olla is not None and run_s > 0:
            base = olla.bits / run_s
            gains = {}
            for c in self.cells:
                if c is olla:
                    continue
                g = paired_gain(c.bits / run_s, base)
                gains[c.label] = {"gain": g.gain, "ci95_low": g.ci_low, "ci95_high": g.ci_high}
            out["gains_over_olla"] = gains
        return out


def compare_mode_hint(results: dict[str, Any]) -> str | None:
    """Advice when the xApp's cell modes do not match the ``--compare`` schemes, else None.

    A cell's controls show the xApp's mode: the OLLA cell must get empty controls (mode
    ``off``), a CQI-Tune / RI-CQI-Tune cell per-UE decisions. Only cells that received
    controls are judged (a run without an E2 link says so elsewhere).
    """
    wrong = []
    for c in results.get("cells", []):
        scheme = c.get("scheme") or ""
        if not scheme or not c.get("controls_applied"):
            continue
        decided = c.get("ue_decisions_applied", 0) > 0
        if decided != (scheme != "olla"):
            wrong.append(c)
    if not wrong:
        return None
    modes = " ".join(f"--cell-mode {c['cell_id']}={ {'olla': 'off'}.get(c['scheme'], c['scheme'])}"
                     for c in results["cells"] if c.get("scheme"))
    cells = ", ".join(f"{c['cell_id']} ({c['scheme']})" for c in wrong)
    return f"the xApp's decisions for cell(s) {cells} do not match the compared schemes: run it with {modes}"


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table (one row per cell)."""
    gains = results.get("gains_over_olla", {})
    lines = [f"{'cell':>5} {'scheme':<12} {'Mbit/s/UE':>10} {'cell Mbit/s':>12} {'BLER':>7} "
             f"{'gain vs OLLA [95% CI]':>26} {'ctrl ok':>8} {'timeouts':>8} {'late':>5}"]
    for c in results["cells"]:
        g = gains.get(c["scheme"])
        gain = "" if g is None else f"{100 * g['gain']:+.1f}% [{100 * g['ci95_low']:+.1f}, {100 * g['ci95_high']:+.1f}]"
        bler = "n/a" if c["bler"] is None else f"{c['bler']:.3f}"
        name = SCHEME_TITLES.get(c["scheme"], c["scheme"] or "-")
        lines.append(f"{c['cell_id']:>5} {name:<12} {c['throughput_mbps_per_ue']:>10.2f} "
                     f"{c['cell_throughput_mbps']:>12.1f} {bler:>7} {gain:>26} {c['controls_applied']:>8} "
                     f"{c['control_timeouts']:>8} {c['late_controls']:>5}")
    status = "completed" if results["completed"] else f"stopped early: {results['aborted']}"
    lines.append(f"{results['simulated_s']:.2f} s simulated ({results['clock']} clock), {status}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``e2sim run``."""
    from e2sim.cli import add_bler_curves_argument  # cli imports this module lazily too

    d = Scenario()
    p.add_argument("--ric", default=f"127.0.0.1:{E2_SCTP_PORT}", metavar="HOST:PORT",
                   help=f"E2 address of the RIC or local xApp (default 127.0.0.1:{E2_SCTP_PORT})")
    p.add_argument("--transport", choices=("auto", "sctp", "tcp"), default="auto",
                   help="E2 transport (auto: SCTP if the kernel has it, else TCP with length framing)")
    p.add_argument("--cells", type=int, default=1, help="number of cells (default 1; ignored with --compare)")
    p.add_argument("--ues", type=int, default=d.n_ue, help="UEs per cell (default %(default)s)")
    p.add_argument("--compare", nargs="?", const=",".join(SCHEMES), default=None, metavar="SCHEMES",
                   help="one cell per scheme on common random numbers (default olla,cqi,ri_cqi → cells 1, 2, 3); "
                   "run the xApp with --cell-mode 1=off --cell-mode 2=cqi --cell-mode 3=ri_cqi")
    p.add_argument("--profile", default="TDL-B200",
                   help="channel profile, AWGN or TDL-<A|B|C><ns> (default %(default)s)")
    p.add_argument("--doppler", type=float, default=50.0, metavar="HZ", help="maximum Doppler, Hz (default %(default)s)")
    p.add_argument("--correlation", choices=CORRELATION_LEVELS, default="low", help="antenna correlation (default low)")
    p.add_argument("--csi-period", type=int, default=80, metavar="MS",
                   help=f"CSI-RS period, ms, one of {', '.join(map(str, CSI_PERIODS_MS))} (default %(default)s)")
    p.add_argument("--snr", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="per-UE mean SNR range, dB (default: --snr-range)")
    p.add_argument("--snr-range", choices=tuple(SNR_RANGES_DB), default="high",
                   help="the paper's SNR range by name (default high = 28..40 dB)")
    p.add_argument("--n-rb", type=int, default=d.n_rb, help="resource blocks (default %(default)s)")
    p.add_argument("--scs", type=int, default=d.scs_khz, help="subcarrier spacing, kHz (default %(default)s)")
    p.add_argument("--antennas", type=int, nargs=2, default=[d.n_tx, d.n_rx], metavar=("TX", "RX"),
                   help="gNB ports and UE antennas (default 4 4)")
    p.add_argument("--cqi-table", type=int, default=d.cqi_table, help="CQI table 1..3 (default %(default)s)")
    p.add_argument("--mcs-table", type=int, default=d.mcs_table, help="MCS table 1..3 (default %(default)s)")
    p.add_argument("--csi-error", type=float, default=d.csi_snr_error_db, metavar="DB",
                   help="std of the CSI SNR-estimation error, dB (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of every random draw (default %(default)s)")
    p.add_argument("--sched-interval", type=int, default=d.sched_interval_slots, metavar="SLOTS",
                   help="DU round-robin interval: each UE is scheduled every SLOTS slots and the UEs of a slot "
                        "share the RBs; 1 = every UE on all RBs every slot (default %(default)s)")
    p.add_argument("--du", choices=PRESET_NAMES, default=d.du_preset,
                   help="the DU's link adaptation, after a real gNB: srsran (slow CQI-offset OLLA), oai "
                        "(+-1 MCS per 100 ms BLER window) or sionna (1 dB per NACK) (default %(default)s)")
    add_bler_curves_argument(p)
    p.add_argument("--trace", action="append", default=[], metavar="FILE",
                   help="replay a recorded channel trace instead of the live channel (one per cell)")
    p.add_argument("--duration", type=float, default=5.0, metavar="S", help="simulated time, s (default %(default)s)")
    p.add_argument("--clock", choices=("lockstep", "realtime"), default="lockstep",
                   help="lockstep: wait for each period's controls (deterministic); realtime: wall-clock slots")
    p.add_argument("--control-timeout", type=float, default=5.0, metavar="S",
                   help="lock-step wait for a period's controls, s (default %(default)s)")
    p.add_argument("--link-wait", type=float, default=60.0, metavar="S",
                   help="lock-step wait for a (new) subscription, s (default %(default)s)")
    p.add_argument("--reconnect-delay", type=float, default=0.5, metavar="S",
                   help="first reconnect delay, s; doubles per failure up to 8x (default %(default)s)")
    p.add_argument("--gnb-id", type=int, default=1, help="gNB id of the node (default %(default)s)")
    kpm = p.add_mutually_exclusive_group()
    kpm.add_argument("--kpm", action="store_true",
                     help="also offer standard E2SM-KPM (one RAN function per cell) beside LT-LINKADAPT")
    kpm.add_argument("--kpm-only", action="store_true",
                     help="offer E2SM-KPM only, like a third-party gNB (the xApp runs in advisory mode)")
    p.add_argument("--kpm-oid", choices=tuple(KPM_OIDS), default="v3",
                   help="OID the KPM functions advertise: v3 (default) or v2 as srsRAN does (v3.00 content)")
    p.add_argument("--results", metavar="FILE.json", help="write the results here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging threshold on stderr (default %(default)s)")


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """The (first) cell's scenario from the command line (ValueError naming a bad field)."""
    snr = tuple(args.snr) if args.snr is not None else SNR_RANGES_DB[args.snr_range]
    return Scenario(
        profile=args.profile, doppler_hz=args.doppler, correlation=args.correlation, snr_db=snr,
        csi_period_ms=args.csi_period, n_ue=args.ues, n_rb=args.n_rb, scs_khz=args.scs,
        n_tx=args.antennas[0], n_rx=args.antennas[1], cqi_table=args.cqi_table, mcs_table=args.mcs_table,
        csi_snr_error_db=args.csi_error, seed=args.seed, sched_interval_slots=args.sched_interval,
        du_preset=args.du, bler_curves=args.bler_curves,
    )


async def _run_node(node: E2SimNode, host: str, port: int, transport: str, reconnect_delay_s: float) -> None:
    client = E2Client(node.new_endpoint, node.on_event, host=host, port=port, transport=transport,
                      reconnect_delay_s=reconnect_delay_s, on_connect=node.on_connect)
    client_task = asyncio.create_task(client.run())
    try:
        await node.simulate()
    finally:
        client.stop()
        client_task.cancel()
        try:
            await client_task
        except (asyncio.CancelledError, Exception):  # the client ends with the cancelled connection
            pass


def run_command(args: argparse.Namespace) -> int:
    """``e2sim run``: returns the exit status (0, or 3 when a lock-step run stopped early)."""
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = parse_ric_address(args.ric)
    if args.reconnect_delay <= 0:
        raise ValueError(f"--reconnect-delay must be > 0 s, got {args.reconnect_delay}")
    compare = tuple(s.strip() for s in args.compare.split(",") if s.strip()) if args.compare is not None else ()
    if args.compare is not None and not compare:
        raise ValueError("--compare needs at least one scheme")
    cells, source, harq = build_cells(scenario_from_args(args), args.cells, compare, args.trace)
    kpm = "only" if args.kpm_only else "beside" if args.kpm else "off"
    node = E2SimNode(cells, source, harq, args.duration, args.clock, args.control_timeout, args.link_wait,
                     args.gnb_id, progress=not args.quiet, kpm=kpm, kpm_oid=KPM_OIDS[args.kpm_oid])
    if args.results:
        from e2sim.cli import check_output_file

        check_output_file(Path(args.results), "--results")
    started = time.monotonic()
    asyncio.run(_run_node(node, host, port, args.transport, args.reconnect_delay))
    results = node.results()
    results["wall_s"] = time.monotonic() - started
    print(format_table(results))
    hint = compare_mode_hint(results)
    if hint is not None:
        print(f"e2sim run: {hint}", file=sys.stderr)
    if args.results:
        Path(args.results).write_text(json.dumps(results, indent=1))
    if node.aborted:
        print(f"e2sim run: {node.aborted}", file=sys.stderr)
        return EXIT_LINK_LOST
    return 0


def add_run_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``run`` on the ``e2sim`` subcommand parsers."""
    p = sub.add_parser("run", help="run the simulated cells as a live E2 node against a RIC / the local xApp",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_run_arguments(p)
    p.set_defaults(func=run_command)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m e2sim.node``: same as ``e2sim run``."""
    threadpool_limits(1)  # small matrices: BLAS threads only add contention (as in e2sim.cli)
    parser = argparse.ArgumentParser(prog="e2sim run", description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except ValueError as exc:
        print(f"e2sim run: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
