"""Forward-forward network: closed-form gradients, the layer-1 shortcut, pure updates."""

from __future__ import annotations

import tracemalloc
from typing import Callable

import numpy as np
import pytest

from lighttune_core import ff
from lighttune_core.features import BLER_LABELS

# closed-form gradients and kernels compared with tolerances: run again under a second CPU-feature setting (.ci/run)
pytestmark = pytest.mark.float_sensitive

SIZES = (13, 32, 32)


def _layer_inputs(params: ff.FFParams, layer: int, n: int, seed: int) -> np.ndarray:
    """Inputs of layer ``layer`` (0-based) for ``n`` random pairs, float64 [n, M_{layer}]."""
    rng = np.random.default_rng(seed)
    pairs = ff.pair_inputs(rng.random((n, 12)), rng.choice(BLER_LABELS, n))
    h = pairs
    for w, b in zip(params.weights[:layer], params.biases[:layer]):
        _, h = ff.layer_forward(w, b, h)
    return h


def _numeric_grads(
    w: np.ndarray, b: np.ndarray, h_prev: np.ndarray, positive: np.ndarray, loss: str, step: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    def f(w_: np.ndarray, b_: np.ndarray) -> float:
        _, h = ff.layer_forward(w_, b_, h_prev)
        return ff.layer_loss(h, positive, ff.DEFAULT_THRESHOLD, loss)

    gw = np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        wp, wm = w.copy(), w.copy()
        wp[idx] += step
        wm[idx] -= step
        gw[idx] = (f(wp, b) - f(wm, b)) / (2 * step)
    gb = np.zeros_like(b)
    for j in range(b.shape[0]):
        bp, bm = b.copy(), b.copy()
        bp[j] += step
        bm[j] -= step
        gb[j] = (f(w, bp) - f(w, bm)) / (2 * step)
    return gw, gb


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300))


