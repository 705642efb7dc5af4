"""Offline FF training: greedy layer-wise Adam, negatives, determinism, curve, errors."""

from __future__ import annotations

import csv
import re
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lighttune_core import ff
from lighttune_core.synthetic import synthetic_threshold_task
from lighttune_core.training import (
    AdamConfig,
    EpochRecord,
    adam_step,
    evaluate,
    label_indices,
    train_offline,
)
from lighttune_core.tuner import LightTuneModel
from lighttune_xapp import train as train_cli

Task = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def task() -> Task:
    x, y = synthetic_threshold_task(3000, seed=1)
    xe, ye = synthetic_threshold_task(2000, seed=2)
    return x, y, xe, ye


def test_training_learns_a_separable_task_with_hardest_negatives(task: Task) -> None:
    """Default training (standardised features, cosine lr): the network sees
    ``(x − mean) / scale`` of the training set, the curve is measured on the held-out split
    standardised the same way, and a model given the standardisation predicts raw features."""
    x, y, xe, ye = task
    result = train_offline(
        x, y, layer_sizes=(13, 32), epochs=15, batch_size=64, negatives="hardest", seed=0, eval_features=xe, eval_labels=ye
    )
    np.testing.assert_allclose(result.feature_mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.feature_scale, x.std(axis=0), rtol=1e-12)
    xe_std = (xe - result.feature_mean) / result.feature_scale
    init_acc, init_err = evaluate(ff.init_params((13, 32), 0), xe_std, ye)
    acc, err = evaluate(result.params, xe_std, ye)
    assert acc > 0.75 and acc > init_acc + 0.2
    assert err < 0.25 < init_err
    assert (acc, err) == (result.history[-1].accuracy, result.history[-1].mean_abs_error)
    assert result.history[-1].loss < result.history[0].loss
    assert all(w.dtype == np.float64 for w in result.params.weights)
    model = LightTuneModel.from_params(
        result.params, feature_mean=result.feature_mean, feature_scale=result.feature_scale
    )
    assert float(np.mean(np.abs(model.predict_many(xe) - ye))) == pytest.approx(err, abs=1e-12)


def test_hardest_negatives_beat_random_ones(task: Task) -> None:
    """The measurement of ``lighttune_core.training``'s docstring (constant Adam lr 0.03, raw
    features): random negatives learn the label prior only (0.486), hardest ones the task
    (0.848)."""
    x, y, xe, ye = task
    accs = {}
    for kind in ("random", "hardest"):
        r = train_offline(
            x, y, layer_sizes=(13, 32), epochs=15, batch_size=64, negatives=kind, seed=0, eval_features=xe,
            eval_labels=ye, lr_schedule="constant", standardise=False,
        )
        accs[kind] = r.history[-1].accuracy
    assert accs["hardest"] > accs["random"] + 0.1


@pytest.mark.parametrize(
    ("schedule", "progress_calls", "curve"),
    [
        ("greedy", [(1, 4), (2, 4), (3, 4), (4, 4)], [(1, 1), (1, 2), (2, 1), (2, 2)]),
        # the default: every layer in every batch, so every record is of the whole network
        ("simultaneous", [(1, 2), (2, 2)], [(2, 1), (2, 2)]),
    ],
)
def test_training_is_seeded_and_reports_progress(
    task: Task, schedule: str, progress_calls: list[tuple[int, int]], curve: list[tuple[int, int]]
) -> None:
    x, y, _, _ = task
    calls: list[tuple[int, int, EpochRecord]] = []
    kwargs: dict[str, Any] = dict(epochs=2, batch_size=256, seed=7, layer_sizes=(13, 32, 32), schedule=schedule)
    a = train_offline(x[:600], y[:600], progress=lambda i, n, rec: calls.append((i, n, rec)), **kwargs)
    b = train_offline(x[:600], y[:600], **kwargs)
    c = train_offline(x[:600], y[:600], **dict(kwargs, seed=8))
    for u, v in zip(a.params.weights + a.params.biases, b.params.weights + b.params.biases):
        np.testing.assert_array_equal(u, v)
    assert a.history == b.history
    assert not np.array_equal(a.params.weights[0], c.params.weights[0])
    assert [(i, n) for i, n, _ in calls] == progress_calls
    assert [(r.layer, r.epoch) for r in a.history] == curve
    assert [rec for _, _, rec in calls] == list(a.history)


