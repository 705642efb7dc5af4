"""Online calibration of the model's BLER label per decision group (decision-time, per cell).

The FF model answers with a label ``ŷ ∈ {0.0, 0.1, ..., 1.0}`` (arg-max goodness). Both
policies rank candidates by expected delivered bits ``U · (1 − p)``, which needs ``p`` to be
the *mean* BLER the candidate will see, not the most likely label. On channels unlike the
training channel the two part ways, and the direction depends on the kind of candidate:
measured with ``offline-v3.ltm`` on 6,000 samples of TDL-B200 50 Hz, high antenna
correlation, 16–24 dB (srsRAN DU, seed 7), rank-up candidates (``r = RI + 1``) were
predicted 0.0 for 80 % of the samples at a true mean BLER of 0.282, so RI-CQI-Tune bought
rank-ups that failed (Table 6, high-correlation medium-SNR cells: −5.3 … −9.3 %).

:class:`DecisionCalibration` keeps, per decision group ``g`` and label index ``k``,
discounted sums of the true BLER of the periods in which a decision of that ``(g, k)`` was
applied, and serves their mean with a prior of ``w₀`` pseudo-samples at the label itself:

    p(g, k) = (w₀ · ŷ_k · γ^t + Σ_i γ^(t − t_i) y_i) / (w₀ · γ^t + Σ_i γ^(t − t_i))

(``γ`` the discount per sample of the same ``(g, k)``, so the map follows a changing channel
with an effective memory of ``1 / (1 − γ)`` samples; the prior decays the same way). The
five groups (:func:`decision_group`) are the rank offset ``d = r − RI`` and, at the
reported rank, the CQI back-off ``b = CQI_reported − c``:

    g = 0: d = −1;   g = 1, 2, 3: d = 0 and b = 0, 1, ≥ 2;   g = 4: d = +1.

Why the back-off is a key (scratch runs recording each decision; ``docs/results.md``
section 0.0000): offline-v3's labels do not order the CQIs of the reported rank. On TDL-B50
medium correlation, medium SNR (srsRAN DU, seed 2) it labelled the reported CQI 0.3 and the
CQI one below 0.0 in 90 % of the decisions; on TDL-B50 high correlation, 40 ms, high SNR
(``sionna`` DU, seed 1) it labelled the reported CQI *and* the CQI two below 0.3. With one
bin per (rank offset, label), every reported-rank decision labelled 0.3 fed the same bin
whatever its back-off; there it read 0.64 on average while the reported-CQI decisions taken
had a true BLER of 0.07, and RI-CQI-Tune changed rank in 38 % of the decisions and lost
6.9 %. Keyed by back-off, each bin holds the outcomes of one kind of decision.

This is histogram-binning calibration run online: no buffer is kept (two float64 arrays of
5 × 11), and it needs no gradient. It only learns about decisions that were applied — a
candidate the search never picks gets no samples — which is exactly what fixes an
over-optimistic label (picked, fails, is corrected) and cannot fix an over-cautious one.

The LightTune fine-tuning of the model itself is unchanged; the calibration sits between
the model and the search (:class:`lighttune_core.cell.CellTuner`, ``calibrate=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lighttune_core.features import BLER_LABELS, BLER_STEP, FEATURE_NAMES
from lighttune_core.report import MAX_CQI, MAX_RANK

DEFAULT_PRIOR_WEIGHT: float = 2.0
"""``w₀``: pseudo-samples at the model's own label before any outcome is seen."""
DEFAULT_DISCOUNT: float = 0.99
"""``γ``: discount per new sample of the same (decision group, label) bin (memory ≈ 100 samples)."""
N_GROUPS: int = 5
"""Decision groups (:func:`decision_group`): rank −1; reported rank at back-off 0, 1, ≥ 2; rank +1."""
STATE_VERSION: int = 2
"""Version of :meth:`DecisionCalibration.state_dict` (1: three rows, one per rank offset)."""
_V1_GROUP_ROWS: tuple[int, ...] = (0, 1, 1, 1, 2)
"""Row of a version-1 state (per rank offset −1, 0, +1) that seeds each group on migration."""
N_LABELS: int = int(BLER_LABELS.shape[0])
_RANK_COLUMN: int = FEATURE_NAMES.index("candidate_rank")
_RI_COLUMN: int = FEATURE_NAMES.index("reported_ri")
_CQI_COLUMN: int = FEATURE_NAMES.index("candidate_cqi")
_REPORTED_CQI_COLUMN: int = FEATURE_NAMES.index("reported_cqi")


def decision_group(rank_offset: np.ndarray | int, cqi_backoff: np.ndarray | int) -> np.ndarray:
    """Group index of candidates (see the module doc), int64, broadcast shape.

    Args:
        rank_offset: ``r − RI`` (clipped to −1 .. 1).
        cqi_backoff: ``CQI_reported − c`` (used at ``r = RI`` only; clipped to 0 .. 2).
    """
    d = np.clip(np.asarray(rank_offset, dtype=np.int64), -1, 1)
    b = np.clip(np.asarray(cqi_backoff, dtype=np.int64), 0, 2)
    return np.where(d == 0, 1 + b, np.where(d < 0, 0, N_GROUPS - 1))


def candidate_group(features: np.ndarray) -> np.ndarray:
    """:func:`decision_group` of candidates ``features`` float [M, 12]: int64 [M] (the features
    hold rank / 4 and CQI / 15)."""
    d = np.rint((features[:, _RANK_COLUMN] - features[:, _RI_COLUMN]) * MAX_RANK).astype(np.int64)
    b = np.rint((features[:, _REPORTED_CQI_COLUMN] - features[:, _CQI_COLUMN]) * MAX_CQI).astype(np.int64)
    return decision_group(d, b)


