"""The FF input encoding (standardised features + one-hot quantile bins, gain g) end to end:
the encoding itself, the wider block input it gives the network (forward passes, gradients,
the LightTune step), the model file that carries it, and what it is for: a non-monotone
response the plain features cannot give the forward-forward network."""

from __future__ import annotations

import copy
import pickle
import struct
import zlib

import numpy as np
import pytest

from lighttune_core import ff
from lighttune_core.encoding import InputEncoding, fit_bin_edges
from lighttune_core.features import BLER_LABELS
from lighttune_core.training import STD_FLOOR, train_offline
from lighttune_core.tuner import LightTuneModel

from test_core_ff import _check_gradients


def _train_features(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, (n, 12))
    x[:, 5] = rng.integers(1, 5, n) / 4  # a feature of 4 values (the RI)
    x[:, 10] = 0.25  # a constant feature (the CSI age of one CSI-RS period)
    return x


def _encoding(seed: int = 0, n_bins: int = 8, gain: float = 0.1) -> InputEncoding:
    x = _train_features(2000, seed)
    return InputEncoding(x.mean(axis=0), x.std(axis=0) + 1e-6, fit_bin_edges(x, n_bins), gain)


def _model(seed: int = 0, hidden: tuple[int, ...] = (32, 32), **kwargs: object) -> LightTuneModel:
    enc = _encoding(seed)
    return LightTuneModel(
        layer_sizes=(11 * (enc.width + 1),) + hidden, seed=seed, lr=0.01, feature_mean=enc.mean,
        feature_scale=enc.scale, input_bins=enc.bin_edges, input_gain=enc.gain, **kwargs,  # type: ignore[arg-type]
    )


def test_bin_edges_are_the_training_quantiles_and_collapse_on_few_values() -> None:
    x = _train_features(2000, 1)
    edges = fit_bin_edges(x, 8)
    np.testing.assert_allclose(edges[0], np.quantile(x[:, 0], np.arange(1, 8) / 8), rtol=1e-12)
    # 4 distinct values: the 7 quantiles collapse onto them; no edge at the smallest value,
    # which would open a bin below every training sample (weights training never moves)
    assert edges[5].tolist() == [0.5, 0.75, 1.0]
    assert edges[10].tolist() == []  # constant: one bin
    for j, e in enumerate(edges):
        assert np.all(e > x[:, j].min())
    for bad, match in ((x[:, :5], "shape"), (np.full((3, 12), np.nan), "finite")):
        with pytest.raises(ValueError, match=match):
            fit_bin_edges(bad, 8)
    with pytest.raises(ValueError, match="n_bins"):
        fit_bin_edges(x, 1)


def test_encode_is_gain_times_standardised_features_and_one_hot_bins() -> None:
    enc = _encoding(2, gain=0.25)
    x = _train_features(50, 3)
    x[0, 0] = enc.bin_edges[0][2]  # on an edge: the upper bin (side right)
    out = enc.encode(x)
    assert out.shape == (50, enc.width) and enc.width == 12 + sum(e.shape[0] + 1 for e in enc.bin_edges)
    np.testing.assert_allclose(out[:, :12], 0.25 * (x - enc.mean) / enc.scale, rtol=1e-12)
    col = 12
    for j, e in enumerate(enc.bin_edges):
        block = out[:, col : col + e.shape[0] + 1]
        np.testing.assert_array_equal(block.sum(axis=1), 0.25)  # exactly one bin per feature
        np.testing.assert_array_equal(np.argmax(block, axis=1), [int(np.sum(e <= v)) for v in x[:, j]])
        col += e.shape[0] + 1
    assert np.argmax(out[0, 12 : 12 + enc.bin_edges[0].shape[0] + 1]) == 3
    np.testing.assert_array_equal(enc.encode_one(x[7]), out[7])
    # large batches find the bins by binary search, single samples by one comparison: the same
    many = _train_features(300, 4)
    many[:12, :] = [e[0] if e.size else 0.0 for e in enc.bin_edges]  # rows on the first edges
    np.testing.assert_array_equal(enc.encode(many), np.stack([enc.encode_one(r) for r in many]))
    # ||x'||² of one sample: bit for bit the left-to-right sum over all F values
    for row in enc.encode(many[:20]):
        assert enc.sum_sq_one(row) == sum([v * v for v in row.tolist()])
    plain = InputEncoding()
    assert plain.identity and plain.width == 12 and plain.encode(x) is x


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(bin_edges=[np.zeros(1)] * 11), "all 12"),
        (dict(bin_edges=[np.array([1.0, 0.0])] + [np.zeros(0)] * 11), "ascending"),
        (dict(bin_edges=[np.array([np.inf])] + [np.zeros(0)] * 11), "finite"),
        (dict(gain=0.0), "gain"),
        (dict(gain=float("nan")), "gain"),
        (dict(scale=np.zeros(12)), "feature_scale"),
    ],
)
def test_bad_encodings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        InputEncoding(**kwargs)  # type: ignore[arg-type]