def test_average_tail_returns_the_mean_of_the_last_iterates(task: Task) -> None:
    """``average_tail`` f: the returned parameters are the mean of the iterates after each of
    the last ``f`` of the Adam steps. One batch per epoch and a constant learning rate make the
    iterate after step k that of a k-epoch run (same seed, same batches), so the average of
    the last half of 4 steps must be the mean of the 3- and 4-epoch runs' parameters."""
    x, y, _, _ = task
    kwargs: dict[str, Any] = dict(batch_size=600, seed=5, layer_sizes=(13, 16, 16), lr_schedule="constant")
    runs = {k: train_offline(x[:600], y[:600], epochs=k, **kwargs) for k in (3, 4)}
    half = train_offline(x[:600], y[:600], epochs=4, average_tail=0.5, **kwargs)
    three, four = runs[3].params, runs[4].params
    for u, v, w in zip(half.params.weights + half.params.biases, three.weights + three.biases, four.weights + four.biases):
        np.testing.assert_allclose(u, (v + w) / 2, rtol=1e-10, atol=1e-13)
    assert not np.allclose(half.params.weights[0], four.weights[0])
    # the curve records the iterates, so averaging leaves it as it was
    assert half.history == runs[4].history


def test_greedy_training_freezes_earlier_layers(task: Task) -> None:
    x, y, _, _ = task
    one = train_offline(x[:500], y[:500], layer_sizes=(13, 8), epochs=2, batch_size=100, seed=3, schedule="greedy")
    two = train_offline(x[:500], y[:500], layer_sizes=(13, 8, 8), epochs=2, batch_size=100, seed=3, schedule="greedy")
    # the same seed draws the same initial layer 1 and the same batches while it trains
    np.testing.assert_array_equal(one.params.weights[0], two.params.weights[0])


def test_adam_first_step_moves_each_parameter_by_lr_against_its_gradient() -> None:
    p = np.array([1.0, -2.0, 0.5])
    g = np.array([0.3, -4.0, 1e-3])
    m, v = np.zeros(3), np.zeros(3)
    new = adam_step(p, g, m, v, 1, AdamConfig(lr=0.03))
    np.testing.assert_allclose(new, p - 0.03 * np.sign(g), rtol=1e-6)
    np.testing.assert_allclose(m, 0.1 * g)
    np.testing.assert_allclose(v, 0.001 * g * g)


def test_label_indices() -> None:
    np.testing.assert_array_equal(label_indices(np.array([0.0, 0.1, 0.30000000000000004, 1.0])), [0, 1, 3, 10])
    for bad in (np.array([0.15]), np.array([1.1]), np.array([np.nan]), np.zeros((2, 2))):
        with pytest.raises(ValueError, match="labels"):
            label_indices(bad)



def test_every_wrong_label_as_negative_makes_hardest_and_random_the_same(task: Task) -> None:
    """With ``negatives_per_sample`` = all 10 wrong labels, the negatives no longer depend on
    how they are picked: hardest and random take the same step (up to the order of the sums;
    one batch, as random negatives draw from the shuffling's generator), and one negative per
    sample (the default) takes a different one."""
    x, y, xe, ye = task
    nets = {
        (kind, m): train_offline(x[:600], y[:600], layer_sizes=(143, 16), epochs=1, batch_size=600, negatives=kind,
                                 negatives_per_sample=m, lr_schedule="constant", seed=3).params
        for kind in ("hardest", "random") for m in (1, 10)
    }
    for a, b in zip(nets["hardest", 10].weights, nets["random", 10].weights):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert not np.allclose(nets["hardest", 1].weights[0], nets["hardest", 10].weights[0])
    assert not np.allclose(nets["hardest", 1].weights[0], nets["random", 1].weights[0])


def test_several_hard_negatives_still_learn_the_task(task: Task) -> None:
    """Three hardest wrong labels per sample still learn the threshold task well above the
    majority class (0.48): the option changes the negatives, not whether training works."""
    x, y, xe, ye = task
    result = train_offline(x, y, epochs=10, batch_size=64, negatives_per_sample=3, seed=0, eval_features=xe,
                           eval_labels=ye)
    assert result.history[-1].accuracy > 0.7

@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(features=np.zeros((5, 11))), "features"),
        (dict(features=np.full((5, 12), np.nan)), "finite"),
        (dict(features=np.zeros((0, 12)), labels=np.zeros(0)), "no samples"),
        (dict(labels=np.zeros(4)), "labels have 4"),
        (dict(labels=np.full(5, 0.25)), "quantised"),
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(negatives="easy"), "negatives"),
        (dict(loss="mse"), "loss"),
        (dict(schedule="random"), "schedule"),
        (dict(negative_gap=0.9), "negative_gap"),
        (dict(negatives_per_sample=0), "negatives_per_sample"),
        (dict(negatives_per_sample=11), r"negatives_per_sample must be in \[1, 10\]"),
        (dict(negatives_per_sample=3, negative_gap=0.5), r"\[1, 2\] for negative_gap 0.5"),
        (dict(average_tail=1.0), r"average_tail must be in \[0, 1\)"),
        (dict(average_tail=-0.1), "average_tail"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, Any] = dict(features=np.zeros((5, 12)), labels=np.zeros(5))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        train_offline(args.pop("features"), args.pop("labels"), **args)


