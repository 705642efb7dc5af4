"""LightTune online tuner: thresholded buffer-less updates, convergence, adaptation, state."""

from __future__ import annotations

import copy
import pickle
from typing import Any, Callable

import numpy as np
import pytest

from lighttune_core import ff
from lighttune_core.features import BLER_LABELS
from lighttune_core.synthetic import synthetic_threshold_task
from lighttune_core.training import train_offline
from lighttune_core.tuner import FORMAT_VERSION, MAGIC, LightTuneModel

# code paths compared bit for bit: run again under a second CPU-feature setting (.ci/run)
pytestmark = pytest.mark.float_sensitive


def _stream(model: LightTuneModel, x: np.ndarray, y: np.ndarray, learn: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Predict-then-learn over a stream; (abs error [n], updated [n])."""
    err = np.empty(len(y))
    upd = np.zeros(len(y), dtype=bool)
    for i in range(len(y)):
        err[i] = abs(model.predict_one(x[i]) - y[i])
        if learn:
            upd[i] = model.learn_one(x[i], y[i])
    return err, upd


def _same_hyperparameters(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal hyperparameter dicts; array values (the feature standardisation) compared
    element-wise and by dtype."""
    if a.keys() != b.keys():
        return False
    for key, u in a.items():
        v = b[key]
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
            if not (isinstance(u, np.ndarray) and isinstance(v, np.ndarray) and u.dtype == v.dtype
                    and np.array_equal(u, v)):
                return False
        elif u != v:
            return False
    return True


def _same_state(a: LightTuneModel, b: LightTuneModel) -> bool:
    return (
        _same_hyperparameters(a.hyperparameters(), b.hyperparameters())
        and (a.n_seen, a.n_updates) == (b.n_seen, b.n_updates)
        and all(
            np.array_equal(u, v) and u.dtype == v.dtype
            for u, v in zip(a.params.weights + a.params.biases, b.params.weights + b.params.biases)
        )
    )


def test_predictions_are_labels_and_one_and_many_agree() -> None:
    model = LightTuneModel(seed=1)
    x = np.random.default_rng(0).random((200, 12))
    many = model.predict_many(x)
    assert many.dtype == np.float64 and many.shape == (200,)
    assert np.all(np.isin(many, BLER_LABELS))
    np.testing.assert_array_equal(many, [model.predict_one(row) for row in x])
    np.testing.assert_array_equal(many, ff.predict_labels(model.params, x))
    assert model.predict_many(np.zeros((0, 12))).shape == (0,)


def test_predictions_follow_updates() -> None:
    model = LightTuneModel(seed=3)
    x, y = synthetic_threshold_task(400, seed=5)
    probe = np.random.default_rng(9).random((300, 12))
    model.predict_many(probe)  # builds the cached inference plan
    _stream(model, x, y)
    assert model.n_updates > 10
    fresh = ff.predict_labels(model.params, probe)  # plan rebuilt from scratch
    np.testing.assert_array_equal(model.predict_many(probe), fresh)
    np.testing.assert_array_equal([model.predict_one(row) for row in probe[:50]], fresh[:50])
    with pytest.raises(ValueError, match="float64 plan"):
        ff.refresh_plan(ff.plan_inference(model.params, dtype=np.float32), model.params)


def test_learn_one_updates_only_at_or_beyond_delta() -> None:
    model = LightTuneModel(seed=2)
    x = np.random.default_rng(1).random(12)
    y_hat = model.predict_one(x)
    before = model.to_bytes()
    close = float(np.clip(y_hat + 0.2 if y_hat <= 0.5 else y_hat - 0.2, 0, 1))
    assert model.learn_one(x, close) is False
    assert (model.n_seen, model.n_updates) == (1, 0)
    assert LightTuneModel.from_bytes(before).params.weights[0].tobytes() == model.params.weights[0].tobytes()
    # exactly delta away in label arithmetic (0.30000000000000004 or 0.29999999999999993) updates
    far = round(y_hat + 0.3, 1) if y_hat <= 0.5 else round(y_hat - 0.3, 1)
    assert model.learn_one(x, far) is True
    assert (model.n_seen, model.n_updates) == (2, 1)


@pytest.mark.parametrize("loss", ["proposed", "softplus"])
@pytest.mark.parametrize("off_grid", [False, True])
@pytest.mark.parametrize("sizes", [(13, 32, 32), (13, 7, 40, 5), (13, 6)])
def test_learn_one_matches_the_pure_pair_update(loss: str, off_grid: bool, sizes: tuple[int, ...]) -> None:
    # learn_one reuses its prediction's forward pass and updates all layers at once on the
    # packed (zero-padded) parameter stacks (grid labels), or recomputes the pass (a label
    # between the grid points): the same step either way, for equal and unequal widths
    model = LightTuneModel(layer_sizes=sizes, seed=4, loss=loss)
    x = np.random.default_rng(2).random(12)
    for step in range(3):
        y_hat = model.predict_one(x)
        y = (1.0 if y_hat < 0.5 else 0.0) + (0.0 if not off_grid else (-0.03 if y_hat < 0.5 else 0.03))
        expected = ff.pair_update(model.params, x, y, y_hat, 0.03, 9.0, loss)
        before = model.params.weights[0].copy()
        assert model.learn_one(x, y), step
        assert not np.array_equal(model.params.weights[0], before)
        for a, b in zip(model.params.weights + model.params.biases, expected.weights + expected.biases):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        # the padding of the stacks stays zero, so it never leaks into a layer
        packed = model._packed
        for layer, (m, m_in) in enumerate(zip(sizes[1:], sizes[:-1])):
            live = np.zeros(packed.weights.shape[1:], dtype=bool)
            live[:m, :m_in] = True
            assert not packed.weights[layer][~live].any() and not packed.biases[layer, m:].any()
        np.testing.assert_array_equal(model.predict_many(x[None, :]), [model.predict_one(x)])


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_a_copied_model_learns_on_its_own_parameters(clone: Callable[[LightTuneModel], LightTuneModel]) -> None:
    # the experiment runner deep-copies the offline model per scheme: the copy's parameters
    # must be the ones its learn_one updates, and the original must not move
    original = LightTuneModel(seed=5)
    x = np.random.default_rng(6).random((40, 12))
    y = (x[:, 0] > 0.5).astype(float)
    copied = clone(original)
    assert _same_state(copied, original)
    reference = LightTuneModel.from_bytes(original.to_bytes())
    n_updates = copied.learn_many(x, y)
    assert n_updates > 0 and reference.learn_many(x, y) == n_updates
    assert _same_state(copied, reference)
    assert _same_state(original, LightTuneModel.from_bytes(original.to_bytes())) and original.n_updates == 0
    np.testing.assert_array_equal(copied.predict_many(x), [copied.predict_one(v) for v in x])


def test_changed_hyperparameters_take_effect_on_the_next_update() -> None:
    a, b = LightTuneModel(seed=7), LightTuneModel(seed=7, lr=0.1, threshold=4.0)
    x = np.random.default_rng(8).random(12)
    y = 1.0 if a.predict_one(x) < 0.5 else 0.0
    assert a.learn_one(x, y)  # builds the step factors for lr 0.03, T 9
    a.params, a.lr, a.threshold = b.params, 0.1, 4.0
    assert a.learn_one(x, y) and b.learn_one(x, y)
    for u, v in zip(a.params.weights + a.params.biases, b.params.weights + b.params.biases):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    ("sizes", "min_first_quarter"), [(ff.PAPER_LAYER_SIZES, 1000), (ff.DEFAULT_LAYER_SIZES, 100)]
)
def test_converges_on_a_stationary_task(sizes: tuple[int, ...], min_first_quarter: int) -> None:
    """Separable with a wide margin: LightTune's setting of guaranteed convergence.

    Measured updates per quarter of the 24,000-sample stream (seed 0): the paper's scalar
    ``[13, 32, 32]`` 1921, 271, 161, 120; the default block input ``[143, 32, 32]``
    135, 4, 0, 0 (each label has its own first-layer weights, so it learns far sooner).
    """
    x, y = synthetic_threshold_task(24000, seed=0, edge=0.5, margin=0.2)
    model = LightTuneModel(layer_sizes=sizes, seed=0)
    err, upd = _stream(model, x, y)
    quarters = upd.reshape(4, 6000).sum(axis=1)
    assert quarters[0] > min_first_quarter  # it had to learn
    assert np.all(np.diff(quarters) <= 0)  # the update count levels off ...
    assert quarters[-1] < 0.1 * quarters[0]
    assert quarters[-1] < 0.03 * 6000  # ... to rare updates
    assert err[-6000:].mean() < model.delta
    assert np.mean(err[-6000:] >= model.delta) < 0.05
    assert model.n_updates == upd.sum() and model.n_seen == 24000


