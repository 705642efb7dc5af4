"""Forward-forward (FF) network: forward pass, goodness, layer losses, closed-form gradients.

Pure functions on an :class:`FFParams` structure (the thin stateful classes live in
:mod:`lighttune_core.tuner` and :mod:`lighttune_core.training`). All parameters are
**float64**. numpy only, no autodiff anywhere.

Network
-------
An MLP with layer sizes ``[M_0, M_1, ..., M_L]``, ReLU. Two label encodings of the input
``h_0`` (told apart by ``M_0``, :func:`label_encoding`):

* **block** (the default, ``[143, 32, 32]``): ``h_0 = e_k ⊗ [x; 1]``, the 12 features of
  :mod:`lighttune_core.features` and a constant 1 in the block of the candidate label
  ``y_k`` (11 blocks of 13), zeros elsewhere. Every first-layer neuron thus has its own
  weights and bias per label, ``z_1 = (W_1^{(k)} x + c^{(k)}) / (sqrt(||x||² + 1) + eps) + b_1``.
  A deviation from the paper's ``M_0 = 13``, measured necessary (:mod:`lighttune_core.training`):
  with the label as a scalar or a one-hot *added* to the input a neuron ranks the labels the
  same way for every ``x``, so eq. 7's per-neuron targets are unreachable and the network
  learns the label prior only. Goodness is summed over the layers, ``G = Σ_l ||h_l||²``.
* **scalar** (the paper's, ``[13, 32, 32]``, :data:`PAPER_LAYER_SIZES`): ``h_0 = [x; y]``,
  goodness of the last layer ``G = ||h_L||²``.

Each layer first length-normalises its input and then applies the affine map:

    h~_{l-1} = h_{l-1} / (||h_{l-1}||_2 + eps)
    h_l      = ReLU(W_l h~_{l-1} + b_l),      W_l: [M_l, M_{l-1}],  b_l: [M_l]

so a layer only sees the *direction* of the previous layer's activity, never its length
(the goodness), and must compute its own goodness.

Goodness per neuron ``g_l = h_l ⊙ h_l``. Inference: ``ŷ = argmax_{y ∈ labels} G(x, y)`` (ties
go to the smaller label).

Layer-1 shortcut (scalar encoding): the label enters layer 1 only, so with ``W_1 = [W_1x, w_1y]``

    z_1(x, y) = (W_1x x + w_1y y) / (sqrt(||x||² + y²) + eps) + b_1

and ``W_1x x`` (the only matrix product of layer 1) is computed once per sample, not once
per candidate label (:func:`goodness_all_labels`).

All-active shortcut (scalar encoding only): where every ReLU of a two-layer network is on for every candidate
label, ``z_1 = α_k (W_1x x + y_k w_1y + s_k b_1)`` (``α_k = 1/s_k``) and ``G(x, y_k) = ||z_2||²``
depend on the label only through ``α_k`` and five polynomials of degree <= 2 in ``y_k``
whose coefficients are constants, linear forms and two quadratic forms of ``x``; batched
predictions use this closed form (two small matrix products and ~25 elementwise passes
over ``[K, n]``) for the samples a conservative bound (one more product) proves all-active
with a margin, and the neuron-by-neuron forward pass for the rest — the same goodness up
to float rounding, at a fraction of the work (the packaged offline model is all-active on
every input we have tried; timings in :data:`AFFINE_MIN_SAMPLES` and
``benchmarks/ff_vs_bp.py``).

Losses (per layer, each a mean over the ``M_l`` neurons and over the samples of a sign)
---------------------------------------------------------------------------------------
With ``s = +1`` for a positive pair (true label) and ``s = -1`` for a negative pair:

* proposed (eq. 7):  ``ℓ(g) = (g − T)² − 4 s (g − T)``
* Softplus (eq. 5):  ``ℓ(g) = ln(1 + exp(s (T − g)))``

``L_l = Σ_{s} 1/(|S_s| M_l) Σ_{i ∈ S_s} Σ_j ℓ(g_l^{(i)}[j])``.

Closed-form gradients (``z_l`` the pre-activation, ``1(h > 0)`` the ReLU mask)
-------------------------------------------------------------------------------
``∂L/∂z_l = c · δ_l`` per sample, with ``c = 1/|S_s|`` and

* proposed: ``δ_l = (4/M_l) (g_l − T − 2s) ⊙ h_l ⊙ 1(h_l > 0)``
* Softplus: ``δ_l = −s (2/M_l) σ(s (T − g_l)) ⊙ h_l ⊙ 1(h_l > 0)``

``∂L/∂W_l = Σ_i c_i δ_l^{(i)} h~_{l-1}^{(i)ᵀ}`` and ``∂L/∂b_l = Σ_i c_i δ_l^{(i)}``. For one
positive pair this is the slides' ``(4/M_l)[(g+ − T − 2) ⊙ h+ ⊙ 1(h+ > 0)] h~+ᵀ`` and ``+2``
for the negative pair. The gradient of layer ``l`` treats its input ``h~_{l-1}`` as data:
layers are trained on their own local loss, so an update needs only one layer's
activations at a time (peak activation memory ``O(max_l M_l)``, not ``O(Σ_l M_l)``).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from lighttune_core.features import BLER_LABELS, N_FEATURES

LOSS_KINDS: tuple[str, ...] = ("proposed", "softplus")

N_LABELS: int = BLER_LABELS.shape[0]
"""K = 11 candidate labels."""
SCALAR_INPUT_WIDTH: int = N_FEATURES + 1
"""``M_0 = 13`` of the paper's encoding: the 12 features and the label as one scalar."""
BLOCK_INPUT_WIDTH: int = N_LABELS * (N_FEATURES + 1)
"""``M_0 = 143`` of the label-conditioned (block one-hot) encoding: ``e_k ⊗ [x; 1]``."""
LABEL_ENCODINGS: dict[int, str] = {SCALAR_INPUT_WIDTH: "scalar", BLOCK_INPUT_WIDTH: "block"}
"""Input encoding of the label for the 12 plain features, told apart by the input width ``M_0``.
A block input may also carry an encoded feature vector wider than 12
(:class:`lighttune_core.encoding.InputEncoding`): ``M_0 = 11 (F + 1)`` for ``F >= 12``."""
DEFAULT_LAYER_SIZES: tuple[int, ...] = (BLOCK_INPUT_WIDTH, 32, 32)
"""``[143, 32, 32]``: the label-conditioned input (a documented deviation from the paper's
``M_0 = 13``, see the module docstring), two hidden layers of 32 ReLUs."""
PAPER_LAYER_SIZES: tuple[int, ...] = (SCALAR_INPUT_WIDTH, 32, 32)
"""``[13, 32, 32]``: the paper's network, the label as one scalar input."""


def label_encoding(m0: int) -> str:
    """``"scalar"`` for ``M_0 = 13``, ``"block"`` for ``M_0 = 11 (F + 1)`` with ``F >= 12``
    input values per label block (143 for the 12 plain features); ValueError otherwise."""
    m = int(m0)
    if m == SCALAR_INPUT_WIDTH:
        return "scalar"
    if m >= BLOCK_INPUT_WIDTH and m % N_LABELS == 0:
        return "block"
    raise ValueError(
        f"the input width M_0 must be {SCALAR_INPUT_WIDTH} (scalar label) or 11 (F + 1) with F >= {N_FEATURES} "
        f"(label-conditioned block input; {BLOCK_INPUT_WIDTH} for the plain features), got {m0}"
    )


def block_feature_width(m0: int) -> int:
    """``F = M_0 / 11 − 1``: the input values per label block of a block-input width ``M_0``."""
    if label_encoding(m0) != "block":
        raise ValueError(f"M_0 = {m0} is not a block-input width")
    return int(m0) // N_LABELS - 1
DEFAULT_THRESHOLD: float = 9.0
"""Goodness threshold ``T`` of the losses."""
DEFAULT_NORM_EPS: float = 1e-8
"""``eps`` of the length normalisation ``h / (||h|| + eps)``."""

_PREDICT_CHUNK: int = 1024
"""Samples per block in :func:`goodness_all_labels`: the ``[M_1, 11, 1024]`` activations are
2.9 MB in float64 (1.4 MB in float32). Measured interleaved on this 2-core VM
(``benchmarks/predict_chunk.py --n 10000 1000``, wall time): for 10,000 samples 512 and
1,024 tie (21.4 vs 21.7 ms best, 22.5 vs 23.3 median), 128–256 and 2,048+ are slower; for
1,000 samples (a 1,000-UE search's prediction call) one block of 1,024 beats two of 512
(1.9 vs 2.1 ms best, 2.2 vs 2.4 median)."""


def _vecdot_einsum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


_vecdot: Callable[[np.ndarray, np.ndarray], np.ndarray] = getattr(np, "vecdot", _vecdot_einsum)
"""``Σ_i a[..., i] b[..., i]`` over the last axis: ``numpy.vecdot`` (numpy >= 2, ~2x faster
than ``einsum`` on small arrays, but slower on large 3-D blocks, which use ``einsum``),
bound directly so the per-sample paths pay no extra Python call."""


def _sum_sq(h: np.ndarray) -> np.ndarray:
    """``Σ_i h[..., i]²`` over the last axis."""
    return _vecdot(h, h)


