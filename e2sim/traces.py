"""Channel traces: record the per-slot SINR stream of a cell, replay it bit for bit.

A trace holds what :meth:`e2sim.channel.LinkChannel.step` returns slot after slot (the
:class:`~e2sim.channel.SlotSINR` stream) plus the scenario, so a DU fed from a trace
behaves exactly as one fed from the live channel with the same scenario and seed
(the DU's own random draws derive from the scenario seed, which the trace stores).
Replay does no radio computation, which is what makes it fast (``benchmarks/sim_speed.py``).

File format, schema version 1
-----------------------------
An uncompressed numpy ``.npz`` archive with these members:

=================  =========================  ==========================================
member             dtype, shape               meaning
=================  =========================  ==========================================
``schema_version`` int64 []                   1
``meta``           str []                     JSON: ``format`` ("lighttune-e2sim-trace"),
                                              ``schema_version``, ``scenario``
                                              (``Scenario.to_dict()``), ``n_slots``,
                                              ``n_ue``, ``n_subbands``, ``sinr_dtype``,
                                              ``source`` (who produced the numbers),
                                              ``generator`` (e2sim version)
``sinr_packed``    float32|float16 [T,U,10,S] post-equaliser SINR, dB, of the 10 real
                                              (rank, layer) pairs in the order
                                              (1,1), (2,1), (2,2), (3,1), (3,2), (3,3),
                                              (4,1) .. (4,4) (rank, layer; 1-based)
``csi_instant``    bool [T]                   precoders refreshed / CSI-RS in this slot
``csirs_snr_db``   float32 [T, U]             wideband CSI-RS SNR estimate, dB
``slot``           int64 [T]                  slot index of each entry
``subband_n_rb``   int64 [S]                  RBs per subband
``ue_snr_db``      float64 [U]                per-UE mean SNR, dB (NaN if unknown)
=================  =========================  ==========================================

Only the lower triangle ``layer <= rank`` of the ``[4 ranks, 4 layers]`` grid is stored
(the rest is NaN by definition), 10 of 16 values. Size: ``T · U · S · 10`` values, i.e.
``40 · S`` bytes per UE-slot in float32 and ``20 · S`` in float16, where S is the
channel's subband count for the profile (14 with 8-RB subbands of 106 RBs: 560 bytes per
UE-slot, so a 10 s, 32-UE run at 30 kHz — 20,000 slots — takes 358 MB in float32;
``benchmarks/results/sim_speed.json`` records measured sizes). Only float32 traces
replay bit-identically (the live channel produces float32); float16 halves the size at
a rounding error below 0.03 dB at 60 dB.

The whole file is loaded into memory on opening.

Importing SINR from another link-level simulator
------------------------------------------------
:func:`import_external_trace` writes a trace from plain arrays: per-slot, per-rank,
per-layer, per-subband post-equaliser SINR in dB, shape ``[T, U, R, L, S]`` (or
``[T, U, R, L]`` for wideband values), with ``R <= 4`` ranks and ``L <= 4`` layers,
layer ``k`` of rank ``r`` at ``[..., r-1, k-1, :]``. Entries with ``k > r`` are ignored.
Ranks the other simulator did not evaluate are stored as NaN (the DU never reports them,
since they cannot meet the BLER target). Export your per-slot SINRs into such an array
(e.g. ``np.load`` of the other tool's output and a transpose to this axis order), pick a
:class:`~e2sim.channel.Scenario` that describes the run (its ``n_ue``, ``n_rb``, CSI period,
tables and seed are used by the DU; profile, Doppler and correlation are descriptive), and
call the function. Without CSI-RS SNRs the wideband rank-1 SINR (linear mean over subbands)
stands in; without CSI instants they are every ``csi_period_slots`` from slot 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e2sim.channel import LinkChannel, Scenario, SlotSINR
from lighttune_core.report import MAX_RANK

TRACE_FORMAT: str = "lighttune-e2sim-trace"
"""Value of ``meta["format"]``."""

TRACE_SCHEMA_VERSION: int = 1
"""Schema version this module writes and reads."""

TRACE_DTYPES: tuple[str, ...] = ("float32", "float16")
"""Allowed SINR storage types."""

RANK_INDEX, LAYER_INDEX = (a.astype(np.int64) for a in np.tril_indices(MAX_RANK))
"""The 10 stored (rank - 1, layer - 1) pairs, rank-major."""
N_PACKED: int = int(RANK_INDEX.shape[0])

GENERATOR: str = "e2sim.traces 1"


class TraceFormatError(ValueError):
    """A trace file is not of this format or schema version, or is inconsistent."""


def pack_sinr(sinr_db: np.ndarray) -> np.ndarray:
    """``[..., 4, 4, S]`` SINR grid -> ``[..., 10, S]`` lower triangle (rank-major)."""
    return sinr_db[..., RANK_INDEX, LAYER_INDEX, :]


def unpack_sinr(packed: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``[..., 10, S]`` -> float32 ``[..., 4, 4, S]`` with NaN above the diagonal."""
    shape = packed.shape[:-2] + (MAX_RANK, MAX_RANK, packed.shape[-1])
    if out is None:
        out = np.full(shape, np.nan, dtype=np.float32)
    out[..., RANK_INDEX, LAYER_INDEX, :] = packed
    return out