def _write_dataset(path: Path, n: int = 300, **overrides: object) -> None:
    x, y = synthetic_threshold_task(n, seed=4)
    arrays = dict(features=x, labels=y, meta=json.dumps({"scenario": "synthetic", "seed": 4}))
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def test_cli_trains_saves_model_and_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "set.npz"
    _write_dataset(data)
    out = tmp_path / "models" / "cell.ltm"
    code = train_cli.main([str(data), "--epochs", "2", "--batch-size", "64", "--seed", "1", "--readout",
                           "--out", str(out)])
    assert code == 0
    model = LightTuneModel.from_bytes(out.read_bytes())
    # the saved model carries the input encoding of the training split (80 % of the rows): its
    # standardisation, 8 quantile bins per feature (7 edges of a continuous feature) and gain 1,
    # and the block input 11 (F + 1) wide for the F = 12 + 12 * 8 encoded values
    x, _ = synthetic_threshold_task(300, seed=4)
    train_rows, _ = train_cli.split_holdout(300, 0.2, 1)
    np.testing.assert_allclose(model.feature_mean, x[train_rows].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.feature_scale, x[train_rows].std(axis=0), rtol=1e-12)
    assert model.encoding.gain == 1.0 and len(model.encoding.bin_edges) == 12
    for j, edges in enumerate(model.encoding.bin_edges):
        np.testing.assert_allclose(edges, np.quantile(x[train_rows, j], np.arange(1, 8) / 8), rtol=1e-12)
    assert model.layer_sizes == (11 * (12 + 12 * 8 + 1), 32, 32) and model.n_updates == 0
    # --readout: a softmax readout on the 11 x 64 activities, with the online step and averaging
    assert model.readout is not None and model.readout.weight.shape == (11, 11 * 64)
    assert (model.readout_lr, model.readout_average) == (0.003, 0.02)
    # --input-bins 0 --input-gain 1, no --readout: the plain standardised features and arg-max
    # goodness of offline-v4 and earlier
    plain = tmp_path / "plain.ltm"
    assert train_cli.main([str(data), "--epochs", "1", "--seed", "1", "--input-bins", "0", "--input-gain", "1",
                           "--average-tail", "0.5", "--out", str(plain)]) == 0
    plain_model = LightTuneModel.from_bytes(plain.read_bytes())
    assert plain_model.layer_sizes == ff.DEFAULT_LAYER_SIZES == (143, 32, 32) and plain_model.readout is None
    rows = list(csv.reader((tmp_path / "models" / "cell.curve.csv").open()))
    # the default simultaneous schedule: one curve row per epoch, all layers trained together
    assert rows[0][:2] == ["layer", "epoch"] and len(rows) == 1 + 2
    assert [r[:2] for r in rows[1:]] == [["2", "1"], ["2", "2"]]
    text = capsys.readouterr().out
    assert "final: held-out accuracy" in text and "synthetic" in text
    assert "readout (median label): held-out accuracy" in text
    # --average-tail: the saved model's own held-out figures, beside the last iterate's curve
    assert re.search(r"averaged parameters \(last 0.5 of the steps\): held-out accuracy [01]\.\d+", text)
    # same seed, same model
    again = tmp_path / "again.ltm"
    assert train_cli.main([str(data), "--epochs", "2", "--batch-size", "64", "--seed", "1", "--readout",
                           "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [(["--input-bins", "1"], "input_bins must be 0 \\(none\\) or 2 .. 256"),
     (["--input-bins", "300"], "input_bins must be"),
     (["--input-gain", "0"], "input gain must be finite and > 0"),
     (["--input-gain", "nan"], "input gain"),
     (["--readout-average", "0"], "--readout-average must be in \\(0, 1\\]"),
     (["--readout-lr", "-1"], "--readout-lr must be >= 0"),
     (["--readout-l2", "nan"], "--readout-l2 must be >= 0"),
     (["--average-tail", "1"], r"average_tail must be in \[0, 1\)")],
)
def test_cli_refuses_a_bad_input_encoding(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                         message: str) -> None:
    data = tmp_path / "set.npz"
    _write_dataset(data)
    out = tmp_path / "m.ltm"
    assert train_cli.main([str(data), "--epochs", "1", "--out", str(out), *args]) == 2
    assert re.search(message, capsys.readouterr().err) and not out.exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(labels=None), "missing"),
        (dict(meta="{not json"), "JSON"),
        (dict(features=np.zeros((300, 5))), "features"),
        (dict(labels=np.full(300, 0.25)), "quantised"),
    ],
)
def test_cli_reports_malformed_datasets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, object], message: str
) -> None:
    data = tmp_path / "bad.npz"
    _write_dataset(data, **overrides)
    assert train_cli.main([str(data), "--epochs", "1"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad.ltm").exists()


def test_cli_reports_missing_and_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli.main([str(tmp_path / "nope.npz")]) == 2
    assert "no such dataset" in capsys.readouterr().err
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    assert train_cli.main([str(junk)]) == 2
    assert "not a readable" in capsys.readouterr().err


def test_cli_trains_on_several_datasets_as_their_concatenation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lighttune-train A.npz B.npz`` is the same model as training on one file holding A's
    samples then B's; a bad second file is refused with its name and nothing is written."""
    x, y = synthetic_threshold_task(400, seed=4)
    first, second, joined = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "ab.npz"
    for path, rows, note in ((first, slice(0, 250), "a"), (second, slice(250, 400), "b"), (joined, slice(0, 400), "ab")):
        np.savez(path, features=x[rows], labels=y[rows], meta=json.dumps({"scenario": note}))
    args = ["--epochs", "2", "--batch-size", "64", "--seed", "3"]
    assert train_cli.main([str(first), str(second), *args, "--out", str(tmp_path / "two.ltm")]) == 0
    text = capsys.readouterr().out
    assert "a.npz (250 samples; scenario a)" in text and "b.npz (150 samples; scenario b)" in text
    assert train_cli.main([str(joined), *args, "--out", str(tmp_path / "one.ltm")]) == 0
    assert (tmp_path / "two.ltm").read_bytes() == (tmp_path / "one.ltm").read_bytes()
    # the default output is named after the first dataset
    assert train_cli.main([str(first), str(second), "--epochs", "1"]) == 0 and (tmp_path / "a.ltm").exists()
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.zeros((10, 5)), labels=np.zeros(10), meta=json.dumps({}))
    assert train_cli.main([str(first), str(bad), "--epochs", "1", "--out", str(tmp_path / "no.ltm")]) == 2
    assert "bad.npz" in capsys.readouterr().err and not (tmp_path / "no.ltm").exists()


def _ordinal_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded 11-level ordinal task: 12 features ``N(0, 1)``, BLER label
    ``clip(round(2.5 x_0 + 3 + N(0, 0.5²)), 0, 10) / 10`` (the other 11 features are noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12))
    y = np.clip(np.round(2.5 * x[:, 0] + 3.0 + rng.normal(0.0, 0.5, n)), 0, 10) / 10.0
    return x, y


