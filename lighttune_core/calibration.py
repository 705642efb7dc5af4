"""Online calibration of the model's BLER label per rank offset (decision-time, per cell).

The FF model answers with a label ``ŷ ∈ {0.0, 0.1, ..., 1.0}`` (arg-max goodness). Both
policies rank candidates by expected delivered bits ``U · (1 − p)``, which needs ``p`` to be
the *mean* BLER the candidate will see, not the most likely label. On channels unlike the
training channel the two part ways, and the direction depends on the rank offset of the
candidate: measured with ``offline-v3.ltm`` on 6,000 samples of TDL-B200 50 Hz, high
antenna correlation, 16–24 dB (srsRAN DU, seed 7), rank-up candidates (``r = RI + 1``) were
predicted 0.0 for 80 % of the samples at a true mean BLER of 0.282, so RI-CQI-Tune bought
rank-ups that failed (Table 6, high-correlation medium-SNR cells: −5.3 … −9.3 %).

:class:`RankOffsetCalibration` keeps, per rank offset ``d = r − RI ∈ {−1, 0, +1}`` and
label index ``k``, discounted sums of the true BLER of the periods in which a decision with
that ``(d, k)`` was applied, and serves their mean with a prior of ``w₀`` pseudo-samples at
the label itself:

    p(d, k) = (w₀ · ŷ_k · γ^t + Σ_i γ^(t − t_i) y_i) / (w₀ · γ^t + Σ_i γ^(t − t_i))

(``γ`` the discount per sample of the same ``(d, k)``, so the map follows a changing channel
with an effective memory of ``1 / (1 − γ)`` samples; the prior decays the same way). This is
histogram-binning calibration run online: no buffer is kept (three float64 arrays of 3 × 11),
and it needs no gradient. A bin only learns from decisions that were applied — a candidate
the search never picks gets no samples of its own — which fixes an over-optimistic label
(picked, fails, is corrected) but, on its own, not an over-cautious one.

**Bins borrow their rank offset's evidence** (``borrow=True``, the default). The prior of a
bin is centred not on the label but on the label scaled by what the offset's applied
decisions showed, so a label the search avoids is corrected by the outcomes of the labels it
picked:

    ρ_d = (Σ_k S_dk + a) / (Σ_k W_dk · max(ŷ_k, ŷ_min) + a)          (a = 0.1 · w₀, ŷ_min = 0.05)
    p(d, k) = (π_dk · min(ρ_d · ŷ_k, 1) + S_dk) / (π_dk + W_dk)

with ``S_dk``, ``W_dk`` the discounted sums of outcomes and weights of bin ``(d, k)`` (data
only) and ``π_dk = w₀ · γ^(m_dk)`` the weight left of its prior after ``m_dk`` samples. Without
data ``ρ_d = 1`` and the map is the identity; a bin with many samples is its own mean as
before. Measured on Table 6 (srsRAN DU, ``ldpc-mc``, offline-v4, seed 1, 32 UEs × 5 s): where
OLLA already runs at BLER 0.008 (TDL-B200, high correlation, medium SNR) the model's label for
the DU's own choice stays too cautious, RI-CQI-Tune backed off and lost 2.63 %; borrowing lowers
the label of the unvisited choice and the loss to 1.69 %, while the means move from +0.57 % /
+0.92 % to +0.59 % / +0.94 % (docs/results.md).

A sample can count less than one (``update``'s ``weight``): the cell weighs a period by its
first transmissions, ``min(n / 10, 1)``, so the mean is per transmission for short periods
and per period from 10 transmissions on.

The LightTune fine-tuning of the model itself is unchanged; the calibration sits between
the model and the search (:class:`lighttune_core.cell.CellTuner`, ``calibrate=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lighttune_core.features import BLER_LABELS, BLER_STEP, FEATURE_NAMES
from lighttune_core.report import MAX_RANK

DEFAULT_PRIOR_WEIGHT: float = 2.0
"""``w₀``: pseudo-samples at the model's own label before any outcome is seen."""
DEFAULT_DISCOUNT: float = 0.99
"""``γ``: discount per new sample of the same (rank offset, label) bin (memory ≈ 100 samples)."""
STATE_VERSION: int = 2
"""Version of :meth:`RankOffsetCalibration.state_dict` (1: prior and outcomes in one sum)."""
SCALE_FLOOR: float = 0.05
"""``ŷ_min``: the smallest label value the offset's scale ``ρ_d`` divides by (label 0.0
would otherwise weigh nothing in the ratio)."""
SCALE_PSEUDO: float = 0.1
"""``a / w₀``: pseudo-evidence for ``ρ_d = 1`` (keeps the scale near 1 until outcomes come)."""
N_OFFSETS: int = 3
"""Rank offsets −1, 0, +1 (RI-CQI-Tune's rank slots; CQI-Tune uses 0 only)."""
N_LABELS: int = int(BLER_LABELS.shape[0])
_RANK_COLUMN: int = FEATURE_NAMES.index("candidate_rank")
_RI_COLUMN: int = FEATURE_NAMES.index("reported_ri")


