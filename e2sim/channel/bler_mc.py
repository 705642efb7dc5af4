"""Monte-Carlo code-block BLER with a real 5G NR LDPC chain, to check the shipped curves.

The simulator's curves (:mod:`e2sim.channel.bler`) are fitted to Sionna's PDSCH tables, whose
largest code block is 2000 information bits; the DU's transport blocks give code blocks of
824 … 8448 bits (TS 38.212 §5.2.2), so longer blocks use the 2000-bit curve. This script
measures the code-block BLER at the code-block sizes the DU really uses and compares it
with the shipped curves. It runs NVIDIA Sionna's 5G chain, a generation-only dependency
(``pip install -e '.[bler-mc]'``; install ``torch`` for the CPU first, or pip takes a CUDA
build): the simulator never imports it.

Chain per code block, for MCS ``m`` of table ``t`` (modulation order Q_m, code rate R) and
code-block size K' (TB share + CRC, :func:`lighttune_core.linkadapt.code_block_size` of the
DU's transport block of ``--prb`` RBs, one layer):

    E = Q_m · round(K' / (R · Q_m))                  rate-matched length, bits
    u ~ Bernoulli(½)^K' → LDPC5GEncoder(K', E) (base graph, lifting, filler bits, rate
    matching and bit interleaving of TS 38.212) → Gray QAM (unit energy) → AWGN with
    N0 = 10^(−γ/10) → exact APP demapper → 20 flooding BP iterations (boxplus-φ)
    → block error if any of the K' bits differs.

γ is Es/N0 per QAM symbol in dB, the quantity the shipped curves take. The SNR grid steps
by ``--step`` (0.1 dB) around the shipped curve's 50 % point and is extended at either end
until the waterfall is covered (BLER ≥ 0.95 below, two points with no error above).

A logistic curve is fitted to each pair's error counts by maximum likelihood,

    BLER(γ) = 1 / (1 + exp((γ − γ50) / s)),     γ10 = γ50 + s · ln 9   (BLER 0.1),

and γ10 is compared with the shipped curve's γ10 at the same K' (the SINR that OLLA's 10 %
target sits at). Results go to a JSON file, written after every pair; a re-run with the
same file skips the pairs already in it (an interrupted run loses at most one pair).

Cost (Sionna 2.2.0, torch 2.13 CPU, 2 cores): the committed run (:func:`full_selection`,
57 pairs, 100 blocks per point, 8–22 points per pair) took 36–289 s per pair, median 97 s,
1.7 h in all (the six pairs below Sionna's rate limits, added later, 7 min); the 8- and
106-RB runs of ten pairs each (``data/ldpc_monte_carlo_prb{8,106}.json``) 18 and 19 min.
Rates below Sionna's encoder's limits (table 1 MCS 0–2 and 10, table 2 MCS 0–1 at 26 RBs)
use the chain's own rate matching (:class:`LdpcChain`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy.optimize import minimize

from lighttune_core.linkadapt import (
    MAX_MCS_BY_TABLE,
    MCS_TABLES,
    code_block_size,
    ldpc_base_graph,
    transport_block_size,
)

MIN_CODE_RATE: float = 0.2
"""Base graph 2's mother code rate 1/5, the lowest rate Sionna's encoder takes (it has no
repetition; :class:`LdpcChain` adds it): table 1 MCS 0–2 and table 2 MCS 0–1 are below it."""

DEFAULT_PRB: int = 26
"""RBs of one UE's transport block in the default DU (106 RBs, 32 UEs, 8-slot interval)."""

DEFAULT_SEED: int = 20261205
"""Seed of the committed run; the pair (table t, MCS m) seeds torch with ``seed + 100 t + m``."""


def full_selection() -> str:
    """Every MCS of tables 1 and 2 (table 1 MCS 0–28, table 2 MCS 0–27), as ``--select`` text.

    The pair's seed depends on (table, MCS) only, so any order or subset reproduces the same
    pairs; every MCS is simulable at every size (:class:`LdpcChain` repeats bits where the
    rate is below the mother code's).
    """
    return ";".join(f"{table}:{','.join(str(m) for m in range(MAX_MCS_BY_TABLE[table] + 1))}" for table in (1, 2))


LN9: float = math.log(9.0)
"""γ10 − γ50 = s · ln 9 for the logistic curve."""


