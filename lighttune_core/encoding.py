"""The FF network's input encoding: standardised features, optionally with one-hot bins.

The 12 features of :mod:`lighttune_core.features` reach the network as

    x' = g · [ (x − μ) / σ ;  onehot(bin_1(x_1)) ; … ; onehot(bin_12(x_12)) ]

* ``(x − μ) / σ``: the training set's standardisation, float [12];
* ``bin_j(x_j)``: the index of ``x_j`` among feature ``j``'s bin edges ``e_j`` (ascending;
  ``bin_j = #{e ∈ e_j : e <= x_j}``, so ``len(e_j) + 1`` bins), one-hot; the edges are the
  training set's quantiles (:func:`fit_bin_edges`), so every bin holds a similar share of the
  training samples;
* ``g``: the input gain. The first FF layer normalises its input ``e_k ⊗ [x'; 1]`` by its
  length; a small ``g`` keeps that length near 1, so the normalisation does not remove the
  features' magnitude (plain features: 0.83× instead of 0.91× the constant's error), but
  with bins it leaves the constant 1 most of the input, and LightTune's online step then
  moves mostly the label's prior: ``g = 1`` with bins (offline-v6), ``g = 0.1`` for
  offline-v5 (``lighttune_core.training.DEFAULT_INPUT_GAIN``, ``docs/results.md``).

Without bins the encoding is the plain standardisation (``F = 12`` values); with bins it
has ``F = 12 + Σ_j (len(e_j) + 1)`` values, and the label-conditioned network's input width
is ``M_0 = 11 (F + 1)`` (:func:`lighttune_core.ff.label_encoding`). The bins let the first
layer's per-label weights form a piecewise-constant function of every feature: the forward-
forward training, which has no backpropagation through the layers, cannot build such
non-monotone responses from the 12 linear inputs (``benchmarks/ff_training_variants.py``,
``tests/test_core_encoding.py``).
"""

from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np

from lighttune_core.features import N_FEATURES

MAX_EDGES_PER_FEATURE: int = 255
"""Upper bound on the bin edges of one feature (8 bins need at most 7)."""


_SMALL_BATCH: int = 64
"""Batches below this size find the bins by one padded comparison, larger ones by a binary
search per feature. Whole :meth:`InputEncoding.encode` of offline-v5, one core of this
project's 2-core VM: one sample 17 µs by comparison against 42 µs by search; 5,000 rows
3.0 ms by comparison against 1.4 ms by search."""


