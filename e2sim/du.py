"""The simulated DU of one cell: CSI reporting, table RI/CQI + OLLA, HARQ, throughput.

Everything here is vectorised over the cell's ``U`` UEs: a slot costs a fixed number of
numpy calls whatever ``U`` is (no Python loop per UE on the per-slot path).

Time line (30 kHz SCS: 2 slots per ms)
--------------------------------------
* The channel (:class:`e2sim.channel.LinkChannel`, or a trace replay) delivers one
  :class:`~e2sim.channel.SlotSINR` per slot: ``sinr_db`` float32 ``[U, 4 ranks, 4 layers,
  S subbands]`` (NaN for layers ``>= rank``), ``csirs_snr_db`` float ``[U]`` and
  ``csi_instant``, true in the slots that carry CSI-RS (every ``csi_period_ms``).
* **CSI report.** In a CSI-RS slot ``t_k`` every UE measures the slot's SINR (plus a
  seeded Gaussian SNR-estimation error of standard deviation
  ``scenario.csi_snr_error_db``, one draw per UE and report, added in dB to every
  layer/subband) and reports the rank indicator RI and wideband CQI that maximise its
  rate ``r · SE(cqi)`` subject to a first-transmission BLER ``<= 0.1`` (ties go to the
  lower rank), i.e. for each rank ``r`` the highest CQI ``c`` with
  ``transport_block_bler(SINR_r, mcs(c)) <= 0.1``. It also reports the per-layer wideband
  SINR of the reported rank (linear mean over subbands, in dB, NaN beyond RI) and the
  CSI-RS SNR of the slot (``SlotSINR.csirs_snr_db``, which carries the channel's own
  measurement error drawn from the same ``csi_snr_error_db``).
* The report takes effect ``csi_delay_slots`` slots later (default 1: measured in slot
  ``t_k``, used from slot ``t_k + 1``). The slots between two report instants form one
  **CSI period**; when one ends the DU emits a :class:`PeriodOutcome` holding a
  :class:`~lighttune_core.report.LinkReports` (the *new* CSI report plus the HARQ counts,
  rank, MCS and OLLA state of the period that just ended) and the period's true BLER.
  ``csi_age_ms`` is the age of the new report when the next period starts
  (``csi_delay_slots`` slots).
* **Control.** After a period ends the caller may :meth:`DU.apply_control` an (RI, CQI)
  per UE; it replaces the reported pair for the whole next period and is dropped when
  the next report takes effect.

Scheduler
---------
Full buffer, one codeword per UE, no multi-user interference (the SINR model is per
link). **Round robin with interval** ``I = scenario.sched_interval_slots`` (default 8 =
4 ms at 30 kHz): UE ``u`` (its position ``0 .. U-1`` in the cell) is scheduled in slot
``t`` when ``(t + u) mod I == 0``, so every UE gets one transmission opportunity every
``I`` slots (20 per 80 ms CSI period, 2-3 per 10 ms period at the default) and a slot
carries ``U / I`` UEs (``ceil`` or ``floor``). The UEs of a slot share the band equally::

    n_prb = max(1, n_rb // ceil(U / I))   for I >= 2   (PRBs of one UE's transport block)
    n_prb = n_rb                          for I == 1

Approximation: a UE's PRBs are taken interleaved across the whole band, so its TB sees
every subband and the wideband EESM over all ``S`` subbands (weights ``subband_n_rb``)
still gives its effective SINR; only the TBS and the code-block segmentation (C, K')
shrink to the ``n_prb`` share. ``I = 1`` is the idealised per-link mode of the DU's
first version, kept so that earlier results stay reproducible: every UE is scheduled on
all ``n_rb`` RBs in every slot, with no sharing (each link as if alone in the cell). The CSI report's BLER <= 0.1 test uses the
full-band TB (the CSI reference resource spans the whole CSI-RS band, TS 38.214
5.2.2.5), so report and transmission differ in TB size when ``n_prb < n_rb`` and OLLA
absorbs the difference.

Per slot
--------
For each UE scheduled in the slot with a valid CSI report and CQI > 0::

    rank  = controlled RI if a control is active else reported RI
    cqi   = controlled CQI if a control is active else reported CQI
    mcs   = olla_mcs(cqi, offset)               (table MCS moved by the OLLA offset)
    p     = transport_block_bler(SINR[rank], mcs, n_prb)   (first-transmission TB BLER)
    ACK   = u >= p,  u ~ U[0, 1) per UE and slot     (common random numbers)
    offset <- OLLA update with the ACK/NACK
    bits  += TBS(mcs, rank, n_prb) if ACK

UEs not scheduled in the slot transmit nothing: no HARQ draw is used, OLLA is not
updated, no bits are served. The HARQ uniforms are still drawn for all ``U`` UEs every
slot, so the draws (and the common random numbers across schemes) do not depend on the
schedule.

HARQ model: **first transmissions only**. A NACKed transport block is counted as lost:
its bits are never served and no retransmission occupies later slots, so the served
throughput is the sum of TBS over ACKed first transmissions. The model is identical
for every scheme compared. The ACK/NACK updates OLLA before the UE's next transmission:
a HARQ feedback delay ``k1`` (a few slots in NR) changes nothing as long as ``k1 < I``,
which holds at the default interval, so it is not modelled.

Common random numbers: the HARQ uniforms and the CSI estimation errors come from
:class:`DuRandomness`, whose draws do not depend on any decision. Several DUs built
with the same seed and fed the same :class:`SlotSINR` stream therefore see the same
channel, the same errors and the same uniforms; :meth:`DU.step` also accepts the
uniforms explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from e2sim.channel import Scenario, SlotSINR
from e2sim.channel.bler import (
    code_block_bler,
    cqi_sinr_threshold_db,
    effective_sinr_db,
    mcs_sinr_threshold_db,
)
from lighttune_core.linkadapt import (
    MAX_MCS_BY_TABLE,
    MCS_TABLES,
    code_block_size,
    n_code_blocks,
    cqi_to_mcs,
    spectral_efficiency,
    transport_block_size,
)
from lighttune_core.linkadapt.presets import (
    DuPreset,
    get_preset,
    per_tb_update,
    preset_mcs,
    window_update,
    with_sinr_thresholds,
)
from lighttune_core.report import MAX_CQI, MAX_RANK, OLLA_RANGE_DB, LinkReports

CSI_TARGET_BLER: float = 0.1
"""BLER target of the CSI report: RI/CQI maximise rate at BLER <= 0.1 (TS 38.214 5.2.2.1)."""

DEFAULT_CSI_DELAY_SLOTS: int = 1
"""Slots between the CSI-RS measurement and the first slot that uses the report."""

DRAW_STREAM_HARQ: int = 11
"""Sub-stream id of the HARQ uniforms within the scenario seed."""
DRAW_STREAM_CSI: int = 12
"""Sub-stream id of the CSI estimation errors within the scenario seed."""


class DuRandomness:
    """The DU's random draws, independent of every decision the DU or a policy makes.

    ``harq_uniforms()`` gives float64 [U] in [0, 1) per slot; ``csi_error_db()`` gives
    float64 [U], N(0, sigma^2) dB, per CSI report. Two instances with the same
    ``(seed, n_ue, sigma)`` produce identical sequences as long as they are called in the
    same slot pattern, which the DU guarantees (one HARQ draw per slot, one CSI draw per
    CSI-RS slot).
    """

    def __init__(self, seed: int, n_ue: int, csi_snr_error_db: float) -> None:
        if n_ue < 1:
            raise ValueError(f"n_ue must be >= 1, got {n_ue}")
        if not np.isfinite(csi_snr_error_db) or csi_snr_error_db < 0:
            raise ValueError(f"csi_snr_error_db must be >= 0, got {csi_snr_error_db!r}")
        self.n_ue = int(n_ue)
        self.csi_snr_error_db = float(csi_snr_error_db)
        self._harq = np.random.default_rng([int(seed), DRAW_STREAM_HARQ])
        self._csi = np.random.default_rng([int(seed), DRAW_STREAM_CSI])

    def harq_uniforms(self) -> np.ndarray:
        """float64 [U] uniforms of one slot."""
        return self._harq.random(self.n_ue)

    def csi_error_db(self) -> np.ndarray:
        """float64 [U] SNR-estimation errors of one CSI report, dB."""
        if self.csi_snr_error_db == 0.0:
            return np.zeros(self.n_ue)
        return self._csi.normal(0.0, self.csi_snr_error_db, self.n_ue)


@dataclass(frozen=True)
class CsiReport:
    """One CSI report of every UE (``U`` UEs).

    Attributes:
        ri: int64 [U], 1 .. max rank.
        cqi: int64 [U], 0 .. 15 (0: no rank reaches the BLER target with CQI 1).
        sinr_layers_db: float64 [U, 4], wideband SINR per layer of rank ``ri``, dB (NaN
            beyond ``ri``).
        csirs_snr_db: float64 [U], wideband CSI-RS SNR as the channel reports it (its own
            seeded measurement error included), dB.
        slot: slot index of the CSI-RS measurement.
    """

    ri: np.ndarray
    cqi: np.ndarray
    sinr_layers_db: np.ndarray
    csirs_snr_db: np.ndarray
    slot: int


@dataclass(frozen=True)
class PeriodOutcome:
    """What the DU emits when a CSI period ends.

    Attributes:
        reports: the cell's :class:`LinkReports` (new CSI report + the ended period's
            HARQ counts, rank, most-used MCS, OLLA offset).
        true_bler: float64 [U], nNACK / (nACK + nNACK) of the period, NaN without TBs.
        mean_tb_bler: float64 [U], mean first-transmission BLER probability of the
            period's TBs (the expectation the ACK/NACK draws realise), NaN without TBs.
        period_index: 0 for the period before the first report takes effect.
        start_slot: first slot of the ended period.
        end_slot: first slot after it (the slot the new report takes effect).
    """

    reports: LinkReports
    true_bler: np.ndarray
    mean_tb_bler: np.ndarray
    period_index: int
    start_slot: int
    end_slot: int


def du_link_preset(scenario: Scenario, preset: DuPreset | str | None = None) -> DuPreset:
    """The preset a DU of ``scenario`` maps CQI and back-off to MCS with.

    ``preset`` (default the scenario's ``du_preset``) as it is, except that an SINR-offset
    loop (``sionna``) carries the SINR at which each CQI and MCS meets the loop's BLER target
    on the simulator's own curves (one transport block of ``n_rb`` RBs, one layer;
    :func:`~e2sim.channel.bler.mcs_sinr_threshold_db`), as Sionna's loop maps with its own
    BLER tables. The xApp side scores candidates with the same preset, so the delivered-bits
    score uses the DU's mapping.
    """
    p = get_preset(scenario.du_preset if preset is None else preset)
    if p.loop != "snr_offset":
        return p
    return with_sinr_thresholds(
        p,
        cqi_sinr_threshold_db(scenario.cqi_table, p.target_bler, scenario.mcs_table, 1, scenario.n_rb,
                              curves=scenario.bler_curves),
        mcs_sinr_threshold_db(scenario.mcs_table, p.target_bler, 1, scenario.n_rb, curves=scenario.bler_curves),
    )


def xapp_du_controls(preset: DuPreset) -> dict[str, Any]:
    """The xApp descriptor's ``controls`` entries that make it score with ``preset``:
    ``duPreset`` and, for a preset carrying SINR thresholds, ``duSinrThresholds`` (dB, CQI
    1 .. 15 and MCS 0 .. of the table, the layout of ``lighttune_xapp.config``)."""
    out: dict[str, Any] = {"duPreset": preset.name}
    if preset.cqi_sinr_db is not None and preset.mcs_sinr_db is not None:
        out["duSinrThresholds"] = {
            "cqiDb": list(preset.cqi_sinr_db[1:]),
            "mcsDb": list(preset.mcs_sinr_db),
        }
    return out


class DU:
    """One cell's DU: CSI reporting, table RI/CQI with OLLA, HARQ and throughput.

    Args:
        scenario: the cell's radio scenario (UE count, RBs, tables, CSI period, seed,
            SNR-estimation error, round-robin interval ``sched_interval_slots``).
        csi_delay_slots: slots from CSI-RS measurement to first use, >= 1.
        subband_n_rb: int [S] RBs per subband, the EESM weights (``LinkChannel.subband_n_rb``);
            equal weights if None.
        preset: the DU's link-adaptation loop (:mod:`lighttune_core.linkadapt.presets`:
            ``"srsran"``, ``"oai"``, ``"sionna"`` or a :class:`DuPreset`); default the
            scenario's ``du_preset``.
        ue_ids: int64 [U] identifiers of the UEs (default ``0 .. U-1``).
        randomness: the draws to use; default ``DuRandomness(scenario.seed, ...)``.
    """

    def __init__(
        self,
        scenario: Scenario,
        csi_delay_slots: int = DEFAULT_CSI_DELAY_SLOTS,
        subband_n_rb: np.ndarray | None = None,
        preset: DuPreset | str | None = None,
        ue_ids: np.ndarray | None = None,
        randomness: DuRandomness | None = None,
    ) -> None:
        if isinstance(csi_delay_slots, bool) or not isinstance(csi_delay_slots, (int, np.integer)):
            raise ValueError(f"csi_delay_slots must be an integer, got {csi_delay_slots!r}")
        if not 1 <= csi_delay_slots < scenario.csi_period_slots:
            raise ValueError(
                f"csi_delay_slots must be in 1 .. {scenario.csi_period_slots - 1} "
                f"(the CSI period in slots), got {csi_delay_slots}"
            )
        n = scenario.n_ue
        self.scenario = scenario
        self.n_ue = n
        self.csi_delay_slots = int(csi_delay_slots)
        self.preset = du_link_preset(scenario, preset)
        self.olla_target_bler = self.preset.target_bler
        self.subband_weights = None if subband_n_rb is None else np.asarray(subband_n_rb, float)
        if ue_ids is None:
            self.ue_ids = np.arange(n, dtype=np.int64)
        else:
            ids = np.asarray(ue_ids, dtype=np.int64)
            if ids.shape != (n,) or np.unique(ids).shape[0] != n:
                raise ValueError(f"ue_ids must be {n} distinct integers")
            if np.any((ids < 0) | (ids >= 2**32)):
                raise ValueError("ue_ids must be in 0 .. 2**32 - 1")
            self.ue_ids = ids
        self._id_order = np.argsort(self.ue_ids, kind="stable")
        self._sorted_ids = self.ue_ids[self._id_order]
        self.randomness = (
            randomness
            if randomness is not None
            else DuRandomness(scenario.seed, n, scenario.csi_snr_error_db)
        )
        self.max_rank = scenario.max_rank
        top_mcs = MAX_MCS_BY_TABLE[scenario.mcs_table]
        self._n_mcs = top_mcs + 1
        self.sched_interval_slots = int(scenario.sched_interval_slots)
        """Round-robin interval I, slots."""
        self.ues_per_slot = -(-n // self.sched_interval_slots)
        """Most UEs scheduled in one slot, ceil(U / I)."""
        self.prb_per_ue = (
            scenario.n_rb
            if self.sched_interval_slots == 1
            else max(1, scenario.n_rb // self.ues_per_slot)
        )
        """RBs of one scheduled UE's TB: max(1, n_rb // ceil(U / I)), n_rb when I == 1."""
        self._sched_phase = np.arange(n) % self.sched_interval_slots
        # TBS [mcs, rank] (bits), code blocks C and code-block size K' (TS 38.212) for
        # the UE's PRB share (transmissions) and for the whole band (CSI reference)
        self._tbs, self._n_cb, self._cb_bits = self._tb_tables(self.prb_per_ue)
        self._tbs_ref, self._n_cb_ref, self._cb_bits_ref = self._tb_tables(scenario.n_rb)
        cqis = np.arange(1, MAX_CQI + 1)
        self._cqi_mcs = cqi_to_mcs(cqis, scenario.cqi_table, scenario.mcs_table)  # [15]
        self._cqi_se = spectral_efficiency(cqis, scenario.cqi_table)  # [15]
        self._rows = np.arange(n)

        self.slot_index = 0
        self.period_index = 0
        self._period_start = 0
        self.olla_offset_db = np.zeros(n)
        """float64 [U], the OLLA back-off in the preset's unit (dB, CQI or MCS steps;
        positive = more conservative than the table)."""
        self._window_slots = max(1, int(round(self.preset.window_ms * scenario.slots_per_ms)))
        self._filtered_bler = np.full(n, 0.5 * (self.preset.bler_lower + self.preset.bler_upper))
        self._window_tx = np.zeros(n, dtype=np.int64)
        self._window_nack = np.zeros(n, dtype=np.int64)
        self.has_csi = np.zeros(n, dtype=bool)
        self.report_ri = np.ones(n, dtype=np.int64)
        self.report_cqi = np.zeros(n, dtype=np.int64)
        self.control_active = np.zeros(n, dtype=bool)
        self.control_ri = np.ones(n, dtype=np.int64)
        self.control_cqi = np.zeros(n, dtype=np.int64)
        self._pending: CsiReport | None = None
        self.last_csi_report: CsiReport | None = None
        """The CSI report of the last CSI-RS slot (to share with DUs fed the same stream)."""
        self._pending_due = -1
        self._reset_period_counters()
        self.rank_used = np.ones(n, dtype=np.int64)

    def _tb_tables(self, n_prb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TBS (int64), code blocks C and code-block size K' (float64), each [mcs, rank].

        For one codeword on ``n_prb`` RBs, every MCS of the scenario's table and ranks
        1 .. 4 (TS 38.214 5.1.3.2, TS 38.212 5.2.2); K' is at least 1 bit.
        """
        table = self.scenario.mcs_table
        tbs = transport_block_size(
            np.arange(self._n_mcs)[:, None],
            np.arange(1, MAX_RANK + 1)[None, :],
            n_prb,
            mcs_table=table,
        ).astype(np.int64)
        rate = MCS_TABLES[table][: self._n_mcs, 1][:, None] / 1024.0
        n_cb = n_code_blocks(tbs, rate).astype(np.float64)
        cb_bits = np.maximum(code_block_size(tbs, rate), 1).astype(np.float64)
        return tbs, n_cb, cb_bits

    def scheduled(self, slot_index: int) -> np.ndarray:
        """bool [U]: the UEs whose round-robin turn is slot ``slot_index``.

        UE ``u`` (position in the cell) is scheduled when ``(slot_index + u) mod I == 0``.
        """
        return self._sched_phase == (-int(slot_index)) % self.sched_interval_slots

    # ------------------------------------------------------------------ accounting
    def _reset_period_counters(self) -> None:
        n = self.n_ue
        self.n_ack = np.zeros(n, dtype=np.int64)
        self.n_nack = np.zeros(n, dtype=np.int64)
        self.served_bits = np.zeros(n, dtype=np.int64)
        self.bler_sum = np.zeros(n)
        self.mcs_counts = np.zeros((n, self._n_mcs), dtype=np.int64)

    # ------------------------------------------------------------------ CSI
    def measure_csi(self, slot: SlotSINR, error_db: np.ndarray | None = None) -> CsiReport:
        """The CSI report every UE sends from this slot's SINR (see module docstring).

        Args:
            slot: the CSI-RS slot's channel quantities.
            error_db: float [U] SNR-estimation error, dB; default drawn from the DU's
                :class:`DuRandomness`.

        Returns:
            The report (not yet in effect).
        """
        n = self.n_ue
        err = self.randomness.csi_error_db() if error_db is None else np.asarray(error_db, float)
        if err.shape != (n,):
            raise ValueError(f"error_db must have shape ({n},), got {err.shape}")
        sinr = np.asarray(slot.sinr_db, dtype=np.float64) + err[:, None, None, None]  # [U,4,4,S]
        n_sub = sinr.shape[-1]
        n_cqi = self._cqi_mcs.shape[0]
        # BLER of every (rank, CQI) pair: [U, R, C]
        sinr_rc = np.broadcast_to(sinr[:, :, None, :, :], (n, MAX_RANK, n_cqi, MAX_RANK, n_sub))
        ranks = np.broadcast_to(np.arange(1, MAX_RANK + 1)[None, :, None], (n, MAX_RANK, n_cqi))
        mcs = np.broadcast_to(self._cqi_mcs[None, None, :], (n, MAX_RANK, n_cqi))
        bler = self._tb_bler(sinr_rc, np.maximum(mcs, 0), ranks, full_band=True)
        rank_ok = np.arange(1, MAX_RANK + 1) <= self.max_rank  # [R]
        fits = (bler <= CSI_TARGET_BLER) & rank_ok[None, :, None] & (mcs >= 0)
        # highest fitting CQI per rank (CQI index c = position + 1), 0 if none
        any_fit = fits.any(axis=2)
        best_pos = n_cqi - 1 - np.argmax(fits[:, :, ::-1], axis=2)
        cqi_r = np.where(any_fit, best_pos + 1, 0)  # [U, R]
        se = np.where(any_fit, self._cqi_se[np.maximum(best_pos, 0)], 0.0)
        rate = se * np.arange(1, MAX_RANK + 1)[None, :]
        ri = np.argmax(rate, axis=1) + 1  # first maximum: ties go to the lower rank
        cqi = cqi_r[self._rows, ri - 1]
        layers = sinr[self._rows, ri - 1]  # [U, 4, S]
        with np.errstate(invalid="ignore"):
            wide = 10.0 * np.log10(np.mean(10.0 ** (layers / 10.0), axis=-1))
        wide = np.where(np.arange(MAX_RANK)[None, :] < ri[:, None], wide, np.nan)
        csirs = np.asarray(slot.csirs_snr_db, dtype=np.float64)
        return CsiReport(
            ri=ri.astype(np.int64),
            cqi=cqi.astype(np.int64),
            sinr_layers_db=wide,
            csirs_snr_db=csirs,
            slot=self.slot_index,
        )

    def _tb_bler(
        self, sinr_db: np.ndarray, mcs: np.ndarray, rank: np.ndarray, full_band: bool = False
    ) -> np.ndarray:
        """First-transmission TB BLER of one codeword over ``rank`` layers.

        Same model as :func:`e2sim.channel.bler.transport_block_bler` (EESM, code-block
        curve, ``1 − (1 − BLER_cb)^C``) with TBS, C and K' looked up from tables built once
        for the cell instead of recomputed every slot.

        Args:
            sinr_db: float [..., 4 layers, S] post-equaliser SINR, dB (NaN beyond rank).
            mcs: int [...], 0 .. top MCS.
            rank: int [...], 1 .. 4.
            full_band: TB on all ``n_rb`` RBs (the CSI reference resource) instead of the
                scheduled UE's ``prb_per_ue`` share.

        Returns:
            float64 [...] in [0, 1].
        """
        table = self.scenario.mcs_table
        n_cb, cb_bits = (self._n_cb_ref, self._cb_bits_ref) if full_band else (self._n_cb, self._cb_bits)
        curves = self.scenario.bler_curves
        eff = effective_sinr_db(sinr_db, mcs, table, self.subband_weights, curves)
        cb = code_block_bler(eff, mcs, table, cb_bits[mcs, rank - 1], curves)
        return 1.0 - (1.0 - cb) ** n_cb[mcs, rank - 1]

    # ------------------------------------------------------------------ control
    def apply_control(
        self, ue_id: np.ndarray, ri: np.ndarray, cqi: np.ndarray
    ) -> tuple[np.ndarray, list[str]]:
        """Override (RI, CQI) of some UEs until their next CSI report takes effect.

        Args:
            ue_id: int [B] UE identifiers.
            ri: int [B] rank, 1 .. max rank of the scenario.
            cqi: int [B] CQI, 0 .. 15 (0 means "do not schedule").

        Returns:
            ``(accepted, reasons)``: bool [B] and ``B`` strings, empty where accepted,
            otherwise naming the rejected field and value. A rejected entry leaves the
            DU's own choice for that UE untouched.

        Raises:
            ValueError: the three arrays differ in shape or are not 1-D.
        """
        ue = np.atleast_1d(np.asarray(ue_id))
        r = np.atleast_1d(np.asarray(ri))
        c = np.atleast_1d(np.asarray(cqi))
        if ue.ndim != 1 or ue.shape != r.shape or ue.shape != c.shape:
            raise ValueError(
                f"ue_id, ri and cqi must be 1-D of one length, got {ue.shape}, {r.shape}, {c.shape}"
            )
        b = ue.shape[0]
        reasons = [""] * b
        accepted = np.ones(b, dtype=bool)

        def integral(a: np.ndarray) -> np.ndarray:
            if a.dtype.kind in "iu":
                return np.ones(a.shape, dtype=bool)
            if a.dtype.kind in "fb":
                af = a.astype(np.float64)
                with np.errstate(invalid="ignore"):
                    return np.isfinite(af) & (af == np.round(af))
            return np.zeros(a.shape, dtype=bool)

        def to_int(a: np.ndarray, ok: np.ndarray) -> np.ndarray:
            if a.dtype.kind in "iub" or a.dtype.kind == "f":
                return np.where(ok, np.nan_to_num(a.astype(np.float64)), -1).astype(np.int64)
            return np.full(a.shape, -1, dtype=np.int64)

        ue_ok = integral(ue)
        ue_i = to_int(ue, ue_ok)
        pos = np.searchsorted(self._sorted_ids, ue_i)
        pos_c = np.minimum(pos, self.n_ue - 1)
        known = ue_ok & (self._sorted_ids[pos_c] == ue_i)
        rows = self._id_order[pos_c]
        r_ok = integral(r)
        r_i = to_int(r, r_ok)
        r_ok &= (r_i >= 1) & (r_i <= self.max_rank)
        c_ok = integral(c)
        c_i = to_int(c, c_ok)
        c_ok &= (c_i >= 0) & (c_i <= MAX_CQI)
        accepted = known & r_ok & c_ok
        for i in np.flatnonzero(~accepted):
            why = []
            if not known[i]:
                why.append(f"unknown ue_id {ue[i].item()!r}")
            if not r_ok[i]:
                why.append(f"ri {r[i].item()!r} outside 1..{self.max_rank}")
            if not c_ok[i]:
                why.append(f"cqi {c[i].item()!r} outside 0..{MAX_CQI}")
            reasons[i] = "; ".join(why)
        sel = rows[accepted]
        self.control_active[sel] = True
        self.control_ri[sel] = r_i[accepted]
        self.control_cqi[sel] = c_i[accepted]
        return accepted, reasons

    # ------------------------------------------------------------------ slots
    def current_choice(self) -> tuple[np.ndarray, np.ndarray]:
        """(rank, CQI) int64 [U] the DU uses in the next slot (control or report)."""
        rank = np.where(self.control_active, self.control_ri, self.report_ri)
        cqi = np.where(self.control_active, self.control_cqi, self.report_cqi)
        return rank, cqi

    def step(
        self,
        slot: SlotSINR,
        harq_uniforms: np.ndarray | None = None,
        csi_report: CsiReport | None = None,
    ) -> PeriodOutcome | None:
        """Run one slot: CSI measurement (in CSI-RS slots), transmission, HARQ, OLLA.

        Only the UEs of the slot's round-robin turn (:meth:`scheduled`) transmit.

        Args:
            slot: this slot's channel quantities for all ``U`` UEs.
            harq_uniforms: float [U] in [0, 1) (entries of unscheduled UEs are unused);
                default drawn from the DU's randomness.
            csi_report: in a CSI-RS slot, a report already measured from this same slot
                (e.g. by another DU of the same cell fed the same stream, see
                :attr:`last_csi_report`); default: measure it here.

        Returns:
            The :class:`PeriodOutcome` when a CSI period ends with this slot, else None.
        """
        n = self.n_ue
        sinr = slot.sinr_db
        if sinr.shape[:3] != (n, MAX_RANK, MAX_RANK):
            raise ValueError(
                f"slot.sinr_db must have shape ({n}, {MAX_RANK}, {MAX_RANK}, S), got {sinr.shape}"
            )
        u = self.randomness.harq_uniforms() if harq_uniforms is None else np.asarray(harq_uniforms)
        if u.shape != (n,):
            raise ValueError(f"harq_uniforms must have shape ({n},), got {u.shape}")
        if bool(slot.csi_instant):
            if csi_report is None:
                csi_report = self.measure_csi(slot)
            elif csi_report.ri.shape != (n,):
                raise ValueError(f"csi_report must cover {n} UEs")
            self._pending = csi_report
            self.last_csi_report = csi_report
            self._pending_due = self.slot_index + self.csi_delay_slots

        rank, cqi = self.current_choice()
        sched = self.scheduled(self.slot_index) & self.has_csi & (cqi > 0)
        mcs_all = self.du_mcs(cqi, self.olla_offset_db)
        sched &= mcs_all >= 0
        mcs = np.where(sched, mcs_all, 0)
        rows = np.flatnonzero(sched)  # the BLER model runs on the scheduled UEs only
        bler = np.zeros(n)
        bler[rows] = self._tb_bler(sinr[rows, rank[rows] - 1], mcs[rows], rank[rows])
        ack = sched & (u >= bler)
        nack = sched & ~ack
        self._update_loop(ack, sched, mcs, cqi)
        self.n_ack += ack
        self.n_nack += nack
        self.served_bits += np.where(ack, self._tbs[mcs, rank - 1], 0)
        self.bler_sum += bler
        self.mcs_counts[self._rows[sched], mcs[sched]] += 1
        self.rank_used = np.where(sched, rank, self.rank_used)

        self.slot_index += 1
        if self._pending is not None and self.slot_index == self._pending_due:
            return self._close_period()
        return None

    def du_mcs(self, cqi: np.ndarray, backoff: np.ndarray) -> np.ndarray:
        """int64 [U] MCS the DU transmits for CQIs ``cqi`` at back-offs ``backoff`` under its
        preset (:func:`~lighttune_core.linkadapt.presets.preset_mcs`; the SINR-offset loop's
        preset carries the simulator's own CQI/MCS thresholds); −1 where CQI is 0."""
        return preset_mcs(self.preset, cqi, backoff, self.scenario.cqi_table, self.scenario.mcs_table)

    def _update_loop(
        self, ack: np.ndarray, sched: np.ndarray, mcs: np.ndarray, cqi: np.ndarray
    ) -> None:
        """Move the OLLA back-off with this slot's HARQ feedback (the preset's rule).

        Per-TB loops step on every scheduled UE's ACK/NACK; the windowed (OAI) loop counts
        the slot's transmissions and NACKs and moves the MCS offset at the end of each
        ``window_ms`` window (slot indices that are multiples of the window).
        """
        top = self._n_mcs - 1
        if self.preset.loop != "mcs_window":
            self.olla_offset_db = per_tb_update(self.preset, self.olla_offset_db, ack, sched, mcs, top)
            return
        self._window_tx += sched
        self._window_nack += sched & ~ack
        if (self.slot_index + 1) % self._window_slots == 0:
            current = self.du_mcs(np.where(self.has_csi, cqi, 0), self.olla_offset_db)
            self.olla_offset_db, self._filtered_bler = window_update(
                self.preset, self.olla_offset_db, self._filtered_bler, self._window_tx,
                self._window_nack, current, top,
            )
            self._window_tx[:] = 0
            self._window_nack[:] = 0

    def _close_period(self) -> PeriodOutcome:
        """End the CSI period: emit reports, install the pending CSI, clear controls."""
        rep = self._pending
        assert rep is not None
        n_tx = self.n_ack + self.n_nack
        with np.errstate(invalid="ignore", divide="ignore"):
            true_bler = np.where(n_tx > 0, self.n_nack / np.maximum(n_tx, 1), np.nan)
            mean_bler = np.where(n_tx > 0, self.bler_sum / np.maximum(n_tx, 1), np.nan)
        lo, hi = OLLA_RANGE_DB
        reports = LinkReports(
            ue_id=self.ue_ids.copy(),
            ri=rep.ri,
            cqi=rep.cqi,
            sinr_layers_db=rep.sinr_layers_db,
            csirs_snr_db=rep.csirs_snr_db,
            rank=self.rank_used.copy(),
            mcs=np.argmax(self.mcs_counts, axis=1).astype(np.int64),
            olla_offset_db=np.clip(self.olla_offset_db, lo, hi),
            n_ack=self.n_ack,
            n_nack=self.n_nack,
            served_bits=self.served_bits,
            csi_age_ms=np.full(self.n_ue, self.csi_delay_slots * self.scenario.slot_s * 1e3),
            cqi_table=self.scenario.cqi_table,
        )
        out = PeriodOutcome(
            reports=reports,
            true_bler=true_bler,
            mean_tb_bler=mean_bler,
            period_index=self.period_index,
            start_slot=self._period_start,
            end_slot=self.slot_index,
        )
        self.report_ri = rep.ri
        self.report_cqi = rep.cqi
        self.has_csi[:] = True
        self.control_active[:] = False
        self._pending = None
        self._pending_due = -1
        self.period_index += 1
        self._period_start = self.slot_index
        self._reset_period_counters()
        return out
