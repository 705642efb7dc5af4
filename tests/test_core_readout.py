"""The softmax readout of the FF network's hidden activities (lighttune_core/readout.py): the
activities it reads, its offline fit, its online steps, the model file that carries it and
what it is for — the median of a label distribution (the MAE-optimal label), which the arg-max
goodness cannot give."""

from __future__ import annotations

import copy
import pickle
import struct

import numpy as np
import pytest

from lighttune_core import ff
from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import BLER_LABELS
from lighttune_core.readout import (
    SoftmaxReadout,
    fit_readout,
    fold_readout,
    label_activities,
    median_labels,
    readout_proba,
    readout_proba_from_inputs,
    readout_step,
)
from lighttune_core.synthetic import random_reports, synthetic_bler_task
from lighttune_core.training import train_offline
from lighttune_core.tuner import LightTuneModel


def _noisy_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic link-budget task with label noise: each label moves by −0.3 … +0.3 at
    random, so the labels of one input spread over several values, as HARQ counts do."""
    x, y = synthetic_bler_task(n, seed)
    rng = np.random.default_rng(seed + 100)
    y = np.clip(np.round(y + rng.choice([-0.3, 0.0, 0.0, 0.3], n), 1), 0.0, 1.0)
    return x, y


@pytest.fixture(scope="module")
def trained() -> tuple[LightTuneModel, LightTuneModel]:
    """(arg-max model, the same layers with a fitted readout), trained on the noisy task."""
    x, y = _noisy_task(4000, 0)
    plain = train_offline(x, y, epochs=6, seed=0, input_bins=8)
    with_head = train_offline(x, y, epochs=6, seed=0, input_bins=8, readout=True)
    return (
        LightTuneModel.from_params(plain.params, **plain.model_arguments()),
        LightTuneModel.from_params(with_head.params, lr=0.0003, **with_head.model_arguments()),
    )


def test_training_fits_the_readout_after_the_layers_and_scores_it() -> None:
    """``train_offline(readout=True)`` trains the same layers as without it (the readout is
    fitted afterwards and changes nothing below it) and scores its median on the held-out
    split, where it beats the layers' arg-max on noisy labels."""
    x, y = _noisy_task(2000, 0)
    xe, ye = _noisy_task(1000, 1)
    plain = train_offline(x, y, epochs=3, seed=0, input_bins=8, eval_features=xe, eval_labels=ye)
    head = train_offline(x, y, epochs=3, seed=0, input_bins=8, eval_features=xe, eval_labels=ye, readout=True)
    for a, b in zip(plain.params.weights + plain.params.biases, head.params.weights + head.params.biases):
        assert np.array_equal(a, b)
    assert plain.readout is None and plain.readout_eval is None
    accuracy, mae = head.readout_eval
    assert 0.0 <= accuracy <= 1.0 and mae < plain.history[-1].mean_abs_error