def test_the_model_refuses_an_input_width_that_does_not_fit_its_encoding() -> None:
    enc = _encoding()
    with pytest.raises(ValueError, match=f"gives {enc.width} values"):
        LightTuneModel(input_bins=enc.bin_edges)  # the default 143 is for the 12 plain features
    with pytest.raises(ValueError, match="block input"):
        LightTuneModel(layer_sizes=ff.PAPER_LAYER_SIZES, input_bins=enc.bin_edges)
    with pytest.raises(ValueError, match="11 \\(F \\+ 1\\)"):
        ff.check_layer_sizes((150, 32))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_wide_block_plans_match_the_plain_forward_pass(dtype: type, rtol: float) -> None:
    """The fused all-labels pass and the single-sample trace on an ``11 (F + 1)`` input give
    the goodness of the direct layer-by-layer forward pass of ``e_k ⊗ [x'; 1]``."""
    model = _model(4)
    x = model.encoding.encode(_train_features(300, 5))
    params = model.params
    direct = np.stack(
        [sum((h * h).sum(-1) for h in ff.forward(params, ff.pair_inputs(x, y, "block"))) for y in BLER_LABELS], axis=1
    )
    plan = ff.plan_inference(params, dtype=dtype)
    got = ff.goodness_all_labels_t(plan, x.astype(dtype)).T
    np.testing.assert_allclose(got, direct, rtol=rtol)
    plan64 = ff.plan_inference(params)
    trace = ff.forward_one_from_plan(plan64, x[0], None, ff.new_trace(plan64))
    np.testing.assert_allclose(ff.trace_goodness(plan64, trace), direct[0], rtol=1e-12)


@pytest.mark.parametrize("loss", ["proposed", "softplus"])
@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("kind", ["positive", "negative", "mixed"])
def test_gradients_match_finite_differences_on_the_encoded_block_input(loss: str, layer: int, kind: str) -> None:
    """The FF's closed-form local gradients on the wider encoded input (issue 15: the FD
    check for the new encoding), every weight and bias of both layers."""
    enc = _encoding(6)
    params = ff.init_params((11 * (enc.width + 1), 8, 6), seed=3)
    rng = np.random.default_rng(11)
    h = ff.pair_inputs(enc.encode(_train_features(4, 7)), rng.choice(BLER_LABELS, 4), "block")
    for w, b in zip(params.weights[:layer], params.biases[:layer]):
        _, h = ff.layer_forward(w, b, h)
    _check_gradients(params, layer, h, kind, loss)


def test_the_lighttune_step_on_encoded_inputs_is_the_pair_update() -> None:
    """``learn_one`` (the trace-reusing in-place step) makes the update of the pure
    :func:`ff.pair_update` on the encoded features, and predictions agree across paths."""
    model = _model(8)
    x = _train_features(40, 9)
    y = np.random.default_rng(10).choice(BLER_LABELS, 40)
    n_updates = 0
    for xi, yi in zip(x, y):
        before = model.params
        expected = None
        y_hat = model.predict_one(xi)
        if abs(y_hat - yi) >= model.delta - 1e-9:
            expected = ff.pair_update(before, model.encoding.encode_one(xi), yi, y_hat, model.lr)
        updated = model.learn_one(xi, yi)
        assert updated == (expected is not None)
        if expected is not None:
            n_updates += 1
            for u, v in zip(model.params.weights + model.params.biases, expected.weights + expected.biases):
                np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)
    assert n_updates > 5
    # each step refreshed only its two label blocks of the plan's copy of W_1: a plan built
    # afresh from the parameters holds the same arrays
    fresh = ff.plan_inference(model.params)
    np.testing.assert_array_equal(model._plan.w1x, fresh.w1x)
    np.testing.assert_array_equal(model._plan.label_rows, fresh.label_rows)
    probe = _train_features(200, 12)
    many = model.predict_many(probe)
    np.testing.assert_array_equal(many, [model.predict_one(r) for r in probe])
    assert np.mean(model.predict_many_unchecked(probe, np.float32) == many) > 0.95


def test_learn_many_makes_the_updates_of_learn_one_bit_for_bit() -> None:
    a, b = _model(13), _model(13)
    x = _train_features(60, 14)
    y = np.random.default_rng(15).choice(BLER_LABELS, 60)
    n = a.learn_many(x, y)
    assert n == sum(b.learn_one(xi, yi) for xi, yi in zip(x, y)) and n > 5
    for u, v in zip(a.params.weights + a.params.biases, b.params.weights + b.params.biases):
        np.testing.assert_array_equal(u, v)