def test_adapts_to_a_shifted_distribution_better_than_frozen() -> None:
    xa, ya = synthetic_threshold_task(3000, seed=1, edge=0.3)
    offline = train_offline(xa, ya, epochs=5, batch_size=64, seed=0)
    frozen = LightTuneModel.from_params(offline.params)
    tuned = LightTuneModel.from_params(offline.params)
    xb, yb = synthetic_threshold_task(4000, seed=2, edge=0.7)
    err_frozen, _ = _stream(frozen, xb, yb, learn=False)
    err_tuned, upd = _stream(tuned, xb, yb)
    assert frozen.n_updates == 0 and tuned.n_updates == upd.sum() > 0
    tail = slice(-1000, None)
    assert err_tuned[tail].mean() <= 0.7 * err_frozen[tail].mean()


def test_state_round_trips_bit_exactly() -> None:
    rng = np.random.default_rng(1)
    model = LightTuneModel(
        layer_sizes=(13, 16, 8, 8), threshold=7.5, lr=0.01, delta=0.2, loss="softplus", seed=9,
        feature_mean=rng.normal(0.0, 0.1, 12), feature_scale=rng.uniform(0.5, 1.5, 12),
    )
    x, y = synthetic_threshold_task(300, seed=3)
    _stream(model, x, y)
    assert model.n_updates > 0
    for copy in (LightTuneModel.from_state_dict(model.state_dict()), LightTuneModel.from_bytes(model.to_bytes())):
        assert _same_state(copy, model)
        np.testing.assert_array_equal(copy.predict_many(x), model.predict_many(x))
        assert copy.to_bytes() == model.to_bytes()
    # state_dict hands out copies: changing them does not touch the model
    state = model.state_dict()
    state["weights"][0][:] = 0.0
    assert not np.all(model.params.weights[0] == 0.0)
    blob = model.to_bytes()
    # no input bins, gain 1: still written as version 2 (version 3 adds the bins, 4 the readout)
    assert blob[:4] == MAGIC and int.from_bytes(blob[4:6], "little") == 2 < FORMAT_VERSION
    # header, layer sizes, parameters, the standardisation (mean and scale [12] each), CRC
    assert len(blob) == 64 + 4 * 4 + 8 * (13 * 16 + 16 + 16 * 8 + 8 + 8 * 8 + 8) + 8 * 2 * 12 + 4
    # continuing after a round trip gives the same model as continuing the original
    again = LightTuneModel.from_bytes(blob)
    _stream(model, x[:100], 1.0 - y[:100])
    _stream(again, x[:100], 1.0 - y[:100])
    assert _same_state(again, model)