def test_default_block_network_learns_an_ordinal_task_the_scalar_encoding_does_not() -> None:
    """Default training (block input ``[143, 32, 32]``, simultaneous, cosine lr, standardised)
    against the paper's scalar ``[13, 32, 32]`` with the same defaults; 3,000 training and
    2,000 held-out samples, 10 epochs, seed 0.

    Measured held-out mean |error|: best constant (the training median, 0.3) 0.192; block
    0.076 (0.40 x the constant); scalar 0.496 (worse than the constant: it collapses onto the
    extreme labels 0.0 and 1.0).
    """
    x, y = _ordinal_task(3000, 0)
    xe, ye = _ordinal_task(2000, 1)
    constant_err = float(np.mean(np.abs(ye - np.median(y))))
    errors = {}
    for sizes in (ff.DEFAULT_LAYER_SIZES, ff.PAPER_LAYER_SIZES):
        result = train_offline(x, y, layer_sizes=sizes, epochs=10, seed=0, eval_features=xe, eval_labels=ye)
        model = LightTuneModel.from_params(
            result.params, feature_mean=result.feature_mean, feature_scale=result.feature_scale
        )
        errors[sizes[0]] = float(np.mean(np.abs(model.predict_many(xe) - ye)))
        assert errors[sizes[0]] == pytest.approx(result.history[-1].mean_abs_error, abs=1e-12)
    assert 0.15 < constant_err < 0.25
    assert errors[143] <= 0.6 * constant_err, (errors, constant_err)
    assert errors[13] >= constant_err, (errors, constant_err)
