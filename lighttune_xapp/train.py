"""``lighttune-train``: train the offline FF BLER model from a dataset file.

Usage::

    lighttune-train DATASET.npz [MORE.npz ...] [--epochs 20] [--batch-size 256] [--negatives hardest]
                    [--loss proposed] [--holdout 0.2] [--seed 0] [--out MODEL.ltm]

The dataset is the ``.npz`` of ``docs/interfaces.md``: ``features`` float64 [N, 12],
``labels`` float64 [N] (quantised BLER), ``meta`` (a JSON string). A seeded random
``--holdout`` fraction is kept out of training and gives the per-epoch curve (accuracy and
mean |error| of the held-out predictions). Several datasets are trained on as one, their
samples concatenated in the order given (e.g. the training channel at two CSI-RS periods,
each made by its own ``e2sim dataset`` run). Writes ``MODEL.ltm``
(``LightTuneModel.to_bytes``) and the curve as ``MODEL.curve.csv`` next to it.

Exit status: 0 on success, 2 for a missing or malformed dataset or bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from lighttune_core.dataset import DatasetError, load_dataset
from lighttune_core.ff import LOSS_KINDS
from lighttune_core.training import (
    DEFAULT_CLASS_BALANCE,
    DEFAULT_INPUT_BINS,
    DEFAULT_INPUT_GAIN,
    DEFAULT_LR_SCHEDULE,
    DEFAULT_NEGATIVES,
    DEFAULT_READOUT_L2,
    LR_SCHEDULES,
    NEGATIVE_KINDS,
    EpochRecord,
    TrainResult,
    train_offline,
)
from lighttune_core.tuner import DEFAULT_READOUT_AVERAGE, DEFAULT_READOUT_LR, ONLINE_LR, LightTuneModel


def split_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train_rows, holdout_rows)``; at least one training row."""
    rows = np.random.default_rng(seed).permutation(n)
    n_hold = min(int(round(fraction * n)), n - 1)
    return np.sort(rows[n_hold:]), np.sort(rows[:n_hold])