def parse_selection(text: str) -> list[tuple[int, int]]:
    """``"1:3,4;2:3"`` → [(1, 3), (1, 4), (2, 3)]; ValueError naming the bad part."""
    pairs: list[tuple[int, int]] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        table_text, _, mcs_text = part.partition(":")
        try:
            table = int(table_text)
            mcs_list = [int(m) for m in mcs_text.split(",") if m.strip()]
        except ValueError:
            raise ValueError(f"selection part {part!r}: expected TABLE:MCS,MCS,...") from None
        if table not in (1, 2):
            raise ValueError(f"selection part {part!r}: MCS table must be 1 or 2")
        if not mcs_list:
            raise ValueError(f"selection part {part!r}: no MCS given")
        for mcs in mcs_list:
            if not 0 <= mcs <= MAX_MCS_BY_TABLE[table]:
                raise ValueError(f"selection part {part!r}: MCS {mcs} outside 0 .. {MAX_MCS_BY_TABLE[table]}")
            pairs.append((table, mcs))
    if not pairs:
        raise ValueError("empty selection")
    return pairs


def block_geometry(mcs_table: int, mcs: int, n_prb: int) -> dict[str, float | int]:
    """K' (bits), Q_m, R, the rate-matched length E and the LDPC base graph (TS 38.212
    §7.2.2) of one code block of the DU's TB.

    ``E = Q_m · round(K' / (R · Q_m))``, at least ``K' + Q_m`` so the code has parity. Below
    base graph 2's rate 1/5, or at ``K'/E <= 1/3`` on base graph 1, ``E`` is longer than the
    mother code: :class:`LdpcChain` then repeats bits of the circular buffer.
    """
    qm = int(MCS_TABLES[mcs_table][mcs, 0])
    rate = float(MCS_TABLES[mcs_table][mcs, 1]) / 1024.0
    tbs = transport_block_size(mcs, 1, n_prb, mcs_table=mcs_table)
    k = int(code_block_size(tbs, rate))
    e = max(qm * int(round(k / (rate * qm))), k + qm)
    return {"cb_bits": k, "qm": qm, "code_rate": rate, "coded_bits": e, "tbs": int(tbs),
            "base_graph": int(ldpc_base_graph(tbs, rate))}


