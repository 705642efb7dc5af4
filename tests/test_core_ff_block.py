"""The label-conditioned block input ``e_k ⊗ [x; 1]`` (``M_0 = 143``, the default network) and the
feature standardisation stored in the model: the fast paths agree with the plain forward
pass, the LightTune step is ``ff.pair_update`` on standardised features, and the model file
(format 2, version 1 still read) round-trips exactly."""

from __future__ import annotations

import copy
import pickle
import struct
import zlib

import numpy as np
import pytest

from lighttune_core import ff
from lighttune_core.features import BLER_LABELS
from lighttune_core.synthetic import synthetic_threshold_task
from lighttune_core.tuner import FORMAT_VERSION, LightTuneModel
from lighttune_models import builtin_model_bytes

N_STD_BYTES: int = 8 * 2 * 12
"""Bytes of the standardisation (mean and scale, float64 [12] each) in a version-2 file."""


def _standardisation(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A non-trivial (mean, scale) pair, float64 [12] each."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 2.0, 12), rng.uniform(0.3, 3.0, 12)


def _features(n: int, seed: int) -> np.ndarray:
    """Raw features on the scale of the standardisation of :func:`_standardisation`."""
    return np.random.default_rng(seed).normal(0.0, 3.0, (n, 12))


def _trained_model(seed: int = 1, n_learn: int = 400, **kwargs: object) -> LightTuneModel:
    """A default-size model with a standardisation that has taken some LightTune steps."""
    mean, scale = _standardisation(seed)
    model = LightTuneModel(seed=seed, feature_mean=mean, feature_scale=scale, **kwargs)  # type: ignore[arg-type]
    x = _features(n_learn, seed + 100)
    y = np.random.default_rng(seed + 200).choice(BLER_LABELS, n_learn)
    assert model.learn_many(x, y) > 20
    return model


def test_the_default_network_is_block_encoded() -> None:
    """The default network is [143, 32, 32]; the input width tells the encoding."""
    model = LightTuneModel(seed=0)
    assert model.layer_sizes == ff.DEFAULT_LAYER_SIZES == (ff.BLOCK_INPUT_WIDTH, 32, 32) == (143, 32, 32)
    assert ff.label_encoding(143) == "block" and ff.label_encoding(13) == "scalar"
    assert ff.PAPER_LAYER_SIZES == (13, 32, 32)
    assert ff.plan_inference(model.params).block
    assert not ff.plan_inference(ff.init_params(ff.PAPER_LAYER_SIZES, 0)).block
    with pytest.raises(ValueError, match="143"):
        ff.label_encoding(14)


def test_block_pair_inputs_put_x_and_a_one_in_the_labels_block() -> None:
    """``e_k ⊗ [x; 1]``: the features and a 1 in label k's block, zeros elsewhere."""
    x = np.arange(1.0, 13.0)
    h = ff.pair_inputs(x, np.array([0.0, 0.3, 1.0]), "block")
    assert h.shape == (3, 143)
    blocks = h.reshape(3, 11, 13)
    for row, k in enumerate((0, 3, 10)):
        np.testing.assert_array_equal(blocks[row, k], np.r_[x, 1.0])
        np.testing.assert_array_equal(np.delete(blocks[row], k, axis=0), 0.0)
    with pytest.raises(ValueError, match="0.0 .. 1.0"):
        ff.pair_inputs(x, 1.2, "block")
    with pytest.raises(ValueError, match="encoding"):
        ff.pair_inputs(x, 0.1, "onehot")


def test_predict_one_equals_predict_many() -> None:
    """Single-sample and batched predictions agree on 300 samples of a standardised model."""
    model = _trained_model()
    x = _features(300, 7)
    many = model.predict_many(x)
    np.testing.assert_array_equal(many, [model.predict_one(row) for row in x])
    np.testing.assert_array_equal(model.predict_many_unchecked(x), many)
    assert len(np.unique(many)) >= 3  # not a constant predictor: the comparison means something
    # the standardisation is applied once: the same network without it on standardised inputs
    plain = LightTuneModel.from_params(model.params)
    np.testing.assert_array_equal(plain.predict_many((x - model.feature_mean) / model.feature_scale), many)


@pytest.mark.parametrize("loss", ["proposed", "softplus"])
def test_learn_one_is_pair_update_on_the_standardised_features(loss: str) -> None:
    """Each update is ``ff.pair_update`` with the true label as the positive and the model's
    own prediction as the negative, on ``(x − mean) / scale``; no update below ``delta``."""
    mean, scale = _standardisation(2)
    model = LightTuneModel(seed=4, loss=loss, feature_mean=mean, feature_scale=scale)
    x = _features(300, 9)
    y = np.random.default_rng(10).choice(BLER_LABELS, 300)
    n_updates = 0
    for xi, yi in zip(x, y):
        before = ff.FFParams(tuple(w.copy() for w in model.params.weights), tuple(b.copy() for b in model.params.biases))
        y_hat = model.predict_one(xi)
        updated = model.learn_one(xi, yi)
        assert updated == (abs(y_hat - yi) >= model.delta - 1e-9)
        if updated:
            n_updates += 1
            want = ff.pair_update(before, (xi - mean) / scale, yi, y_hat, model.lr, model.threshold, loss,
                                  model.norm_eps)
        else:
            want = before
        for got_a, want_a in zip(model.params.weights + model.params.biases, want.weights + want.biases):
            np.testing.assert_allclose(got_a, want_a, rtol=0, atol=1e-12)
    assert n_updates > 50 and model.n_updates == n_updates


@pytest.mark.parametrize("sizes", [ff.DEFAULT_LAYER_SIZES, (143, 16, 8, 8), (143, 6)])
def test_goodness_from_the_plan_is_the_sum_over_layers_of_the_plain_forward(sizes: tuple[int, ...]) -> None:
    """``G(x, y_k) = Σ_l ||h_l||²`` of ``ff.forward(pair_inputs(x, y_k, "block"))`` on every path:
    the batched blocks, the single-sample plan and the forward trace."""
    params = ff.init_params(sizes, seed=5)
    x = np.random.default_rng(6).normal(size=(120, 12))
    outs = ff.forward(params, ff.pair_inputs(x[:, None, :], BLER_LABELS[None, :], "block"))
    want = sum(np.sum(h * h, axis=-1) for h in outs)  # [120, 11]
    last_only = np.sum(outs[-1] ** 2, axis=-1)
    if len(outs) > 1:
        assert np.max(np.abs(want - last_only)) > 1.0  # the sum is not the last layer's goodness
    np.testing.assert_allclose(ff.goodness_all_labels(params, x), want, rtol=1e-12)
    plan = ff.plan_inference(params)
    np.testing.assert_allclose(ff.goodness_from_plan(plan, x), want, rtol=1e-12)
    # the float32 search path: the same sums in single precision
    plan32 = ff.plan_inference(params, dtype=np.float32)
    np.testing.assert_allclose(ff.goodness_from_plan(plan32, x), want, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(ff.goodness_all_labels_t(plan32, x, block=7).T, want, rtol=2e-5, atol=1e-6)
    for i in (0, 61, 119):
        np.testing.assert_allclose(ff.goodness_one_from_plan(plan, x[i]), want[i], rtol=1e-12)
        trace = ff.forward_one_from_plan(plan, x[i])
        np.testing.assert_allclose(ff.trace_goodness(plan, trace), want[i], rtol=1e-12)
    np.testing.assert_array_equal(ff.predict_labels(params, x), BLER_LABELS[np.argmax(want, axis=1)])


def test_a_block_plan_predicts_the_eleven_labels_only() -> None:
    """A block network has one input block per BLER label: no other candidate labels."""
    with pytest.raises(ValueError, match="11 BLER labels"):
        ff.plan_inference(ff.init_params(seed=0), labels=BLER_LABELS[:5])


def test_bytes_round_trip_bit_exactly_with_the_standardisation() -> None:
    """to_bytes/from_bytes, state_dict, pickle and deepcopy keep every bit, standardisation included."""
    model = _trained_model(3)
    blob = model.to_bytes()
    # a model without input bins is still written as version 2 (its bytes did not change)
    assert FORMAT_VERSION == 4 and int.from_bytes(blob[4:6], "little") == 2
    stored = np.frombuffer(blob[-4 - N_STD_BYTES : -4], dtype="<f8")
    np.testing.assert_array_equal(stored[:12], model.feature_mean)
    np.testing.assert_array_equal(stored[12:], model.feature_scale)
    x = _features(200, 11)
    for again in (LightTuneModel.from_bytes(blob), LightTuneModel.from_state_dict(model.state_dict()),
                  pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert again.to_bytes() == blob
        assert again.feature_mean.tobytes() == model.feature_mean.tobytes()
        assert again.feature_scale.tobytes() == model.feature_scale.tobytes()
        assert again.layer_sizes == model.layer_sizes and (again.n_seen, again.n_updates) == (model.n_seen, model.n_updates)
        for u, v in zip(again.params.weights + again.params.biases, model.params.weights + model.params.biases):
            assert u.tobytes() == v.tobytes()
        np.testing.assert_array_equal(again.predict_many(x), model.predict_many(x))


def _as_version_1(blob: bytes) -> bytes:
    """A version-2 model file rewritten as version 1: no standardisation, CRC recomputed."""
    body = bytearray(blob[: -4 - N_STD_BYTES])
    body[4:6] = (1).to_bytes(2, "little")
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def _with_standardisation(blob: bytes, mean: np.ndarray, scale: np.ndarray) -> bytes:
    """A version-2 model file with other standardisation values and a valid CRC."""
    body = blob[: -4 - N_STD_BYTES] + np.concatenate([mean, scale]).astype("<f8").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def test_the_packaged_version_1_model_still_loads() -> None:
    """offline-v1.ltm (format 1, scalar encoding) loads with no standardisation."""
    data = builtin_model_bytes("offline-v1.ltm")
    assert int.from_bytes(data[4:6], "little") == 1
    model = LightTuneModel.from_bytes(data)
    assert model.layer_sizes == ff.PAPER_LAYER_SIZES
    np.testing.assert_array_equal(model.feature_mean, 0.0)
    np.testing.assert_array_equal(model.feature_scale, 1.0)
    # written back as version 2, it predicts the same
    again = LightTuneModel.from_bytes(model.to_bytes())
    assert int.from_bytes(model.to_bytes()[4:6], "little") == 2
    x = np.random.default_rng(0).random((100, 12))
    np.testing.assert_array_equal(again.predict_many(x), model.predict_many(x))


def test_a_version_1_block_model_loads_without_standardisation() -> None:
    """A format-1 file of a block model loads with mean 0 and scale 1."""
    model = _trained_model(4)
    old = LightTuneModel.from_bytes(_as_version_1(model.to_bytes()))
    assert old.layer_sizes == model.layer_sizes
    np.testing.assert_array_equal(old.feature_mean, 0.0)
    np.testing.assert_array_equal(old.feature_scale, 1.0)
    for u, v in zip(old.params.weights + old.params.biases, model.params.weights + model.params.biases):
        assert u.tobytes() == v.tobytes()
    # a version-1 file must be exactly as long as its layer sizes say
    with pytest.raises(ValueError, match="length"):
        blob = model.to_bytes()
        body = bytearray(blob[:-4])
        body[4:6] = (1).to_bytes(2, "little")
        LightTuneModel.from_bytes(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


@pytest.mark.parametrize(
    ("field", "value"),
    [("scale", 0.0), ("scale", -1.0), ("scale", np.nan), ("scale", np.inf), ("mean", np.nan), ("mean", np.inf)],
)
def test_corrupt_standardisation_raises(field: str, value: float) -> None:
    """A zero, negative or non-finite scale and a non-finite mean are refused, whether given
    to the constructor or read from a (CRC-valid) model file."""
    mean, scale = _standardisation(5)
    (scale if field == "scale" else mean)[3] = value
    with pytest.raises(ValueError, match="feature_mean|feature_scale"):
        LightTuneModel(seed=0, feature_mean=mean, feature_scale=scale)
    with pytest.raises(ValueError, match="feature_mean|feature_scale"):
        LightTuneModel.from_bytes(_with_standardisation(LightTuneModel(seed=0).to_bytes(), mean, scale))


def test_standardisation_of_the_wrong_shape_raises() -> None:
    """mean and scale must be [12]."""
    with pytest.raises(ValueError, match="shape"):
        LightTuneModel(seed=0, feature_mean=np.zeros(11))
    with pytest.raises(ValueError, match="shape"):
        LightTuneModel(seed=0, feature_scale=np.ones((12, 1)))


def test_a_block_model_learns_the_threshold_task_online() -> None:
    """Buffer-less LightTune steps on the separable task: the block network gets it right
    (measured: 135 updates in the first 6,000 samples, none in the last 12,000)."""
    x, y = synthetic_threshold_task(8000, seed=0, edge=0.5, margin=0.2)
    model = LightTuneModel(seed=0)
    model.learn_many(x[:6000], y[:6000])
    assert model.n_updates > 20
    assert np.mean(model.predict_many(x[6000:]) == y[6000:]) > 0.98
