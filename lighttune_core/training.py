"""Offline training of the FF BLER model: Adam, hardest wrong-label negatives, every layer on
its own local loss (eq. 7), no backpropagation between layers.

Pure: takes arrays, returns parameters, the training curve and the feature standardisation
(no I/O; the ``lighttune-train`` CLI in ``lighttune_xapp.train`` reads the dataset and saves
the model).

What makes the FF learn (measured, issue 15)
--------------------------------------------
On the paper's scalar encoding ``[x; y]`` (``M_0 = 13``) the network learns the label prior
and nothing else: with every first-layer ReLU on, ``G(x, y_k) − G(x, y_j)`` is one fixed
linear function of the input times ``y_k − y_j``, and with a one-hot label added to ``x``
(``M_0 = 23``) every single neuron ranks the labels the same way for every ``x`` (its label
term is a per-label bias, ``ReLU²`` is monotone) while eq. 7 asks *each neuron* for goodness
``T + 2`` on the true label and ``T − 2`` on the others. Measured with a numpy prototype of
this training on a 24,000-sample srsRAN-DU dataset of the training scenario (8,000 held-out
samples, constant 0.1: mean |error| 0.179, majority class 0.0: 0.161): one-hot label (label
scale 1 or 3), random, hardest or adjacent negatives, class balance — every variant
predicted 0.0 for every sample (0.161); on a synthetic ordinal task
(label = round(2.5 x_0 + 3 + noise)) the one-hot network stayed at chance (accuracy 0.16,
majority 0.15).

The label-conditioned input (:data:`~lighttune_core.ff.BLOCK_INPUT_WIDTH`, ``e_k ⊗ [x; 1]``:
the features and a constant in label ``k``'s block) gives every first-layer neuron its own
weights per label, so a neuron's label ranking depends on ``x`` and eq. 7's per-neuron
targets become reachable. This module's defaults (hardest negatives, all layers stepped
every batch, standardised features, class balance 0.5, a cosine learning-rate schedule) with
the goodness summed over layers at inference, measured with this code: on the synthetic
ordinal task held-out mean |error| 0.076 against 0.192 for the best constant, where the
paper's scalar ``[13, 32, 32]`` gives 0.496 (``tests/test_core_training.py``); on the
srsRAN dataset above 0.117 after 15 epochs, and the packaged model (83,200 samples, 40
epochs) 0.110 on it, where HistGradientBoosting's arg-max class gives 0.133. In the
prototype, the last layer's goodness alone gave 0.35 on the synthetic task (the sum 0.035),
and training on the period's expected BLER instead of the HARQ label did not help (0.117).

Algorithm (:func:`train_offline`)
---------------------------------
Default ``schedule="simultaneous"``: for ``epochs`` epochs, for each shuffled mini-batch ``B``
of samples ``(x_i, y_i)`` (features standardised), every layer ``l = 1..L`` takes one step on
its own local loss, fed the previous layer's outputs of the same forward pass;
``schedule="greedy"`` trains layer ``l`` for ``epochs`` epochs with layers ``1..l-1`` frozen,
then the next. Per batch:

1. negatives: the same features with a wrong label, ``|y'_i − y_i| ≥ negative_gap``
   (default 0.1: any other label), either ``"random"`` (uniform over the wrong labels) or
   ``"hardest"`` (the wrong label of highest goodness of layer ``l`` under the current
   parameters);
2. inputs of layer ``l``: ``h_{l-1}`` of the ``B`` positive pairs ``[x_i; y_i]`` and the
   ``B`` negative pairs ``[x_i; y'_i]`` through the frozen layers ``1..l-1``;
3. closed-form gradient of the local loss ``L_l`` (:func:`lighttune_core.ff.layer_gradients`,
   means over the positive and over the negative pairs, weighted by the class weights
   ``(N / (K n_k))^p`` of ``class_balance``) and one Adam step (lr 0.03 — cosine-decayed to
   0 over the stage by default — β1 0.9, β2 0.999, ε 1e-8):
   ``m ← β1 m + (1 − β1) ∇``, ``v ← β2 v + (1 − β2) ∇²``,
   ``θ ← θ − lr m̂ / (sqrt(v̂) + ε)`` with ``m̂ = m / (1 − β1^t)``, ``v̂ = v / (1 − β2^t)``.

After each epoch the network truncated at layer ``l``
is evaluated (``ŷ = argmax_y`` of layer ``l``'s goodness) on the evaluation split: accuracy ``P(ŷ = y)`` and mean ``|ŷ − y|``.
Everything random (shuffling, negatives, initial weights) comes from ``seed``.

Choice of negatives (measured)
------------------------------
``python benchmarks/ff_negatives.py`` (results in ``benchmarks/results/ff_negatives.md``):
3,000 training and 2,000 held-out samples of each task of :mod:`lighttune_core.synthetic`
— "threshold" (BLER 1.0 below an SINR edge, 0.0 above, with a margin) and "link_budget"
(11-level BLER from a logistic link-budget rule on SINR, rank and CQI) — greedy Adam 0.03,
batch 64, 15 epochs per layer, seed 0. Held-out accuracy:

===========  ============  =======  =======  ==============
task         layers        random   hardest  majority class
===========  ============  =======  =======  ==============
threshold    [13, 32]      0.486    0.848    0.482
threshold    [13, 32, 32]  0.482    0.557    0.482
link_budget  [13, 32]      0.582    0.713    0.582
link_budget  [13, 32, 32]  0.582    0.443    0.582
===========  ============  =======  =======  ==============

Random negatives only learn the label prior (the majority class); the hardest wrong
label teaches layer 1 the task (0.848 / 0.713). So ``"hardest"`` is the default.

Several negatives per sample, width, depth (measured, issue 15)
---------------------------------------------------------------
``python benchmarks/ff_training_variants.py`` (``benchmarks/results/ff_training_variants.md``):
24,000 srsRAN-DU samples over the training channel's condition grid, scored on 8,000 of
another seed, 40 epochs, held-out mean |error| over the constant 0.1's (0.209). Defaults
0.826×; ``negatives_per_sample`` 2 / 3 / 5 / 10 hardest: 0.852 / 0.869 / 0.864 / 0.888× (more
negatives are worse, so the default stays 1); ``[143, 32]`` 0.832×, ``[143, 32, 32, 32]``
0.818×, ``[143, 64, 64]`` 0.833×, ``[143, 128, 128]`` 0.844× (the gap to
HistGradientBoosting's 0.62× is not the network's size); batch 64 0.776×, 100 epochs 0.794×
(more steps help a little); class balance 0 / 1: 0.815 / 0.969×; Softplus 0.857×.

Parameter averaging (measured, fifteenth session)
-------------------------------------------------
The held-out curve of offline-v6 (``scripts/train-model --extra-csi-period none``: 83,200 samples, 40
epochs, cosine lr) still swings between 0.110 and 0.122 mean |error| over its last five
epochs, where the learning rate is below 4 % of its start: the arg-max over the 11 goodnesses
flips for many samples under small weight changes. ``average_tail`` returns the mean of the
iterates of the last steps instead of the last iterate (stochastic weight averaging; it does
not change the local losses or the steps). Same data, seed 0 (``benchmarks/predictor_quality.py``'s
in-distribution stream of 8,000 samples, constant 0.1: 0.1885):

===============  =====================  ================================
average_tail     held-out mean |error|  in-distribution stream (× const)
===============  =====================  ================================
0 (offline-v6)   0.112                  0.1263 (0.670×)
0.1              0.100                  0.1185 (0.629×)
0.25             0.097                  0.1192 (0.632×)
0.5              0.096                  0.1210 (0.642×)
===============  =====================  ================================

(training seed 1 with 0.25: 0.1186, 0.629×; 80 epochs with 0.25: 0.639×; class balance
0 / 0.75 / 1 with 0.25: 0.749 / 0.642 / 0.722×.) With 0.25 the frozen error on the three
mismatched channels falls too (0.0853 / 0.0527 / 0.0782 against 0.0911 / 0.0601 / 0.0859),
but LightTune's fine-tuning no longer lowers it there (0.0853 / 0.0530 / 0.0782 at lr 0.0003,
δ 0.3; none of 8 settings tried, lr 0.0001 … 0.003 and δ 0.2 … 0.5, lowered all three), and Table 6 on srsRAN is
unchanged (RI-CQI-Tune +1.53 % / +1.64 % against +1.53 % / +1.62 %). So it is an option
(``lighttune-train --average-tail``, ``scripts/train-model --average-tail``), off by default,
and the packaged models do not use it (docs/results.md).

Known limitation (measured, same runs): the *second* layer of a greedy ``[13, 32, 32]``
network learns little offline — its held-out accuracy stays far below layer 1's. The
per-neuron losses (eq. 5/7) drive every layer-1 neuron towards the same goodness targets
(T ± 2), so the positive and negative layer-1 outputs differ mainly in *length*, which the
length normalisation removes before layer 2. A ``"simultaneous"`` schedule (all layers
stepped on their local losses every batch) did not change this (0.57 / 0.39). Online
LightTune updates (per-sample SGD, negative = the model's own far-off prediction) do train
both layers: see ``tests/test_core_tuner.py`` (convergence and adaptation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from lighttune_core.encoding import MAX_EDGES_PER_FEATURE, InputEncoding, fit_bin_edges
from lighttune_core.features import BLER_LABELS, BLER_STEP, N_FEATURES
from lighttune_core.readout import DEFAULT_L2 as DEFAULT_READOUT_L2
from lighttune_core.readout import SoftmaxReadout, fit_readout, label_activities, median_labels, readout_proba
from lighttune_core.ff import (
    BLOCK_INPUT_WIDTH,
    DEFAULT_LAYER_SIZES,
    DEFAULT_NORM_EPS,
    DEFAULT_THRESHOLD,
    FFParams,
    check_layer_sizes,
    check_loss_kind,
    goodness_all_labels,
    init_params,
    N_LABELS,
    label_encoding,
    layer_forward,
    layer_gradients,
    layer_loss,
    pair_inputs,
    plan_inference,
)

NEGATIVE_KINDS: tuple[str, ...] = ("random", "hardest")
DEFAULT_NEGATIVES: str = "hardest"
SCHEDULES: tuple[str, ...] = ("greedy", "simultaneous")
DEFAULT_SCHEDULE: str = "simultaneous"
DEFAULT_CLASS_BALANCE: float = 0.5
"""Default class-balance exponent of :func:`train_offline` (square-root inverse frequency)."""
DEFAULT_INPUT_BINS: int = 8
"""One-hot quantile bins per feature of ``lighttune-train`` and ``scripts/train-model`` (the
packaged offline-v9, -v8 and -v6, and offline-v5 before them); :func:`train_offline` itself defaults to none
(the plain features)."""
DEFAULT_INPUT_GAIN: float = 1.0
"""Input gain ``g`` of ``lighttune-train`` (offline-v6; offline-v5 had 0.1). With ``g = 0.1``
the first layer's input ``[x'; 1] / ||[x'; 1]||`` is mostly the label block's constant 1, so
LightTune's pair step moves mostly that column, a shift of the label's prior for every input,
and fine-tuning made the three mismatched channels of ``benchmarks/predictor_quality.py``
worse; with ``g = 1`` the one-hot columns carry the step, which then stays local to the
sample's bins. Measured on those channels' streams (8,000 samples each; both models trained on
the offline-v5 data with the constant-feature fixes; lr 0.0003, δ 0.3): ``g = 0.1`` frozen
0.0900 / 0.0623 / 0.0854, fine-tuned 0.0938 / 0.0628 / 0.0882; ``g = 1`` frozen 0.0911 /
0.0601 / 0.0859, fine-tuned 0.0891 / 0.0589 / 0.0820; in distribution 0.671 and 0.670 × the
constant 0.1's mean |error|."""
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
DEFAULT_LR_SCHEDULE: str = "cosine"
ProgressCallback = Callable[[int, int, "EpochRecord"], None]
"""``progress(epochs_done, epochs_total, record)`` after every epoch of every layer."""


@dataclass(frozen=True)
class AdamConfig:
    """Adam hyperparameters (defaults of the paper)."""

    lr: float = 0.03
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass(frozen=True)
class EpochRecord:
    """One point of the training curve.

    Attributes:
        layer: layer being trained (1-based).
        epoch: epoch of that layer (1-based).
        loss: mean local loss ``L_l`` over the epoch's batches.
        accuracy: fraction of evaluation samples with ``ŷ = y``.
        mean_abs_error: mean ``|ŷ − y|`` (BLER) over the evaluation samples.
    """

    layer: int
    epoch: int
    loss: float
    accuracy: float
    mean_abs_error: float


@dataclass(frozen=True)
class TrainResult:
    """Output of :func:`train_offline`: float64 parameters, the curve and the feature
    standardisation the network was trained on (``x' = (x − mean) / scale``, float64 [12]
    each; 0 and 1 without standardisation) — give both to
    :class:`~lighttune_core.tuner.LightTuneModel`."""

    params: FFParams
    history: tuple[EpochRecord, ...]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    input_bins: tuple[np.ndarray, ...] | None = None
    """One-hot bin edges of every feature (:mod:`lighttune_core.encoding`), None without bins."""
    input_gain: float = 1.0
    """The input encoding's gain ``g``."""
    readout: SoftmaxReadout | None = None
    """The softmax readout fitted on the trained layers' activities
    (:mod:`lighttune_core.readout`), None when not asked for."""
    readout_eval: tuple[float, float] | None = None
    """``(accuracy, mean |error|)`` of the readout's median label on the evaluation split."""

    def encoding(self) -> InputEncoding:
        """The input encoding the network was trained on."""
        return InputEncoding(self.feature_mean, self.feature_scale, self.input_bins, self.input_gain)

    def model_arguments(self) -> dict[str, Any]:
        """The :class:`~lighttune_core.tuner.LightTuneModel` arguments of the input encoding."""
        return {"feature_mean": self.feature_mean, "feature_scale": self.feature_scale,
                "input_bins": self.input_bins, "input_gain": self.input_gain, "readout": self.readout}


STD_FLOOR: float = 0.02
"""Smallest feature scale of :func:`standardisation`, in the features' own units (each is
scaled to about 0..1 by :func:`lighttune_core.features.build_features`; 0.02 is 1.6 ms of CSI
age, 0.8 dB of SINR)."""


def standardisation(features: np.ndarray, floor: float = STD_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation, at least ``floor``, of every feature, float64 [12] each.

    The floor matters for a feature that is (nearly) constant in the training data, such as the
    CSI age of a simulator whose CSI always arrives 0.5 ms before the period: with its standard
    deviation (~0) as the scale, any other value in service (a real DU's CSI age of 0.6 ms)
    becomes an input of ~10⁴ standard units that swamps the others after the first layer's
    length normalisation, and the network answers one label for every input (measured:
    offline-v5, trained with a floor of 1e-6, predicts 0.6 for all 8,000 samples of its
    in-distribution test set once their CSI age is 0.6 ms instead of 0.5 ms).
    """
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.maximum(x.std(axis=0), floor)


def label_indices(labels: np.ndarray) -> np.ndarray:
    """Index ``k`` of each label ``y = 0.1 k`` in :data:`BLER_LABELS`, int64 [N].

    Raises:
        ValueError: labels that are not finite, outside [0, 1] or not multiples of 0.1.
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {y.shape}")
    if not np.all(np.isfinite(y)) or np.any((y < 0.0) | (y > 1.0)):
        raise ValueError("labels must be finite BLER values in [0, 1]")
    k = np.round(y / BLER_STEP)
    if np.any(np.abs(k * BLER_STEP - y) > 1e-6):
        raise ValueError("labels must be quantised to multiples of 0.1")
    return k.astype(np.int64)


def adam_step(
    param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, cfg: AdamConfig
) -> np.ndarray:
    """One Adam step (``t`` 1-based); updates ``m`` and ``v`` in place, returns the new parameter."""
    m *= cfg.beta1
    m += (1.0 - cfg.beta1) * grad
    v *= cfg.beta2
    v += (1.0 - cfg.beta2) * grad * grad
    m_hat = m / (1.0 - cfg.beta1**t)
    v_hat = v / (1.0 - cfg.beta2**t)
    return param - cfg.lr * m_hat / (np.sqrt(v_hat) + cfg.eps)


def _frozen_forward(params: FFParams, n_frozen: int, inputs: np.ndarray, eps: float) -> np.ndarray:
    h = inputs
    for w, b in zip(params.weights[:n_frozen], params.biases[:n_frozen]):
        _, h = layer_forward(w, b, h, eps)
    return h


def _truncated(params: FFParams, n_layers: int) -> FFParams:
    return FFParams(params.weights[:n_layers], params.biases[:n_layers])


def evaluate(
    params: FFParams, features: np.ndarray, labels: np.ndarray, eps: float = DEFAULT_NORM_EPS
) -> tuple[float, float]:
    """``(accuracy, mean |ŷ − y|)`` of the network on labelled samples (NaN if empty)."""
    if features.shape[0] == 0:
        return float("nan"), float("nan")
    plan = plan_inference(params, BLER_LABELS, eps)
    pred = BLER_LABELS[np.argmax(goodness_all_labels(params, features, plan=plan), axis=1)]
    err = np.abs(pred - labels)
    return float(np.mean(err < BLER_STEP / 2)), float(np.mean(err))


def train_offline(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    layer_sizes: Sequence[int] = DEFAULT_LAYER_SIZES,
    epochs: int = 10,
    batch_size: int = 256,
    negatives: str = DEFAULT_NEGATIVES,
    adam: AdamConfig = AdamConfig(),
    threshold: float = DEFAULT_THRESHOLD,
    loss: str = "proposed",
    seed: int | None = 0,
    norm_eps: float = DEFAULT_NORM_EPS,
    eval_features: np.ndarray | None = None,
    eval_labels: np.ndarray | None = None,
    initial: FFParams | None = None,
    negative_gap: float = 0.1,
    schedule: str = DEFAULT_SCHEDULE,
    progress: ProgressCallback | None = None,
    lr_schedule: str = DEFAULT_LR_SCHEDULE,
    standardise: bool = True,
    class_balance: float = DEFAULT_CLASS_BALANCE,
    negatives_per_sample: int = 1,
    input_bins: int = 0,
    input_gain: float = 1.0,
    readout: bool = False,
    readout_l2: float = DEFAULT_READOUT_L2,
    average_tail: float = 0.0,
) -> TrainResult:
    """Train an FF network with Adam, every layer on its own local loss.

    Args:
        features: float [N, 12], finite.
        labels: float [N], BLER labels in {0.0, ..., 1.0}.
        layer_sizes: ``[13, M_1, ..., M_L]``.
        epochs: epochs *per layer* (>= 1).
        batch_size: positive pairs per mini-batch (>= 1; each batch also has as many negatives).
        negatives: ``"random"`` or ``"hardest"`` wrong labels.
        adam: Adam hyperparameters.
        threshold: goodness threshold ``T``; loss: ``"proposed"`` or ``"softplus"``.
        seed: seeds the initial weights, the shuffling and the random negatives.
        eval_features, eval_labels: held-out split for the curve (default: the training data).
        initial: start from these parameters instead of a random initialisation.
        negative_gap: smallest |y' − y| of a negative label, a multiple of 0.1 in [0.1, 0.5].
        negatives_per_sample: ``m`` wrong labels per positive pair (1 … the number of labels
            at least ``negative_gap`` from every label): the ``m`` of highest goodness
            (``"hardest"``) or ``m`` distinct random ones; the negative mean of the local loss
            runs over all ``B m`` negative pairs, so the negatives weigh as much as before.
        lr_schedule: ``"cosine"`` (``lr_t = lr (1 + cos(π t / t_max)) / 2`` over the stage's
            steps) or ``"constant"``.
        standardise: train on ``(x − mean) / std`` of the training features (returned in the
            result; the evaluation split uses the same).
        class_balance: exponent ``p`` of the class weights ``w_k = (N / (K n_k))^p`` of a
            sample with label ``k`` (``n_k`` its training count): the positive and negative
            means of the local losses become means weighted by the sample's class weight
            (0: plain means; 1: every class weighs the same).
        input_bins: one-hot quantile bins per feature added to the input (0: none; else
            2 .. 256, :func:`lighttune_core.encoding.fit_bin_edges` on the training features);
            the block input width becomes ``11 (F + 1)`` (``layer_sizes[0]`` may stay 143).
        input_gain: the encoding's gain ``g`` (:mod:`lighttune_core.encoding`).
        readout: after the FF layers, fit a softmax readout on their activities
            (:func:`lighttune_core.readout.fit_readout`, L2 ``readout_l2``) on the training
            samples; it needs the block input. The FF layers are not changed by it.
        schedule: ``"greedy"`` (layer by layer, ``L · epochs`` epochs) or ``"simultaneous"``
            (all layers every batch, ``epochs`` epochs).
        average_tail: fraction ``f`` in [0, 1) of each stage's last Adam steps whose parameters
            are averaged into the returned ones, ``θ̄ = (1 / S) Σ_{t > (1 − f) T} θ_t`` (0: the
            last iterate). The curve still records the iterate of each epoch.
        progress: called after every epoch.

    Returns:
        :class:`TrainResult` with one curve record per epoch.

    Raises:
        ValueError: naming the bad argument.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_FEATURES:
        raise ValueError(f"features must have shape (N, {N_FEATURES}), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("features hold no samples")
    if not np.all(np.isfinite(x)):
        raise ValueError("features must be finite")
    k_true = label_indices(labels)
    if k_true.shape[0] != x.shape[0]:
        raise ValueError(f"labels have {k_true.shape[0]} samples, features {x.shape[0]}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if negatives not in NEGATIVE_KINDS:
        raise ValueError(f"negatives must be one of {NEGATIVE_KINDS}, got {negatives!r}")
    check_loss_kind(loss)
    if not (np.isfinite(class_balance) and 0.0 <= class_balance <= 1.0):
        raise ValueError(f"class_balance must be in [0, 1], got {class_balance!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    sizes = check_layer_sizes(layer_sizes)
    encoding = label_encoding(sizes[0])
    if readout and encoding != "block":
        raise ValueError("a softmax readout needs the label-conditioned block input (layer_sizes[0] 143)")
    if not (np.isfinite(average_tail) and 0.0 <= average_tail < 1.0):
        raise ValueError(f"average_tail must be in [0, 1), got {average_tail!r}")
    if not (np.isfinite(readout_l2) and readout_l2 >= 0.0):
        raise ValueError(f"readout_l2 must be >= 0, got {readout_l2!r}")
    quiet = np.zeros(0, dtype=np.int64)
    if standardise:
        mean, scale = standardisation(x)
        # features (nearly) constant in training, the ones scaled by the floor: their standardised
        # input is ~0 on every training sample, so their first-layer weights would keep their
        # random initial values
        quiet = np.flatnonzero(scale <= STD_FLOOR)
    else:
        mean, scale = np.zeros(N_FEATURES), np.ones(N_FEATURES)
    if input_bins != 0 and not 2 <= input_bins <= MAX_EDGES_PER_FEATURE + 1:
        raise ValueError(f"input_bins must be 0 (none) or 2 .. {MAX_EDGES_PER_FEATURE + 1}, got {input_bins!r}")
    if input_bins != 0 and encoding != "block":
        raise ValueError("input_bins need the label-conditioned block input (layer_sizes[0] 143)")
    edges = fit_bin_edges(x, input_bins) if input_bins != 0 else None
    inputs = InputEncoding(mean, scale, edges, input_gain)
    if encoding == "block" and sizes[0] != N_LABELS * (inputs.width + 1):
        if sizes[0] != BLOCK_INPUT_WIDTH:
            raise ValueError(f"layer_sizes[0] must be 143 or {N_LABELS * (inputs.width + 1)} for this input encoding")
        sizes = (N_LABELS * (inputs.width + 1),) + sizes[1:]
    x = inputs.encode(x)
    if eval_features is None or eval_labels is None:
        x_eval, y_eval = x, BLER_LABELS[k_true]
    else:
        x_eval = np.asarray(eval_features, dtype=np.float64)
        y_eval = BLER_LABELS[label_indices(eval_labels)]
        if x_eval.ndim != 2 or x_eval.shape != (y_eval.shape[0], N_FEATURES):
            raise ValueError("eval_features must have shape (N_eval, 12) matching eval_labels")
        x_eval = inputs.encode(x_eval)

    gap_steps = int(round(negative_gap / BLER_STEP))
    if not 1 <= gap_steps <= 5:
        raise ValueError(f"negative_gap must be a multiple of 0.1 in [0.1, 0.5], got {negative_gap!r}")
    n_labels = BLER_LABELS.shape[0]
    far_min = min(int(np.count_nonzero(np.abs(np.arange(n_labels) - k) >= gap_steps)) for k in range(n_labels))
    if not 1 <= negatives_per_sample <= far_min:
        raise ValueError(
            f"negatives_per_sample must be in [1, {far_min}] for negative_gap {negative_gap!r}, got {negatives_per_sample!r}"
        )
    m_neg = int(negatives_per_sample)
    rng = np.random.default_rng(seed)
    params = init_params(sizes, int(rng.integers(2**31)), threshold) if initial is None else initial
    if tuple(w.shape[0] for w in params.weights) != sizes[1:]:
        raise ValueError("initial parameters do not match layer_sizes")
    weights = [np.array(w, dtype=np.float64) for w in params.weights]
    biases = [np.array(b, dtype=np.float64) for b in params.biases]
    if initial is None and quiet.size:
        # ... start them at 0, so that a value such a feature takes only in service (a real DU's
        # CSI age) has no effect until LightTune's fine-tuning has seen it
        if encoding == "block":
            weights[0].reshape(sizes[1], N_LABELS, sizes[0] // N_LABELS)[:, :, quiet] = 0.0
        else:
            weights[0][:, quiet] = 0.0
    n = x.shape[0]
    counts = np.bincount(k_true, minlength=n_labels).astype(np.float64)
    class_weight = np.where(counts > 0, (n / n_labels) / np.maximum(counts, 1.0), 0.0) ** class_balance
    history: list[EpochRecord] = []

    n_layers = len(sizes) - 1
    stages = [[layer] for layer in range(n_layers)] if schedule == "greedy" else [list(range(n_layers))]
    total = epochs * len(stages)
    for stage in stages:
        top = stage[-1] + 1  # layers 1..top take part in this stage
        moments = {
            layer: (np.zeros_like(weights[layer]), np.zeros_like(weights[layer]), np.zeros_like(biases[layer]), np.zeros_like(biases[layer]))
            for layer in stage
        }
        t = 0
        steps_total = epochs * ((n + batch_size - 1) // batch_size)
        average_from = steps_total - int(round(average_tail * steps_total))  # steps t > this are averaged
        sums: dict[int, list[np.ndarray]] = {
            layer: [np.zeros_like(weights[layer]), np.zeros_like(biases[layer])] for layer in stage
        }
        base_lr = adam.lr
        for epoch in range(epochs):
            order = rng.permutation(n)
            losses: list[float] = []
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                xb = x[rows]
                kb = k_true[rows]
                current = FFParams(tuple(weights[:top]), tuple(biases[:top]))
                label_gap = np.abs(np.arange(n_labels)[None, :] - kb[:, None])  # [B, 11]
                if negatives == "random":
                    score = rng.random(label_gap.shape)
                else:
                    score = goodness_all_labels(current, xb, BLER_LABELS, eps=norm_eps)
                score[label_gap < gap_steps] = -np.inf
                # the m best-scoring wrong labels of each sample, [B, m]; m = 1 is the argmax
                k_neg = np.argsort(-score, axis=1, kind="stable")[:, :m_neg]
                n_b = rows.shape[0]
                pairs = pair_inputs(
                    np.concatenate([xb, np.tile(xb, (m_neg, 1))]),
                    np.concatenate([BLER_LABELS[kb], BLER_LABELS[k_neg.T.ravel()]]),
                    encoding,
                )
                h = _frozen_forward(current, stage[0], pairs, norm_eps)
                is_pos = np.arange(n_b * (1 + m_neg)) < n_b
                weight_b = class_weight[kb]
                pair_weight = None if class_balance == 0.0 else np.tile(weight_b, 1 + m_neg)
                t += 1
                if lr_schedule == "cosine":
                    step_cfg = AdamConfig(
                        base_lr * 0.5 * (1.0 + np.cos(np.pi * t / steps_total)), adam.beta1, adam.beta2, adam.eps
                    )
                else:
                    step_cfg = adam
                batch_loss = 0.0
                for layer in stage:
                    # gradients of layer l on the outputs of layer l-1 before this step's updates
                    grad_w, grad_b, h_out = layer_gradients(
                        weights[layer], biases[layer], h, is_pos, threshold, loss, norm_eps, pair_weight
                    )
                    batch_loss += layer_loss(h_out, is_pos, threshold, loss)
                    m_w, v_w, m_b, v_b = moments[layer]
                    weights[layer] = adam_step(weights[layer], grad_w, m_w, v_w, t, step_cfg)
                    biases[layer] = adam_step(biases[layer], grad_b, m_b, v_b, t, step_cfg)
                    h = h_out
                    if t > average_from:
                        sums[layer][0] += weights[layer]
                        sums[layer][1] += biases[layer]
                losses.append(batch_loss)
            trained = FFParams(tuple(weights[:top]), tuple(biases[:top]))
            acc, mae = evaluate(trained, x_eval, y_eval, norm_eps)
            record = EpochRecord(top, epoch + 1, float(np.mean(losses)), acc, mae)
            history.append(record)
            if progress is not None:
                progress(len(history), total, record)
        if average_from < steps_total:
            for layer in stage:
                weights[layer] = sums[layer][0] / (steps_total - average_from)
                biases[layer] = sums[layer][1] / (steps_total - average_from)
    fitted = FFParams(tuple(weights), tuple(biases))
    head, head_eval = None, None
    if readout:
        head = fit_readout(label_activities(fitted.weights, fitted.biases, x, norm_eps), k_true, readout_l2)
        p_eval = readout_proba(head, label_activities(fitted.weights, fitted.biases, x_eval, norm_eps))
        err = np.abs(BLER_LABELS[median_labels(p_eval)] - y_eval)
        head_eval = (float(np.mean(err < BLER_STEP / 2)), float(np.mean(err)))
    return TrainResult(fitted, tuple(history), mean, scale, edges, inputs.gain, head, head_eval)