def test_label_activities_are_the_forward_pass_of_every_label(trained: tuple[LightTuneModel, LightTuneModel]) -> None:
    model = trained[1]
    x, _ = synthetic_bler_task(50, 3)
    e = model.encoding.encode(x)
    acts = label_activities(model.params.weights, model.params.biases, e, model.norm_eps)
    assert acts.shape == (50, 11, 64)
    for k in (0, 4, 10):
        hs = ff.forward(model.params, ff.pair_inputs(e, BLER_LABELS[k], "block"), model.norm_eps)
        np.testing.assert_allclose(acts[:, k, :32], hs[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(acts[:, k, 32:], hs[1], rtol=1e-12, atol=1e-12)
    # the fused forward pass of inference gives the readout of these activities
    folded = fold_readout(model.readout, (32, 32))
    np.testing.assert_allclose(
        readout_proba_from_inputs(model.params.weights, model.params.biases, folded, e, model.norm_eps, block=16),
        readout_proba(model.readout, acts), rtol=1e-9, atol=1e-12,
    )
    acts32 = label_activities(model.params.weights, model.params.biases, e.astype(np.float32), model.norm_eps)
    assert acts32.dtype == np.float32
    np.testing.assert_allclose(acts32, acts, rtol=1e-4, atol=1e-4)


def test_the_readout_median_beats_the_argmax_goodness_on_noisy_labels(
    trained: tuple[LightTuneModel, LightTuneModel],
) -> None:
    """Where one input's labels spread over several values, the median minimises the mean
    |error| and the mean is the expected BLER; the arg-max goodness is neither."""
    plain, model = trained
    x, y = _noisy_task(3000, 1)
    err_argmax = float(np.mean(np.abs(plain.predict_many(x) - y)))
    err_median = float(np.mean(np.abs(model.predict_many(x) - y)))
    err_constant = float(np.mean(np.abs(0.1 - y)))
    # measured (training seeds 0, 1): median 0.098, arg-max 0.130, the constant 0.1 0.318
    assert err_median < 0.85 * err_argmax
    assert err_median < 0.4 * err_constant
    # the distribution is calibrated in the large: its average is the labels' frequencies
    e = model.encoding.encode(x)
    proba = readout_proba(model.readout, label_activities(model.params.weights, model.params.biases, e, model.norm_eps))
    freq = np.bincount(np.rint(y * 10).astype(np.int64), minlength=11) / y.size
    np.testing.assert_allclose(proba.mean(axis=0), freq, atol=0.02)


def test_one_and_many_predictions_agree_in_float64_and_nearly_in_float32(
    trained: tuple[LightTuneModel, LightTuneModel],
) -> None:
    model = trained[1]
    x, _ = synthetic_bler_task(400, 5)
    many = model.predict_many(x)
    assert np.array_equal(np.array([model.predict_one(v) for v in x]), many)
    assert np.mean(model.predict_many_unchecked(x, np.float32) == many) > 0.97


def test_the_median_label_of_a_distribution() -> None:
    p = np.zeros((3, 11))
    p[0, [0, 3, 6]] = [0.45, 0.30, 0.25]  # mode 0.0, median 0.3
    p[1, 10] = 1.0
    p[2, [1, 2]] = [0.5, 0.5]  # the smallest label reaching 1/2
    assert median_labels(p).tolist() == [3, 10, 1]


def test_the_fit_is_deterministic_and_refuses_bad_input(trained: tuple[LightTuneModel, LightTuneModel]) -> None:
    model = trained[1]
    x, y = _noisy_task(300, 2)
    acts = label_activities(model.params.weights, model.params.biases, model.encoding.encode(x), model.norm_eps)
    k = np.rint(y * 10).astype(np.int64)
    a, b = fit_readout(acts, k, max_iter=20), fit_readout(acts, k, max_iter=20)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    np.testing.assert_allclose(readout_proba(a, acts).sum(axis=1), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="label indices"):
        fit_readout(acts, k + 11)
    with pytest.raises(ValueError, match="activities"):
        fit_readout(acts[:, :5], k)
    with pytest.raises(ValueError, match="l2"):
        fit_readout(acts, k, l2=-1.0)


def test_online_steps_learn_the_sample_and_move_the_average_by_beta(
    trained: tuple[LightTuneModel, LightTuneModel],
) -> None:
    model = trained[1]
    x, _ = synthetic_bler_task(20, 7)
    acts = label_activities(model.params.weights, model.params.biases, model.encoding.encode(x), model.norm_eps)
    head = SoftmaxReadout(*(a.copy() for a in model.readout))
    before = readout_proba(head, acts[:1])[0, 9]
    fast_before = head.fast_weight.copy()
    slow_before = head.weight.copy()
    readout_step(head, acts[0], 9, lr=0.01, average=0.25)
    assert readout_proba(head, acts[:1])[0, 9] > before
    np.testing.assert_allclose(head.weight - slow_before, 0.25 * (head.fast_weight - slow_before), atol=1e-12)
    assert not np.array_equal(head.fast_weight, fast_before)
    # the step is the cross-entropy's gradient on the iterate: a finite-difference check
    h = SoftmaxReadout(*(a.copy() for a in model.readout))
    a0 = (acts[1].reshape(-1) - h.mean) / h.scale
    b0 = h.fast_bias.copy()

    def loss(w: np.ndarray) -> float:
        z = w @ a0 + b0
        return float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[3])

    w0 = h.fast_weight.copy()
    readout_step(h, acts[1], 3, lr=1.0, average=1.0)
    grad = w0 - h.fast_weight  # lr 1: the step is the gradient
    for i, j in ((3, 0), (0, 100), (10, 703)):
        e = np.zeros_like(w0)
        e[i, j] = 1e-6
        np.testing.assert_allclose(grad[i, j], (loss(w0 + e) - loss(w0 - e)) / 2e-6, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(h.weight, h.fast_weight, atol=1e-12)  # β = 1: the average is the iterate


def test_learn_one_steps_the_readout_on_every_sample_and_the_layers_on_surprises(
    trained: tuple[LightTuneModel, LightTuneModel],
) -> None:
    """The layers keep LightTune's rule (screen and negative: their arg-max goodness); the
    readout learns from every sample, unless the caller (the decision cell) says not to."""
    model = copy.deepcopy(trained[1])
    plain = copy.deepcopy(model)
    plain.readout = None
    x, _ = synthetic_bler_task(1, 9)
    y_ff = plain.predict_one(x[0])  # the layers' own label
    params = [w.copy() for w in model.params.weights]
    head = model.readout.weight.copy()
    version = model.version
    assert model.learn_one(x[0], y_ff) is False  # no surprise: the FF layers keep still
    assert all(np.array_equal(a, b) for a, b in zip(params, model.params.weights))
    assert not np.array_equal(model.readout.weight, head) and model.version != version
    far = 1.0 if y_ff < 0.5 else 0.0
    assert model.learn_one(x[0], far) is True
    assert plain.learn_one(x[0], far) is True  # the same layer step as without a readout
    for a, b in zip(plain.params.weights, model.params.weights):
        assert np.array_equal(a, b)
    head = model.readout.weight.copy()
    xs, ys = synthetic_bler_task(30, 10)
    model.learn_many(xs, ys, readout=False)
    assert np.array_equal(model.readout.weight, head)


def test_the_cell_keeps_the_readout_as_trained(trained: tuple[LightTuneModel, LightTuneModel]) -> None:
    """The cell's labels are those of the candidates its search applied; the readout's steps
    on them cost throughput (docs/results.md), so the cell fine-tunes the layers only."""
    model = copy.deepcopy(trained[1])
    cell = CellTuner(model, TuneMode.RI_CQI, calibrate=False, check_rank_changes=False)
    reports = random_reports(32, seed=1, first_tx=(20, 40), nack_rate=0.6)
    cell.decide(reports)
    head = [a.copy() for a in model.readout]
    params = [w.copy() for w in model.params.weights]
    outcome = cell.learn(reports)
    assert outcome.n_updates > 0
    assert not all(np.array_equal(a, b) for a, b in zip(params, model.params.weights))
    assert all(np.array_equal(a, b) for a, b in zip(head, model.readout))


def test_model_files_carry_the_readout_bit_exactly(trained: tuple[LightTuneModel, LightTuneModel]) -> None:
    plain, model = trained
    m = copy.deepcopy(model)
    x, y = synthetic_bler_task(10, 11)
    m.learn_many(x, y)  # the iterate and the average now differ
    data = m.to_bytes()
    assert struct.unpack_from("<H", data, 4)[0] == 4
    assert struct.unpack_from("<H", plain.to_bytes(), 4)[0] == 3  # no readout: version 3 as before
    back = LightTuneModel.from_bytes(data)
    assert back.to_bytes() == data
    for u, v in zip(back.readout, m.readout):
        assert np.array_equal(u, v)
    assert (back.readout_lr, back.readout_average) == (m.readout_lr, m.readout_average)
    x2, _ = synthetic_bler_task(100, 12)
    assert np.array_equal(back.predict_many(x2), m.predict_many(x2))
    assert np.array_equal(LightTuneModel.from_state_dict(m.state_dict()).to_bytes(), data)
    assert pickle.loads(pickle.dumps(m)).to_bytes() == data
    with pytest.raises(ValueError, match="CRC|length"):
        LightTuneModel.from_bytes(data[:-100] + data[-4:])


def test_bad_readouts_are_refused(trained: tuple[LightTuneModel, LightTuneModel]) -> None:
    model = trained[1]
    state = model.state_dict()
    bad = SoftmaxReadout(*(a.copy() for a in model.readout))
    bad.scale[0] = 0.0
    state["readout"] = bad
    with pytest.raises(ValueError, match="scale"):
        LightTuneModel.from_state_dict(state)
    state["readout"] = SoftmaxReadout(model.readout.weight[:, :10], *model.readout[1:])
    with pytest.raises(ValueError, match="shapes"):
        LightTuneModel.from_state_dict(state)
    with pytest.raises(ValueError, match="readout_average"):
        LightTuneModel(readout_average=0.0)
    with pytest.raises(ValueError, match="block input"):
        LightTuneModel(layer_sizes=(13, 32, 32), readout=model.readout)
    x, y = synthetic_bler_task(100, 0)
    with pytest.raises(ValueError, match="block input"):
        train_offline(x, y, layer_sizes=(13, 32, 32), epochs=1, standardise=False, readout=True)