def _meta(scenario: Scenario, n_slots: int, n_subbands: int, dtype: str, source: str) -> str:
    return json.dumps(
        {
            "format": TRACE_FORMAT,
            "schema_version": TRACE_SCHEMA_VERSION,
            "scenario": scenario.to_dict(),
            "n_slots": int(n_slots),
            "n_ue": int(scenario.n_ue),
            "n_subbands": int(n_subbands),
            "sinr_dtype": dtype,
            "source": source,
            "generator": GENERATOR,
        },
        sort_keys=True,
    )


def _check_dtype(dtype: str) -> str:
    name = np.dtype(dtype).name
    if name not in TRACE_DTYPES:
        raise ValueError(f"dtype must be one of {TRACE_DTYPES}, got {dtype!r}")
    return name


def _write(
    path: str | Path,
    scenario: Scenario,
    sinr_packed: np.ndarray,
    csi_instant: np.ndarray,
    csirs_snr_db: np.ndarray,
    subband_n_rb: np.ndarray,
    ue_snr_db: np.ndarray,
    source: str,
) -> Path:
    out = Path(path)
    n_slots, _, _, n_sub = sinr_packed.shape
    meta = _meta(scenario, n_slots, n_sub, sinr_packed.dtype.name, source)
    with out.open("wb") as fh:
        np.savez(
            fh,
            schema_version=np.int64(TRACE_SCHEMA_VERSION),
            meta=np.array(meta),
            sinr_packed=sinr_packed,
            csi_instant=np.asarray(csi_instant, dtype=bool),
            csirs_snr_db=np.asarray(csirs_snr_db, dtype=np.float32),
            slot=np.arange(n_slots, dtype=np.int64),
            subband_n_rb=np.asarray(subband_n_rb, dtype=np.int64),
            ue_snr_db=np.asarray(ue_snr_db, dtype=np.float64),
        )
    return out


def record_trace(
    scenario: Scenario,
    n_slots: int,
    path: str | Path,
    dtype: str = "float32",
    channel: LinkChannel | None = None,
    progress: bool = False,
) -> Path:
    """Run the live channel for ``n_slots`` slots and write its SINR stream.

    Args:
        scenario: the cell's scenario (used to build the channel if none is given).
        n_slots: slots to record, >= 1.
        path: output ``.npz`` file.
        dtype: SINR storage type, ``"float32"`` (bit-identical replay) or ``"float16"``.
        channel: an unstepped channel of ``scenario`` to record from (default: a new one).
        progress: show a tqdm progress bar.

    Returns:
        The path written.
    """
    name = _check_dtype(dtype)
    if isinstance(n_slots, bool) or not isinstance(n_slots, (int, np.integer)) or n_slots < 1:
        raise ValueError(f"n_slots must be a positive integer, got {n_slots!r}")
    link = channel if channel is not None else LinkChannel(scenario)
    if link.scenario != scenario:
        raise ValueError("channel was built for another scenario")
    if link.slot != -1:
        raise ValueError("channel has already been stepped; record from slot 0")
    n = scenario.n_ue
    sinr = np.empty((n_slots, n, N_PACKED, link.n_subbands), dtype=name)
    csi = np.zeros(n_slots, dtype=bool)
    snr = np.empty((n_slots, n), dtype=np.float32)
    slots = range(n_slots)
    if progress:
        from tqdm import tqdm

        slots = tqdm(slots, desc="record trace", unit="slot")
    for t in slots:
        s = link.step()
        sinr[t] = pack_sinr(s.sinr_db)
        csi[t] = s.csi_instant
        snr[t] = s.csirs_snr_db
    return _write(path, scenario, sinr, csi, snr, link.subband_n_rb, link.ue_snr_db, "e2sim.channel.LinkChannel")


