"""BLER-predictor quality: the FF model against simple and strong references.

Held-out mean |ŷ − y| and accuracy ``P(ŷ = y)`` of next-period BLER labels (11 classes,
0.0 .. 1.0) for:

* ``constant 0.1`` — the OLLA target, what a flat model predicts;
* ``majority`` — the most frequent training label;
* ``lookup`` — the median training label of the sample's bin of (candidate rank − reported
  RI, candidate CQI − reported CQI, previous BLER in 0.1 steps, OLLA back-off rounded), the
  global median for unseen bins (the median minimises mean |error|);
* ``HGB`` — scikit-learn's ``HistGradientBoostingClassifier`` (arg-max class, seed 0) on the
  12 features; ``HGB median`` — the median of its predicted class distribution
  (scikit-learn is a benchmark-only extra: ``pip install '.[bench]'``);
* ``BP MLP`` / ``BP MLP median`` — scikit-learn's ``MLPClassifier`` with the FF's hidden widths
  (32, 32) and ReLU, trained by backpropagation on softmax cross-entropy (standardised
  features, seed 0): the same network size without the forward-forward constraint, so the gap
  between it and the FF is the training method's, not the network's or the features';
* ``FF frozen`` — the LightTune model as trained offline;
* ``FF fine-tuned`` — the same model with LightTune fine-tuning over the stream, prequential
  (each sample is predicted, then ``learn_one(x, y)``: updated when ``|ŷ − y| ≥ δ``, then
  dropped);
* ``FF calibrated`` / ``FF fine-tuned + calibrated`` — the frozen / fine-tuned FF's label
  mapped through a fresh per-stream :class:`~lighttune_core.calibration.RankOffsetCalibration`
  (the mean true BLER per rank offset and label, updated after each prediction): what the
  xApp's decision search ranks candidates by.

Data: samples of :func:`e2sim.experiment.generate_dataset` (the DU's decisions with half of
them exploratory: rank ``r0 − 1 .. r0 + 1`` at its anchor CQI backed off by 0 .. 4, the
candidates the policies ask about), in time order, on the DU preset ``--du``. The references
are trained on ``--train-samples`` samples of the training channel (TDL-A30, 10 Hz, CSI-RS
80 ms) with seed 1 — with ``--conditions grid`` (default) over every antenna correlation and
paper SNR range, as the packaged model's dataset; with ``--conditions paper`` the paper's low
correlation at 0–12 dB only; the test streams use other seeds: in distribution (the same
conditions, seed 1001) and three mismatched channels (seed 1002 ..).

Bars (issue 15): in distribution, the FF's mean |error| ≤ 0.6 × the constant's and
≤ 1.3 × the HGB classifier's; on every mismatched channel the fine-tuned FF below both the
frozen FF and the constant. The same checks are reported for the calibrated FF.

Prints a table and saves ``benchmarks/results/predictor_quality.json`` and ``.md``.

Run: ``python benchmarks/predictor_quality.py [--model FILE] [--samples N] [--train-samples N]``
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_file import save_results  # noqa: E402

from e2sim.channel import Scenario  # noqa: E402
from e2sim.channel.scenario import SNR_RANGES_DB, TRAINING_SCENARIO  # noqa: E402
from e2sim.cli import add_bler_curves_argument  # noqa: E402
from e2sim.experiment import CONDITION_GRID, generate_dataset, generate_dataset_conditions  # noqa: E402
from lighttune_core.calibration import RankOffsetCalibration  # noqa: E402
from lighttune_core.features import FEATURE_NAMES, OLLA_SCALE_DB  # noqa: E402
from lighttune_core.linkadapt.presets import DEFAULT_PRESET, PRESET_NAMES  # noqa: E402
from lighttune_core.report import MAX_CQI, MAX_RANK  # noqa: E402
from lighttune_core.tuner import LightTuneModel  # noqa: E402

MISMATCHED: tuple[tuple[str, float, str, str], ...] = (
    ("TDL-B50", 30.0, "low", "medium"),
    ("TDL-B200", 50.0, "medium", "high"),
    ("TDL-C200", 50.0, "low", "medium"),
)
"""Untrained channels of the stream test: (profile, Doppler Hz, correlation, SNR range)."""

Predictor = Callable[[np.ndarray], np.ndarray]


def _col(name: str) -> int:
    return FEATURE_NAMES.index(name)


def bin_keys(x: np.ndarray) -> np.ndarray:
    """int64 [N] bin of each sample for the lookup predictor: (Δrank, ΔCQI, previous BLER in
    0.1 steps, OLLA back-off rounded to an integer in its unit), from the scaled features."""
    d_rank = np.rint((x[:, _col("candidate_rank")] - x[:, _col("reported_ri")]) * MAX_RANK).astype(np.int64)
    d_cqi = np.rint((x[:, _col("candidate_cqi")] - x[:, _col("reported_cqi")]) * MAX_CQI).astype(np.int64)
    prev = np.rint(x[:, _col("prev_bler")] * 10).astype(np.int64)
    olla = np.clip(np.rint(x[:, _col("olla_offset")] * OLLA_SCALE_DB), -20, 20).astype(np.int64)
    return (((d_rank + 4) * 40 + (d_cqi + 20)) * 11 + prev) * 41 + (olla + 20)


class BinLookup:
    """Median training label per :func:`bin_keys` bin, the global median elsewhere."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        keys = bin_keys(x)
        order = np.argsort(keys, kind="stable")
        k_sorted, y_sorted = keys[order], y[order]
        starts = np.flatnonzero(np.r_[True, k_sorted[1:] != k_sorted[:-1]])
        ends = np.r_[starts[1:], k_sorted.shape[0]]
        self.keys = k_sorted[starts]
        self.medians = np.array([np.median(y_sorted[a:b]) for a, b in zip(starts, ends)])
        self.fallback = float(np.median(y))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        keys = bin_keys(x)
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.shape[0] - 1)
        hit = self.keys[pos] == keys
        return np.round(np.where(hit, self.medians[pos], self.fallback) * 10) / 10


