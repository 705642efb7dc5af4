"""LightTune: forward-only, threshold-based, buffer-less online fine-tuning of an FF model.

:class:`LightTuneModel` is a river-style online model of a cell's next-period BLER:

* ``predict_one(x)`` / ``predict_many(X)``: ``ŷ = argmax_{y ∈ {0.0, ..., 1.0}} G(x, y)``
  (:func:`lighttune_core.ff.predict_labels`, one batched forward over all candidates);
  with a softmax readout (:mod:`lighttune_core.readout`; ``offline-v7.ltm``, packaged beside
  the builtin) the median of ``P(y | x) = softmax(R (a(x) − μ) / σ + c)`` over the hidden
  activities ``a(x)`` of every candidate label instead;
* ``learn_one(x, y)``: if ``|ŷ − y| ≥ δ`` (δ = 0.3, with a 1e-9 tolerance for the float
  rounding of labels) one plain-SGD step (lr 0.03) of every layer on its own local loss,
  on the positive pair ``(x, y)`` and the negative pair ``(x, ŷ)``
  (:func:`lighttune_core.ff.pair_update_inplace`); otherwise nothing (``ŷ`` here is always
  the layers' arg-max). A readout also takes an averaged SGD step of its own cross-entropy on
  every sample. The sample is then dropped: there is no buffer of any kind.

All hyperparameters are stored by ``__init__``; the parameters are float64. State
(hyperparameters, counters, parameters) round-trips exactly through :meth:`state_dict` /
:meth:`from_state_dict` and through the compact binary :meth:`to_bytes` / :meth:`from_bytes`.

Binary format (all little-endian), version 1::

    offset  size  field
    0       4     magic b"LTFF"
    4       2     format version (uint16) = 1
    6       1     loss kind (uint8): 0 proposed, 1 softplus
    7       1     number of layers L (uint8)
    8       8     threshold T (float64)
    16      8     learning rate (float64)
    24      8     delta (float64)
    32      8     normalisation eps (float64)
    40      8     seed (int64, −1 for None)
    48      8     n_seen (uint64)
    56      8     n_updates (uint64)
    64      4(L+1) layer sizes M_0..M_L (uint32)
    ...           W_1, b_1, ..., W_L, b_L as float64, row-major
    ...           (version >= 2) feature mean [12], feature scale [12] (float64)
    ...           (version 3) input gain g (float64), bin-edge counts n_1..n_12 (uint32),
                  then the edges of feature 1, ..., 12 (float64)
    ...           (version 4) readout step size and averaging β (float64), then the
                  readout's weight [11, 11 H], bias [11], mean [11 H], scale [11 H], iterate
                  weight [11, 11 H] and bias [11] (float64, row-major; H = M_1 + ... + M_L)
    end−4   4     CRC-32 of everything before it (uint32)

:meth:`to_bytes` writes version 2 for a model without input bins and gain 1 (the bytes of
models made before version 3 are unchanged), version 3 for a model without a softmax
readout (:mod:`lighttune_core.readout`) and version 4 with one.

Any mismatch (magic, version, sizes, length, CRC, non-finite values) raises ``ValueError``.

Speed (``python benchmarks/ff_vs_bp.py``, one BLAS thread, 2 shared cores whose speed drifts
by up to 1.6x, wall time, ranges over runs): ``predict_one`` ≈ 23–26 µs, ``learn_one`` ≈ 23 µs
without and ≈ 50–51 µs with an update (one forward pass into the model's trace buffer, the
LightTune step of all layers on the packed parameter stacks, the plan refresh),
``predict_many(10,000)`` ≈ 6.5–7.1 ms (best of 40 loops). ``predict_many`` computes in
float64 through :func:`lighttune_core.ff.goodness_all_labels_t` (blocks of 1,024 samples,
cached buffers; the all-active closed form where it provably applies, else the neuron-major
forward pass); float32 compute (``predict_many_unchecked(x, np.float32)``, forward pass
only) takes ≈ 12–14 ms and moves the argmax of near-tied labels (0.3–1.6 % of the candidate
predictions of a quickly trained model, 28 % with the packaged offline model, whose goodness
barely depends on the label), so ``predict_many`` and ``predict_one``/``learn_one`` would
disagree: it is offered for the decision search only and is off there by default. :meth:`learn_many` checks a batch
once and then makes exactly the updates of one :meth:`learn_one` per row. On shared cores, let
BLAS use one thread (``OPENBLAS_NUM_THREADS=1``): the block products of ``predict_many``
measured ~5x slower with OpenBLAS's default threading under contention.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from typing import Any

import numpy as np

from lighttune_core.encoding import MAX_EDGES_PER_FEATURE, InputEncoding
from lighttune_core.features import BLER_LABELS, N_FEATURES
from lighttune_core.readout import (
    FoldedReadout,
    SoftmaxReadout,
    check_readout,
    fold_readout,
    median_labels,
    readout_proba_from_inputs,
    readout_step,
)
from lighttune_core.ff import (
    DEFAULT_LAYER_SIZES,
    DEFAULT_NORM_EPS,
    DEFAULT_THRESHOLD,
    LOSS_KINDS,
    FFParams,
    check_layer_sizes,
    check_loss_kind,
    check_params,
    InferencePlan,
    forward_one_from_plan,
    trace_goodness,
    init_params,
    new_trace,
    pack_params,
    PairStepConstants,
    pair_step_constants,
    plan_inference,
    refresh_plan,
    layer_sizes,
    block_feature_width,
    label_encoding,
    pair_update_from_trace,
    pair_update_inplace,
    predict_label_index,
)

MAGIC: bytes = b"LTFF"
FORMAT_VERSION: int = 4
"""Version 4 appends the softmax readout (:mod:`lighttune_core.readout`) after the input
encoding; version 3 (the input encoding's gain and one-hot bin edges,
:mod:`lighttune_core.encoding`, after the standardisation) is still written for models
without a readout, version 2 (the standardisation, mean [12] and scale [12] float64, after
the parameters) for models without bins, and versions 1 (no standardisation) to 3 are read."""
_READABLE_VERSIONS: tuple[int, ...] = (1, 2, 3, 4)
_HEADER = struct.Struct("<4sHBBddddqQQ")
_CRC = struct.Struct("<I")

DEFAULT_LR: float = 0.03
"""The paper's online SGD learning rate (the constructor's default)."""
ONLINE_LR: float = 0.0003
"""Online learning rate of the packaged label-conditioned model and of ``lighttune-train``'s
output. Measured (srsRAN DU, 32 UEs, 4 s, seed 1; RI-CQI-Tune gain over OLLA): lr 0.03
turns the offline model's +8.4 % (frozen, TDL-A30 10 Hz 0–12 dB) into −10.7 % (fine-tuning
on single noisy HARQ labels pulls the per-label blocks around); 0.003 / 0.001 / 0.0003 /
0.0001 give +0.4 / +2.1 / +4.1 / +4.3 % on TDL-B50 30 Hz 16–24 dB (frozen: −0.2 %) and
0.0003 gives +8.6 % on TDL-A30."""
DEFAULT_DELTA: float = 0.3
DEFAULT_READOUT_LR: float = 0.003
"""SGD step of the softmax readout's cross-entropy per learned sample
(:func:`lighttune_core.readout.readout_step`)."""
DEFAULT_READOUT_AVERAGE: float = 0.02
"""``β``: weight of each new readout iterate in the average that predicts (a window of ~50
samples, :func:`lighttune_core.readout.readout_step`)."""
_INV_LABEL_STEP: float = 1.0 / float(BLER_LABELS[1] - BLER_LABELS[0])
"""``1/λ``: a label ``y`` on the grid is ``BLER_LABELS[round(y/λ)]``."""
_VERSIONS = itertools.count()
"""Source of :attr:`LightTuneModel.version` numbers (process-wide, never reused)."""
_DERIVED: frozenset[str] = frozenset(
    {"_packed", "_params", "_plan", "_plan32", "_trace", "_step_key", "_step_constants", "_readout_cache"}
)
"""Attributes of :class:`LightTuneModel` rebuilt from the parameters (not pickled)."""
_LABEL_VALUES: list[float] = BLER_LABELS.tolist()
"""The labels as Python floats (the single-sample paths index them without numpy calls)."""
LABEL_TOLERANCE: float = 1e-9
"""Slack on ``|ŷ − y| ≥ δ`` so that e.g. ``|0.4 − 0.1| = 0.30000000000000004`` and
``0.29999999999999993`` both count as an error of δ = 0.3."""


class LightTuneModel:
    """Online FF BLER model with LightTune fine-tuning.

    Args:
        layer_sizes: ``[M_0, ..., M_L]``, ``M_0`` = 143 (label-conditioned block input,
            the default ``[143, 32, 32]``) or 13 (the paper's scalar label).
        threshold: goodness threshold ``T`` of the local losses.
        lr: SGD learning rate of an online update.
        delta: update only when ``|ŷ − y| ≥ delta``.
        loss: ``"proposed"`` (eq. 7) or ``"softplus"`` (eq. 5).
        seed: seed of the random initial parameters (ignored by :meth:`from_params`).
        norm_eps: ``eps`` of the length normalisation.
        feature_mean, feature_scale: float [12] standardisation applied to every feature
            vector before the network, ``x' = (x − mean) / scale`` (the training set's mean
            and standard deviation, from :func:`lighttune_core.training.train_offline`);
            default 0 and 1 (none).
        input_bins, input_gain: the rest of the input encoding
            (:class:`~lighttune_core.encoding.InputEncoding`): 12 arrays of one-hot bin
            edges (None: no bins) and the gain ``g``; a block network then has
            ``M_0 = 11 (F + 1)`` for the encoding's ``F`` values.
        readout: a :class:`~lighttune_core.readout.SoftmaxReadout` of a block-input network
            (weight [11, 11 · (M_1 + ... + M_L)] and the rest of its arrays), or None. With a readout the
            model's label is the median of the readout's distribution instead of the
            arg-max goodness, and :meth:`learn_one` also takes an averaged SGD step of the
            readout's cross-entropy (``readout_lr``, ``readout_average``) on every sample.
        readout_lr: that step size (>= 0).
        readout_average: ``β`` in (0, 1], the averaging of the readout's online iterate.

    Attributes:
        params: current :class:`~lighttune_core.ff.FFParams` (float64).
        n_seen: samples passed to :meth:`learn_one` (valid ones).
        n_updates: samples that caused an update.

    One model serves one thread at a time: :meth:`predict_one` and :meth:`learn_one` write
    the model's forward-trace buffer (``predict_many`` uses per-thread buffers). Copies
    (``copy.deepcopy``, pickle) get buffers of their own.
    """

    def __init__(
        self,
        layer_sizes: tuple[int, ...] = DEFAULT_LAYER_SIZES,
        threshold: float = DEFAULT_THRESHOLD,
        lr: float = DEFAULT_LR,
        delta: float = DEFAULT_DELTA,
        loss: str = "proposed",
        seed: int | None = 0,
        norm_eps: float = DEFAULT_NORM_EPS,
        feature_mean: Any = None,
        feature_scale: Any = None,
        input_bins: Any = None,
        input_gain: float = 1.0,
        readout: SoftmaxReadout | None = None,
        readout_lr: float = DEFAULT_READOUT_LR,
        readout_average: float = DEFAULT_READOUT_AVERAGE,
    ) -> None:
        self.layer_sizes = check_layer_sizes(layer_sizes)
        encoding = InputEncoding(feature_mean, feature_scale, input_bins, input_gain)
        m0 = self.layer_sizes[0]
        width = block_feature_width(m0) if label_encoding(m0) == "block" else m0 - 1
        if width != encoding.width:
            raise ValueError(
                f"the input encoding gives {encoding.width} values per sample, layer_sizes[0] = {m0} needs {width}"
                + (" (input bins need the label-conditioned block input)" if label_encoding(m0) == "scalar" else "")
            )
        self.encoding = encoding
        self.feature_mean = encoding.mean
        self.feature_scale = encoding.scale
        if len(self.layer_sizes) - 1 > 255:
            raise ValueError("at most 255 layers")
        for name, value in (
            ("threshold", threshold), ("lr", lr), ("delta", delta), ("norm_eps", norm_eps), ("readout_lr", readout_lr)
        ):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        self.threshold = float(threshold)
        self.lr = float(lr)
        self.delta = float(delta)
        self.loss = check_loss_kind(loss)
        if seed is not None and not 0 <= int(seed) < 2**63:
            raise ValueError(f"seed must be None or in [0, 2**63), got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self.norm_eps = float(norm_eps)
        self.readout_lr = float(readout_lr)
        if not (np.isfinite(readout_average) and 0.0 < readout_average <= 1.0):
            raise ValueError(f"readout_average must be in (0, 1], got {readout_average!r}")
        self.readout_average = float(readout_average)
        self.readout: SoftmaxReadout | None = None
        if readout is not None:
            if label_encoding(m0) != "block":
                raise ValueError("a softmax readout needs the label-conditioned block input")
            self.readout = check_readout(SoftmaxReadout(*readout), self.readout_width)
        self._install(init_params(self.layer_sizes, self.seed, self.threshold))
        self.n_seen = 0
        self.n_updates = 0

    @property
    def readout_width(self) -> int:
        """``K · H``: the activity values a readout of this network reads (11 labels ×
        ``M_1 + ... + M_L``)."""
        return len(BLER_LABELS) * sum(self.layer_sizes[1:])

    @property
    def params(self) -> FFParams:
        """Current parameters (float64). Treat the arrays as read-only; assign a new
        :class:`~lighttune_core.ff.FFParams` to replace them."""
        return self._params

    @params.setter
    def params(self, value: FFParams) -> None:
        checked = check_params(value)
        if layer_sizes(checked) != self.layer_sizes:
            raise ValueError(f"params have layer sizes {layer_sizes(checked)}, model has {self.layer_sizes}")
        self._install(checked)

    def _install(self, params: FFParams) -> None:
        """Take float64 ``params`` (copied into one packed buffer) as the current parameters.

        The model keeps them as :class:`~lighttune_core.ff.PackedParams` (``self._params``
        are views of its buffer), a float64 inference plan viewing them and a persistent
        forward trace buffer, so :meth:`learn_one` runs one forward pass and updates every
        layer in place on the same arrays.
        """
        self._packed = pack_params(params)
        self._params = self._packed.params
        self._plan = plan_inference(self._params, BLER_LABELS, self.norm_eps)
        self._plan32: InferencePlan | None = None
        self._readout_cache: dict[Any, Any] = {}
        self._trace = new_trace(self._plan)
        self._step_key: tuple[float, float, str] | None = None
        self._step_constants: PairStepConstants | None = None
        self.version = next(_VERSIONS)
        """Changes (to a value no other parameter state of this process had) whenever the
        parameters do: equal versions mean equal predictions."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickle/deepcopy state without the derived arrays (``params`` must stay views of
        the packed buffer, which a copy of the views alone would not be)."""
        state = {k: v for k, v in self.__dict__.items() if k not in _DERIVED}
        weights, biases = self._params
        state["_params"] = FFParams(tuple(w.copy() for w in weights), tuple(b.copy() for b in biases))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        version = state["version"]
        self.__dict__.update({k: v for k, v in state.items() if k != "_params"})
        self._install(state["_params"])
        self.version = version

    @property
    def search_dtype(self) -> type:
        """The compute dtype a decision search should use with this model: float32 for the
        label-conditioned (block-input) network, whose batched forward pass float32 halves
        (``benchmarks/decision_search.py``: no decision changed in 6,000, a 1,000-UE search
        31.6 -> 18.5 ms); float64 for the scalar network, whose float64 all-active closed form
        is faster than any float32 forward pass."""
        return np.float32 if self._plan.block else np.float64

    def _inference_plan32(self) -> InferencePlan:
        """A float32 copy of the inference arrays, rebuilt lazily after an update."""
        if self._plan32 is None:
            self._plan32 = plan_inference(self._params, BLER_LABELS, self.norm_eps, dtype=np.float32)
        return self._plan32

    @classmethod
    def from_params(cls, params: FFParams, **hyperparameters: Any) -> "LightTuneModel":
        """A model starting from given (e.g. offline-trained) parameters.

        Args:
            params: parameters of an ``[M_0, M_1, ..., M_L]`` network, ``M_0`` 143 (block
                input) or 13 (scalar label) (copied).
            **hyperparameters: any ``__init__`` argument except ``layer_sizes`` (taken from
                ``params``).
        """
        checked = check_params(params)
        if "layer_sizes" in hyperparameters:
            raise ValueError("layer_sizes come from params")
        model = cls(layer_sizes=layer_sizes(checked), **hyperparameters)
        model.params = checked
        return model

    # ---------------------------------------------------------------- input checks
    def _standardise(self, x: np.ndarray) -> np.ndarray:
        """The encoded inputs ``x'`` float64 [N, F] of features [N, 12] (a new array; ``x``
        itself when the encoding is the identity), :meth:`InputEncoding.encode`."""
        return self.encoding.encode(x)

    def _check_x(self, x: Any) -> tuple[np.ndarray, float]:
        """``(x' float64 [F], ||x'||²)`` of the encoded features; the dot product checks
        finiteness too."""
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"x must be numeric, shape ({N_FEATURES},)") from exc
        if a.shape != (N_FEATURES,):
            raise ValueError(f"x must have shape ({N_FEATURES},), got {a.shape}")
        a = self.encoding.encode_one(a)  # NaN/inf stay non-finite, caught by ||x'||² below
        # Python float arithmetic overflows to inf silently, and NaN propagates
        xx = self.encoding.sum_sq_one(a)
        if not math.isfinite(xx):
            if np.all(np.isfinite(a)):
                raise ValueError("x is too large: ||x||² overflows float64")
            raise ValueError("x must be finite (no NaN/inf features)")
        return a, xx

    def _check_batch(self, x: Any) -> np.ndarray:
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X must be numeric, shape (N, {N_FEATURES})") from exc
        if a.ndim != 2 or a.shape[1] != N_FEATURES:
            raise ValueError(f"X must have shape (N, {N_FEATURES}), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("X must be finite (no NaN/inf features)")
        return self._standardise(a)

    @staticmethod
    def _sum_sq_rows(x: np.ndarray) -> np.ndarray:
        """``||x_n||²`` float64 [N] of rows ``x`` [N, 12], summed left to right over the
        features: bit-identical to the per-sample Python sum of :meth:`_check_x`."""
        with np.errstate(over="ignore"):
            acc = x[:, 0] * x[:, 0]
            for j in range(1, x.shape[1]):
                acc = acc + x[:, j] * x[:, j]
        return acc

    @staticmethod
    def _check_y(y: Any) -> float:
        try:
            v = float(y)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"y must be a BLER value in [0, 1], got {y!r}") from exc
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"y must be a BLER value in [0, 1], got {v!r}")
        return v

    # ---------------------------------------------------------------- predict / learn
    def _predict_checked_one(self, x: np.ndarray, xx: float) -> float:
        trace = forward_one_from_plan(self._plan, x, xx, self._trace)
        if self.readout is not None:
            return _LABEL_VALUES[self._readout_median_one(trace)]
        return _LABEL_VALUES[int(trace_goodness(self._plan, trace).argmax())]

    def _readout_median_one(self, trace: Any) -> int:
        """The readout's median label index of a forward trace."""
        folded = self._folded(np.float64)
        z = folded.bias.copy()
        for h, w in zip(trace.hs, folded.layer_weights):
            z += h.reshape(-1) @ w
        p = np.exp(z - z.max())
        return int(median_labels((p / p.sum())[None])[0])

    def predict_one(self, x: Any) -> float:
        """Predicted BLER label of features ``x`` float [12]."""
        return self._predict_checked_one(*self._check_x(x))

    def predict_many(self, x: Any) -> np.ndarray:
        """Predicted BLER labels, float64 [N], of features float [N, 12] (N may be 0)."""
        return self._predict_standardised(self._check_batch(x))

    def predict_many_unchecked(self, x: np.ndarray, compute_dtype: type = np.float64) -> np.ndarray:
        """:meth:`predict_many` without the input checks, for callers that built ``x`` from
        validated reports (the decision search of ``lighttune_core.cell``).

        Args:
            x: float64 [N, 12], finite (not checked: NaN features give arbitrary labels).
            compute_dtype: ``np.float64`` (default: the same labels as :meth:`predict_many`)
                or ``np.float32`` (the forward pass in float32: slower than the float64
                closed form wherever that applies; rounds the goodness to float32, which can
                move the argmax of near-tied labels, see ``benchmarks/decision_search.py``).
                Parameters stay float64 either way.

        Returns:
            float64 [N] BLER labels.
        """
        return self._predict_standardised(self._standardise(x), compute_dtype)

    def _folded(self, dtype: type) -> FoldedReadout:
        """The readout folded for the forward pass (:func:`~lighttune_core.readout.fold_readout`)
        in ``dtype``, cached until the parameters or the readout change."""
        key = ("folded", dtype)
        if key not in self._readout_cache:
            self._readout_cache[key] = fold_readout(self.readout, self.layer_sizes[1:], dtype)
        return self._readout_cache[key]

    def _readout_proba(self, x: np.ndarray, compute_dtype: type) -> np.ndarray:
        """``P(y_k | x_n)`` [N, K] of standardised features [N, F] (float64 or float32 compute:
        the activities and the readout in that dtype)."""
        if compute_dtype not in (np.float64, np.float32):
            raise ValueError(f"compute_dtype must be float64 or float32, got {compute_dtype!r}")
        key = ("params", compute_dtype)
        if key not in self._readout_cache:
            self._readout_cache[key] = tuple(
                tuple(a.astype(compute_dtype, copy=False) for a in arrays) for arrays in self._params
            )
        weights, biases = self._readout_cache[key]
        return readout_proba_from_inputs(
            weights, biases, self._folded(compute_dtype), x.astype(compute_dtype, copy=False), self.norm_eps
        )

    def _predict_standardised(self, x: np.ndarray, compute_dtype: type = np.float64) -> np.ndarray:
        """:meth:`predict_many_unchecked` on already standardised features."""
        n = x.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        if self.readout is not None:
            if n == 1 and compute_dtype == np.float64:
                return np.array([self._predict_checked_one(x[0], float(x[0] @ x[0]))])
            return BLER_LABELS[median_labels(self._readout_proba(x, compute_dtype))]
        if compute_dtype == np.float32:
            return BLER_LABELS[predict_label_index(self._inference_plan32(), x)]
        if compute_dtype != np.float64:
            raise ValueError(f"compute_dtype must be float64 or float32, got {compute_dtype!r}")
        if n == 1:  # the single-sample path has far fewer numpy calls
            return np.array([self._predict_checked_one(x[0], float(x[0] @ x[0]))])
        return BLER_LABELS[predict_label_index(self._plan, x)]

    def learn_many(self, x: Any, y: Any, readout: bool = True) -> int:
        """:meth:`learn_one` on every row of ``x`` [N, 12] with label ``y`` [N], in order.

        The same updates, bit for bit, as ``sum(learn_one(x[i], y[i], readout) for i in
        range(N))``, with the inputs checked once as a batch instead of once per sample.

        Returns:
            The number of updates made.

        Raises:
            ValueError: bad ``x`` (shape, NaN/inf) or a ``y`` outside [0, 1] or of the wrong
                shape; the model is then unchanged.
        """
        a = self._check_batch(x)
        try:
            labels = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError("y must be BLER values in [0, 1]") from exc
        if labels.shape != (a.shape[0],):
            raise ValueError(f"y must have shape ({a.shape[0]},), got {labels.shape}")
        if not np.all((labels >= 0.0) & (labels <= 1.0)):
            raise ValueError("y must be BLER values in [0, 1]")
        xx = self._sum_sq_rows(a)
        if not np.all(np.isfinite(xx)):
            raise ValueError("x is too large: ||x||² overflows float64")
        n_updates = 0
        for row, sq, label in zip(a, xx.tolist(), labels.tolist()):
            n_updates += self._learn_checked(row, sq, label, readout)
        return n_updates

    def _learn_checked(self, a: np.ndarray, xx: float, y_true: float, readout: bool = True) -> bool:
        """The LightTune step of :meth:`learn_one` on checked inputs."""
        plan = self._plan
        trace = forward_one_from_plan(plan, a, xx, self._trace)
        k_true = int(round(y_true * _INV_LABEL_STEP))
        if readout and self.readout is not None and self.readout_lr > 0.0:
            # the readout's own local loss, on every sample and before the layers' step (a
            # step on the surprising samples only would bias its distribution towards them)
            readout_step(self.readout, np.concatenate(trace.hs, axis=1), k_true, self.readout_lr, self.readout_average)
            self._readout_cache = {}
            self.version = next(_VERSIONS)
        # the layers' own LightTune rule: screen and negative are the arg-max goodness
        k_hat = int(trace_goodness(plan, trace).argmax())
        y_hat = _LABEL_VALUES[k_hat]
        self.n_seen += 1
        if abs(y_hat - y_true) < self.delta - LABEL_TOLERANCE:
            return False
        if abs(_LABEL_VALUES[k_true] - y_true) <= LABEL_TOLERANCE:
            # the positive pair is one of the K rows the prediction already computed
            key = (self.lr, self.threshold, self.loss)
            if key != self._step_key:  # hyperparameters are public attributes: rebuild on change
                self._step_constants = pair_step_constants(self._packed, *key)
                self._step_key = key
            pair_update_from_trace(self._packed, a, trace, k_true, k_hat, self._step_constants)
            # the plan's weight arrays are views of the parameters just updated in place; a
            # block plan's copy of W_1 changed in the two label blocks of the pair only
            refresh_plan(plan, self._params, (k_true, k_hat))
        else:
            pair_update_inplace(self._params, a, y_true, y_hat, self.lr, self.threshold, self.loss, self.norm_eps)
            refresh_plan(plan, self._params)
        self._plan32 = None
        self._readout_cache = {}
        self.n_updates += 1
        self.version = next(_VERSIONS)
        return True

    def learn_one(self, x: Any, y: Any, readout: bool = True) -> bool:
        """One LightTune step on sample ``(x, y)``; True if the FF layers were updated.

        The layers update only when ``|ŷ − y| ≥ δ − 1e-9`` for their own label ``ŷ`` (the
        arg-max goodness, with or without a readout), on the positive pair ``(x, y)`` and
        the negative pair ``(x, ŷ)``, every layer by plain SGD on its local loss. A softmax
        readout (``readout`` True, ``readout_lr > 0``) takes its averaged SGD step on every
        sample (:func:`lighttune_core.readout.readout_step`). The decision cell passes
        ``readout=False``: its labels are those of the candidates its search applied, and
        steps on them cost throughput (``CellTuner``).

        Raises:
            ValueError: bad ``x`` (shape, NaN/inf) or ``y`` outside [0, 1]; the model is
                then unchanged (counters included).
        """
        a, xx = self._check_x(x)
        return self._learn_checked(a, xx, self._check_y(y), readout)

    # ---------------------------------------------------------------- state
    def hyperparameters(self) -> dict[str, Any]:
        """The ``__init__`` arguments of this model."""
        return {
            "layer_sizes": self.layer_sizes,
            "threshold": self.threshold,
            "lr": self.lr,
            "delta": self.delta,
            "loss": self.loss,
            "seed": self.seed,
            "norm_eps": self.norm_eps,
            "feature_mean": self.feature_mean.copy(),
            "feature_scale": self.feature_scale.copy(),
            "input_bins": [e.copy() for e in self.encoding.bin_edges] if self.encoding.has_bins else None,
            "input_gain": self.encoding.gain,
            "readout_lr": self.readout_lr,
            "readout_average": self.readout_average,
        }

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, counters and copies of the parameter arrays."""
        return {
            "hyperparameters": self.hyperparameters(),
            "n_seen": self.n_seen,
            "n_updates": self.n_updates,
            "weights": [w.copy() for w in self.params.weights],
            "biases": [b.copy() for b in self.params.biases],
            "readout": None if self.readout is None else SoftmaxReadout(*(a.copy() for a in self.readout)),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "LightTuneModel":
        """Rebuild a model from :meth:`state_dict` (bit-exact).

        Raises:
            ValueError: missing keys, or arrays that do not fit the layer sizes.
        """
        try:
            hyper = dict(state["hyperparameters"])
            params = FFParams(tuple(state["weights"]), tuple(state["biases"]))
            n_seen = int(state["n_seen"])
            n_updates = int(state["n_updates"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"state dict is missing or has a malformed field: {exc}") from exc
        readout = state.get("readout")
        if readout is not None:
            try:
                readout = SoftmaxReadout(*readout)
            except TypeError as exc:
                raise ValueError(f"state dict has a malformed readout: {exc}") from exc
        model = cls(**hyper, readout=readout)
        checked = check_params(params)
        if layer_sizes(checked) != model.layer_sizes:
            raise ValueError(
                f"state arrays have layer sizes {layer_sizes(checked)}, hyperparameters say {model.layer_sizes}"
            )
        if n_seen < 0 or n_updates < 0 or n_updates > n_seen:
            raise ValueError(f"invalid counters n_seen={n_seen}, n_updates={n_updates}")
        model.params = checked
        model.n_seen = n_seen
        model.n_updates = n_updates
        return model

    def to_bytes(self) -> bytes:
        """Compact versioned binary form (see the module docstring)."""
        seed = -1 if self.seed is None else self.seed
        head = _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            LOSS_KINDS.index(self.loss),
            len(self.layer_sizes) - 1,
            self.threshold,
            self.lr,
            self.delta,
            self.norm_eps,
            seed,
            self.n_seen,
            self.n_updates,
        )
        sizes = np.asarray(self.layer_sizes, dtype="<u4").tobytes()
        arrays = b"".join(
            np.ascontiguousarray(a, dtype="<f8").tobytes()
            for w, b in zip(self.params.weights, self.params.biases)
            for a in (w, b)
        )
        standardisation = np.concatenate([self.feature_mean, self.feature_scale]).astype("<f8").tobytes()
        enc = self.encoding
        if enc.has_bins or enc.gain != 1.0 or self.readout is not None:
            edges = enc.bin_edges or tuple(np.zeros(0) for _ in range(N_FEATURES))
            standardisation += (
                np.array([enc.gain], dtype="<f8").tobytes()
                + np.array([e.shape[0] for e in edges], dtype="<u4").tobytes()
                + b"".join(np.ascontiguousarray(e, dtype="<f8").tobytes() for e in edges)
            )
            if self.readout is not None:  # version 4
                standardisation += (
                    np.array([self.readout_lr, self.readout_average], dtype="<f8").tobytes()
                    + b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in self.readout)
                )
            else:  # version 3
                head = head[:4] + struct.pack("<H", 3) + head[6:]
        else:  # version 2: the bytes of a model without an encoding beyond the standardisation
            head = head[:4] + struct.pack("<H", 2) + head[6:]
        body = head + sizes + arrays + standardisation
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> "LightTuneModel":
        """Inverse of :meth:`to_bytes`.

        Raises:
            ValueError: wrong magic, unsupported version, truncated/extra bytes, CRC
                mismatch or invalid hyperparameters/parameters.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"model bytes must be bytes, got {type(data).__name__}")
        buf = bytes(data)
        if len(buf) < _HEADER.size + _CRC.size:
            raise ValueError(f"model bytes too short ({len(buf)} bytes)")
        if buf[:4] != MAGIC:
            raise ValueError(f"not a LightTune model (magic {buf[:4]!r}, expected {MAGIC!r})")
        (_, version, loss_code, n_layers, threshold, lr, delta, eps, seed, n_seen, n_updates) = _HEADER.unpack_from(
            buf, 0
        )
        if version not in _READABLE_VERSIONS:
            raise ValueError(
                f"unsupported model format version {version} (this build reads {', '.join(map(str, _READABLE_VERSIONS))})"
            )
        (crc,) = _CRC.unpack_from(buf, len(buf) - _CRC.size)
        if zlib.crc32(buf[: -_CRC.size]) != crc:
            raise ValueError("model bytes are corrupt (CRC mismatch)")
        if loss_code >= len(LOSS_KINDS):
            raise ValueError(f"unknown loss code {loss_code}")
        off = _HEADER.size
        end_sizes = off + 4 * (n_layers + 1)
        if len(buf) < end_sizes + _CRC.size:
            raise ValueError("model bytes truncated in the layer sizes")
        sizes = tuple(int(m) for m in np.frombuffer(buf, dtype="<u4", count=n_layers + 1, offset=off))
        sizes = check_layer_sizes(sizes)
        n_values = sum(m_out * m_in + m_out for m_in, m_out in zip(sizes[:-1], sizes[1:]))
        n_std = 2 * N_FEATURES if version >= 2 else 0
        end_std = end_sizes + 8 * (n_values + n_std)
        gain, bins, n_enc = 1.0, None, 0
        readout, readout_lr, readout_average, n_readout = None, DEFAULT_READOUT_LR, DEFAULT_READOUT_AVERAGE, 0
        if version >= 4:
            n_labels = len(BLER_LABELS)
            width = n_labels * sum(sizes[1:])
            n_readout = 8 * (2 + 2 * (n_labels * width + n_labels) + 2 * width)
        if version >= 3:
            if len(buf) < end_std + 8 + 4 * N_FEATURES + _CRC.size:
                raise ValueError("model bytes truncated in the input encoding")
            gain = float(np.frombuffer(buf, dtype="<f8", count=1, offset=end_std)[0])
            counts = np.frombuffer(buf, dtype="<u4", count=N_FEATURES, offset=end_std + 8).astype(np.int64)
            n_edges = int(counts.sum())
            if n_edges > N_FEATURES * MAX_EDGES_PER_FEATURE:
                raise ValueError(f"model bytes give {n_edges} bin edges, at most {N_FEATURES * MAX_EDGES_PER_FEATURE}")
            n_enc = 8 + 4 * N_FEATURES + 8 * n_edges
            if len(buf) == end_std + n_enc + n_readout + _CRC.size:
                flat = np.frombuffer(buf, dtype="<f8", count=n_edges, offset=end_std + 8 + 4 * N_FEATURES)
                bins = np.split(flat.astype(np.float64), np.cumsum(counts)[:-1]) if n_edges else None
        if len(buf) != end_std + n_enc + n_readout + _CRC.size:
            raise ValueError(
                f"model bytes have length {len(buf)}, layer sizes {sizes} need {end_std + n_enc + n_readout + _CRC.size}"
            )
        if n_readout:
            flat = np.frombuffer(buf, dtype="<f8", count=n_readout // 8, offset=end_std + n_enc).astype(np.float64)
            n_labels = len(BLER_LABELS)
            readout_lr, readout_average = float(flat[0]), float(flat[1])
            sizes_r = [n_labels * width, n_labels, width, width, n_labels * width]
            parts = [p.copy() for p in np.split(flat[2:], np.cumsum(sizes_r))]
            parts[0] = parts[0].reshape(n_labels, width)
            parts[4] = parts[4].reshape(n_labels, width)
            readout = SoftmaxReadout(*parts)
        std = np.frombuffer(buf, dtype="<f8", count=n_std, offset=end_sizes + 8 * n_values).astype(np.float64)
        values = np.frombuffer(buf, dtype="<f8", count=n_values, offset=end_sizes).astype(np.float64)
        weights: list[np.ndarray] = []
        biases: list[np.ndarray] = []
        pos = 0
        for m_in, m_out in zip(sizes[:-1], sizes[1:]):
            weights.append(values[pos : pos + m_out * m_in].reshape(m_out, m_in).copy())
            pos += m_out * m_in
            biases.append(values[pos : pos + m_out].copy())
            pos += m_out
        return cls.from_state_dict(
            {
                "hyperparameters": {
                    "layer_sizes": sizes,
                    "threshold": threshold,
                    "lr": lr,
                    "delta": delta,
                    "loss": LOSS_KINDS[loss_code],
                    "seed": None if seed == -1 else seed,
                    "norm_eps": eps,
                    "feature_mean": std[:N_FEATURES] if n_std else None,
                    "feature_scale": std[N_FEATURES:] if n_std else None,
                    "input_bins": bins,
                    "input_gain": gain,
                    "readout_lr": readout_lr,
                    "readout_average": readout_average,
                },
                "n_seen": n_seen,
                "n_updates": n_updates,
                "weights": weights,
                "biases": biases,
                "readout": readout,
            }
        )