class FFParams(NamedTuple):
    """Parameters of an FF network with ``L`` layers (float64).

    Attributes:
        weights: ``W_l`` float64 ``[M_l, M_{l-1}]`` for ``l = 1..L``.
        biases: ``b_l`` float64 ``[M_l]`` for ``l = 1..L``.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]


def check_loss_kind(loss: str) -> str:
    """Return ``loss`` if it names a known loss, else raise ``ValueError``."""
    if loss not in LOSS_KINDS:
        raise ValueError(f"loss must be one of {LOSS_KINDS}, got {loss!r}")
    return loss


def check_layer_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Validate ``[M_0, ..., M_L]``: ``M_0`` 13 (scalar label) or ``11 (F + 1)``, ``F >= 12``
    (block input; 143 for the plain features), ``L >= 1``,
    widths >= 1."""
    out = tuple(int(m) for m in sizes)
    if len(out) < 2:
        raise ValueError(f"layer_sizes needs an input size and at least one layer, got {out}")
    try:
        label_encoding(out[0])
    except ValueError:
        raise ValueError(
            f"layer_sizes[0] must be {SCALAR_INPUT_WIDTH} (features + scalar label) or 11 (F + 1) with "
            f"F >= {N_FEATURES} ({BLOCK_INPUT_WIDTH}: label-conditioned block input of the 12 features), got {out[0]}"
        ) from None
    if any(m < 1 for m in out):
        raise ValueError(f"layer_sizes must be positive, got {out}")
    return out


def layer_sizes(params: FFParams) -> tuple[int, ...]:
    """``(M_0, M_1, ..., M_L)`` of a parameter structure."""
    return (params.weights[0].shape[1],) + tuple(w.shape[0] for w in params.weights)


def check_params(params: FFParams) -> FFParams:
    """Validate shapes, dtype and finiteness; return float64 copies.

    Raises:
        ValueError: naming the offending layer and field.
    """
    if len(params.weights) != len(params.biases) or not params.weights:
        raise ValueError("params need the same number (>= 1) of weights and biases")
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    fan_in = np.shape(params.weights[0])[1] if np.ndim(params.weights[0]) == 2 else -1
    try:
        label_encoding(fan_in)
    except ValueError:
        raise ValueError(
            f"weights[1] must have {SCALAR_INPUT_WIDTH} or 11 (F + 1) >= {BLOCK_INPUT_WIDTH} columns, "
            f"got shape {np.shape(params.weights[0])}"
        ) from None
    for i, (w, b) in enumerate(zip(params.weights, params.biases), start=1):
        w_a = np.array(w, dtype=np.float64)
        b_a = np.array(b, dtype=np.float64)
        if w_a.ndim != 2 or w_a.shape[1] != fan_in:
            raise ValueError(f"weights[{i}] must have shape [M_{i}, {fan_in}], got {w_a.shape}")
        if b_a.shape != (w_a.shape[0],):
            raise ValueError(f"biases[{i}] must have shape ({w_a.shape[0]},), got {b_a.shape}")
        if not (np.all(np.isfinite(w_a)) and np.all(np.isfinite(b_a))):
            raise ValueError(f"layer {i} parameters must be finite")
        weights.append(w_a)
        biases.append(b_a)
        fan_in = w_a.shape[0]
    return FFParams(tuple(weights), tuple(biases))