def write_curve(path: Path, history: Sequence[EpochRecord]) -> None:
    """The training curve as CSV: layer, epoch, loss, accuracy, mean_abs_error."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["layer", "epoch", "loss", "holdout_accuracy", "holdout_mean_abs_error"])
        for r in history:
            w.writerow([r.layer, r.epoch, f"{r.loss:.6g}", f"{r.accuracy:.6g}", f"{r.mean_abs_error:.6g}"])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lighttune-train", description="Train the offline LightTune FF BLER model.")
    p.add_argument("dataset", type=Path, nargs="+",
                   help="dataset .npz (features [N,12], labels [N], meta JSON); several are concatenated in order")
    p.add_argument("--epochs", type=int, default=20,
                   help="epochs; every layer is stepped on its own local loss in every batch (default 20)")
    p.add_argument("--class-balance", type=float, default=DEFAULT_CLASS_BALANCE, metavar="P",
                   help="class weights (N / (11 n_k))^P in the local losses' means: 0 = none, 1 = every "
                        "BLER label weighs the same (default %(default)s)")
    p.add_argument("--online-lr", type=float, default=ONLINE_LR, metavar="LR",
                   help="learning rate of the online LightTune steps stored in the model (default %(default)s; "
                        "the paper's 0.03 is measured too large for the label-conditioned network)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=DEFAULT_LR_SCHEDULE,
                   help="Adam learning rate 0.03 constant or cosine-decayed to 0 (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="positive pairs per batch (default 256)")
    p.add_argument("--negatives", choices=NEGATIVE_KINDS, default=DEFAULT_NEGATIVES,
                   help="negative pair of each sample: random = a random wrong label, hardest = the wrong label the "
                   "model scores best (default %(default)s)")
    p.add_argument("--negatives-per-sample", type=int, default=1, metavar="M",
                   help="wrong labels paired with each sample per batch: the M best-scoring (hardest) or M "
                   "distinct random ones, 1 .. 10 (default %(default)s; 2-10 measured worse on the grid data, "
                   "see lighttune_core/training.py)")
    p.add_argument("--input-bins", type=int, default=DEFAULT_INPUT_BINS, metavar="N",
                   help="one-hot quantile bins per feature added to the network input (0: the 12 standardised "
                        "features only, the input of offline-v4 and earlier; default %(default)s)")
    p.add_argument("--input-gain", type=float, default=DEFAULT_INPUT_GAIN, metavar="G",
                   help="gain g of the encoded input g [standardised x; one-hot bins] (default %(default)s)")
    p.add_argument("--readout", action=argparse.BooleanOptionalAction, default=False,
                   help="fit a softmax readout on the trained layers' activities; the model's label is then the "
                        "median of its distribution (lighttune_core/readout.py; offline-v7). Default off: the arg-max "
                        "goodness of the builtin offline-v9 and of offline-v8 and -v6")
    p.add_argument("--readout-l2", type=float, default=DEFAULT_READOUT_L2, metavar="L",
                   help="L2 penalty of the readout fit on standardised activities (default %(default)s)")
    p.add_argument("--readout-lr", type=float, default=DEFAULT_READOUT_LR, metavar="LR",
                   help="online SGD step of the readout per learned sample, stored in the model (default %(default)s)")
    p.add_argument("--readout-average", type=float, default=DEFAULT_READOUT_AVERAGE, metavar="BETA",
                   help="weight of each online readout iterate in the average that predicts, in (0, 1] "
                        "(default %(default)s)")
    p.add_argument("--average-tail", type=float, default=0.0, metavar="F",
                   help="average the parameters of the last fraction F of the Adam steps into the saved model, "
                        "0 <= F < 1 (0: the last iterate; default %(default)s)")
    p.add_argument("--loss", choices=LOSS_KINDS, default="proposed",
                   help="FF layer loss: proposed = the paper's eq. 7, softplus = Hinton's (default %(default)s)")
    p.add_argument("--holdout", type=float, default=0.2, help="held-out fraction for the curve (default 0.2)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights, batches, negatives and held-out split (default %(default)s)")
    p.add_argument("--out", type=Path, default=None, help="model file (default: DATASET with suffix .ltm)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lighttune-train``; returns the exit status."""
    args = _parser().parse_args(argv)
    if not 0.0 <= args.holdout < 1.0:
        print(f"lighttune-train: error: --holdout must be in [0, 1), got {args.holdout}", file=sys.stderr)
        return 2
    if not (np.isfinite(args.readout_average) and 0.0 < args.readout_average <= 1.0):
        print(f"lighttune-train: error: --readout-average must be in (0, 1], got {args.readout_average}", file=sys.stderr)
        return 2
    for name in ("readout_lr", "readout_l2"):
        value = getattr(args, name)
        if not (np.isfinite(value) and value >= 0.0):
            print(f"lighttune-train: error: --{name.replace('_', '-')} must be >= 0, got {value}", file=sys.stderr)
            return 2
    try:
        parts = [load_dataset(path) for path in args.dataset]
        features = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        if features.shape[0] < 2 and args.holdout > 0:
            raise DatasetError(f"{args.dataset[0]}: need at least 2 samples for a held-out split")
        train_rows, hold_rows = split_holdout(features.shape[0], args.holdout, args.seed)
        if hold_rows.size == 0:
            hold_rows = train_rows
        out = args.out if args.out is not None else args.dataset[0].with_suffix(".ltm")
        bars: list[tqdm] = []  # made at the first epoch, when the total number of epochs is known

        def progress(done: int, total: int, record: EpochRecord) -> None:
            if not bars:
                bars.append(tqdm(total=total, unit="epoch", desc="training", file=sys.stderr))
            bar = bars[0]
            bar.set_postfix(
                layer=record.layer, acc=f"{record.accuracy:.3f}", mae=f"{record.mean_abs_error:.3f}", refresh=False
            )
            bar.update(done - bar.n)

        try:
            result: TrainResult = train_offline(
                features[train_rows],
                labels[train_rows],
                epochs=args.epochs,
                batch_size=args.batch_size,
                negatives=args.negatives,
                negatives_per_sample=args.negatives_per_sample,
                loss=args.loss,
                seed=args.seed,
                eval_features=features[hold_rows],
                eval_labels=labels[hold_rows],
                progress=progress,
                class_balance=args.class_balance,
                lr_schedule=args.lr_schedule,
                input_bins=args.input_bins,
                input_gain=args.input_gain,
                readout=args.readout,
                readout_l2=args.readout_l2,
                average_tail=args.average_tail,
            )
        finally:
            for bar in bars:
                bar.close()
    except ValueError as exc:
        print(f"lighttune-train: error: {exc}", file=sys.stderr)
        return 2

    try:
        model = LightTuneModel.from_params(
            result.params, loss=args.loss, seed=args.seed, lr=args.online_lr, readout_lr=args.readout_lr,
            readout_average=args.readout_average,
            **result.model_arguments()
        )
    except ValueError as exc:
        print(f"lighttune-train: error: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.to_bytes())
    curve_path = out.with_suffix(".curve.csv")
    write_curve(curve_path, result.history)

    for path, (part_x, _, meta) in zip(args.dataset, parts):
        print(f"dataset: {path} ({part_x.shape[0]} samples; scenario {meta.get('scenario', '?')})")
    print(f"train {train_rows.size} / held-out {hold_rows.size if args.holdout > 0 else 0} samples")
    print("layer epoch      loss  accuracy  mean|err|")
    for r in result.history:
        print(f"{r.layer:5d} {r.epoch:5d} {r.loss:9.4f} {r.accuracy:9.3f} {r.mean_abs_error:10.3f}")
    last = result.history[-1]
    print(f"final: held-out accuracy {last.accuracy:.3f}, mean |error| {last.mean_abs_error:.3f}")
    if args.average_tail > 0.0:
        err = np.abs(model.predict_many(features[hold_rows]) - labels[hold_rows])
        print(f"averaged parameters (last {args.average_tail:g} of the steps): held-out accuracy "
              f"{np.mean(err < 0.05):.3f}, mean |error| {np.mean(err):.3f}")
    if result.readout_eval is not None:
        acc, mae = result.readout_eval
        print(f"readout (median label): held-out accuracy {acc:.3f}, mean |error| {mae:.3f}")
    print(f"model: {out} ({len(model.to_bytes())} bytes); curve: {curve_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
