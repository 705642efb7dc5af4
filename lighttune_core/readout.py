"""Softmax readout of the FF network's hidden activities: a BLER label distribution.

The forward-forward network answers with the label of largest goodness (arg-max). Goodness
is not a probability, so the arg-max is the only point it gives, and it is neither the
median (which minimises the mean absolute error) nor the mean (which the delivered-bits
score ``U · (1 − p)`` needs). Hinton's FF paper (2022, section 3.3) reads a trained FF network
out with a linear softmax layer on its hidden activities instead; this module does that for
the label-conditioned network:

    a_n = [h_1(x_n, y_0), ..., h_L(x_n, y_0), ..., h_1(x_n, y_10), ..., h_L(x_n, y_10)]  (K · H values)
    P(y_k | x_n) = softmax_k(R (a_n − μ) / σ + c)                                           (K = 11 labels)

with ``H = M_1 + ... + M_L`` the hidden widths (64 for ``[·, 32, 32]``, so 704 inputs) and
``μ``, ``σ`` the activities' training mean and standard deviation. The
readout ``R`` [K, K·H], ``c`` [K] is one linear layer trained on its own local loss, the
cross-entropy ``−log P(y | x)`` with an L2 penalty: no gradient crosses into the FF layers,
which keep their own local losses (no backpropagation). Offline it is fitted by L-BFGS after
the FF layers (a convex problem). Online, next to LightTune's fine-tuning of the FF layers
on the surprising samples, the readout takes one SGD step of the same loss for *every*
labelled sample (:func:`readout_step`; steps on the surprising ones only would bias its
distribution towards them), from the activities the prediction already computed, so no
buffer is kept; what predicts is the running average of those steps' iterate.

The model's label is :func:`median_labels` of ``P`` [N, K]: the smallest label whose
cumulative probability reaches 1/2, the MAE-optimal point. The decision search ranks by that
label through the cell's calibration, as it did the arg-max: measured on Table 6 rows 0, 4,
7, 12 and 14 (srsRAN DU, 32 UEs × 3 s, seed 2, offline-v7), searching with the mean
``Σ_k P_k y_k`` instead gave RI-CQI-Tune +1.10 % / +0.96 % (medium / high SNR) against the
median's +2.31 % / +0.93 %.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np
from scipy.optimize import minimize

from lighttune_core.features import BLER_LABELS

N_LABELS: int = int(BLER_LABELS.shape[0])
DEFAULT_L2: float = 1e-3
"""``λ``: L2 penalty per weight of the offline fit, on standardised activities (a mean
cross-entropy objective ``mean_n CE_n + λ/2 · ||R||²``)."""
DEFAULT_MAX_ITER: int = 300
"""L-BFGS iterations of the offline fit."""


class SoftmaxReadout(NamedTuple):
    """A linear softmax layer on the label activities.

    ``P(y | x) = softmax(R (a − μ) / σ + c)``: the weights act on activities standardised
    with the training set's mean and standard deviation, so that one SGD step size suits
    every value (raw activities sit around 3 with a spread of ~0.08).

    Attributes:
        weight: float64 [K, K · H] (``R``, the readout that predicts).
        bias: float64 [K] (``c``).
        mean: float64 [K · H] (``μ``).
        scale: float64 [K · H] (``σ > 0``).
        fast_weight, fast_bias: the online SGD iterate ``(R', c')`` whose running average
            ``(R, c)`` is (:func:`readout_step`); equal to ``(R, c)`` after the offline fit.
    """

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    fast_weight: np.ndarray
    fast_bias: np.ndarray


def check_readout(readout: SoftmaxReadout, width: int) -> SoftmaxReadout:
    """``readout`` as float64 copies, checked against ``width = K · H`` activity values.

    Raises:
        ValueError: wrong shapes or non-finite values.
    """
    arrays = tuple(np.array(a, dtype=np.float64) for a in readout)
    shapes = ((N_LABELS, width), (N_LABELS,), (width,), (width,), (N_LABELS, width), (N_LABELS,))
    if tuple(a.shape for a in arrays) != shapes:
        raise ValueError(f"readout arrays must have shapes {shapes}, got {tuple(a.shape for a in arrays)}")
    if not all(np.isfinite(a).all() for a in arrays) or (arrays[3] <= 0).any():
        raise ValueError("readout has non-finite values or a scale <= 0")
    return SoftmaxReadout(*arrays)


def _layer_activities(
    weights: tuple[np.ndarray, ...], biases: tuple[np.ndarray, ...], e: np.ndarray, eps: float
) -> Iterator[np.ndarray]:
    """``h_1, ..., h_L`` of every candidate label, each float [N, K, M_l] in ``e``'s dtype.

    The block input of label ``k`` is ``[e; 1]`` in block ``k`` and zeros elsewhere, so its
    length is that of ``[e; 1]`` for every ``k`` and layer 1 is one product with ``W_1``
    viewed as [M_1, K, F + 1]:

        h_1(x, y_k) = ReLU(W_1^(k) [e; 1] / (||[e; 1]|| + ε) + b_1),  h_l = ReLU(W_l h~_{l−1} + b_l)
    """
    n, f = e.shape
    m1 = weights[0].shape[0]
    a = np.empty((n, f + 1), dtype=e.dtype)
    a[:, :f] = e
    a[:, f] = 1.0
    a /= (np.sqrt(np.einsum("nf,nf->n", a, a)) + eps)[:, None]
    w1 = np.asarray(weights[0], dtype=e.dtype).reshape(m1, N_LABELS, f + 1)
    h = (a @ w1.transpose(2, 1, 0).reshape(f + 1, N_LABELS * m1)).reshape(n, N_LABELS, m1)  # label-major
    h += np.asarray(biases[0], dtype=e.dtype)
    np.maximum(h, 0.0, out=h)
    yield h
    for w, b in zip(weights[1:], biases[1:]):
        h = (h / (np.sqrt(np.einsum("nkm,nkm->nk", h, h)) + eps)[..., None]) @ np.asarray(w, dtype=e.dtype).T
        h += np.asarray(b, dtype=e.dtype)
        np.maximum(h, 0.0, out=h)
        yield h


def label_activities(
    weights: tuple[np.ndarray, ...], biases: tuple[np.ndarray, ...], e: np.ndarray, eps: float
) -> np.ndarray:
    """Hidden activities of every candidate label: float [N, K, H] (:func:`_layer_activities`
    concatenated on the last axis), what the offline fit reads.

    Args:
        weights, biases: the FF parameters of a block-input network (``W_1`` [M_1, K (F + 1)]).
        e: float [N, F] encoded features (:meth:`~lighttune_core.encoding.InputEncoding.encode`).
        eps: the length normalisation's ``ε``.
    """
    return np.concatenate(list(_layer_activities(weights, biases, e, eps)), axis=-1)


def readout_proba(readout: SoftmaxReadout, acts: np.ndarray) -> np.ndarray:
    """``P(y_k | x_n)``: float [N, K] (rows sum to 1) from activities [N, K, H]."""
    n = acts.shape[0]
    a = acts.reshape(n, -1) - readout.mean.astype(acts.dtype, copy=False)
    a /= readout.scale.astype(acts.dtype, copy=False)
    z = a @ readout.weight.T.astype(acts.dtype, copy=False)
    z += readout.bias.astype(acts.dtype, copy=False)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class FoldedReadout(NamedTuple):
    """A readout with its standardisation folded in and split by layer, for the batched
    forward pass of :func:`readout_proba_from_inputs`:
    ``z = c − Σ R μ/σ + Σ_l h_l(·) · (R/σ)_l`` with ``h_l`` of every label side by side.

    Attributes:
        layer_weights: per layer ``l``, float [K · M_l, K] (rows label-major like
            ``h_l.reshape(N, K · M_l)``).
        bias: float [K].
    """

    layer_weights: tuple[np.ndarray, ...]
    bias: np.ndarray


def fold_readout(readout: SoftmaxReadout, widths: tuple[int, ...], dtype: type = np.float64) -> FoldedReadout:
    """:class:`FoldedReadout` of ``readout`` for hidden widths ``(M_1, ..., M_L)``."""
    w = readout.weight / readout.scale  # [K, K·H]
    c = readout.bias - w @ readout.mean
    per_label = w.reshape(N_LABELS, N_LABELS, sum(widths))
    cuts = np.cumsum((0,) + tuple(widths))
    layers = tuple(
        np.ascontiguousarray(per_label[:, :, lo:hi].reshape(N_LABELS, -1).T, dtype=dtype)
        for lo, hi in zip(cuts[:-1], cuts[1:])
    )
    return FoldedReadout(layers, c.astype(dtype))


def readout_proba_from_inputs(
    weights: tuple[np.ndarray, ...],
    biases: tuple[np.ndarray, ...],
    folded: FoldedReadout,
    e: np.ndarray,
    eps: float,
    block: int = 1024,
) -> np.ndarray:
    """``P(y_k | x_n)`` float [N, K] of encoded features ``e`` [N, F], in ``e``'s dtype: the
    activities of :func:`label_activities` and :func:`readout_proba` fused per block of
    ``block`` samples, without the [N, K, H] activity array or the standardisation of
    ``N · K · H`` values. ``weights`` and ``biases`` must be in ``e``'s dtype."""
    n = e.shape[0]
    out = np.empty((n, N_LABELS), dtype=e.dtype)
    for start in range(0, n, block):
        stop = min(start + block, n)
        z = np.broadcast_to(folded.bias, (stop - start, N_LABELS)).copy()
        for h, wf in zip(_layer_activities(weights, biases, e[start:stop], eps), folded.layer_weights):
            z += h.reshape(stop - start, -1) @ wf
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        out[start:stop] = z
    return out