def label_index(bler: np.ndarray) -> np.ndarray:
    """Index ``k`` of the label nearest to each BLER value: int64 [M] in 0 .. 10."""
    return np.clip(np.rint(np.asarray(bler, dtype=np.float64) / BLER_STEP), 0, N_LABELS - 1).astype(np.int64)


class DecisionCalibration:
    """Per-cell map ``(decision group, model label) -> mean true BLER`` (see the module doc).

    Args:
        prior_weight: ``w₀ > 0``, pseudo-samples at the label value.
        discount: ``γ`` in (0, 1].
    """

    def __init__(self, prior_weight: float = DEFAULT_PRIOR_WEIGHT, discount: float = DEFAULT_DISCOUNT) -> None:
        if not (np.isfinite(prior_weight) and prior_weight > 0.0):
            raise ValueError(f"prior_weight must be > 0, got {prior_weight!r}")
        if not (np.isfinite(discount) and 0.0 < discount <= 1.0):
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        self.prior_weight = float(prior_weight)
        self.discount = float(discount)
        self._sum = np.tile(BLER_LABELS * self.prior_weight, (N_GROUPS, 1))  # [5, 11]
        self._weight = np.full((N_GROUPS, N_LABELS), self.prior_weight)  # [5, 11]
        self._table = self._sum / self._weight

    @property
    def table(self) -> np.ndarray:
        """float64 [5, 11]: calibrated BLER per (decision group, label index); a copy."""
        return self._table.copy()

    def apply(self, features: np.ndarray, bler: np.ndarray) -> np.ndarray:
        """Calibrated BLER, float64 [M], of model labels ``bler`` [M] for candidates
        ``features`` [M, 12]."""
        return self._table[candidate_group(features), label_index(bler)]

    def adjust(self, rank_offset: np.ndarray, cqi_backoff: np.ndarray, bler: np.ndarray) -> np.ndarray:
        """Calibrated BLER of model labels ``bler`` for candidates ``rank_offset = r − RI`` and
        ``cqi_backoff = CQI_reported − c`` (int, broadcast with ``bler``): the decision
        search's ``adjust`` (:func:`lighttune_core.linkadapt.ri_cqi_tune`)."""
        return self._table[decision_group(rank_offset, cqi_backoff), label_index(bler)]

    def update(self, features: np.ndarray, bler: np.ndarray, y: np.ndarray) -> None:
        """Add outcomes: the model's labels ``bler`` [S] for the applied decisions'
        ``features`` [S, 12] and their true BLERs ``y`` [S].

        A bin that receives ``m`` samples in one call is discounted by ``γ^m`` first (the
        samples of one period count as simultaneous).
        """
        y = np.asarray(y, dtype=np.float64)
        if y.size == 0:
            return
        if not (np.isfinite(y).all() and (y >= 0.0).all() and (y <= 1.0).all()):
            raise ValueError("true BLERs must be in [0, 1]")
        flat = candidate_group(features) * N_LABELS + label_index(bler)
        size = N_GROUPS * N_LABELS
        count = np.bincount(flat, minlength=size).reshape(N_GROUPS, N_LABELS)
        total = np.bincount(flat, weights=y, minlength=size).reshape(N_GROUPS, N_LABELS)
        decay = self.discount ** count
        self._sum = self._sum * decay + total
        self._weight = self._weight * decay + count
        self._table = self._sum / self._weight

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (lists of floats)."""
        return {
            "version": STATE_VERSION,
            "prior_weight": self.prior_weight,
            "discount": self.discount,
            "sum": self._sum.tolist(),
            "weight": self._weight.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "DecisionCalibration":
        """Inverse of :meth:`state_dict`. A version-1 state (no ``version`` key: one row per rank
        offset −1, 0, +1, saved before the back-off groups) is migrated: each group starts from
        its rank offset's row, so a restart after the upgrade keeps what the cell learnt.

        Raises:
            ValueError: missing keys, wrong shapes, non-finite or negative values.
        """
        try:
            cal = cls(float(state["prior_weight"]), float(state["discount"]))
            total = np.asarray(state["sum"], dtype=np.float64)
            weight = np.asarray(state["weight"], dtype=np.float64)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"calibration state malformed: {exc!r}") from exc
        version = state.get("version", 1)
        readable = {1: len(set(_V1_GROUP_ROWS)), STATE_VERSION: N_GROUPS}
        rows = readable.get(version) if type(version) is int else None
        if rows is None:
            raise ValueError(f"calibration state version {version!r} is not readable (1 or {STATE_VERSION})")
        shape = (rows, N_LABELS)
        if total.shape != shape or weight.shape != shape:
            raise ValueError(f"calibration state (version {version}) must hold two {shape} arrays")
        if not (np.isfinite(total).all() and np.isfinite(weight).all()) or (weight <= 0).any() or (total < 0).any():
            raise ValueError("calibration state has non-finite, negative or zero-weight bins")
        if (total > weight * (1.0 + 1e-9)).any():
            raise ValueError("calibration state has a mean BLER above 1")
        if version == 1:
            total, weight = total[list(_V1_GROUP_ROWS)], weight[list(_V1_GROUP_ROWS)]
        cal._sum, cal._weight = total, weight
        cal._table = total / weight
        return cal