def _classifier(kind: str, x: np.ndarray, y: np.ndarray) -> tuple[Predictor, Predictor] | None:
    """(arg-max, median) predictors of a scikit-learn classifier of the 11 labels, or None without
    scikit-learn.

    ``kind``: ``"hgb"`` — HistGradientBoostingClassifier (seed 0) on the raw features; ``"mlp"`` —
    MLPClassifier with the FF's hidden widths (32, 32), ReLU, Adam, softmax cross-entropy trained
    by backpropagation (seed 0, 10 % early-stopping split) on standardised features. The median
    is the smallest class whose predicted cumulative probability reaches 0.5.
    """
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        return None
    k = np.rint(y * 10).astype(np.int64)
    if kind == "hgb":
        clf = HistGradientBoostingClassifier(random_state=0).fit(x, k)
    elif kind == "mlp":
        mlp = MLPClassifier(hidden_layer_sizes=(32, 32), max_iter=200, early_stopping=True, random_state=0)
        clf = make_pipeline(StandardScaler(), mlp).fit(x, k)
    else:
        raise ValueError(f"kind must be 'hgb' or 'mlp', got {kind!r}")
    classes = np.asarray(clf.classes_)

    def argmax(xs: np.ndarray) -> np.ndarray:
        return clf.predict(xs) / 10.0

    def median(xs: np.ndarray) -> np.ndarray:
        cdf = np.cumsum(clf.predict_proba(xs), axis=1)
        return classes[np.argmax(cdf >= 0.5, axis=1)] / 10.0

    return argmax, median


