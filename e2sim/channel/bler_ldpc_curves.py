"""Build the ``ldpc-mc`` BLER curve set from the committed LDPC Monte-Carlo runs.

Run from the repository root (no torch needed; the runs are committed)::

    python -m e2sim.channel.bler_ldpc_curves            # writes e2sim/channel/data/bler_curves_ldpc.json
    python -m e2sim.channel.bler_ldpc_curves --check    # recompute and compare with the committed file

Inputs (made by :mod:`e2sim.channel.bler_mc` with Sionna's 5G NR LDPC chain, seed
:data:`e2sim.channel.bler_mc.DEFAULT_SEED`): ``data/ldpc_monte_carlo.json`` (every MCS of
tables 1 and 2 at the code-block size K'_m of the DU's default 26-RB transport block) and
``data/ldpc_monte_carlo_prb{8,106}.json`` (ten MCS each at the code-block sizes of 8- and
106-RB transport blocks). Each pair holds the maximum-likelihood logistic fit
``BLER = 1 / (1 + exp((γ − γ50) / s))`` of its block-error counts.

Model (per MCS table ``t`` and MCS ``m``; γ in dB, Es/N0 per QAM symbol)::

    γ50(m, K) = γ50_m + a · ln(K / K'_m)
    s(m, K)   = s_m · (K / K'_m)^b

``γ50_m``, ``s_m``: the 26-RB fit of MCS ``m`` (the DU's default block size, so the curves are
exact there); ``a`` (dB per e-fold of K) and ``b`` are pooled over both tables by least
squares through the origin on the other-size pairs: ``a = Σ Δγ50 · Δln K / Σ Δln K²`` and
``b = Σ Δln s · Δln K / Σ Δln K²``, with ``Δ`` taken against the same MCS's 26-RB fit.
(Longer blocks have steeper waterfalls at about the same place: measured ``a = +0.0103`` dB,
``b = −0.486``, so the width scales as about ``1/√K``.) The file
tabulates the model at :data:`GRID_BITS`; :func:`e2sim.channel.bler.curve_parameters`
interpolates linearly in ln K between them (exact for γ50) and clamps outside.

MCS table 3 and the EESM β of every table are not from the Monte-Carlo runs: they are copied
from the ``sionna-tables`` set (``data/bler_curves.json``) and the file says so.
"""

from __future__ import annotations

import argparse
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from e2sim.channel.bler import curve_data
from lighttune_core.linkadapt import MAX_MCS_BY_TABLE

ANCHOR_FILE: str = "ldpc_monte_carlo.json"
"""The full run at the default 26-RB transport block: one fit per MCS of tables 1 and 2."""
OTHER_SIZE_FILES: tuple[str, ...] = ("ldpc_monte_carlo_prb8.json", "ldpc_monte_carlo_prb106.json")
"""Runs at other transport-block sizes: they fit the block-length scaling ``a``, ``b``."""
OUTPUT_FILE: str = "bler_curves_ldpc.json"
"""The curve set :mod:`e2sim.channel.bler` reads as ``ldpc-mc``."""
GRID_BITS: tuple[int, ...] = (256, 512, 1024, 2048, 4096, 8448)
"""Code-block sizes K (bits) the file tabulates; 8448 is the largest LDPC code block."""


def _data_dir() -> Path:
    return Path(str(resources.files("e2sim.channel").joinpath("data")))


def _pairs(name: str) -> list[dict[str, Any]]:
    return json.loads((_data_dir() / name).read_text())["pairs"]


def block_length_scaling(anchors: dict[tuple[int, int], dict[str, Any]],
                         others: list[dict[str, Any]]) -> dict[str, float]:
    """Pooled ``a`` (dB per e-fold of K) and ``b`` of the module's model, and their residuals.

    Args:
        anchors: the 26-RB pair of each (table, MCS).
        others: pairs at other block sizes (each needs an anchor of the same (table, MCS)).

    Returns:
        ``{"a_db": a, "b": b, "gamma10_rms_db": …, "gamma10_max_db": …, "n_pairs": n}``: the
        γ10 residuals (model − Monte-Carlo, dB) over ``others``.
    """
    if not others:
        raise ValueError("no other-size pairs to fit the block-length scaling on")
    d_lnk, d_g50, d_lns = [], [], []
    for p in others:
        ref = anchors[(p["mcs_table"], p["mcs"])]
        d_lnk.append(math.log(p["cb_bits"] / ref["cb_bits"]))
        d_g50.append(p["fit_snr50_db"] - ref["fit_snr50_db"])
        d_lns.append(math.log(p["fit_scale_db"] / ref["fit_scale_db"]))
    x = np.asarray(d_lnk)
    a = float(np.dot(x, d_g50) / np.dot(x, x))
    b = float(np.dot(x, d_lns) / np.dot(x, x))
    residual = []
    for p, dx in zip(others, x):
        ref = anchors[(p["mcs_table"], p["mcs"])]
        g50 = ref["fit_snr50_db"] + a * dx
        s = ref["fit_scale_db"] * math.exp(b * dx)
        residual.append(g50 + s * math.log(9.0) - p["fit_snr10_db"])
    r = np.asarray(residual)
    return {"a_db": a, "b": b, "gamma10_rms_db": float(np.sqrt(np.mean(r * r))),
            "gamma10_max_db": float(r[np.argmax(np.abs(r))]), "n_pairs": int(r.size)}