def import_external_trace(
    path: str | Path,
    scenario: Scenario,
    sinr_db: np.ndarray,
    csi_instant: np.ndarray | None = None,
    csirs_snr_db: np.ndarray | None = None,
    subband_n_rb: np.ndarray | None = None,
    source: str = "external",
    dtype: str = "float32",
) -> Path:
    """Write a trace from another simulator's per-slot SINRs (see module docstring).

    Args:
        path: output ``.npz`` file.
        scenario: describes the run; ``scenario.n_ue`` must equal ``U``.
        sinr_db: float ``[T, U, R, L, S]`` or ``[T, U, R, L]`` dB, ``R, L <= 4``; finite
            for every layer ``k <= r`` of ranks ``r <= R`` (NaN allowed only for whole
            ranks the tool did not evaluate).
        csi_instant: bool [T]; default every ``scenario.csi_period_slots`` from slot 0.
        csirs_snr_db: float [T, U] dB; default the wideband rank-1 SINR.
        subband_n_rb: int [S] RBs per subband, summing to ``scenario.n_rb``; default an
            equal split.
        source: free text naming the producing tool (stored in the metadata).
        dtype: storage type (``"float32"`` or ``"float16"``).

    Returns:
        The path written.

    Raises:
        ValueError: shapes, ranges or NaN layout that do not fit; the message names the
            argument.
    """
    name = _check_dtype(dtype)
    s = np.asarray(sinr_db, dtype=np.float64)
    if s.ndim == 4:
        s = s[..., None]
    if s.ndim != 5:
        raise ValueError(f"sinr_db must be [T, U, R, L, S] or [T, U, R, L], got shape {np.shape(sinr_db)}")
    n_slots, n_ue, n_rank, n_layer, n_sub = s.shape
    if n_slots < 1 or n_sub < 1:
        raise ValueError("sinr_db needs at least one slot and one subband")
    if n_ue != scenario.n_ue:
        raise ValueError(f"sinr_db has {n_ue} UEs but scenario.n_ue is {scenario.n_ue}")
    if not (1 <= n_rank <= MAX_RANK and 1 <= n_layer <= MAX_RANK):
        raise ValueError(f"sinr_db must have 1..{MAX_RANK} ranks and layers, got {n_rank} x {n_layer}")
    grid = np.full((n_slots, n_ue, MAX_RANK, MAX_RANK, n_sub), np.nan)
    grid[:, :, :n_rank, :n_layer] = s
    real = np.zeros((MAX_RANK, MAX_RANK), dtype=bool)
    real[RANK_INDEX, LAYER_INDEX] = True
    grid[:, :, ~real, :] = np.nan
    packed = pack_sinr(grid)  # [T, U, 10, S]
    if np.any(np.isinf(packed)):
        raise ValueError("sinr_db holds infinite values")
    finite = np.isfinite(packed)
    rank_of_pair = RANK_INDEX
    for r in range(MAX_RANK):
        cols = rank_of_pair == r
        f = finite[:, :, cols, :]
        if f.any() and not f.all():
            raise ValueError(
                f"sinr_db rank {r + 1}: NaN in some but not all layers/slots/UEs; "
                "give every layer of an evaluated rank"
            )
    if not finite[:, :, 0, :].all():
        raise ValueError("sinr_db must give rank 1 for every slot and UE")
    if np.any((packed[finite] < -60.0) | (packed[finite] > 90.0)):
        raise ValueError("sinr_db values must be in dB (-60 .. 90); convert linear values first")
    if csi_instant is None:
        csi = np.arange(n_slots) % scenario.csi_period_slots == 0
    else:
        csi = np.asarray(csi_instant, dtype=bool)
        if csi.shape != (n_slots,):
            raise ValueError(f"csi_instant must have shape ({n_slots},), got {csi.shape}")
    if not csi[0]:
        raise ValueError("csi_instant[0] must be True: the DU needs a CSI report to start")
    if csirs_snr_db is None:
        snr = 10.0 * np.log10(np.mean(10.0 ** (grid[:, :, 0, 0, :] / 10.0), axis=-1))
    else:
        snr = np.asarray(csirs_snr_db, dtype=np.float64)
        if snr.shape != (n_slots, n_ue):
            raise ValueError(f"csirs_snr_db must have shape ({n_slots}, {n_ue}), got {snr.shape}")
        if not np.all(np.isfinite(snr)):
            raise ValueError("csirs_snr_db must be finite")
    if subband_n_rb is None:
        base = scenario.n_rb // n_sub
        if base < 1:
            raise ValueError(f"{n_sub} subbands do not fit {scenario.n_rb} RBs")
        rbs = np.full(n_sub, base, dtype=np.int64)
        rbs[: scenario.n_rb - base * n_sub] += 1
    else:
        rbs = np.asarray(subband_n_rb, dtype=np.int64)
        if rbs.shape != (n_sub,) or np.any(rbs < 1) or rbs.sum() != scenario.n_rb:
            raise ValueError(f"subband_n_rb must be {n_sub} positive counts summing to n_rb={scenario.n_rb}")
    return _write(
        path, scenario, packed.astype(name), csi, snr, rbs, np.full(n_ue, np.nan), f"external: {source}"
    )