def fit_logistic(snr_db: np.ndarray, errors: np.ndarray, blocks: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (γ50 dB, s dB) of BLER = 1/(1 + exp((γ − γ50)/s)) from counts.

    Args:
        snr_db: float [P] grid points.
        errors: int [P] block errors per point.
        blocks: int [P] blocks per point (> 0).
    """
    snr = np.asarray(snr_db, dtype=np.float64)
    k = np.asarray(errors, dtype=np.float64)
    n = np.asarray(blocks, dtype=np.float64)
    if snr.size < 2 or np.any(n <= 0) or np.any((k < 0) | (k > n)):
        raise ValueError("need >= 2 points with 0 <= errors <= blocks and blocks > 0")
    ratio = k / n
    start = float(np.interp(0.5, ratio[::-1], snr[::-1])) if ratio[0] >= ratio[-1] else float(snr.mean())

    def nll(params: np.ndarray) -> float:
        z = (snr - params[0]) / math.exp(params[1])
        # log p = -log(1 + e^z), log(1 - p) = z - log(1 + e^z)
        log1pe = np.logaddexp(0.0, z)
        return float(np.sum(k * log1pe + (n - k) * (log1pe - z)))

    result = minimize(nll, np.array([start, math.log(0.1)]), method="Nelder-Mead",
                      options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 4000})
    return float(result.x[0]), float(math.exp(result.x[1]))


def rate_matching_indices(coded_bits: int, buffer_bits: int, qm: int) -> np.ndarray:
    """Circular-buffer bit carried by each transmitted position, int64 [E].

    TS 38.212 §5.4.2.1 reads ``e_k = w_((k0 + k) mod N_cb)`` (redundancy version 0: ``k0 = 0``;
    ``N_cb`` = ``buffer_bits``, fillers already removed; ``k ≥ N_cb`` repeats bits) and
    §5.4.2.2 interleaves ``f_(i + j Q_m) = e_(i E/Q_m + j)``, ``i < Q_m``, ``j < E/Q_m``.
    So position ``p = i + j Q_m`` carries buffer bit ``(i E/Q_m + j) mod N_cb``: the sender
    sends ``w[idx]``, the receiver adds each position's LLR into its buffer bit
    (``np.bincount(idx, llr, N_cb)``: the copies of a repeated bit are combined, a bit never
    sent keeps LLR 0).

    Raises:
        ValueError: ``E`` not a positive multiple of ``Q_m``, or ``N_cb`` < 1.
    """
    if coded_bits <= 0 or qm <= 0 or coded_bits % qm or buffer_bits < 1:
        raise ValueError(f"need E > 0 a multiple of Q_m and N_cb >= 1, got E={coded_bits}, "
                         f"Q_m={qm}, N_cb={buffer_bits}")
    i, j = np.meshgrid(np.arange(qm), np.arange(coded_bits // qm), indexing="xy")  # [E/Q_m, Q_m]
    return ((i * (coded_bits // qm) + j) % buffer_bits).reshape(-1).astype(np.int64)


class LdpcChain:
    """Sionna's 5G LDPC + QAM + AWGN chain for one (K', E, Q_m); torch imported here only.

    Where Sionna's encoder takes ``(K', E)`` it does the rate matching and bit interleaving of
    TS 38.212 §5.4.2 itself (redundancy version 0, no limited-buffer rate matching). It refuses
    rates below its base graph's mother rate (1/5 on base graph 2, 1/3 on base graph 1), also
    where the filler bits alone push the rate there; for those blocks this chain does the
    rate matching: the encoder gives the whole circular buffer ``w`` (``N_cb`` bits: the
    codeword without its 2Z punctured systematic bits and the filler bits), the chain sends
    ``e_i = w_(i mod N_cb)``, ``i = 0 … E−1`` (§5.4.2.1's circular read from ``k0 = 0``;
    ``repetition`` is True where ``E > N_cb``, so bits are sent more than once), through
    §5.4.2.2's interleaver, and the receiver adds the LLRs of every copy of a buffer bit,
    ``L_j = Σ_(i ≡ j mod N_cb) ℓ_i`` (a bit never sent gets ``L_j = 0``), before decoding
    (:func:`rate_matching_indices`). On table 1 MCS 4 (K' 2208, E 6996), where Sionna's own
    rate matching applies too, both gave 380 / 280 / 117 and 382 / 300 / 125 block errors in
    400 at −2.2 / −2.0 / −1.8 dB (same seeds).
    """

    def __init__(self, cb_bits: int, coded_bits: int, qm: int, iterations: int = 20,
                 base_graph: int | None = None) -> None:
        import torch  # generation-only dependency
        from sionna.phy.channel import AWGN
        from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
        from sionna.phy.mapping import Demapper, Mapper

        self._torch = torch
        self.k = cb_bits
        bg = None if base_graph is None else f"bg{base_graph}"
        valid_length = min(coded_bits, 3 * cb_bits - 1)  # rate > 1/3: taken on either base graph
        try:
            self._encoder = LDPC5GEncoder(cb_bits, coded_bits, num_bits_per_symbol=qm, bg=bg)
            self.own_rate_matching = False
        except ValueError:
            # Build at a length Sionna takes, then hand it the whole buffer as its length ``n``
            # (read by its call and by the decoder; checked against sionna-no-rt 2.2.0, the
            # version the bler-mc extra pins).
            self._encoder = LDPC5GEncoder(cb_bits, valid_length, bg=bg)
            self._encoder._n = int(self._encoder.n_cb_comp)
            self._encoder._coderate = cb_bits / self._encoder._n
            self.own_rate_matching = True
        self.buffer_bits = int(self._encoder.n_cb_comp)
        self.repetition = coded_bits > self.buffer_bits
        if self.own_rate_matching:
            self._carried = torch.as_tensor(rate_matching_indices(coded_bits, self.buffer_bits, qm))
        self._decoder = LDPC5GDecoder(self._encoder, num_iter=iterations, hard_out=True,
                                      return_infobits=True)
        self._mapper = Mapper("qam", qm)
        self._demapper = Demapper("app", "qam", qm)
        self._awgn = AWGN()

    def _transmit(self, bits: Any, no: Any) -> Any:
        """LLRs the decoder takes, ``[batch, n]`` (``n`` = E, or ``N_cb`` with the chain's own
        rate matching)."""
        torch = self._torch
        code = self._encoder(bits)
        if not self.own_rate_matching:
            return self._demapper(self._awgn(self._mapper(code), no), no)
        llr = self._demapper(self._awgn(self._mapper(code[:, self._carried]), no), no)
        combined = torch.zeros(llr.shape[0], self.buffer_bits, dtype=llr.dtype)
        return combined.index_add_(1, self._carried, llr)

    def block_errors(self, snr_db: float, n_blocks: int, batch: int = 50) -> int:
        """Block errors among ``n_blocks`` random code blocks at Es/N0 ``snr_db``."""
        torch = self._torch
        no = torch.tensor(10.0 ** (-snr_db / 10.0))
        errors = 0
        with torch.no_grad():
            for start in range(0, n_blocks, batch):
                size = min(batch, n_blocks - start)
                bits = torch.randint(0, 2, (size, self.k)).float()
                decoded = self._decoder(self._transmit(bits, no))
                errors += int((decoded != bits).any(dim=1).sum())
        return errors


def scan_waterfall(
    errors_at: Callable[[float], int], centre_db: float, n_blocks: int, step_db: float = 0.1,
    half_width_db: float = 0.6, max_extra: int = 15,
) -> tuple[list[float], list[int]]:
    """Grid points and error counts covering a waterfall around ``centre_db``.

    Starts at ``centre − half_width`` and goes up in ``step_db``; prepends points below the
    start while BLER < 0.95 there, and continues above ``centre + half_width`` until two
    consecutive points have no error (each extension at most ``max_extra`` points). Stops
    early above once two consecutive points have no error.
    """
    steps = int(round(half_width_db / step_db))
    grid = [round(centre_db + i * step_db, 3) for i in range(-steps, steps + 1)]
    points: dict[float, int] = {}
    low = grid[0]
    points[low] = errors_at(low)
    extra = 0
    while points[low] < 0.95 * n_blocks and extra < max_extra:
        low = round(low - step_db, 3)
        points[low] = errors_at(low)
        extra += 1
    snr = grid[0]
    zeros = 1 if points[snr] == 0 else 0
    last = grid[-1] + max_extra * step_db
    while zeros < 2 and snr < last - 1e-9:
        snr = round(snr + step_db, 3)
        points[snr] = errors_at(snr)
        zeros = zeros + 1 if points[snr] == 0 else 0
    ordered = sorted(points)
    return ordered, [points[s] for s in ordered]


def run(selection: list[tuple[int, int]], output: Path, n_prb: int, n_blocks: int,
        step_db: float, seed: int) -> dict[str, Any]:
    """Simulate every selected pair not yet in ``output``; rewrite ``output`` after each."""
    import torch

    from e2sim.channel.bler import curve_parameters, mcs_sinr_threshold_db

    doc: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    settings = {"n_prb": n_prb, "blocks_per_point": n_blocks, "step_db": step_db, "seed": seed}
    if doc and doc.get("settings") != settings:
        raise ValueError(f"{output} was made with {doc.get('settings')}, not {settings}: "
                         "use another output file")
    doc.setdefault("settings", settings)
    doc.setdefault("chain", "Sionna 2.2.0 LDPC5GEncoder/LDPC5GDecoder (20 flooding BP iterations, "
                   "boxplus-phi), Gray QAM, AWGN, APP demapper; snr is Es/N0 per QAM symbol, dB")
    doc.setdefault("pairs", [])
    done = {(p["mcs_table"], p["mcs"]) for p in doc["pairs"]}
    for table, mcs in selection:
        if (table, mcs) in done:
            continue
        geometry = block_geometry(table, mcs, n_prb)
        snr50_shipped = float(curve_parameters(mcs, table, geometry["cb_bits"])[0])
        snr10_shipped = float(mcs_sinr_threshold_db(table, 0.1, cb_bits=geometry["cb_bits"])[mcs])
        pair_seed = seed + 100 * table + mcs
        torch.manual_seed(pair_seed)
        chain = LdpcChain(int(geometry["cb_bits"]), int(geometry["coded_bits"]), int(geometry["qm"]),
                          base_graph=int(geometry["base_graph"]))
        began = time.monotonic()
        snr, errors = scan_waterfall(lambda s: chain.block_errors(s, n_blocks), snr50_shipped,
                                     n_blocks, step_db)
        snr50, scale = fit_logistic(np.array(snr), np.array(errors), np.full(len(snr), n_blocks))
        entry = {
            "mcs_table": table, "mcs": mcs, **geometry,
            "snr_db": snr, "errors": errors, "blocks": n_blocks,
            "fit_snr50_db": round(snr50, 4), "fit_scale_db": round(scale, 4),
            "fit_snr10_db": round(snr50 + scale * LN9, 4),
            "shipped_snr10_db": round(snr10_shipped, 4),
            "buffer_bits": chain.buffer_bits, "repetition": chain.repetition,
            "own_rate_matching": chain.own_rate_matching,
            "torch_seed": pair_seed,
            "seconds": round(time.monotonic() - began, 1),
        }
        entry["snr10_shift_db"] = round(entry["shipped_snr10_db"] - entry["fit_snr10_db"], 4)
        doc["pairs"].append(entry)
        output.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"table {table} MCS {mcs:2d} K'={geometry['cb_bits']:5d} E={geometry['coded_bits']:5d}: "
              f"LDPC γ10 {entry['fit_snr10_db']:+.2f} dB (s {scale:.3f}), shipped {entry['shipped_snr10_db']:+.2f} dB, "
              f"shipped − LDPC {entry['snr10_shift_db']:+.2f} dB [{entry['seconds']:.0f} s, {len(snr)} points]",
              flush=True)
    return doc


def summarise(doc: dict[str, Any]) -> str:
    """One line per MCS table: pairs, mean and largest |shipped γ10 − LDPC γ10| (dB), and the
    median fitted LDPC scale s (dB) next to the shipped curves' s at the same K'."""
    from e2sim.channel.bler import curve_parameters

    lines = []
    for table in sorted({p["mcs_table"] for p in doc.get("pairs", [])}):
        pairs = [p for p in doc["pairs"] if p["mcs_table"] == table]
        shifts = np.array([p["snr10_shift_db"] for p in pairs])
        worst = pairs[int(np.argmax(np.abs(shifts)))]
        shipped_scale = [float(curve_parameters(p["mcs"], table, p["cb_bits"])[1]) for p in pairs]
        lines.append(f"table {table}: {shifts.size} MCS, shipped − LDPC γ10 mean {shifts.mean():+.2f} dB, "
                     f"|.| mean {np.abs(shifts).mean():.2f} dB, largest {worst['snr10_shift_db']:+.2f} dB "
                     f"(MCS {worst['mcs']}, K'={worst['cb_bits']}), within 0.3 dB: "
                     f"{int(np.sum(np.abs(shifts) <= 0.3))} of {shifts.size}; scale s median "
                     f"{np.median([p['fit_scale_db'] for p in pairs]):.3f} dB (shipped "
                     f"{np.median(shipped_scale):.3f} dB)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m e2sim.channel.bler_mc",
        description="Measure code-block BLER with Sionna's 5G LDPC chain at the DU's code-block "
        "sizes and compare it with the shipped curves (needs the bler-mc extra).")
    parser.add_argument("output", type=Path, help="JSON results file (resumed if it exists)")
    parser.add_argument("--select", default=None,
                        help="MCS per table, 'TABLE:MCS,MCS;TABLE:MCS' (default: every MCS of tables 1 and 2)")
    parser.add_argument("--prb", type=int, default=DEFAULT_PRB,
                        help="RBs of the transport block whose code-block size is used (default: %(default)s)")
    parser.add_argument("--blocks", type=int, default=100, help="code blocks per SNR point (default: %(default)s)")
    parser.add_argument("--step", type=float, default=0.1, help="SNR step, dB (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="torch seed base (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--summary", action="store_true",
                        help="print the summary of an existing output file and exit (no torch needed)")
    args = parser.parse_args(argv)
    if args.summary:
        if not args.output.is_file():
            parser.error(f"{args.output} does not exist")
        print(summarise(json.loads(args.output.read_text())))
        return 0
    if not 1 <= args.prb <= 275:
        parser.error("--prb must be in 1 .. 275")
    try:
        selection = parse_selection(args.select or full_selection())
    except ValueError as exc:
        parser.error(str(exc))
    if args.blocks < 10 or not 0.01 <= args.step <= 1.0 or args.threads < 1:
        parser.error("--blocks must be >= 10, --step in 0.01 .. 1 dB and --threads >= 1")
    if not args.output.parent.is_dir():
        parser.error(f"output folder {args.output.parent} does not exist")
    try:
        import sionna.phy  # noqa: F401  (checked here, used in LdpcChain)
        import torch
    except ImportError:
        parser.error("torch and sionna-no-rt are needed: pip install torch (CPU build) then "
                     "pip install -e '.[bler-mc]'")
    torch.set_num_threads(args.threads)
    print(summarise(run(selection, args.output, args.prb, args.blocks, args.step, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