def build() -> dict[str, Any]:
    """The ``ldpc-mc`` curve document (the layout of ``bler_curves.json``, with ``scale_db``
    per block size and MCS)."""
    anchors = {(p["mcs_table"], p["mcs"]): p for p in _pairs(ANCHOR_FILE)}
    others = [p for name in OTHER_SIZE_FILES for p in _pairs(name)]
    scaling = block_length_scaling(anchors, others)
    fitted = curve_data("sionna-tables")
    grid = np.asarray(GRID_BITS, dtype=np.float64)
    tables: dict[str, Any] = {}
    for table in (1, 2):
        n_mcs = MAX_MCS_BY_TABLE[table] + 1
        missing = [m for m in range(n_mcs) if (table, m) not in anchors]
        if missing:
            raise ValueError(f"{ANCHOR_FILE} has no pair for table {table} MCS {missing}")
        k_ref = np.array([anchors[(table, m)]["cb_bits"] for m in range(n_mcs)], dtype=np.float64)
        g50 = np.array([anchors[(table, m)]["fit_snr50_db"] for m in range(n_mcs)])
        s = np.array([anchors[(table, m)]["fit_scale_db"] for m in range(n_mcs)])
        d = np.log(grid[:, None] / k_ref[None, :])  # [B, M]
        tables[str(table)] = {
            "code_block_sizes": list(GRID_BITS),
            "snr50_db": np.round(g50[None, :] + scaling["a_db"] * d, 4).tolist(),
            "scale_db": np.round(s[None, :] * np.exp(scaling["b"] * d), 5).tolist(),
            "anchor_cb_bits": k_ref.astype(int).tolist(),
        }
    tables["3"] = fitted["tables"]["3"]
    return {
        "source": "LDPC Monte-Carlo with Sionna 2.2.0's 5G NR chain (e2sim.channel.bler_mc, seed "
                  "20261205): data/ldpc_monte_carlo.json (every MCS of tables 1-2, 26-RB blocks) and "
                  "data/ldpc_monte_carlo_prb8.json, data/ldpc_monte_carlo_prb106.json (block-length scaling)",
        "generator": "python -m e2sim.channel.bler_ldpc_curves",
        "model": "BLER_cb = 1 / (1 + exp((sinr_db - snr50_db[cbs][mcs]) / scale_db[cbs][mcs])); "
                 "snr50 = snr50_m + a ln(K/K'_m), scale = scale_m (K/K'_m)^b with (snr50_m, scale_m) the "
                 "Monte-Carlo fit at K'_m (anchor_cb_bits); sinr is Es/N0 per QAM symbol",
        "block_length_scaling": {k: (round(v, 5) if isinstance(v, float) else v) for k, v in scaling.items()},
        "tables": tables,
        "table_3_note": "MCS table 3 is not simulated: copied from the sionna-tables set (bler_curves.json)",
        "eesm_beta": fitted["eesm_beta"],
        "eesm_beta_note": "copied from the sionna-tables set: " + fitted["eesm_beta_note"],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m e2sim.channel.bler_ldpc_curves",
        description="Build the ldpc-mc BLER curve set (data/bler_curves_ldpc.json) from the committed "
                    "LDPC Monte-Carlo runs.")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default: the package's data/bler_curves_ldpc.json)")
    parser.add_argument("--check", action="store_true",
                        help="rebuild and compare with the committed file instead of writing it")
    args = parser.parse_args(argv)
    doc = build()
    target = args.out or _data_dir() / OUTPUT_FILE
    text = json.dumps(doc, indent=1) + "\n"
    sc = doc["block_length_scaling"]
    summary = (f"a = {sc['a_db']:+.4f} dB per e-fold of K, b = {sc['b']:+.4f}; gamma10 residual at the "
               f"{sc['n_pairs']} other-size pairs: rms {sc['gamma10_rms_db']:.3f} dB, largest {sc['gamma10_max_db']:+.3f} dB")
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target} differs from what the committed runs give ({summary})")
            return 1
        print(f"{target} is up to date ({summary})")
        return 0
    target.write_text(text)
    print(f"wrote {target}: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