def median_labels(proba: np.ndarray) -> np.ndarray:
    """Index of the smallest label whose cumulative probability reaches 1/2: int64 [N]."""
    return np.argmax(np.cumsum(proba, axis=1) >= 0.5, axis=1)


def fit_readout(
    acts: np.ndarray, label_index: np.ndarray, l2: float = DEFAULT_L2, max_iter: int = DEFAULT_MAX_ITER
) -> SoftmaxReadout:
    """Fit the readout offline: ``argmin mean_n −log P(y_n | x_n) + λ/2 ||R~||²`` by L-BFGS.

    The activities are standardised per value (mean ``μ``, standard deviation ``σ`` floored
    at 1e-6), which keeps one ``λ`` meaningful for every value; ``μ`` and ``σ`` are kept in
    the readout, whose weights act on standardised activities (its online iterate starts at
    the fit). The bias is not penalised. Deterministic: the start is 0 and L-BFGS has no
    randomness.

    Args:
        acts: float [N, K, H] activities (:func:`label_activities`) of the training samples.
        label_index: int [N], each sample's true label index 0 .. K − 1.
        l2: ``λ >= 0``.
        max_iter: L-BFGS iterations (>= 1).

    Raises:
        ValueError: mismatched shapes, labels out of range, bad ``l2``/``max_iter``.
    """
    y = np.asarray(label_index)
    n = acts.shape[0]
    if acts.ndim != 3 or acts.shape[1] != N_LABELS or y.shape != (n,) or n == 0:
        raise ValueError(f"need activities [N, {N_LABELS}, H] and N labels, got {acts.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any() or (y >= N_LABELS).any():
        raise ValueError(f"label indices must be integers in 0..{N_LABELS - 1}")
    if not (np.isfinite(l2) and l2 >= 0.0) or int(max_iter) < 1:
        raise ValueError(f"l2 must be >= 0 and max_iter >= 1, got {l2!r}, {max_iter!r}")
    a = np.asarray(acts, dtype=np.float64).reshape(n, -1)
    mu = a.mean(axis=0)
    sd = np.maximum(a.std(axis=0), 1e-6)
    a = (a - mu) / sd
    d = a.shape[1]
    onehot = np.zeros((n, N_LABELS))
    onehot[np.arange(n), y] = 1.0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: N_LABELS * d].reshape(N_LABELS, d)
        z = a @ w.T + theta[N_LABELS * d :]
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -float((log_p * onehot).sum()) / n + 0.5 * l2 * float((w * w).sum())
        g = (np.exp(log_p) - onehot) / n  # dCE/dz
        grad = np.concatenate([(g.T @ a + l2 * w).ravel(), g.sum(axis=0)])
        return loss, grad

    res = minimize(objective, np.zeros(N_LABELS * (d + 1)), jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iter)})
    w = res.x[: N_LABELS * d].reshape(N_LABELS, d)
    b = res.x[N_LABELS * d :]
    return SoftmaxReadout(w.copy(), b.copy(), mu, sd, w.copy(), b.copy())