@dataclass(frozen=True)
class TraceInfo:
    """A trace's metadata (the decoded ``meta`` member)."""

    scenario: Scenario
    n_slots: int
    n_subbands: int
    sinr_dtype: str
    source: str
    generator: str


class TraceReplay:
    """Replays a trace file as a channel: :meth:`step` returns the recorded :class:`SlotSINR`.

    Has the parts of :class:`~e2sim.channel.LinkChannel`'s interface the DU and the
    experiments use (``scenario``, ``step()``, ``slot``, ``n_subbands``, ``subband_n_rb``,
    ``ue_snr_db``).

    Raises:
        TraceFormatError: not a trace, unknown schema version, or inconsistent members.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            with np.load(Path(path), allow_pickle=False) as npz:
                members = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise TraceFormatError(f"{path}: not a readable .npz trace ({exc})") from exc
        required = (
            "schema_version", "meta", "sinr_packed", "csi_instant", "csirs_snr_db",
            "slot", "subband_n_rb", "ue_snr_db",
        )
        missing = [k for k in required if k not in members]
        if missing:
            raise TraceFormatError(f"{path}: missing member(s) {', '.join(missing)}")
        version = int(members["schema_version"])
        if version != TRACE_SCHEMA_VERSION:
            raise TraceFormatError(
                f"{path}: schema_version {version}, this reader knows {TRACE_SCHEMA_VERSION}"
            )
        try:
            meta = json.loads(str(members["meta"]))
            scenario = Scenario.from_dict(meta["scenario"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TraceFormatError(f"{path}: bad meta entry ({exc})") from exc
        if meta.get("format") != TRACE_FORMAT:
            raise TraceFormatError(f"{path}: meta.format is {meta.get('format')!r}")
        sinr = members["sinr_packed"]
        n_slots = sinr.shape[0]
        if sinr.ndim != 4 or sinr.shape[1:3] != (scenario.n_ue, N_PACKED):
            raise TraceFormatError(f"{path}: sinr_packed shape {sinr.shape} does not fit the scenario")
        if members["csi_instant"].shape != (n_slots,) or members["csirs_snr_db"].shape != (
            n_slots,
            scenario.n_ue,
        ):
            raise TraceFormatError(f"{path}: csi_instant / csirs_snr_db shapes do not match sinr_packed")
        self.path = Path(path)
        self.info = TraceInfo(
            scenario=scenario,
            n_slots=int(n_slots),
            n_subbands=int(sinr.shape[3]),
            sinr_dtype=str(sinr.dtype),
            source=str(meta.get("source", "")),
            generator=str(meta.get("generator", "")),
        )
        self.scenario = scenario
        self.subband_n_rb: np.ndarray = members["subband_n_rb"]
        self.ue_snr_db: np.ndarray = members["ue_snr_db"]
        self._sinr = sinr
        self._csi = members["csi_instant"]
        self._snr = members["csirs_snr_db"]
        self._slot_ids = members["slot"]
        self._slot = -1

    @property
    def n_slots(self) -> int:
        """Slots in the trace."""
        return self.info.n_slots

    @property
    def n_subbands(self) -> int:
        """Subbands S."""
        return self.info.n_subbands

    @property
    def slot(self) -> int:
        """Index of the last slot returned by :meth:`step` (-1 before the first)."""
        return self._slot

    def step(self) -> SlotSINR:
        """The next recorded slot.

        Raises:
            EOFError: the trace is exhausted.
        """
        t = self._slot + 1
        if t >= self.info.n_slots:
            raise EOFError(f"trace {self.path.name} has only {self.info.n_slots} slots")
        self._slot = t
        return SlotSINR(
            slot=int(self._slot_ids[t]),
            sinr_db=unpack_sinr(self._sinr[t]),
            csi_instant=bool(self._csi[t]),
            csirs_snr_db=self._snr[t],
        )

    def __iter__(self) -> Iterator[SlotSINR]:
        while self._slot + 1 < self.info.n_slots:
            yield self.step()