def _check_gradients(
    params: ff.FFParams, layer: int, h_prev: np.ndarray, kind: str, loss: str
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form gradients of ``layer`` (0-based) against finite differences on 4 pairs of
    sign ``kind`` (positive, negative or mixed); returns ``∂L/∂W`` closed-form and numeric."""
    positive = {"positive": np.ones(4, bool), "negative": np.zeros(4, bool), "mixed": np.array([1, 0, 1, 0], bool)}[
        kind
    ]
    w, b = params.weights[layer], params.biases[layer]
    gw, gb, _ = ff.layer_gradients(w, b, h_prev, positive, ff.DEFAULT_THRESHOLD, loss)
    nw, nb = _numeric_grads(w, b, h_prev, positive, loss)
    assert np.linalg.norm(gw) > 1e-3
    assert _rel_err(gw, nw) < 1e-6
    assert _rel_err(gb, nb) < 1e-6
    return gw, nw


@pytest.mark.parametrize("loss", ["proposed", "softplus"])
@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("kind", ["positive", "negative", "mixed"])
def test_closed_form_gradients_match_finite_differences(loss: str, layer: int, kind: str) -> None:
    params = ff.init_params(SIZES, seed=3)
    h_prev = _layer_inputs(params, layer, 4, seed=11)
    _check_gradients(params, layer, h_prev, kind, loss)


def _block_layer_inputs(params: ff.FFParams, layer: int, n: int, seed: int) -> np.ndarray:
    """Inputs of layer ``layer`` (0-based) for ``n`` random block-encoded pairs
    ``e_k ⊗ [x; 1]`` (:func:`ff.pair_inputs` with ``"block"``), float64 [n, M_{layer}]."""
    rng = np.random.default_rng(seed)
    h = ff.pair_inputs(rng.normal(size=(n, 12)), rng.choice(BLER_LABELS, n), "block")
    assert h.shape == (n, ff.BLOCK_INPUT_WIDTH)
    for w, b in zip(params.weights[:layer], params.biases[:layer]):
        _, h = ff.layer_forward(w, b, h)
    return h


@pytest.mark.parametrize("sizes", [(ff.BLOCK_INPUT_WIDTH, 32, 32), (ff.BLOCK_INPUT_WIDTH, 8, 6)])
@pytest.mark.parametrize("loss", ["proposed", "softplus"])
@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("kind", ["positive", "negative", "mixed"])
def test_closed_form_gradients_match_finite_differences_for_the_block_input(
    sizes: tuple[int, ...], loss: str, layer: int, kind: str
) -> None:
    """The label-conditioned block input ``[143, ...]``: the same closed form, checked on
    every weight and bias of every layer (most of ``W_1``'s columns see zeros: their gradient
    is 0 and so must be the finite difference)."""
    params = ff.init_params(sizes, seed=3)
    h_prev = _block_layer_inputs(params, layer, 4, seed=11)
    gw, nw = _check_gradients(params, layer, h_prev, kind, loss)
    if layer == 0:  # columns of labels no pair used get no gradient
        used = np.zeros(ff.BLOCK_INPUT_WIDTH, bool)
        used[np.any(h_prev != 0.0, axis=0)] = True
        assert not used.all()
        np.testing.assert_array_equal(gw[:, ~used], 0.0)
        assert np.max(np.abs(nw[:, ~used])) < 1e-8


def test_gradient_is_the_slide_formula_for_one_pair() -> None:
    params = ff.init_params(SIZES, seed=5)
    h_prev = _layer_inputs(params, 1, 1, seed=2)
    w, b = params.weights[1], params.biases[1]
    t = ff.DEFAULT_THRESHOLD
    h_tilde = h_prev / (np.linalg.norm(h_prev) + ff.DEFAULT_NORM_EPS)
    h = np.maximum(h_tilde @ w.T + b, 0.0)[0]
    g = h * h
    for positive, shift in ((True, -2.0), (False, 2.0)):
        expected = (4.0 / 32) * ((g - t + shift) * h * (h > 0))
        gw, gb, _ = ff.layer_gradients(w, b, h_prev, positive, t, "proposed")
        np.testing.assert_allclose(gw, np.outer(expected, h_tilde[0]), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gb, expected, rtol=1e-12, atol=1e-14)


def test_layer_one_shortcut_equals_the_direct_forward() -> None:
    params = ff.init_params(SIZES, seed=1)
    x = np.random.default_rng(0).random((40, 12)) * 2 - 0.5
    direct = ff.forward(params, ff.pair_inputs(x[:, None, :], BLER_LABELS[None, :]))[-1]
    g_direct = np.sum(direct * direct, axis=-1)
    g_fast = ff.goodness_all_labels(params, x)
    assert g_fast.shape == (40, 11)
    np.testing.assert_allclose(g_fast, g_direct, rtol=1e-12)
    plan = ff.plan_inference(params)
    for i in range(5):
        np.testing.assert_allclose(ff.goodness_one_from_plan(plan, x[i]), g_direct[i], rtol=1e-12)


def test_blocked_prediction_matches_unblocked(monkeypatch: pytest.MonkeyPatch) -> None:
    params = ff.init_params(SIZES, seed=4)
    x = np.random.default_rng(1).random((50, 12))
    whole = ff.goodness_all_labels(params, x)
    monkeypatch.setattr(ff, "_PREDICT_CHUNK", 7)
    np.testing.assert_allclose(ff.goodness_all_labels(params, x), whole, rtol=1e-12)


def test_prediction_is_argmax_of_goodness_and_ties_go_low() -> None:
    params = ff.init_params(SIZES, seed=6)
    x = np.random.default_rng(2).random((30, 12))
    g = ff.goodness_all_labels(params, x)
    np.testing.assert_array_equal(ff.predict_labels(params, x), BLER_LABELS[np.argmax(g, axis=1)])
    # A network whose label weight is 0 gives the same goodness up to the norm: with
    # everything zero every label ties and the smallest label wins.
    zero = ff.FFParams(tuple(np.zeros_like(w) for w in params.weights), tuple(np.zeros_like(b) for b in params.biases))
    assert np.all(ff.predict_labels(zero, x) == 0.0)


@pytest.mark.parametrize("loss", ["proposed", "softplus"])
def test_pair_update_equals_batch_update_and_lowers_both_losses(loss: str) -> None:
    params = ff.init_params(SIZES, seed=7)
    x = np.random.default_rng(3).random(12)
    before = [w.copy() for w in params.weights]
    fast = ff.pair_update(params, x, 0.2, 0.9, lr=0.03, loss=loss)
    batch = ff.local_update(params, ff.pair_inputs(np.stack([x, x]), np.array([0.2, 0.9])), np.array([True, False]), 0.03, loss=loss)
    for a, c in zip(fast.weights + fast.biases, batch.weights + batch.biases):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-15)
    for w0, w in zip(before, params.weights):
        np.testing.assert_array_equal(w0, w)  # the pure form leaves its input alone
    # each layer's local loss on the pairs it was fed goes down after a small step
    pairs = ff.pair_inputs(np.stack([x, x]), np.array([0.2, 0.9]))
    small = ff.local_update(params, pairs, np.array([True, False]), 1e-4, loss=loss)
    h_old, h_new = pairs, pairs
    for layer in range(2):
        _, out_old = ff.layer_forward(params.weights[layer], params.biases[layer], h_old)
        _, out_new = ff.layer_forward(small.weights[layer], small.biases[layer], h_old)
        assert ff.layer_loss(out_new, np.array([True, False]), loss=loss) < ff.layer_loss(
            out_old, np.array([True, False]), loss=loss
        )
        h_old = out_old


def _peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_update_memory_grows_with_the_widest_layer_not_the_depth() -> None:
    x = np.random.default_rng(0).random(12)
    shallow = ff.init_params((13, 128, 128), seed=0)
    deep = ff.init_params((13, 128, 128, 128, 128), seed=0)
    ff.pair_update_inplace(shallow, x, 0.0, 1.0, 0.03)  # warm-up
    ff.pair_update_inplace(deep, x, 0.0, 1.0, 0.03)
    p_shallow = _peak_bytes(lambda: ff.pair_update_inplace(shallow, x, 0.0, 1.0, 0.03))
    p_deep = _peak_bytes(lambda: ff.pair_update_inplace(deep, x, 0.0, 1.0, 0.03))
    one_layer = 128 * 128 * 8
    assert p_deep < 2 * one_layer  # never two layers' worth of temporaries
    assert p_deep < 1.5 * p_shallow  # 4 hidden layers cost what 2 do


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="layer_sizes"):
        ff.init_params((12, 32))
    with pytest.raises(ValueError, match="loss"):
        ff.layer_loss(np.ones((1, 3)), True, loss="hinge")
    p = ff.init_params(SIZES, seed=0)
    bad = ff.FFParams((p.weights[0], p.weights[1][:, :5]), p.biases)
    with pytest.raises(ValueError, match="weights\\[2\\]"):
        ff.check_params(bad)
    nan = ff.FFParams((p.weights[0] * np.nan, p.weights[1]), p.biases)
    with pytest.raises(ValueError, match="finite"):
        ff.check_params(nan)