def rank_offset(features: np.ndarray) -> np.ndarray:
    """``r − RI`` of candidates ``features`` float [M, 12], clipped to −1 .. 1: int64 [M]
    (the features hold rank / 4)."""
    d = np.rint((features[:, _RANK_COLUMN] - features[:, _RI_COLUMN]) * MAX_RANK).astype(np.int64)
    return np.clip(d, -1, 1)


def label_index(bler: np.ndarray) -> np.ndarray:
    """Index ``k`` of the label nearest to each BLER value: int64 [M] in 0 .. 10."""
    return np.clip(np.rint(np.asarray(bler, dtype=np.float64) / BLER_STEP), 0, N_LABELS - 1).astype(np.int64)


class RankOffsetCalibration:
    """Per-cell map ``(rank offset, model label) -> mean true BLER`` (see the module doc).

    Args:
        prior_weight: ``w₀ > 0``, pseudo-samples at the label value.
        discount: ``γ`` in (0, 1].
        borrow: centre each bin's prior on ``ρ_d · ŷ_k`` (its rank offset's observed-to-label
            ratio) instead of ``ŷ_k``; False gives the plain per-bin mean.
    """

    def __init__(
        self, prior_weight: float = DEFAULT_PRIOR_WEIGHT, discount: float = DEFAULT_DISCOUNT, borrow: bool = True
    ) -> None:
        if not (np.isfinite(prior_weight) and prior_weight > 0.0):
            raise ValueError(f"prior_weight must be > 0, got {prior_weight!r}")
        if not (np.isfinite(discount) and 0.0 < discount <= 1.0):
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        self.prior_weight = float(prior_weight)
        self.discount = float(discount)
        self.borrow = bool(borrow)
        self._sum = np.zeros((N_OFFSETS, N_LABELS))  # [3, 11] S: discounted Σ w y (outcomes only)
        self._weight = np.zeros((N_OFFSETS, N_LABELS))  # [3, 11] W: discounted Σ w
        self._prior = np.full((N_OFFSETS, N_LABELS), self.prior_weight)  # [3, 11] π: prior weight left
        self._table = self._compute_table()

    def _compute_table(self) -> np.ndarray:
        """float64 [3, 11]: ``p(d, k)`` from ``S``, ``W``, ``π`` (module doc)."""
        centre = np.broadcast_to(BLER_LABELS, self._sum.shape)
        if self.borrow:
            a = SCALE_PSEUDO * self.prior_weight
            rho = (self._sum.sum(axis=1) + a) / ((self._weight * np.maximum(BLER_LABELS, SCALE_FLOOR)).sum(axis=1) + a)
            centre = np.minimum(rho[:, None] * BLER_LABELS, 1.0)
        return (self._prior * centre + self._sum) / (self._prior + self._weight)

    @property
    def table(self) -> np.ndarray:
        """float64 [3, 11]: calibrated BLER per (rank offset −1/0/+1, label index); read-only copy."""
        return self._table.copy()

    def apply(self, features: np.ndarray, bler: np.ndarray) -> np.ndarray:
        """Calibrated BLER, float64 [M], of model labels ``bler`` [M] for candidates
        ``features`` [M, 12]."""
        return self.adjust(rank_offset(features), bler)

    def adjust(self, rank_offset: np.ndarray, bler: np.ndarray) -> np.ndarray:
        """Calibrated BLER of model labels ``bler`` for candidates ``rank_offset = r − RI``
        (int, any shape; clipped to ±1): the decision search's ``adjust``
        (:func:`lighttune_core.linkadapt.ri_cqi_tune`)."""
        return self._table[np.clip(rank_offset, -1, 1) + 1, label_index(bler)]

    def update(
        self, features: np.ndarray, bler: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None
    ) -> None:
        """Add outcomes: the model's labels ``bler`` [S] for the applied decisions'
        ``features`` [S, 12] and their true BLERs ``y`` [S], each counting ``weight`` [S]
        samples (in (0, 1]; None: 1 each).

        A sample of weight ``w`` adds ``w · y`` to its bin's sum and ``w`` to its weight; a
        bin that receives a total weight ``m`` in one call is discounted by ``γ^m`` first
        (the samples of one period count as simultaneous). :class:`~lighttune_core.cell.CellTuner`
        weighs a period of ``n`` first transmissions ``min(n / 10, 1)``, so periods too short
        for a BLER label (the 10 ms CSI-RS period: about 2.5 transmissions) still add up,
        transmission by transmission, to the mean BLER of their bin.
        """
        y = np.asarray(y, dtype=np.float64)
        if y.size == 0:
            return
        if not (np.isfinite(y).all() and (y >= 0.0).all() and (y <= 1.0).all()):
            raise ValueError("true BLERs must be in [0, 1]")
        if weight is None:
            w = np.ones(y.shape)
        else:
            w = np.asarray(weight, dtype=np.float64)
            if w.shape != y.shape or not (np.isfinite(w).all() and (w > 0.0).all() and (w <= 1.0).all()):
                raise ValueError("sample weights must be one per sample, in (0, 1]")
        flat = (rank_offset(features) + 1) * N_LABELS + label_index(bler)
        size = N_OFFSETS * N_LABELS
        count = np.bincount(flat, weights=w, minlength=size).reshape(N_OFFSETS, N_LABELS)
        total = np.bincount(flat, weights=w * y, minlength=size).reshape(N_OFFSETS, N_LABELS)
        decay = self.discount ** count
        self._sum = self._sum * decay + total
        self._weight = self._weight * decay + count
        self._prior = self._prior * decay
        self._table = self._compute_table()

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (lists of floats; ``version`` 2: ``sum`` and ``weight`` hold
        the outcomes only, ``prior`` the prior weight left per bin)."""
        return {
            "version": STATE_VERSION,
            "prior_weight": self.prior_weight,
            "discount": self.discount,
            "borrow": self.borrow,
            "sum": self._sum.tolist(),
            "weight": self._weight.tolist(),
            "prior": self._prior.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "RankOffsetCalibration":
        """Inverse of :meth:`state_dict`. A state without ``version`` (written before version
        2, prior and outcomes summed together) is split as ``π = min(weight, w₀)`` (the most
        the prior can have kept), the rest being outcomes; its maps are served with
        ``borrow`` on.

        Raises:
            ValueError: missing keys, wrong shapes, non-finite or negative values.
        """
        shape = (N_OFFSETS, N_LABELS)
        try:
            version = int(state.get("version", 1))
            borrow = state.get("borrow", True)
            if not isinstance(borrow, bool):
                raise TypeError(f"borrow must be true or false, got {borrow!r}")
            cal = cls(float(state["prior_weight"]), float(state["discount"]), borrow)
            total = np.asarray(state["sum"], dtype=np.float64)
            weight = np.asarray(state["weight"], dtype=np.float64)
            prior = np.asarray(state["prior"], dtype=np.float64) if version >= 2 else None
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"calibration state malformed: {exc!r}") from exc
        if version not in (1, STATE_VERSION):
            raise ValueError(f"calibration state version {version} is not known (1, {STATE_VERSION})")
        if total.shape != shape or weight.shape != shape or (prior is not None and prior.shape != shape):
            raise ValueError(f"calibration state must hold {shape} arrays")
        if not (np.isfinite(total).all() and np.isfinite(weight).all()) or (weight < 0).any() or (total < 0).any():
            raise ValueError("calibration state has non-finite or negative bins")
        if (total > weight * (1.0 + 1e-9)).any():
            raise ValueError("calibration state has a mean BLER above 1")
        if prior is None:  # version 1: prior and outcomes together
            if (weight <= 0).any():
                raise ValueError("calibration state has zero-weight bins")
            prior = np.minimum(weight, cal.prior_weight)
            weight = weight - prior
            total = np.clip(total - prior * BLER_LABELS, 0.0, weight)
        elif not np.isfinite(prior).all() or (prior < 0).any() or (prior + weight <= 0).any():
            raise ValueError("calibration state has a negative prior or empty bins")
        cal._sum, cal._weight, cal._prior = total, weight, prior
        cal._table = cal._compute_table()
        return cal
