"""Fit the per-MCS AWGN code-block BLER curves shipped in ``data/bler_curves.json``.

Run once to regenerate the data file from NVIDIA Sionna's tables::

    pip download --no-deps sionna-no-rt==2.2.0 -d sionna_wheel
    (cd sionna_wheel && unzip -q sionna_no_rt-2.2.0-*.whl 'sionna/sys/*')
    python -m e2sim.channel.bler_fit sionna_wheel/sionna/sys e2sim/channel/data/bler_curves.json

Input (Apache-2.0 data, Sionna 2.2.0): ``bler_tables/PDSCH_table{1,2,3}.json`` — one LDPC
code block's BLER over an Es/N0 grid (dB) per MCS and code-block size (24, 100, 500,
1000, 2000 information bits) — and ``esm_params/eesm_beta_table.json`` (EESM β per MCS,
tables 1 and 2; Sionna notes the values have no recoverable calibration provenance).

Model, per MCS table and code-block size K (shared slope over MCS so that curves of
different MCS never cross, which keeps BLER increasing in MCS at any SINR):

    BLER_cb(γ_dB) = 1 / (1 + exp((γ_dB − γ50[mcs]) / s)),   s > 0 in dB.

γ50 and s minimise the squared BLER error over all grid points of that table and K
(scipy least squares); γ50 is then made non-decreasing in MCS (running maximum).
MCS rows absent from a table (table 1: 0–2, table 2: 0–1, table 3: 0–8, all QPSK with a
50 % point below the −5 dB grid start) are extrapolated: γ50 is regressed on the Shannon
SNR of the MCS, 10·log10(2^SE − 1), over the four lowest tabulated MCS, and that line is
evaluated at the missing MCS' SE. EESM β for table 3 (not shipped) is interpolated over
table 1's β against spectral efficiency.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from lighttune_core.linkadapt import MAX_MCS_BY_TABLE, mcs_spectral_efficiency

FITTED_TABLES: tuple[int, ...] = (1, 2, 3)
"""PDSCH MCS tables fitted."""

CODE_BLOCK_SIZES: tuple[int, ...] = (24, 100, 500, 1000, 2000)
"""Code-block sizes of the source tables, information bits."""

EXTRAPOLATION_ANCHORS: int = 4
"""Lowest tabulated MCS used to extrapolate the missing ones."""

SOURCE: str = (
    "NVIDIA Sionna 2.2.0 (PyPI sionna-no-rt==2.2.0), sionna/sys/bler_tables/PDSCH_table{1,2,3}"
    ".json and sionna/sys/esm_params/eesm_beta_table.json"
)
LICENCE: str = "Apache-2.0 (source data); fitted parameters derived by e2sim.channel.bler_fit"


def logistic_bler(snr_db: np.ndarray, snr50_db: np.ndarray, scale_db: np.ndarray) -> np.ndarray:
    """1 / (1 + exp((γ − γ50) / s)), broadcast over the arguments."""
    z = np.clip((snr_db - snr50_db) / scale_db, -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(z))


def _load_table(path: Path, table: int) -> dict[int, dict[str, Any]]:
    """{mcs: {"snr_db": [P], "bler": {cbs: [P]}}} from one Sionna PDSCH table file."""
    data = json.loads(path.read_text())
    per_mcs = data["category"]["1"]["index"][str(table)]["MCS"]
    out: dict[int, dict[str, Any]] = {}
    for mcs, entry in per_mcs.items():
        out[int(mcs)] = {
            "snr_db": np.asarray(entry["SNR_db"], dtype=np.float64),
            "bler": {int(k): np.asarray(v["BLER"], dtype=np.float64) for k, v in entry["CBS"].items()},
        }
    return out


def fit_code_block_size(
    table_data: dict[int, dict[str, Any]], cbs: int
) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """Fit γ50 per tabulated MCS and the shared slope s for one code-block size.

    Returns:
        (mcs int64 [M], snr50_db float64 [M], scale_db, rms_residual, max_abs_residual).
    """
    mcs = np.array(sorted(table_data), dtype=np.int64)
    snr = [table_data[m]["snr_db"] for m in mcs]
    bler = [table_data[m]["bler"][cbs] for m in mcs]
    initial = []
    for s, b in zip(snr, bler):
        crossing = np.nonzero(b <= 0.5)[0]
        initial.append(s[crossing[0]] if crossing.size else s[-1])

    def residuals(params: np.ndarray) -> np.ndarray:
        scale = np.exp(params[-1])
        return np.concatenate(
            [logistic_bler(s, params[i], scale) - b for i, (s, b) in enumerate(zip(snr, bler))]
        )

    x0 = np.append(np.asarray(initial), np.log(0.5))
    lower = np.append(np.full(len(mcs), -40.0), np.log(0.05))
    upper = np.append(np.full(len(mcs), 60.0), np.log(5.0))
    result = least_squares(residuals, x0, bounds=(lower, upper))
    snr50 = np.maximum.accumulate(result.x[:-1])
    scale = float(np.exp(result.x[-1]))
    params = np.append(snr50, result.x[-1])
    res = residuals(params)
    return mcs, snr50, scale, float(np.sqrt(np.mean(res**2))), float(np.max(np.abs(res)))


def extrapolate_missing(
    mcs: np.ndarray, snr50: np.ndarray, mcs_table: int
) -> tuple[np.ndarray, list[int]]:
    """γ50 for every MCS 0 .. max of the table; missing low MCS by the Shannon-SNR line."""
    all_mcs = np.arange(MAX_MCS_BY_TABLE[mcs_table] + 1)
    missing = [int(m) for m in all_mcs if m not in set(mcs.tolist())]
    out = np.full(all_mcs.shape, np.nan)
    out[mcs] = snr50
    if missing:
        anchors = mcs[:EXTRAPOLATION_ANCHORS]
        shannon = 10.0 * np.log10(2.0 ** mcs_spectral_efficiency(anchors, mcs_table) - 1.0)
        slope, intercept = np.polyfit(shannon, snr50[:EXTRAPOLATION_ANCHORS], 1)
        miss = np.asarray(missing)
        shannon_miss = 10.0 * np.log10(2.0 ** mcs_spectral_efficiency(miss, mcs_table) - 1.0)
        out[miss] = intercept + slope * shannon_miss
    if np.any(np.isnan(out)):
        raise ValueError(f"table {mcs_table}: MCS gaps inside the tabulated range")
    return np.maximum.accumulate(out), missing


def eesm_betas(beta_path: Path) -> dict[str, list[float]]:
    """EESM β per MCS for tables 1, 2 (as shipped) and 3 (interpolated over SE, table 1)."""
    shipped = json.loads(beta_path.read_text())["index"]
    beta1 = np.asarray(shipped["1"], dtype=np.float64)
    beta2 = np.asarray(shipped["2"], dtype=np.float64)
    se1 = mcs_spectral_efficiency(np.arange(beta1.size), 1)
    se3 = mcs_spectral_efficiency(np.arange(MAX_MCS_BY_TABLE[3] + 1), 3)
    beta3 = np.interp(se3, se1, beta1)
    return {"1": beta1.tolist(), "2": beta2.tolist(), "3": np.round(beta3, 4).tolist()}


def fit_all(sionna_sys_dir: Path) -> dict[str, Any]:
    """Fit every table and code-block size; return the JSON-ready document."""
    tables: dict[str, Any] = {}
    for table in FITTED_TABLES:
        data = _load_table(sionna_sys_dir / "bler_tables" / f"PDSCH_table{table}.json", table)
        snr50_rows, scales, rms, worst = [], [], [], []
        missing: list[int] = []
        for cbs in CODE_BLOCK_SIZES:
            mcs, snr50, scale, r, w = fit_code_block_size(data, cbs)
            full, missing = extrapolate_missing(mcs, snr50, table)
            snr50_rows.append(np.round(full, 4).tolist())
            scales.append(round(scale, 4))
            rms.append(round(r, 4))
            worst.append(round(w, 4))
        tables[str(table)] = {
            "code_block_sizes": list(CODE_BLOCK_SIZES),
            "snr50_db": snr50_rows,
            "scale_db": scales,
            "extrapolated_mcs": missing,
            "rms_residual": rms,
            "max_abs_residual": worst,
        }
    return {
        "source": SOURCE,
        "licence": LICENCE,
        "model": "BLER_cb = 1 / (1 + exp((sinr_db - snr50_db[cbs][mcs]) / scale_db[cbs])); "
        "sinr is Es/N0 per QAM symbol; residuals are in BLER units over the source grid",
        "tables": tables,
        "eesm_beta": eesm_betas(sionna_sys_dir / "esm_params" / "eesm_beta_table.json"),
        "eesm_beta_note": "Sionna's own note: no recoverable calibration provenance; table 3 "
        "interpolated from table 1 over spectral efficiency",
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: ``bler_fit SIONNA_SYS_DIR OUTPUT_JSON``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sionna_sys_dir", type=Path, help="the sionna/sys folder of the wheel")
    parser.add_argument("output", type=Path, help="JSON file to write")
    args = parser.parse_args(argv)
    document = fit_all(args.sionna_sys_dir)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    for table, entry in document["tables"].items():
        print(f"table {table}: scale_db {entry['scale_db']} rms {entry['rms_residual']} "
              f"max {entry['max_abs_residual']} extrapolated {entry['extrapolated_mcs']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