def stream_finetuned(model: LightTuneModel, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    """Prequential LightTune on a copy: predict each sample, then ``learn_one``; returns the
    predictions float64 [N] and the number of updates."""
    m = copy.deepcopy(model)
    pred = np.empty(x.shape[0])
    updates = 0
    for i in range(x.shape[0]):
        pred[i] = m.predict_one(x[i])
        updates += m.learn_one(x[i], float(y[i]))
    return pred, updates


def stream_calibrated(labels: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Prequential calibration of the model labels ``labels`` [N] (of features ``x`` [N, 12],
    true ``y`` [N]): each label is mapped through the calibration as it stands, which then
    takes the sample's outcome. Returns the calibrated predictions float64 [N]."""
    cal = RankOffsetCalibration()
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = cal.apply(x[i:i + 1], labels[i:i + 1])[0]
        cal.update(x[i:i + 1], labels[i:i + 1], y[i:i + 1])
    return out


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean |ŷ − y| and accuracy of labels."""
    err = np.abs(np.asarray(pred, float) - y)
    return {"mae": float(err.mean()), "accuracy": float(np.mean(err < 0.05))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="LightTune model file (default: the packaged one)")
    p.add_argument("--samples", type=int, default=8000, help="samples per test stream (default %(default)s)")
    p.add_argument("--train-samples", type=int, default=24000,
                   help="training samples of the references (default %(default)s)")
    p.add_argument("--ues", type=int, default=64, help="UEs per simulated cell (default %(default)s)")
    p.add_argument("--train-dataset", type=Path, metavar="FILE.npz",
                   help="train the references on this dataset (e.g. the model's own, from e2sim dataset) "
                        "instead of simulating --train-samples")
    p.add_argument("--workers", type=int, default=2, help="processes simulating the streams (default %(default)s)")
    p.add_argument("--conditions", choices=("grid", "paper"), default="grid",
                   help="the training channel's conditions of the in-distribution stream (and of the generated "
                        "reference training set): grid = every correlation x paper SNR range, the packaged "
                        "model's (e2sim dataset --conditions grid); paper = low correlation, 0-12 dB only "
                        "(default %(default)s)")
    p.add_argument("--du", choices=PRESET_NAMES, default=DEFAULT_PRESET, help="DU preset (default %(default)s)")
    add_bler_curves_argument(p)
    p.add_argument("--out", type=Path, default=HERE / "results" / "predictor_quality.json",
                   help="results JSON (a .md beside it)")
    args = p.parse_args(argv)
    if args.samples < 100 or args.train_samples < 100:
        p.error("--samples and --train-samples must be >= 100")
    if args.model is None:
        from lighttune_xapp.app import load_offline_model

        model, model_name = load_offline_model("builtin"), "packaged model"
    else:
        model, model_name = LightTuneModel.from_bytes(args.model.read_bytes()), args.model.name
    started = time.perf_counter()
    base = replace(TRAINING_SCENARIO, n_ue=args.ues, du_preset=args.du, bler_curves=args.bler_curves)
    if args.train_dataset is not None:
        from lighttune_core.dataset import load_dataset

        x_tr, y_tr, meta = load_dataset(args.train_dataset)
        train_name = f"{args.train_dataset.name} ({x_tr.shape[0]} samples, DU {meta.get('scenario', {}).get('du_preset', '?')})"
    elif args.conditions == "grid":
        x_tr, y_tr = generate_dataset_conditions(replace(base, seed=1), CONDITION_GRID, args.train_samples,
                                                 workers=max(1, args.workers))
        train_name = f"{args.train_samples} samples of the training channel's condition grid (seed 1)"
    else:
        x_tr, y_tr = generate_dataset(replace(base, seed=1), args.train_samples)
        train_name = f"{args.train_samples} samples of the training scenario (seed 1)"
    print(f"references trained on {train_name}", flush=True)
    lookup = BinLookup(x_tr, y_tr)
    majority = float(np.bincount(np.rint(y_tr * 10).astype(np.int64)).argmax()) / 10
    hgb = _classifier("hgb", x_tr, y_tr)
    mlp = _classifier("mlp", x_tr, y_tr)

    if args.conditions == "grid":
        in_name = "TDL-A30 10 Hz, every correlation and SNR range (training channel and conditions)"
    else:
        in_name = "TDL-A30 10 Hz low corr., 0-12 dB (training channel)"
    streams: list[tuple[str, Scenario]] = [(in_name, replace(base, seed=1001))]
    for i, (profile, doppler, corr, snr) in enumerate(MISMATCHED):
        streams.append((f"{profile} {doppler:g} Hz {corr} corr., {snr} SNR",
                        replace(base, profile=profile, doppler_hz=doppler, correlation=corr,
                                snr_db=SNR_RANGES_DB[snr], seed=1002 + i)))
    results: list[dict[str, Any]] = []
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(max(1, args.workers)) as pool:
        data = pool.starmap(generate_dataset, [(sc, args.samples) for _, sc in streams[1:]])
    if args.conditions == "grid":
        data.insert(0, generate_dataset_conditions(streams[0][1], CONDITION_GRID, args.samples, workers=max(1, args.workers)))
    else:
        data.insert(0, generate_dataset(streams[0][1], args.samples))
    for (name, sc), (x, y) in zip(streams, data):
        print(f"stream: {name}", flush=True)
        row: dict[str, Any] = {"stream": name, "scenario": sc.to_dict(), "samples": int(x.shape[0])}
        row["constant 0.1"] = scores(np.full(y.shape, 0.1), y)
        row["majority"] = scores(np.full(y.shape, majority), y)
        row["lookup"] = scores(lookup(x), y)
        if hgb is not None:
            row["HGB"] = scores(hgb[0](x), y)
            row["HGB median"] = scores(hgb[1](x), y)
        if mlp is not None:
            row["BP MLP"] = scores(mlp[0](x), y)
            row["BP MLP median"] = scores(mlp[1](x), y)
        frozen = model.predict_many(x)
        row["FF frozen"] = scores(frozen, y)
        tuned, updates = stream_finetuned(model, x, y)
        row["FF fine-tuned"] = {**scores(tuned, y), "updates": updates}
        row["FF calibrated"] = scores(stream_calibrated(frozen, x, y), y)
        row["FF fine-tuned + calibrated"] = scores(stream_calibrated(tuned, x, y), y)
        results.append(row)
        print("  " + ", ".join(f"{k} {v['mae']:.4f}" for k, v in row.items() if isinstance(v, dict) and "mae" in v),
              flush=True)

    first = results[0]
    checks = {
        "ff_in_distribution_le_0.6_constant": first["FF frozen"]["mae"] <= 0.6 * first["constant 0.1"]["mae"],
        "ff_in_distribution_le_1.3_hgb": (first["FF frozen"]["mae"] <= 1.3 * first["HGB"]["mae"]) if hgb else None,
        "finetuned_below_frozen_and_constant_on_every_mismatched_channel": all(
            r["FF fine-tuned"]["mae"] < min(r["FF frozen"]["mae"], r["constant 0.1"]["mae"]) for r in results[1:]
        ),
        "calibrated_ff_in_distribution_le_0.6_constant": (
            first["FF calibrated"]["mae"] <= 0.6 * first["constant 0.1"]["mae"]
        ),
        "calibrated_ff_in_distribution_le_1.3_hgb": (
            (first["FF calibrated"]["mae"] <= 1.3 * first["HGB"]["mae"]) if hgb else None
        ),
        "finetuned_calibrated_below_frozen_and_constant_on_every_mismatched_channel": all(
            r["FF fine-tuned + calibrated"]["mae"] < min(r["FF frozen"]["mae"], r["constant 0.1"]["mae"])
            for r in results[1:]
        ),
    }
    names = [k for k, v in first.items() if isinstance(v, dict) and "mae" in v]
    md = [f"# BLER-predictor quality ({model_name}, DU preset {args.du}, BLER curves {args.bler_curves})", "",
          f"Mean |error| (accuracy) over each stream's {args.samples} held-out samples (time order; the "
          f"fine-tuned FF is scored prequentially); references trained on {train_name}.", "",
          "| stream | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for r in results:
        md.append(f"| {r['stream']} | " + " | ".join(f"{r[n]['mae']:.4f} ({r[n]['accuracy']:.2f})" for n in names) + " |")
    md += ["", "Bars: " + ", ".join(f"{k}: {v}" for k, v in checks.items()),
           f"Wall time {time.perf_counter() - started:.0f} s."]
    text = "\n".join(md) + "\n"
    print(text)
    save_results({"model": model_name, "du_preset": args.du, "bler_curves": args.bler_curves, "results": results,
                  "checks": checks, "train_samples": args.train_samples, "wall_s": time.perf_counter() - started},
                 args.out)
    args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