def fit_bin_edges(features: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """Quantile bin edges of every feature of a training set.

    ``e_j`` = the distinct values among the ``q / n_bins`` quantiles, ``q = 1 .. n_bins − 1``,
    of feature ``j`` that lie above its smallest training value: a feature with few distinct
    values (the rank, RI) gets fewer edges, a constant one none. An edge at the minimum would
    open a bin below every training value, whose weights training never moves (its one-hot
    column is always 0): a sample there would get the network's initial random weights.

    Args:
        features: float [N, 12], finite, N >= 1.
        n_bins: bins per feature, 2 .. 256.

    Returns:
        12 ascending float64 arrays of at most ``n_bins − 1`` edges each.

    Raises:
        ValueError: bad shape, non-finite values or ``n_bins`` out of range.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_FEATURES or x.shape[0] == 0:
        raise ValueError(f"features must have shape (N >= 1, {N_FEATURES}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features must be finite")
    if not 2 <= int(n_bins) <= MAX_EDGES_PER_FEATURE + 1:
        raise ValueError(f"n_bins must be in 2 .. {MAX_EDGES_PER_FEATURE + 1}, got {n_bins!r}")
    q = np.arange(1, int(n_bins)) / int(n_bins)
    edges = np.quantile(x, q, axis=0)  # [n_bins - 1, 12]
    lowest = x.min(axis=0)
    return tuple(np.unique(edges[edges[:, j] > lowest[j], j]) for j in range(N_FEATURES))


class InputEncoding:
    """``x [.., 12] -> x' [.., F]`` (module docstring); immutable after construction.

    Args:
        mean, scale: float [12], the standardisation (``scale > 0``); None: 0 and 1.
        bin_edges: 12 ascending float arrays (each may be empty), or None for no bins.
        gain: ``g > 0``.

    Attributes:
        width: ``F``, the encoded length.
        identity: True when ``x' = x`` (no standardisation, no bins, ``g = 1``).
    """

    def __init__(
        self,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        bin_edges: Sequence[np.ndarray] | None = None,
        gain: float = 1.0,
    ) -> None:
        m = np.zeros(N_FEATURES) if mean is None else np.array(mean, dtype=np.float64)
        s = np.ones(N_FEATURES) if scale is None else np.array(scale, dtype=np.float64)
        if m.shape != (N_FEATURES,) or s.shape != (N_FEATURES,):
            raise ValueError(f"feature_mean and feature_scale must have shape ({N_FEATURES},)")
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s)) and np.all(s > 0)):
            raise ValueError("feature_mean must be finite and feature_scale finite and > 0")
        g = float(gain)
        if not (np.isfinite(g) and g > 0):
            raise ValueError(f"input gain must be finite and > 0, got {gain!r}")
        edges: tuple[np.ndarray, ...] = ()
        if bin_edges is not None:
            if len(bin_edges) != N_FEATURES:
                raise ValueError(f"bin edges must be given for all {N_FEATURES} features, got {len(bin_edges)}")
            edges = tuple(np.array(e, dtype=np.float64).reshape(-1) for e in bin_edges)
            for j, e in enumerate(edges):
                if e.shape[0] > MAX_EDGES_PER_FEATURE:
                    raise ValueError(f"feature {j} has {e.shape[0]} bin edges, at most {MAX_EDGES_PER_FEATURE}")
                if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
                    raise ValueError(f"bin edges of feature {j} must be finite and strictly ascending")
        self.mean = m
        self.scale = s
        self.bin_edges = edges
        self.gain = g
        self._mult = g / s  # x' = (x − μ) · g / σ
        counts = np.array([e.shape[0] + 1 for e in edges], dtype=np.int64)
        self._offsets = N_FEATURES + np.concatenate([[0], np.cumsum(counts)[:-1]]) if edges else np.zeros(0, np.int64)
        # the edges as one [12, E] matrix padded with +inf (never <= a finite value), so the bin of
        # every feature is one comparison and one count: bin_j = #{e in e_j : e <= x_j}
        n_max = max((e.shape[0] for e in edges), default=0)
        self._edge_matrix = np.full((N_FEATURES, max(n_max, 1)), np.inf)
        for j, e in enumerate(edges):
            self._edge_matrix[j, : e.shape[0]] = e
        self.width = N_FEATURES + int(counts.sum())
        # the single-sample path's copies (Python lists search faster than 1-element numpy calls)
        self._edge_lists = [e.tolist() for e in edges]
        self._offset_list = [int(o) for o in self._offsets]
        self._gain_sq = g * g
        self.identity = bool(not edges and g == 1.0 and np.all(m == 0.0) and np.all(s == 1.0))

    @property
    def has_bins(self) -> bool:
        """True when the encoding adds one-hot bins (``F > 12``)."""
        return bool(self.bin_edges)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Encoded rows ``x'`` float64 [N, F] of finite features float64 [N, 12] (a new array;
        ``x`` itself when :attr:`identity`). The model checks finiteness first; a non-finite
        feature would stay non-finite in the standardised part (its bin is arbitrary)."""
        if self.identity:
            return x
        if not self.bin_edges:
            return (x - self.mean) * self._mult
        n = x.shape[0]
        out = np.zeros((n, self.width), dtype=np.float64)
        np.multiply(x - self.mean, self._mult, out=out[:, :N_FEATURES])
        if n < _SMALL_BATCH:  # one comparison and one count for all features
            cols = np.count_nonzero(self._edge_matrix <= x[:, :, None], axis=2)  # bins [n, 12]
        else:  # a binary search per feature: O(n log E) instead of O(n E)
            cols = np.empty((n, N_FEATURES), dtype=np.int64)
            for j, e in enumerate(self.bin_edges):
                cols[:, j] = np.searchsorted(e, x[:, j], side="right")
        cols += self._offsets
        cols += (np.arange(n) * self.width)[:, None]
        out.reshape(-1)[cols.reshape(-1)] = self.gain
        return out

    def encode_one(self, x: np.ndarray) -> np.ndarray:
        """:meth:`encode` of one feature vector float64 [12] -> [F] (the same values bit for bit).

        The bins come from a binary search in Python lists (``bisect_right(e_j, x_j)`` =
        ``#{e ∈ e_j : e <= x_j}``): a dozen numpy calls fewer than :meth:`encode`, which
        matters on the single-sample ``predict_one`` / ``learn_one`` path."""
        if self.identity:
            return x
        if not self.bin_edges:
            return (x - self.mean) * self._mult
        out = np.zeros(self.width)
        np.multiply(x - self.mean, self._mult, out=out[:N_FEATURES])
        out[[o + bisect.bisect_right(e, v) for o, e, v in zip(self._offset_list, self._edge_lists, x.tolist())]] = self.gain
        return out

    def sum_sq_one(self, a: np.ndarray) -> float:
        """``||x'||²`` of one encoded vector ``a`` float64 [F] (:meth:`encode_one`), summed left to
        right over its values as Python floats (bit-identical to that sum over all ``F`` values:
        the one-hot part adds one ``g²`` per binned feature, in column order, and zeros, which
        add exactly). Overflow gives inf and a NaN feature NaN, never an exception."""
        total = sum([v * v for v in a[:N_FEATURES].tolist()])  # without bins that is all of a
        for _ in range(len(self.bin_edges)):
            total += self._gain_sq
        return total

    def equals(self, other: "InputEncoding") -> bool:
        """Same standardisation, bins and gain (bit for bit)."""
        return (
            np.array_equal(self.mean, other.mean)
            and np.array_equal(self.scale, other.scale)
            and self.gain == other.gain
            and len(self.bin_edges) == len(other.bin_edges)
            and all(np.array_equal(a, b) for a, b in zip(self.bin_edges, other.bin_edges))
        )