def readout_step(readout: SoftmaxReadout, acts: np.ndarray, label: int, lr: float, average: float) -> None:
    """One online step of the readout on one sample, in place: SGD of its cross-entropy on
    the iterate, ``R' ← R' − lr (P' − e_y) ã^T``, ``c' ← c' − lr (P' − e_y)`` (``P'`` the
    iterate's distribution, ``ã = (a − μ) / σ``), then the served readout moves towards
    it, ``R ← R + β (R' − R)``, ``c ← c + β (c' − c)`` (Polyak–Ruppert averaging with an
    exponential window of ``1/β`` samples).

    The average is what predicts. Measured on the three mismatched streams of
    ``benchmarks/predictor_quality.py`` (offline-v6's layers with a fitted readout, FF lr
    0.0003, δ 0.3, prequential mean |error|; frozen 0.0788 / 0.0545 / 0.0734): the plain
    SGD iterate at lr 0.001 gave 0.0788 / 0.0359 / 0.0744 (its noise undoes the gain on the
    two channels near the training one), the average (β 0.02) at lr 0.003 0.0781 / 0.0333 /
    0.0713, below frozen on all three.

    Args:
        acts: float [K, H] (or [K · H]) activities of the sample.
        label: its true label index.
        lr: step size of the iterate (>= 0).
        average: ``β`` in (0, 1].
    """
    a = (np.asarray(acts, dtype=np.float64).reshape(-1) - readout.mean) / readout.scale
    fw, fb = readout.fast_weight, readout.fast_bias
    z = fw @ a + fb
    p = np.exp(z - z.max())
    p /= p.sum()
    p[label] -= 1.0
    p *= lr
    fw -= np.outer(p, a)  # in place: a NamedTuple's fields cannot be rebound
    fb -= p
    w, b = readout.weight, readout.bias
    w += average * (fw - w)
    b += average * (fb - b)