def test_packing_keeps_a_wide_first_layer_out_of_the_padded_stacks() -> None:
    """The packed stacks of the LightTune step are ``[L, 32, 32]``, not ``[L, M_0, M_0]``
    (12.4 MB per model for offline-v5's 880 inputs); ``W_1`` is kept whole beside them."""
    model = _model(16)
    params = model.params
    packed = ff.pack_params(params)
    assert packed.weights.shape == (2, 32, 32) and packed.biases.shape == (2, 32)
    assert packed.w1 is not None and packed.params.weights[0] is packed.w1
    for u, v in zip(packed.params.weights + packed.params.biases, params.weights + params.biases):
        np.testing.assert_array_equal(u, v)
    scalar = ff.pack_params(ff.init_params((13, 32, 32), 0))
    assert scalar.w1 is None and scalar.weights.shape == (2, 32, 32)


def test_model_files_carry_the_encoding_bit_exactly() -> None:
    model = _model(13)
    model.learn_many(_train_features(100, 14), np.random.default_rng(15).choice(BLER_LABELS, 100))
    blob = model.to_bytes()
    assert int.from_bytes(blob[4:6], "little") == 3
    probe = _train_features(100, 16)
    for again in (LightTuneModel.from_bytes(blob), pickle.loads(pickle.dumps(model)), copy.deepcopy(model),
                  LightTuneModel.from_state_dict(model.state_dict())):
        assert again.to_bytes() == blob and again.encoding.equals(model.encoding)
        np.testing.assert_array_equal(again.predict_many(probe), model.predict_many(probe))
    # truncated or padded encodings and a bad gain are refused with a clear error
    body = blob[:-4]
    for broken, match in ((body[:-8], "length"), (body + b"\0" * 8, "length"), (body[: -8 * 60], "length|truncated")):
        with pytest.raises(ValueError, match=match):
            LightTuneModel.from_bytes(broken + struct.pack("<I", zlib.crc32(broken)))
    n_edges = sum(e.shape[0] for e in model.encoding.bin_edges)
    gain_at = len(body) - 8 * n_edges - 4 * 12 - 8
    bad = body[:gain_at] + struct.pack("<d", -1.0) + body[gain_at + 8 :]
    with pytest.raises(ValueError, match="gain"):
        LightTuneModel.from_bytes(bad + struct.pack("<I", zlib.crc32(bad)))


def _band_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A non-monotone task: BLER 0.8 when feature 0 lies in a middle band, else 0.0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, 12))
    y = np.where(np.abs(x[:, 0]) < 0.5, 0.8, 0.0)
    return x, y


def test_a_feature_constant_in_training_does_not_swamp_the_inputs_when_it_moves() -> None:
    """A feature constant in the training data (the simulator's CSI age) must not take the
    network over when service data differ a little: its scale is floored (training
    ``STD_FLOOR``) and it gets no bins, so the band task keeps its answers. With the old
    floor of 1e-6 the moved feature was ~10⁴ standard units and every prediction one label."""
    x, y = _band_task(3000, 0)
    x[:, 10] = 0.00625  # 0.5 ms of CSI age, / 80 ms
    result = train_offline(x, y, epochs=8, seed=0, input_bins=8, input_gain=0.1)
    assert result.feature_scale[10] == STD_FLOOR and result.input_bins[10].size == 0
    model = LightTuneModel.from_params(result.params, **result.model_arguments())
    x_test, y_test = _band_task(1000, 1)
    x_test[:, 10] = 0.00625
    here = model.predict_many(x_test)
    assert float(np.mean(np.abs(here - y_test))) < 0.12
    for age_ms in (0.6, 1.0, 2.0):
        moved = x_test.copy()
        moved[:, 10] = age_ms / 80.0
        assert np.mean(model.predict_many(moved) == here) > 0.95, age_ms


def test_bins_let_the_ff_learn_a_response_the_plain_features_cannot() -> None:
    """The reason for the bins: a label that rises and falls along one feature. With the
    plain features every first-layer neuron of a label block is one half-space of ``x``, and
    the forward-forward training (no backpropagation) does not combine them into a band;
    with 8 bins per feature the band is one bin pattern."""
    x, y = _band_task(3000, 0)
    x_test, y_test = _band_task(1000, 1)
    errors = {}
    for bins, gain in ((0, 1.0), (8, 0.1)):
        result = train_offline(x, y, epochs=8, seed=0, input_bins=bins, input_gain=gain)
        model = LightTuneModel.from_params(result.params, **result.model_arguments())
        errors[bins] = float(np.mean(np.abs(model.predict_many(x_test) - y_test)))
    constant = float(np.mean(np.abs(y_test - 0.0)))
    # measured (seeds 0-2): plain 0.37-0.39, binned 0.086-0.10, the constant 0.0: 0.31
    assert errors[8] < 0.4 * constant
    assert errors[8] < 0.35 * errors[0]