def test_from_params_keeps_offline_weights_and_hyperparameters() -> None:
    params = ff.init_params((13, 8, 4), seed=5)
    model = LightTuneModel.from_params(params, delta=0.5, lr=0.1)
    assert model.layer_sizes == (13, 8, 4) and model.delta == 0.5 and model.lr == 0.1
    for a, b in zip(model.params.weights, params.weights):
        np.testing.assert_array_equal(a, b)
        assert a is not b


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + (99).to_bytes(2, "little") + b[6:], "version"),
        (lambda b: b[:-20], "CRC|length|truncated"),
        (lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:], "CRC"),
        (lambda b: b[:10], "short"),
        (lambda b: b + b"\x00", "CRC|length"),
    ],
)
def test_corrupt_bytes_raise_value_error(mutate: Callable[[bytes], bytes], message: str) -> None:
    blob = LightTuneModel(seed=0).to_bytes()
    with pytest.raises(ValueError, match=message):
        LightTuneModel.from_bytes(mutate(blob))


def test_incompatible_state_dict_raises() -> None:
    state = LightTuneModel(seed=0).state_dict()
    state["hyperparameters"] = dict(state["hyperparameters"], layer_sizes=(13, 16, 16))
    with pytest.raises(ValueError, match="layer sizes"):
        LightTuneModel.from_state_dict(state)
    with pytest.raises(ValueError, match="missing"):
        LightTuneModel.from_state_dict({"weights": []})


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros(11), 0.1, "shape"),
        (np.zeros((1, 12)), 0.1, "shape"),
        (np.r_[np.zeros(11), np.nan], 0.1, "finite"),
        (np.r_[np.zeros(11), np.inf], 0.1, "finite"),
        (np.full(12, 1e200), 0.1, "too large"),
        (np.zeros(12), 1.5, "y must be"),
        (np.zeros(12), -0.1, "y must be"),
        (np.zeros(12), float("nan"), "y must be"),
        (np.zeros(12), "high", "y must be"),
        (["a"] * 12, 0.1, "numeric"),
    ],
)
def test_bad_input_raises_and_leaves_model_unchanged(x: Any, y: Any, message: str) -> None:
    model = LightTuneModel(seed=0)
    before = model.to_bytes()
    with pytest.raises(ValueError, match=message):
        model.learn_one(x, y)
    assert model.to_bytes() == before
    if message not in ("y must be",):
        with pytest.raises(ValueError):
            model.predict_one(x)


def test_predict_many_rejects_bad_batches() -> None:
    model = LightTuneModel(seed=0)
    with pytest.raises(ValueError, match="shape"):
        model.predict_many(np.zeros(12))
    with pytest.raises(ValueError, match="finite"):
        model.predict_many(np.full((3, 12), np.nan))


def test_bad_hyperparameters_raise() -> None:
    with pytest.raises(ValueError, match="loss"):
        LightTuneModel(loss="mse")
    with pytest.raises(ValueError, match="delta"):
        LightTuneModel(delta=float("nan"))
    with pytest.raises(ValueError, match="layer_sizes"):
        LightTuneModel(layer_sizes=(12, 32))