def init_params(
    sizes: Sequence[int] = DEFAULT_LAYER_SIZES,
    seed: int | None = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> FFParams:
    """Random initial parameters: ``W_l[j, k] ~ N(0, 1)``, ``b_l = sqrt(T)``.

    The layer input is unit-length, so a row ``w_j`` of unit-variance entries gives
    pre-activations ``z = w_j · h~ + b_j`` of standard deviation ≈ 1 around ``sqrt(T)``:
    every neuron starts alive with goodness near the threshold ``T``. (With ``b = 0`` the
    inputs of layers >= 2, non-negative unit vectors of similar direction, leave about half
    the neurons dead for *every* sample, and a dead ReLU gets no gradient from the local
    loss: measured, layer 2 of ``[13, 32, 32]`` then never learns.)
    """
    dims = check_layer_sizes(sizes)
    rng = np.random.default_rng(seed)
    weights = tuple(rng.standard_normal((m_out, m_in)) for m_in, m_out in zip(dims[:-1], dims[1:]))
    biases = tuple(np.full(m_out, np.sqrt(max(threshold, 0.0))) for m_out in dims[1:])
    return FFParams(weights, biases)


def normalise(h: np.ndarray, eps: float = DEFAULT_NORM_EPS) -> np.ndarray:
    """Length normalisation along the last axis: ``h / (||h||_2 + eps)``, same shape as ``h``."""
    return h / (np.sqrt(_sum_sq(h))[..., None] + eps)


def layer_forward(
    weight: np.ndarray, bias: np.ndarray, h_prev: np.ndarray, eps: float = DEFAULT_NORM_EPS
) -> tuple[np.ndarray, np.ndarray]:
    """One layer: ``h~ = h_prev / (||h_prev|| + eps)``, ``h = ReLU(W h~ + b)``.

    Args:
        weight: float64 [M_l, M_{l-1}].
        bias: float64 [M_l].
        h_prev: float [..., M_{l-1}], the previous layer's output (or ``[x; y]``).

    Returns:
        ``(h~_{l-1} [..., M_{l-1}], h_l [..., M_l])``.
    """
    h_tilde = normalise(h_prev, eps)
    z = h_tilde @ weight.T
    z += bias
    return h_tilde, np.maximum(z, 0.0, out=z)


def forward(params: FFParams, inputs: np.ndarray, eps: float = DEFAULT_NORM_EPS) -> list[np.ndarray]:
    """All layer outputs ``[h_1, ..., h_L]`` for inputs ``[x; y]`` float [..., 13]."""
    outs: list[np.ndarray] = []
    h = np.asarray(inputs, dtype=np.float64)
    for w, b in zip(params.weights, params.biases):
        _, h = layer_forward(w, b, h, eps)
        outs.append(h)
    return outs


def pair_inputs(x: np.ndarray, y: np.ndarray | float, encoding: str = "scalar") -> np.ndarray:
    """The network input ``h_0`` of pairs ``(x, y)``.

    * ``"scalar"`` (the paper's): ``[x; y]``, float64 [..., 13].
    * ``"block"`` (label-conditioned): ``e_k ⊗ [x; 1]``, float64 [..., 143]: the features and
      a constant 1 in the block of label ``y = y_k`` (``k = round(y / 0.1)``), zeros in the
      other ten blocks, so every first-layer neuron has its own weights and bias per label.

    Args:
        x: features float [..., 12]; y: labels float [...] (broadcast together).
    """
    x_a = np.asarray(x, dtype=np.float64)
    y_a = np.asarray(y, dtype=np.float64)
    shape = np.broadcast_shapes(x_a.shape[:-1], y_a.shape)
    xb = np.broadcast_to(x_a, shape + x_a.shape[-1:])
    if encoding == "scalar":
        return np.concatenate([xb, np.broadcast_to(y_a, shape)[..., None]], axis=-1)
    if encoding != "block":
        raise ValueError(f"encoding must be 'scalar' or 'block', got {encoding!r}")
    k = np.rint(np.broadcast_to(y_a, shape) / (BLER_LABELS[1] - BLER_LABELS[0])).astype(np.int64)
    if np.any((k < 0) | (k >= N_LABELS)):
        raise ValueError("block inputs need labels in 0.0 .. 1.0")
    f = x_a.shape[-1] + 1
    out = np.zeros(shape + (N_LABELS, f))
    flat = out.reshape(-1, N_LABELS, f)
    rows = np.arange(flat.shape[0])
    kk = k.reshape(-1)
    flat[rows, kk, :-1] = xb.reshape(-1, f - 1)
    flat[rows, kk, -1] = 1.0
    return out.reshape(shape + (N_LABELS * f,))


def goodness(h: np.ndarray) -> np.ndarray:
    """Goodness per neuron ``g = h ⊙ h``, same shape as ``h``."""
    return h * h


def _signs(positive: np.ndarray | bool, n: int) -> np.ndarray:
    s = np.where(np.broadcast_to(np.asarray(positive, dtype=bool), (n,)), 1.0, -1.0)
    return s


def _sample_weights(signs: np.ndarray) -> np.ndarray:
    """``1/|S_s|`` for each sample's sign ``s`` (separate means over positives and negatives)."""
    n_pos = np.count_nonzero(signs > 0)
    n_neg = signs.shape[0] - n_pos
    return np.where(signs > 0, 1.0 / max(n_pos, 1), 1.0 / max(n_neg, 1))


def layer_loss(
    h: np.ndarray,
    positive: np.ndarray | bool,
    threshold: float = DEFAULT_THRESHOLD,
    loss: str = "proposed",
) -> float:
    """Local loss ``L_l`` of one layer (eq. 7 or eq. 5) for a batch of outputs.

    Args:
        h: float [B, M_l], layer outputs ``h_l`` of ``B`` pairs.
        positive: bool [B] (or a scalar), True for positive pairs (true label).
        threshold: ``T``.
        loss: ``"proposed"`` (eq. 7) or ``"softplus"`` (eq. 5).

    Returns:
        ``Σ_s 1/(|S_s| M_l) Σ_{i ∈ S_s} Σ_j ℓ_s(g[i, j])`` (dimensionless).
    """
    h2 = np.atleast_2d(np.asarray(h, dtype=np.float64))
    signs = _signs(positive, h2.shape[0])
    d = goodness(h2) - threshold
    if check_loss_kind(loss) == "proposed":
        per = d * d - 4.0 * signs[:, None] * d
    else:
        per = np.logaddexp(0.0, -signs[:, None] * d)
    return float(np.sum(per.mean(axis=1) * _sample_weights(signs)))


def layer_delta(
    h: np.ndarray,
    signs: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    loss: str = "proposed",
) -> np.ndarray:
    """Per-sample ``δ_l = ∂ℓ/∂z_l`` (before the ``1/|S_s|`` sample weight).

    Args:
        h: float [B, M_l], layer outputs.
        signs: float [B], +1 for positive and −1 for negative pairs.

    Returns:
        float [B, M_l]: proposed ``(4/M)(g − T − 2s) h 1(h>0)``; Softplus
        ``−s (2/M) σ(s (T − g)) h 1(h>0)``. (``h 1(h>0) = h`` for ReLU outputs.)
    """
    m = h.shape[-1]
    g = h * h
    s = signs[:, None]
    if loss == "proposed":
        return (4.0 / m) * (g - threshold - 2.0 * s) * h
    # σ(u) = (1 + tanh(u/2)) / 2 is overflow-free for any u.
    sig = 0.5 * (1.0 + np.tanh(0.5 * s * (threshold - g)))
    return (-2.0 / m) * s * sig * h


def layer_gradients(
    weight: np.ndarray,
    bias: np.ndarray,
    h_prev: np.ndarray,
    positive: np.ndarray | bool,
    threshold: float = DEFAULT_THRESHOLD,
    loss: str = "proposed",
    eps: float = DEFAULT_NORM_EPS,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form gradients of one layer's local loss.

    Args:
        weight: float64 [M_l, M_{l-1}]; bias: float64 [M_l].
        h_prev: float [B, M_{l-1}], the layer's input (not yet normalised).
        positive: bool [B] or scalar.
        sample_weight: float [B] > 0 or None: the means over the positive and over the
            negative pairs become weighted means, ``c_i = w_i / Σ_{j ∈ S_s} w_j`` instead of
            ``1/|S_s|`` (class balance); None: plain means.

    Returns:
        ``(∂L_l/∂W_l [M_l, M_{l-1}], ∂L_l/∂b_l [M_l], h_l [B, M_l])``.
    """
    check_loss_kind(loss)
    hp = np.atleast_2d(np.asarray(h_prev, dtype=np.float64))
    h_tilde, h = layer_forward(weight, bias, hp, eps)
    signs = _signs(positive, hp.shape[0])
    if sample_weight is None:
        c = _sample_weights(signs)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        pos = signs > 0
        c = w / np.where(pos, max(w[pos].sum(), 1e-300), max(w[~pos].sum(), 1e-300))
    delta = layer_delta(h, signs, threshold, loss) * c[:, None]
    return delta.T @ h_tilde, delta.sum(axis=0), h


class InferencePlan(NamedTuple):
    """Arrays precomputed from :class:`FFParams` for the batched all-labels forward.

    Attributes:
        label_rows: ``y_k w_1y`` [K, M_1], the label's contribution to layer 1.
        w1y: ``w_1y`` [M_1], the label column of ``W_1`` (a view for float64).
        labels_sq: ``y_k²`` [K].
        b1: ``b_1`` [M_1].
        rest: ``(W_l^T [M_{l-1}, M_l], b_l [M_l])`` for ``l = 2..L`` (views for float64).
        labels: the candidate labels [K].
        eps: the normalisation ``eps``.
        w1x: ``W_1x`` [M_1, 12] (a view of ``W_1`` for float64), for the neuron-major
            block layout of :func:`goodness_all_labels`.
        rest_w: ``W_l`` [M_l, M_{l-1}] for ``l = 2..L`` (views for float64).
        trace_shape: ``(L + 1, K, D)`` of the activations of the single-sample forward
            trace (:func:`forward_one_from_plan`), ``D = max(M_0, ..., M_L)``, or
            ``max(M_1, ..., M_L)`` for a block plan (its trace holds no input row).
        derived: arrays computed from the parameters on first use (the closed form's
            constants, :func:`_affine_constants`); :func:`refresh_plan` empties it.
    """

    label_rows: np.ndarray
    w1y: np.ndarray
    labels_sq: np.ndarray
    b1: np.ndarray
    rest: tuple[tuple[np.ndarray, np.ndarray], ...]
    labels: np.ndarray
    eps: float
    w1x: np.ndarray
    rest_w: tuple[np.ndarray, ...]
    trace_shape: tuple[int, int, int]
    derived: dict[str, Any]
    block: bool = False
    """Label-conditioned block input: ``w1x`` is then ``[M_1 · K, 12]`` (neuron ``m``'s weights
    for label ``k`` in row ``m K + k``), ``label_rows[k]`` label ``k``'s constant
    column, ``labels_sq`` all 1 (the constant's square) and the goodness is summed over the
    layers, ``G = Σ_l ||h_l||²``."""


def _block_w1x(w1: np.ndarray) -> np.ndarray:
    """``[M_1 · K, F]`` feature weights of every label's block of a block-input ``W_1``
    (``F = M_0 / K − 1``), neuron-major (row ``m K + k``: neuron ``m``, label ``k``), so
    ``w1x @ X^T`` is already the ``[M_1, K, n]`` layout of the batched forward pass."""
    m1 = w1.shape[0]
    f = block_feature_width(w1.shape[1])
    blocks = w1.reshape(m1, N_LABELS, f + 1)[:, :, :f]
    return blocks.reshape(m1 * N_LABELS, f)


def _block_constants(w1: np.ndarray) -> np.ndarray:
    """``c_k`` [K, M_1]: the weight of every label block's constant input, a view of ``W_1``."""
    f = block_feature_width(w1.shape[1])
    return w1.reshape(w1.shape[0], N_LABELS, f + 1)[:, :, f].T


def plan_inference(
    params: FFParams,
    labels: np.ndarray = BLER_LABELS,
    eps: float = DEFAULT_NORM_EPS,
    n_layers: int | None = None,
    dtype: type = np.float64,
) -> InferencePlan:
    """Precompute the arrays of :func:`goodness_from_plan` (layers ``1..n_layers``).

    ``dtype`` float64 (default) reproduces the float64 parameters exactly; float32 halves
    memory traffic at the cost of float32 rounding of the goodness.
    """
    n_use = len(params.weights) if n_layers is None else int(n_layers)
    if not 1 <= n_use <= len(params.weights):
        raise ValueError(f"n_layers must be in 1..{len(params.weights)}, got {n_layers}")
    w1 = params.weights[0]
    lab = np.asarray(labels, dtype=np.float64)
    sizes = layer_sizes(params)[: n_use + 1]
    block = label_encoding(w1.shape[1]) == "block"
    if block:
        if lab.shape != BLER_LABELS.shape or np.any(np.abs(lab - BLER_LABELS) > 1e-12):
            raise ValueError("a block-input network predicts the 11 BLER labels only")
        label_rows = np.ascontiguousarray(_block_constants(w1), dtype=dtype)  # [K, M_1]
        w1y = np.zeros(w1.shape[0], dtype=dtype)
        labels_sq = np.ones(N_LABELS, dtype=dtype)
        w1x = _block_w1x(w1).astype(dtype)
    else:
        label_rows = np.multiply.outer(lab, w1[:, -1]).astype(dtype, copy=False)
        w1y = w1[:, -1].astype(dtype, copy=False)
        labels_sq = (lab * lab).astype(dtype, copy=False)
        w1x = w1[:, :-1].astype(dtype, copy=False)
    return InferencePlan(
        label_rows=label_rows,
        w1y=w1y,
        labels_sq=labels_sq,
        b1=params.biases[0].astype(dtype, copy=False),
        rest=tuple(
            (w.T.astype(dtype, copy=False), b.astype(dtype, copy=False))
            for w, b in zip(params.weights[1:n_use], params.biases[1:n_use])
        ),
        labels=lab,
        eps=float(eps),
        w1x=w1x,
        rest_w=tuple(w.astype(dtype, copy=False) for w in params.weights[1:n_use]),
        # a block plan's trace keeps no input row (the LightTune step reads x itself)
        trace_shape=(n_use + 1, lab.shape[0], max(sizes[1:]) if block else max(sizes)),
        derived={},
        block=block,
    )


def refresh_plan(plan: InferencePlan, params: FFParams, labels: Sequence[int] | None = None) -> None:
    """Bring a float64 plan up to date after an in-place update of ``params``.

    A float64 :func:`plan_inference` holds *views* of ``W_1x``, the biases and ``W_2..W_L``,
    so an in-place update (:func:`pair_update_inplace`) is already visible through them;
    this recomputes ``label_rows = y_k w_1y`` in place. A block plan holds a neuron-major
    copy of ``W_1``'s label blocks instead: ``labels`` (indices) names the only blocks an
    update changed (:func:`pair_update_from_trace` changes two), None refreshes all.

    Raises:
        ValueError: the plan does not view ``params`` (build a new plan instead).
    """
    w1 = params.weights[0]
    if plan.b1 is not params.biases[0] and not (
        plan.label_rows.dtype == w1.dtype and np.shares_memory(plan.b1, params.biases[0])
    ):
        raise ValueError("refresh_plan needs a float64 plan built from these params")
    if plan.block and labels is not None:
        m1, f = w1.shape[0], plan.w1x.shape[1]
        blocks = w1.reshape(m1, N_LABELS, f + 1)
        w1x = plan.w1x.reshape(m1, N_LABELS, f)
        for k in labels:
            w1x[:, k] = blocks[:, k, :f]
            plan.label_rows[k] = blocks[:, k, f]
    elif plan.block:
        plan.w1x[...] = _block_w1x(w1)
        plan.label_rows[...] = _block_constants(w1)
    else:
        np.multiply.outer(plan.labels, w1[:, -1], out=plan.label_rows)
    plan.derived.clear()


class _BlockWorkspace:
    """Reused activation buffers of :func:`goodness_all_labels` for blocks of up to ``n_max``
    samples: one flat buffer per layer, viewed as the contiguous ``[M_l, K · n]`` of a block,
    and the closed form's temporaries (:meth:`closed_form`).

    Cached per thread (:func:`_workspace`), so a prediction allocates no activation buffers
    once the thread has made one of that block size.
    """

    __slots__ = ("layers", "n_max", "_closed_form", "inputs", "zeros")

    def __init__(self, plan: InferencePlan, n_max: int) -> None:
        k = plan.labels.shape[0]
        dt = plan.w1x.dtype
        widths = (plan.b1.shape[0],) + tuple(w.shape[0] for w in plan.rest_w)
        self.n_max = int(n_max)
        # one spare row per layer: :func:`_goodness_block_fused_t` keeps the next layer's
        # normaliser there, below the activations, so the bias enters the product
        self.layers = tuple(np.empty((m + 1) * k * n_max, dtype=dt) for m in widths)
        self.inputs = np.empty((plan.w1x.shape[1] + 2) * n_max, dtype=dt)
        # ReLU as maximum(h, zeros): numpy 2.4's maximum against a scalar 0 runs ~5x slower
        # than against an array (measured 0.18 vs 0.035 ms for 352,000 float32 values)
        self.zeros = np.zeros(max(widths) * k * n_max, dtype=dt)
        self._closed_form: np.ndarray | None = None

    def relu(self, h: np.ndarray) -> np.ndarray:
        """``h = max(h, 0)`` in place for a C-contiguous ``h`` of at most the largest layer's
        block; returns ``h``."""
        return np.maximum(h, self.zeros[: h.size].reshape(h.shape), out=h)

    def view(self, layer: int, width: int, rows: int) -> np.ndarray:
        """Contiguous ``[width, rows]`` view of layer ``layer``'s buffer."""
        return self.layers[layer][: width * rows].reshape(width, rows)

    def closed_form(self, rows: int) -> np.ndarray:
        """Flat float64 buffer of ``rows · n_max`` values for :func:`_goodness_affine_t`'s
        temporaries, made on first use: fresh temporaries of a 1,000-sample block (~1.5 MB)
        are page-faulted in on every call (measured ~570 minor faults per call)."""
        if self._closed_form is None or self._closed_form.shape[0] < rows * self.n_max:
            self._closed_form = np.empty(rows * self.n_max)
        return self._closed_form


_WORKSPACES = threading.local()
"""Per-thread cache of :class:`_BlockWorkspace` by (dtype, input and layer widths, K). Fresh buffers of a
block (~1–3 MB) are page-faulted in on every first touch: measured ~0.3 ms of a 0.6 ms
100-sample prediction. Per thread, so concurrent predictions never share buffers."""


_MAX_CACHED_BLOCK: int = 4096
"""Largest block whose buffers are kept (~23 MB for ``[13, 32, 32]`` float64); larger blocks
(only a direct :func:`goodness_from_plan` of a big input makes them) allocate per call."""


def _workspace(plan: InferencePlan, n: int) -> _BlockWorkspace:
    """A workspace for blocks of ``n`` samples: the thread's cached one (grown to at least
    :data:`_PREDICT_CHUNK` samples) up to :data:`_MAX_CACHED_BLOCK`, a fresh one beyond."""
    if n > _MAX_CACHED_BLOCK:
        return _BlockWorkspace(plan, n)
    cache: dict[tuple[str, tuple[int, ...], int], tuple[int, _BlockWorkspace]] | None = getattr(
        _WORKSPACES, "by_shape", None
    )
    if cache is None:
        cache = _WORKSPACES.by_shape = {}
    key = (plan.w1x.dtype.str, (plan.w1x.shape[1], plan.b1.shape[0]) + tuple(w.shape[0] for w in plan.rest_w),
           plan.labels.shape[0])
    hit = cache.get(key)
    if hit is None or hit[0] < n:
        hit = (max(n, _PREDICT_CHUNK), _BlockWorkspace(plan, max(n, _PREDICT_CHUNK)))
        cache[key] = hit
    return hit[1]


def _fused_weights(plan: InferencePlan) -> tuple[np.ndarray, ...]:
    """Bias-augmented weights of a block plan for :func:`_goodness_block_fused_t` (cached in
    ``plan.derived``): layer 1 ``[W_1x | c_k | b_1]`` float [M_1 · K, 14] (row ``m K + k``:
    neuron ``m``'s feature weights and constant for label ``k``, then its bias), later layers
    ``[W_l | b_l]`` float [M_l, M_{l−1} + 1]; in the plan's dtype."""
    got = plan.derived.get("fused")
    if got is None:
        m1, k = plan.b1.shape[0], plan.labels.shape[0]
        f = plan.w1x.shape[1]
        first = np.empty((m1 * k, f + 2), dtype=plan.w1x.dtype)
        first[:, :f] = plan.w1x
        first[:, f] = plan.label_rows.T.reshape(m1 * k)
        first[:, f + 1] = np.repeat(plan.b1, k)
        later = tuple(np.concatenate([w, b[:, None]], axis=1) for w, (_, b) in zip(plan.rest_w, plan.rest))
        got = plan.derived["fused"] = (first,) + later
    return got


def _goodness_block_fused_t(plan: InferencePlan, x: np.ndarray, work: _BlockWorkspace, out_t: np.ndarray) -> None:
    """``G(x_n, y_k) = Σ_l ||h_l||²`` of one block of a block-input (label-conditioned) plan
    into ``out_t`` float [K, n]: the layer equations of :func:`_goodness_block_relu_t` (with the
    block input ``e_k ⊗ [x; 1]``, whose norm is the same for every label) with every
    normaliser moved out of the ReLU, so each layer is one product, one ReLU and one sum of
    squares (4 passes over the ``[M_l, K · n]`` activations where the direct form takes 10).

    With ``ReLU(a / d) = ReLU(a) / d`` for ``d > 0``, keep ``u_l = d_l h_l``:

        d_1 = sqrt(||x||² + 1) + eps                    (the block input's norm, all labels)
        u_1 = ReLU([W_1x | c_k | b_1] @ [x; 1; d_1])     (layer 1 of label k, times d_1)
        d_l = ||u_{l−1}|| + eps · d_{l−1}                (= d_{l−1} (||h_{l−1}|| + eps))
        u_l = ReLU([W_l | b_l] @ [u_{l−1}; d_l])         (l >= 2; h_l = u_l / d_l)
        G   = Σ_l ||u_l||² / d_l²

    ``d_l`` sits in the spare row under ``u_{l−1}`` in the workspace, so the bias is part of the
    product. Same values as the direct form up to rounding.

    Args:
        plan: a block plan (its dtype is the compute dtype).
        x: float [n, 12] features, ``n`` at most the workspace's block size.
        work: buffers of at least ``n`` samples for this plan.
        out_t: float [K, n] (plan dtype), receives ``G``.
    """
    n = x.shape[0]
    k = plan.labels.shape[0]
    rows = k * n
    weights = _fused_weights(plan)
    f = plan.w1x.shape[1]
    xin = work.inputs[: (f + 2) * n].reshape(f + 2, n)
    xin[:f] = x.T
    xin[f] = 1.0
    d = xin[f + 1]
    np.einsum("ij,ij->j", xin[:f], xin[:f], out=d)
    d += 1.0
    np.sqrt(d, out=d)
    d += plan.eps
    scale = np.broadcast_to(d, (k, n))  # d_l per (label, sample)
    total = out_t
    m_prev = plan.b1.shape[0]
    u = work.layers[0][: (m_prev + 1) * rows]
    act = u[: m_prev * rows].reshape(m_prev * k, n)
    np.matmul(weights[0], xin, out=act)
    work.relu(act)
    sq = np.einsum("mr,mr->r", act.reshape(m_prev, rows), act.reshape(m_prev, rows)).reshape(k, n)
    np.divide(sq, scale, out=total)
    total /= scale
    for layer, w in enumerate(weights[1:], start=1):
        d_next = u[m_prev * rows:].reshape(k, n)
        np.sqrt(sq, out=d_next)
        d_next += plan.eps * scale
        m = w.shape[0]
        nxt = work.layers[layer][: (m + 1) * rows]
        act = nxt[: m * rows].reshape(m, rows)
        np.matmul(w, u.reshape(m_prev + 1, rows), out=act)
        work.relu(act)
        sq = np.einsum("mr,mr->r", act, act).reshape(k, n)
        total += sq / (d_next * d_next)
        scale, u, m_prev = d_next, nxt, m


def _goodness_block_relu_t(plan: InferencePlan, x: np.ndarray, work: _BlockWorkspace, out_t: np.ndarray) -> None:
    """``G(x_n, y_k)`` of one block of a scalar-input (``[x; y]``) plan into ``out_t`` float
    [K, n], neuron-major layout (block-input plans take :func:`_goodness_block_fused_t`).

    Activations are kept as ``[M_l, K, n]`` (neuron, label, sample), so every elementwise step
    runs over long contiguous rows of ``K · n`` values (a ``[n, K, M_l]`` layout has inner loops
    of only ``M_l = 32`` values, numpy's per-loop overhead then dominates) and each later
    layer is one ``W_l [M_l, M_{l-1}] @ H [M_{l-1}, K · n]`` product.

    Layer 1 (the label enters only here: ``W_1x X^T`` is one ``[M_1, 12] @ [12, n]`` product
    shared by all K labels)::

        H_1[:, k, n] = ReLU((W_1x x_n + y_k w_1y) / (sqrt(||x_n||² + y_k²) + eps) + b_1)

    Later layers, with the normalisation applied after the product (same value)::

        H_l = ReLU((W_l H_{l-1}) / (||H_{l-1}||_col + eps) + b_l)

    Args:
        plan: from :func:`plan_inference` (its dtype is the compute dtype).
        x: float [n, 12] features, ``n`` at most the workspace's block size.
        work: buffers of at least ``n`` samples for this plan.
        out_t: float [K, n] (plan dtype), receives ``G``.
    """
    dt = plan.w1x.dtype
    xb = x if x.dtype == dt else x.astype(dt)
    n = xb.shape[0]
    k = plan.labels_sq.shape[0]
    m1 = plan.b1.shape[0]
    rows = k * n
    wx_t = plan.w1x @ xb.T  # [M_1, n]
    inv = np.einsum("ni,ni->n", xb, xb)
    inv = inv + plan.labels_sq[:, None]  # [K, n]
    np.sqrt(inv, out=inv)
    inv += plan.eps
    np.reciprocal(inv, out=inv)
    h = work.view(0, m1, rows).reshape(m1, k, n)
    np.add(wx_t[:, None, :], plan.label_rows.T[:, :, None], out=h)
    h *= inv
    h += plan.b1[:, None, None]
    work.relu(h)
    h2 = h.reshape(m1, rows)
    for layer, (w, (_, b)) in enumerate(zip(plan.rest_w, plan.rest), start=1):
        inv_l = np.einsum("mr,mr->r", h2, h2)
        np.sqrt(inv_l, out=inv_l)
        inv_l += plan.eps
        np.reciprocal(inv_l, out=inv_l)
        z = work.view(layer, w.shape[0], rows)
        np.matmul(w, h2, out=z)
        z *= inv_l
        z += b[:, None]
        h2 = work.relu(z)
    np.einsum("mr,mr->r", h2, h2, out=out_t.reshape(rows))


AFFINE_MARGIN: float = 1e-6
"""Relative margin of the all-active test of :func:`_goodness_affine_t`: every pre-activation
must stay above this fraction of the magnitude of its terms, which also bounds the rounding
amplification of the closed form (cancellation) to about 1e6 units in the last place."""

_N_POLYS: int = 5
"""Polynomials in the label of the closed form (:class:`_AffineConstants`)."""


class _AffineConstants(NamedTuple):
    """Parameter-only matrices of :func:`_goodness_affine_t` (cached in ``plan.derived``).

    The closed form works on a per-sample column ``ξ`` of ``F = 12 + 8`` rows (``ξ`` float
    [F, n] for a block): ``[1, x (12), a·a, u·u, s_lo, s_hi, ||x||, R_lo, R_hi]`` with
    ``a = W_1x x``, ``u = V x`` (``V = W_2 W_1x``), ``s_lo``/``s_hi`` the smallest / largest
    ``s_k`` of the sample and ``R_lo``/``R_hi`` the smallest / largest ``s_k n_1k``.

    Attributes:
        gram: ``[W_1xᵀ W_1x; Vᵀ V]`` float [24, 12]: ``a·a = xᵀ (W_1xᵀ W_1x) x``, ``u·u`` alike.
        poly_t: float [5 K, 15]: the five polynomials of every label from ``ξ[:15]`` (their
            Vandermonde matrix folded in), ``P_p(y_k) = poly_t[p K + k] · ξ[:15]``.
        test: float [M_1 + M_2, F]: ``test @ ξ`` is a lower bound, over all labels, of every
            neuron's pre-activation times ``s_k`` (layer 1) or ``s_k n_1k`` (layer 2), minus
            :data:`AFFINE_MARGIN` times the magnitude of its terms.
        labels_sq: ``y_k²`` float [K, 1]; labels_sq_lo / labels_sq_hi: its extremes.
        bb, ub_ub, ub_b2, b2_b2: ``b_1·b_1``, ``u_b·u_b``, ``2 u_b·b_2``, ``b_2·b_2``.
    """

    gram: np.ndarray
    poly_t: np.ndarray
    test: np.ndarray
    labels_sq: np.ndarray
    labels_sq_lo: float
    labels_sq_hi: float
    bb: float
    ub_ub: float
    ub_b2: float
    b2_b2: float


def _affine_constants(plan: InferencePlan) -> _AffineConstants:
    """The :class:`_AffineConstants` of a two-layer plan's current parameters (the
    equations are those of :func:`_goodness_affine_t`)."""
    (w2, (_, b2)), = zip(plan.rest_w, plan.rest)
    w1x, w, b, y = plan.w1x, plan.w1y, plan.b1, plan.labels
    nf = w1x.shape[1]
    v = w2 @ w1x  # [M_2, 12]
    u_w, u_b = w2 @ w, w2 @ b
    rows = nf + 8
    xs = slice(1, nf + 1)
    aa_row, uu_row, s_lo, s_hi, norm_x, r_lo, r_hi = range(nf + 1, nf + 8)
    # coefficients of (1, y, y²) of each polynomial, per row of ξ: [F, 5, 3]
    coef = np.zeros((rows, _N_POLYS, 3))
    coef[aa_row, 0, 0], coef[xs, 0, 1], coef[0, 0, 2] = 1.0, 2.0 * (w1x.T @ w), w @ w  # P_1
    coef[xs, 1, 0], coef[0, 1, 1] = 2.0 * (w1x.T @ b), 2.0 * (w @ b)  # L_1
    coef[uu_row, 2, 0], coef[xs, 2, 1], coef[0, 2, 2] = 1.0, 2.0 * (v.T @ u_w), u_w @ u_w  # P_2
    coef[xs, 3, 0], coef[0, 3, 1] = 2.0 * (v.T @ u_b), 2.0 * (u_w @ u_b)  # L_2
    coef[xs, 4, 0], coef[0, 4, 1] = 2.0 * (v.T @ b2), 2.0 * (u_w @ b2)  # L_3
    vandermonde = np.stack((np.ones_like(y), y, y * y), axis=1)  # [K, 3]
    poly_t = np.einsum("rpd,kd->pkr", coef, vandermonde).reshape(_N_POLYS * y.shape[0], rows)
    # all-active test, per neuron: the label term y_k c over y in [y_lo, y_hi], the s_k term
    # and (layer 2) the R_k term at whichever end of their ranges makes them smallest
    y_lo, y_hi = float(y.min()), float(y.max())
    y_abs = max(abs(y_lo), abs(y_hi))
    m = AFFINE_MARGIN
    layers = ((w1x, w, b, None), (v, u_w, u_b, b2))
    test = np.zeros((sum(lin.shape[0] for lin, *_ in layers), rows))
    start = 0
    for lin, label_col, s_col, r_col in layers:
        t = test[start:start + lin.shape[0]]
        start += lin.shape[0]
        t[:, xs] = lin
        t[:, 0] = np.minimum(y_lo * label_col, y_hi * label_col) - m * y_abs * np.abs(label_col)
        t[:, s_lo] = np.maximum(s_col, 0.0)
        t[:, s_hi] = np.minimum(s_col, 0.0) - m * np.abs(s_col)
        t[:, norm_x] = -m * np.linalg.norm(lin, axis=1)
        if r_col is not None:
            t[:, r_lo] = np.maximum(r_col, 0.0)
            t[:, r_hi] = np.minimum(r_col, 0.0) - m * np.abs(r_col)
    labels_sq = y * y
    return _AffineConstants(
        gram=np.concatenate((w1x.T @ w1x, v.T @ v)),
        poly_t=np.ascontiguousarray(poly_t[:, : nf + 3]),
        test=test,
        labels_sq=labels_sq[:, None].copy(),
        labels_sq_lo=float(labels_sq.min()),
        labels_sq_hi=float(labels_sq.max()),
        bb=float(b @ b),
        ub_ub=float(u_b @ u_b),
        ub_b2=2.0 * float(u_b @ b2),
        b2_b2=float(b2 @ b2),
    )


def _affine_scratch_blocks(plan: InferencePlan) -> tuple[int, ...]:
    """Rows (per sample) of :func:`_goodness_affine_t`'s temporaries, in order: ``ξ`` (F = 20),
    the Gram products (24), the polynomials (5 K), ``s``, ``α`` and ``q_1`` (K each) and the
    test bounds (M_1 + M_2)."""
    nf, k = plan.w1x.shape[1], plan.labels.shape[0]
    return (nf + 8, 2 * nf, _N_POLYS * k, k, k, k, plan.w1x.shape[0] + plan.rest_w[0].shape[0])


def _goodness_affine_t(plan: InferencePlan, x: np.ndarray, work: _BlockWorkspace, out_t: np.ndarray) -> np.ndarray:
    """``G(x_n, y_k)`` in closed form for the samples of a block whose ReLUs are all active.

    Two-layer network (``[13, M_1, M_2]``), float64. With ``a = W_1x x`` [M_1],
    ``s_k = sqrt(||x||² + y_k²) + eps`` and ``α_k = 1/s_k``, layer 1's pre-activation is
    ``z_1 = α_k (a + y_k w_1y + s_k b_1)``. Where it is positive for every neuron and label,
    ``h_1 = z_1`` and its squared norm is a quadratic in ``α_k``,

        q_1 = ||z_1||² = α_k² P_1(y_k) + α_k L_1(y_k) + b_1·b_1,   n_1 = sqrt(q_1) + eps,
        P_1(y) = a·a + 2 y a·w_1y + y² w_1y·w_1y,   L_1(y) = 2 a·b_1 + 2 y w_1y·b_1,

    and, with ``u = W_2 a = V x``, ``u_w = W_2 w_1y``, ``u_b = W_2 b_1``, layer 2's is
    ``z_2 = α_k (u + y_k u_w + s_k u_b) / n_1 + b_2``; where that is positive too,

        G = ||z_2||² = (α_k² P_2 + α_k L_2 + u_b·u_b) / n_1² + (α_k L_3 + 2 u_b·b_2) / n_1 + b_2·b_2,
        P_2(y) = u·u + 2 y u·u_w + y² u_w·u_w,  L_2(y) = 2 u·u_b + 2 y u_w·u_b,
        L_3(y) = 2 u·b_2 + 2 y u_w·b_2.

    Every coefficient of the five polynomials is a constant, a linear form in ``x``, or one
    of the two quadratic forms ``a·a = xᵀ W_1xᵀ W_1x x`` and ``u·u = xᵀ Vᵀ V x``, so the
    polynomials of all K labels are one product ``poly_t @ ξ`` (:class:`_AffineConstants`),
    and all K goodnesses cost ``O(K)`` work per sample instead of ``O(K M²)``: the same
    values as the neuron-by-neuron forward pass up to float rounding, in about 40 numpy calls.

    "All active" is tested conservatively, one matrix product for both layers: ``s_k z_1`` =
    ``a + y_k w_1y + s_k b_1`` and ``s_k n_1k z_2 = u + y_k u_w + s_k u_b + R_k b_2``
    (``R_k = s_k n_1k > 0``) are bounded below, per neuron, by taking the label term, the
    ``s`` term and the ``R`` term each at the end of its range (``y`` over the labels,
    ``s`` and ``R`` between their extremes over the labels) that makes it smallest, less
    :data:`AFFINE_MARGIN` times the magnitude of the terms (``|a_m| <= ||W_1x[m]|| ||x||``).
    A sample whose bound is not positive for every neuron (a ReLU that may be off for some
    label, or a near-cancellation) is left to the general forward pass.

    Args:
        plan: a float64 plan of a two-layer network.
        x: float64 [n, 12] features.
        work: buffers of at least ``n`` samples for this plan (its closed-form scratch).
        out_t: float64 [K, n]; receives ``G`` (meaningful in the columns of the samples
            that pass).

    Returns:
        bool [n], the samples computed here.
    """
    c = plan.derived.get("affine")
    if c is None:
        c = plan.derived["affine"] = _affine_constants(plan)
    n, nf = x.shape
    k = plan.labels.shape[0]
    ends = tuple(itertools.accumulate(_affine_scratch_blocks(plan)))
    scratch = work.closed_form(ends[-1])[: ends[-1] * n].reshape(ends[-1], n)
    # row blocks of the scratch (slices, not np.split: ~35 µs less per call)
    xi, gram, polys, s, alpha, q1, bounds = (scratch[lo:hi] for lo, hi in zip((0,) + ends, ends))
    aa_row, s_lo, norm_x, r_lo = nf + 1, nf + 3, nf + 5, nf + 6
    xi[0] = 1.0
    xt = xi[1:nf + 1]
    xt[...] = x.T
    # a·a and u·u: Σ_i x_i (G x)_i for both Gram matrices
    quad = np.matmul(c.gram, xt, out=gram).reshape(2, nf, n)
    quad *= xt
    np.sum(quad, axis=1, out=xi[aa_row:aa_row + 2])
    xx = np.einsum("in,in->n", xt, xt)
    np.sqrt(xx, out=xi[norm_x])
    for row, y_sq in ((s_lo, c.labels_sq_lo), (s_lo + 1, c.labels_sq_hi)):
        np.add(xx, y_sq, out=xi[row])
        np.sqrt(xi[row], out=xi[row])
        xi[row] += plan.eps
    p1, l1, p2, l2, l3 = np.matmul(c.poly_t, xi[:nf + 3], out=polys).reshape(_N_POLYS, k, n)
    np.add(xx, c.labels_sq, out=s)  # s_k [K, n]
    np.sqrt(s, out=s)
    s += plan.eps
    np.reciprocal(s, out=alpha)
    # n_1 = sqrt(α (α P_1 + L_1) + b_1·b_1) + eps
    np.multiply(alpha, p1, out=q1)
    q1 += l1
    q1 *= alpha
    q1 += c.bb
    np.maximum(q1, 0.0, out=q1)  # a sample that fails the test may have any sign here
    n1 = np.sqrt(q1, out=q1)
    n1 += plan.eps
    r = np.multiply(s, n1, out=s)  # R_k = s_k n_1k
    r.min(axis=0, out=xi[r_lo])
    r.max(axis=0, out=xi[r_lo + 1])
    inv_n1 = np.reciprocal(n1, out=n1)
    # G = ((α (α P_2 + L_2) + u_b·u_b) / n_1 + α L_3 + 2 u_b·b_2) / n_1 + b_2·b_2
    g = np.multiply(alpha, p2, out=out_t)
    g += l2
    g *= alpha
    g += c.ub_ub
    g *= inv_n1
    l3 *= alpha
    g += l3
    g += c.ub_b2
    g *= inv_n1
    g += c.b2_b2
    return np.matmul(c.test, xi, out=bounds).min(axis=0) > 0.0


AFFINE_MIN_SAMPLES: int = 32
"""Smallest block that tries the closed form: it costs about 40 numpy calls whatever the block
size, the forward pass ~25 calls of ``K`` times the work. Measured on our VM in a slow phase
(``_goodness_affine_t`` vs ``_goodness_block_relu_t``, packaged model, best of 400
interleaved calls): 16 samples 103 vs 89 µs, 32: 121 vs 122, 48: 114 vs 149, 128: 143 vs
310, 1,000: 530 vs 2,140 µs (the closed form before the Gram/polynomial rewrite: 1,229 µs)."""


def _goodness_block_t(plan: InferencePlan, x: np.ndarray, work: _BlockWorkspace, out_t: np.ndarray) -> None:
    """``G(x_n, y_k)`` of one block into ``out_t`` float [K, n]: block-input plans take the
    fused pass of :func:`_goodness_block_fused_t`; scalar-input plans the closed form of
    :func:`_goodness_affine_t` for the samples it covers (float64 two-layer plans, blocks of
    at least :data:`AFFINE_MIN_SAMPLES`) and the neuron-by-neuron forward pass of
    :func:`_goodness_block_relu_t` for the others."""
    if plan.block:
        _goodness_block_fused_t(plan, x, work, out_t)
        return
    if (
        len(plan.rest) != 1
        or x.shape[0] < AFFINE_MIN_SAMPLES
        or plan.w1x.dtype != np.float64
        or x.dtype != np.float64
    ):
        _goodness_block_relu_t(plan, x, work, out_t)
        return
    ok = _goodness_affine_t(plan, x, work, out_t)
    if not ok.all():
        rest = np.flatnonzero(~ok)
        part = np.empty((out_t.shape[0], rest.shape[0]), dtype=out_t.dtype)
        _goodness_block_relu_t(plan, x[rest], work, part)
        out_t[:, rest] = part


def goodness_from_plan(plan: InferencePlan, x: np.ndarray) -> np.ndarray:
    """``G(x_n, y_k)`` for a block of samples, float [n, K] (dtype of the plan).

    The equations and layout of :func:`_goodness_block_t` on one block of any size
    (:func:`goodness_all_labels` splits large inputs into cache-sized blocks).

    Args:
        plan: from :func:`plan_inference`.
        x: float [n, 12] features.
    """
    xb = np.asarray(x)
    n = xb.shape[0]
    out_t = np.empty((plan.labels.shape[0], n), dtype=plan.w1x.dtype)
    if n:
        _goodness_block_t(plan, xb, _workspace(plan, n), out_t)
    return out_t.T


def goodness_one_from_plan(plan: InferencePlan, x: np.ndarray, xx: float | None = None) -> np.ndarray:
    """``G(x, y_k)`` of one sample ``x`` float [12] for all K labels, float [K].

    The same equations as :func:`goodness_from_plan` with 2-D ``[K, M_l]`` temporaries
    (the single-sample latency path of ``predict_one`` / ``learn_one``). ``xx`` is
    ``||x||²`` if the caller already has it.
    """
    return trace_goodness(plan, forward_one_from_plan(plan, x, xx))


class Trace:
    """One sample's forward pass over the K candidate labels (:func:`forward_one_from_plan`):
    two arrays and the per-layer views the forward pass writes through (made once, reused).

    Attributes:
        acts: float [L + 1, K, D] (``D`` of ``plan.trace_shape``): ``acts[l, :, :M_l]`` = ``h_l``
            for ``l = 1..L``; ``acts[0, :, :M_0]`` = the inputs ``[x; y_k]`` of a scalar-input
            plan once :func:`pair_update_from_trace` has filled in ``x`` (unused for a block plan).
        norms: float [L + 1, K]: ``norms[l]`` = ``n_l``, layer ``l + 1``'s input normaliser,
            for ``l = 0..L − 1``.
        hs: ``h_l`` views float [K, M_l], ``l = 1..L``; ns: ``n_l`` views [K], ``l = 0..L − 1``;
        ns_col: the same as [K, 1] views.
    """

    __slots__ = ("acts", "norms", "hs", "ns", "ns_col")

    def __init__(self, plan: InferencePlan, fill: bool = True) -> None:
        widths = (plan.b1.shape[0],) + tuple(w.shape[0] for w in plan.rest_w)
        new = np.zeros if fill else np.empty
        self.acts: np.ndarray = new(plan.trace_shape, dtype=plan.w1x.dtype)
        self.norms: np.ndarray = new(plan.trace_shape[:2], dtype=plan.w1x.dtype)
        self.hs = tuple(self.acts[layer, :, :m] for layer, m in enumerate(widths, start=1))
        self.ns = tuple(self.norms[layer] for layer in range(len(widths)))
        self.ns_col = tuple(n[:, None] for n in self.ns)

    @property
    def output(self) -> np.ndarray:
        """``h_L`` float [K, M_L] (a view)."""
        return self.hs[-1]


def new_trace(plan: InferencePlan) -> Trace:
    """A zeroed :class:`Trace` for :func:`forward_one_from_plan`, for a scalar-input plan with
    the candidate labels in the input's label column ``acts[0, :, M_0 − 1]``: the buffer the
    LightTune step needs (a block plan's step builds its two input blocks itself)."""
    trace = Trace(plan)
    if not plan.block:
        trace.acts[0, :, plan.w1x.shape[1]] = plan.labels
    return trace


def trace_goodness(plan: InferencePlan, trace: Trace) -> np.ndarray:
    """``G(x, y_k)`` float [K] of a forward trace: ``||h_L||²``, or ``Σ_l ||h_l||²`` for a
    block-input plan."""
    if not plan.block:
        h = trace.output
        return _vecdot(h, h)
    g = _vecdot(trace.hs[0], trace.hs[0])
    for h in trace.hs[1:]:
        g = g + _vecdot(h, h)
    return g


def forward_one_from_plan(
    plan: InferencePlan, x: np.ndarray, xx: float | None = None, out: Trace | None = None
) -> Trace:
    """Every layer's activations of one sample ``x`` float [12] paired with each of the K labels.

    ``h_l[k] = ReLU(W_l h_{l-1}[k] / n_{l-1}[k] + b_l)`` with the normalisers
    ``n_0[k] = sqrt(||x||² + y_k²) + eps`` (the input ``[x; y_k]``) and
    ``n_{l-1}[k] = ||h_{l-1}[k]|| + eps``.

    Args:
        plan: from :func:`plan_inference`.
        x: float [12] features; xx: ``||x||²`` if the caller has it.
        out: a :class:`Trace` of this plan to write into (:func:`new_trace`); a new
            uninitialised one if None.

    Returns:
        The trace. Only ``h_l`` (``acts[l, :, :M_l]``, ``l >= 1``) and ``n_0..n_{L-1}`` are
        written: the inputs ``acts[0]`` and any padding beyond ``M_l`` keep what ``out``
        held. :func:`pair_update_from_trace` reuses it for the LightTune step, so
        ``learn_one`` runs the forward pass once; :attr:`Trace.output` is ``h_L``.
    """
    trace = Trace(plan, fill=False) if out is None else out
    hs, ns, ns_col = trace.hs, trace.ns, trace.ns_col
    n = ns[0]
    np.sqrt((float(x @ x) if xx is None else xx) + plan.labels_sq, out=n)
    n += plan.eps
    h = hs[0]
    wx = plan.w1x @ x
    if plan.block:  # neuron-major rows: [M_1, K] -> [K, M_1]
        wx = wx.reshape(plan.label_rows.shape[::-1]).T
    np.add(wx, plan.label_rows, out=h)  # [K, M_1]
    h /= ns_col[0]
    h += plan.b1
    np.maximum(h, 0.0, out=h)
    for layer, (w_t, b) in enumerate(plan.rest, start=1):
        n = ns[layer]
        np.sqrt(_vecdot(h, h), out=n)
        n += plan.eps
        z = hs[layer]
        np.matmul(h, w_t, out=z)
        z /= ns_col[layer]
        z += b
        h = np.maximum(z, 0.0, out=z)
    return trace


def goodness_all_labels_t(plan: InferencePlan, x: np.ndarray, block: int | None = None) -> np.ndarray:
    """``G(x_n, y_k)`` for every sample and candidate label, label-major: float [K, N].

    Blocks of ``block`` (default :data:`_PREDICT_CHUNK`) samples share one set of activation
    buffers, so temporaries stay ``O(block · K · max M_l)`` whatever ``N``. The compute dtype
    is the plan's.

    Args:
        plan: from :func:`plan_inference`.
        x: float [N, F] input values (finite; not checked here).
    """
    size = _PREDICT_CHUNK if block is None else int(block)
    if size < 1:
        raise ValueError(f"block must be >= 1, got {size}")
    n = x.shape[0]
    out_t = np.empty((plan.labels.shape[0], n), dtype=plan.w1x.dtype)
    if n == 0:
        return out_t
    work = _workspace(plan, min(size, n))
    for start in range(0, n, size):
        stop = min(start + size, n)
        # a contiguous [K, stop - start] block of the output: write a temporary, then copy
        if start == 0 and stop == n:
            _goodness_block_t(plan, x, work, out_t)
        else:
            part = np.empty((out_t.shape[0], stop - start), dtype=out_t.dtype)
            _goodness_block_t(plan, x[start:stop], work, part)
            out_t[:, start:stop] = part
    return out_t


def goodness_all_labels(
    params: FFParams,
    x: np.ndarray,
    labels: np.ndarray = BLER_LABELS,
    n_layers: int | None = None,
    eps: float = DEFAULT_NORM_EPS,
    plan: InferencePlan | None = None,
) -> np.ndarray:
    """``G(x_n, y_k)`` (``||h_L||²``, or ``Σ_l ||h_l||²`` for a block input) for every sample
    and candidate label.

    Args:
        x: float [N, 12] features.
        labels: float [K] candidate labels (default the 11 BLER labels).
        n_layers: goodness of layer ``n_layers`` instead of the last one.
        plan: a precomputed :func:`plan_inference` (then ``params``, ``labels``,
            ``n_layers`` and ``eps`` are not used).

    Returns:
        float [N, K] goodness (a transposed view of :func:`goodness_all_labels_t`). Work is
        done in blocks of samples so temporaries stay ``O(block · K · max M_l)`` whatever ``N``.
    """
    p = plan if plan is not None else plan_inference(params, labels, eps, n_layers)
    return goodness_all_labels_t(p, np.asarray(x)).T


def predict_label_index(plan: InferencePlan, x: np.ndarray) -> np.ndarray:
    """``argmax_k G(x_n, y_k)``: int64 [N] label indices (ties to the smaller label).

    The unchecked inner path of ``LightTuneModel.predict_many`` and of the decision search:
    ``x`` float [N, F] must already be finite and of the right shape.
    """
    return np.argmax(goodness_all_labels_t(plan, x), axis=0)


def predict_labels(
    params: FFParams,
    x: np.ndarray,
    labels: np.ndarray = BLER_LABELS,
    n_layers: int | None = None,
    eps: float = DEFAULT_NORM_EPS,
    plan: InferencePlan | None = None,
) -> np.ndarray:
    """``ŷ_n = argmax_k G(x_n, y_k)``: float64 [N] labels for features float [N, 12]."""
    p = plan if plan is not None else plan_inference(params, labels, eps, n_layers)
    return p.labels[predict_label_index(p, np.asarray(x))]


def local_update(
    params: FFParams,
    inputs: np.ndarray,
    positive: np.ndarray,
    lr: float,
    threshold: float = DEFAULT_THRESHOLD,
    loss: str = "proposed",
    eps: float = DEFAULT_NORM_EPS,
) -> FFParams:
    """One plain-SGD step of every layer on its own local loss (the LightTune step).

    Layer by layer, only that layer's activations alive: ``h~_{l-1}`` and ``h_l`` of the
    batch (``O(B · max_l M_l)``), then ``W_l ← W_l − lr ∂L_l/∂W_l``, ``b_l ← b_l − lr ∂L_l/∂b_l``.
    Layer ``l + 1`` is fed the outputs of layer ``l`` as they were before its update (the
    same forward pass for all layers).

    Args:
        params: current parameters (not modified).
        inputs: float64 [B, 13] pairs ``[x; y]``.
        positive: bool [B], True for positive pairs.
        lr: learning rate.

    Returns:
        New :class:`FFParams`.
    """
    signs = _signs(positive, inputs.shape[0])
    weight_s = _sample_weights(signs)[:, None]
    new_w: list[np.ndarray] = []
    new_b: list[np.ndarray] = []
    h = inputs
    for w, b in zip(params.weights, params.biases):
        h_tilde, h = layer_forward(w, b, h, eps)
        delta = layer_delta(h, signs, threshold, loss) * weight_s
        new_w.append(w - lr * (delta.T @ h_tilde))
        new_b.append(b - lr * delta.sum(axis=0))
    return FFParams(tuple(new_w), tuple(new_b))


_PAIR_SIGNS: np.ndarray = np.array([[1.0], [-1.0]])
_PAIR_SIGNS.setflags(write=False)
"""Signs ``s`` of the (positive, negative) rows of a LightTune pair, [2, 1]."""


def _step_factors(lr: float, width: int, threshold: float, proposed: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, scale)`` [2, 1] of :func:`_pair_step` for one layer of ``width`` neurons:
    proposed ``(T + 2s, −4 lr/M)``, Softplus ``(s/2, s lr/M)`` (``s = ±1`` per pair row)."""
    if proposed:
        return _PAIR_SIGNS * 2.0 + threshold, np.full((2, 1), -4.0 * (lr / width))
    return 0.5 * _PAIR_SIGNS, _PAIR_SIGNS * (lr / width)


def _pair_step(h: np.ndarray, offset: np.ndarray, scale: np.ndarray, threshold: float, proposed: bool) -> np.ndarray:
    """``−lr δ`` of the (positive, negative) rows ``h`` [..., 2, M] of one or more layers.

    proposed: ``−lr δ = scale ⊙ (g − offset) ⊙ h`` with ``offset = T + 2s``, ``scale = −4 lr/M``;
    Softplus: ``−lr δ = scale ⊙ (1 + tanh(offset ⊙ (T − g))) ⊙ h`` with ``offset = s/2``,
    ``scale = s lr/M`` (``(1 + tanh(u/2)) / 2 = σ(u)``), ``g = h ⊙ h`` (``h >= 0`` carries the
    ReLU mask). ``offset``, ``scale``: :func:`_step_factors` of one layer, or full-shape
    stacks (:class:`PairStepConstants`).
    """
    step = h * h
    if proposed:
        step -= offset
    else:
        np.subtract(threshold, step, out=step)
        step *= offset
        np.tanh(step, out=step)
        step += 1.0
    step *= scale
    step *= h
    return step


def pair_update_inplace(
    params: FFParams,
    x: np.ndarray,
    y_pos: float,
    y_neg: float,
    lr: float,
    threshold: float = DEFAULT_THRESHOLD,
    loss: str = "proposed",
    eps: float = DEFAULT_NORM_EPS,
) -> None:
    """The LightTune step on one positive and one negative pair, in place.

    ``W_l ← W_l − lr (δ+ h~+ᵀ + δ− h~−ᵀ)``, ``b_l ← b_l − lr (δ+ + δ−)`` for every layer,
    with the per-sample ``δ`` of :func:`layer_delta` (``|S+| = |S−| = 1``): the values of
    :func:`local_update` on the two pairs, up to float rounding. Layer ``l`` is updated
    before layer ``l + 1`` is computed, and only one layer's temporaries are alive at a
    time: ``[2, M_l]`` activations and one ``[M_l, M_{l-1}]`` outer product, so the extra
    memory is ``O(max_l M_l M_{l-1})``, not ``O(Σ_l M_l M_{l-1})``.

    Args:
        params: parameters, modified in place (float64, writeable).
        x: float64 [12] features.
        y_pos: the true label (positive pair); y_neg: the wrong label (negative pair).
        lr: learning rate.
    """
    h = pair_inputs(x, np.array([y_pos, y_neg]), label_encoding(params.weights[0].shape[1]))
    proposed = loss == "proposed"
    for w, b in zip(params.weights, params.biases):
        norm = np.sqrt(_vecdot(h, h))
        norm += eps
        h_tilde = h / norm[:, None]
        z = h_tilde @ w.T
        z += b
        h = np.maximum(z, 0.0, out=z)
        step = _pair_step(h, *_step_factors(lr, h.shape[1], threshold, proposed), threshold, proposed)
        w += step.T @ h_tilde
        b += step.sum(axis=0)


class PackedParams(NamedTuple):
    """All layers' parameters in two zero-padded stacks, for :func:`pair_update_from_trace`.

    ``weights[l - 1, :M_l, :M_{l-1}]`` = ``W_l`` and ``biases[l - 1, :M_l]`` = ``b_l`` with
    ``D = max(M_0, ..., M_L)``, zeros elsewhere; ``params`` are views of them, so every
    other function sees ordinary :class:`FFParams` (for the paper's ``[13, 32, 32]`` only
    ``W_1`` is a strided view). A block-input network (``M_0 = 11 (F + 1)``, hundreds wide
    with an input encoding) keeps ``W_1`` apart in :attr:`w1` and ``D = max(M_1, ..., M_L)``:
    the stacks stay ``[L, 32, 32]`` instead of ``[L, M_0, M_0]`` (12.4 MB for ``M_0 = 880``);
    ``weights[0]`` is then unused.

    Attributes:
        weights: float64 [L, D, D]; biases: float64 [L, D].
        params: :class:`FFParams` of views into the stacks (and of :attr:`w1`).
        widths: ``M_1..M_L``.
        w1: ``W_1`` float64 [M_1, M_0] of a block-input network, else None.
    """

    weights: np.ndarray
    biases: np.ndarray
    params: FFParams
    widths: tuple[int, ...]
    w1: np.ndarray | None = None


def pack_params(params: FFParams) -> PackedParams:
    """Copy ``params`` (float64) into one :class:`PackedParams`."""
    sizes = layer_sizes(params)
    block = label_encoding(sizes[0]) == "block"
    d = max(sizes[1:]) if block else max(sizes)
    w_stack = np.zeros((len(sizes) - 1, d, d))
    b_stack = np.zeros((len(sizes) - 1, d))
    w1 = np.array(params.weights[0], dtype=np.float64) if block else None
    for layer, (w, b) in enumerate(zip(params.weights, params.biases)):
        if layer or not block:
            w_stack[layer, : w.shape[0], : w.shape[1]] = w
        b_stack[layer, : b.shape[0]] = b
    views = FFParams(
        tuple(
            w1 if layer == 0 and w1 is not None else w_stack[layer, :m, :m_in]
            for layer, (m_in, m) in enumerate(zip(sizes[:-1], sizes[1:]))
        ),
        tuple(b_stack[layer, :m] for layer, m in enumerate(sizes[1:])),
    )
    return PackedParams(w_stack, b_stack, views, sizes[1:], w1)


class PairStepConstants(NamedTuple):
    """Full-shape ``[L, 2, D]`` factors of :func:`pair_update_from_trace`'s step (full shapes,
    not broadcasts: numpy's broadcasting loops cost more than the arithmetic at this size).

    proposed: ``−lr δ = scale ⊙ (h ⊙ h − offset) ⊙ h`` with ``offset = T + 2s`` and
    ``scale = −4 lr / M_l``; Softplus: ``−lr δ = scale ⊙ (1 + tanh(offset ⊙ (T − h ⊙ h))) ⊙ h``
    with ``offset = s / 2`` and ``scale = s lr / M_l``.
    """

    offset: np.ndarray
    scale: np.ndarray
    threshold: float
    proposed: bool


def pair_step_constants(packed: PackedParams, lr: float, threshold: float, loss: str = "proposed") -> PairStepConstants:
    """The :class:`PairStepConstants` of ``packed``'s layer widths for these hyperparameters."""
    proposed = check_loss_kind(loss) == "proposed"
    d = packed.weights.shape[1]
    factors = [_step_factors(lr, m, threshold, proposed) for m in packed.widths]
    offset = np.stack([np.broadcast_to(o, (2, d)) for o, _ in factors])
    scale = np.stack([np.broadcast_to(c, (2, d)) for _, c in factors])
    return PairStepConstants(offset, scale, float(threshold), proposed)


def pair_update_from_trace(
    packed: PackedParams, x: np.ndarray, trace: Trace, k_pos: int, k_neg: int, constants: PairStepConstants
) -> None:
    """:func:`pair_update_inplace` for the labels ``y_{k_pos}`` (positive) and ``y_{k_neg}``
    (negative), reusing the forward pass that predicted them, all layers' steps at once.

    ``trace`` is :func:`forward_one_from_plan` of ``x`` on the current parameters into a
    :func:`new_trace` buffer (zero padding; a scalar-input plan's labels in its input rows,
    a block plan's two input blocks ``[x; 1] / n_0k`` are formed here), so its rows
    ``k_pos`` and ``k_neg`` hold every layer's pair activations and input normalisers: no
    layer is recomputed. The step of :func:`pair_update_inplace` (every layer fed the
    outputs of the forward pass before any update) is, up to float rounding,

        W_l ← W_l − lr (δ+ h~+ᵀ + δ− h~−ᵀ),   b_l ← b_l − lr (δ+ + δ−),   h~ = h_{l-1} / n_{l-1}

    on the packed stacks (their zero padding stays zero: the padded ``h`` are zero). The
    ``[L, 2, D]`` step and ``h~`` of all layers take a fixed number of numpy calls; the outer
    products are one ``[D, 2] @ [2, D]`` per layer, so the extra memory is
    ``O(L D + D²)``, not ``O(L D²)``.

    Args:
        packed: the parameters (:func:`pack_params`), modified in place; the plan of
            ``trace`` must have been built from ``packed.params`` with all ``L`` layers.
        x: float64 [12] features.
        trace: from :func:`forward_one_from_plan`.
        k_pos, k_neg: label indices of the positive and negative pair.
        constants: :func:`pair_step_constants` of ``packed`` and the step's hyperparameters.
    """
    rows = (k_pos, k_neg)
    acts = trace.acts.take(rows, axis=1)  # [L + 1, 2, D]
    step = _pair_step(acts[1:], constants.offset, constants.scale, constants.threshold, constants.proposed)
    n_layers = len(packed.widths)
    inputs = acts[:n_layers]
    biases, weights = packed.biases, packed.weights
    first = 0
    if packed.w1 is not None:
        # block input e_k ⊗ [x; 1] / n_0k: only label k's F + 1 columns of W_1 see a non-zero
        # input, so each pair updates one block (both pairs the same one if k_pos = k_neg)
        m1, f = packed.widths[0], x.shape[0]
        u = np.empty(f + 1)
        for row, k in enumerate(rows):
            np.divide(x, trace.norms[0, k], out=u[:f])
            u[f] = 1.0 / trace.norms[0, k]
            packed.w1[:, k * (f + 1) : (k + 1) * (f + 1)] += np.multiply.outer(step[0, row, :m1], u)
        first = 1
    else:
        acts[0, :, : x.shape[0]] = x
    inputs /= trace.norms.take(rows, axis=1)[:n_layers, :, None]
    biases += step.sum(axis=1)
    # each layer's outer product on its own [M_l, M_{l-1}] corner (the padding stays zero)
    fan_in = (packed.params.weights[0].shape[1],) + packed.widths[:-1]
    for layer in range(first, n_layers):
        m_out, m_in = packed.widths[layer], fan_in[layer]
        weights[layer, :m_out, :m_in] += step[layer, :, :m_out].T @ inputs[layer, :, :m_in]


def pair_update(
    params: FFParams,
    x: np.ndarray,
    y_pos: float,
    y_neg: float,
    lr: float,
    threshold: float = DEFAULT_THRESHOLD,
    loss: str = "proposed",
    eps: float = DEFAULT_NORM_EPS,
) -> FFParams:
    """Pure form of :func:`pair_update_inplace`: returns new parameters, ``params`` untouched."""
    new = FFParams(tuple(w.copy() for w in params.weights), tuple(b.copy() for b in params.biases))
    pair_update_inplace(new, x, y_pos, y_neg, lr, threshold, loss, eps)
    return new
