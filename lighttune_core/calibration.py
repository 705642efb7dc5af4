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

:class:`RankChangeCheck` (below) covers what a BLER map cannot: whether RI-CQI-Tune's rank
changes deliver more bits than the best same-rank candidate, measured as an A/B test per cell.
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

    def evidence(self, rank_offset: np.ndarray, bler: np.ndarray) -> np.ndarray:
        """Outcome weight ``W_dk`` of the bins of model labels ``bler`` for candidates
        ``rank_offset = r − RI`` (clipped to ±1), float64 of their shape: the discounted
        number of (transmission-weighted) applied decisions behind each bin's mean, 0 for a
        bin that only has its prior."""
        return self._weight[np.clip(rank_offset, -1, 1) + 1, label_index(bler)]

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


CHECK_STATE_VERSION: int = 1
"""Version of :meth:`RankChangeCheck.state_dict`."""
DEFAULT_CHECK_DISCOUNT: float = 0.995
"""``γ_c``: discount per new sample of the same (rank offset, arm) (memory ≈ 200 samples)."""
DEFAULT_CHECK_MIN_SAMPLES: float = 20.0
"""``n_min``: (discounted) samples each arm needs before the check takes a side."""
DEFAULT_CHECK_PROBE_EVERY: int = 5
"""``K``: one in ``K`` of a UE's wanted rank changes tries the arm the check rejects."""
_CHANGE, _STAY = 0, 1


class RankChangeCheck:
    """A/B check of RI-CQI-Tune's rank changes against the best same-rank decision, in
    delivered bits (per cell, decision-time).

    The BLER calibration above corrects the labels of the decisions that were applied; a
    rank change is chosen where the *same-rank* candidates look worse, and those are then
    not applied, so their labels are not corrected. Measured on the ``sionna`` DU (1 dB loop,
    offline-v4, seed 1, 32 UEs × 5 s; TDL-B200 50 Hz medium correlation, 28–40 dB): the
    rank-downs RI-CQI-Tune chose were predicted, and had, BLER 0.000, yet delivered 0.79× the
    bits CQI-Tune delivered to the same UEs in the same periods (TDL-B50 30 Hz medium: 0.52×);
    the stay candidates' labels were too pessimistic and nothing corrected them.

    The check measures what the BLER does not: for each rank offset ``d ∈ {−1, +1}`` it keeps
    two arms, **change** (apply the search's choice at ``RI + d``) and **stay** (apply the
    best candidate at ``RI``, :func:`~lighttune_core.linkadapt.ri_cqi_tune` with
    ``change_rank=False``). A sample is a UE whose search wanted a rank change; its outcome
    is the next period's served bits ``B`` over ``n`` first transmissions, normalised by
    what the stay candidate promised, ``J_stay = U_stay · (1 − p_stay)`` bits per RE:

        R_{d,a} = Σ_i γ_c^(age_i) B_i / Σ_i γ_c^(age_i) n_i J_stay,i          (a ∈ {change, stay})

    (a ratio of discounted sums; the normalisation takes out the UEs' different SNRs, so
    the two arms compare on any mix of UEs). Rule for a UE's ``c``-th wanted change at ``d``,
    with ``s = c + u`` (``u`` the UE's id, so that the UEs of one period fall on both arms):

    * either arm with fewer than ``n_min`` (discounted) samples: change iff ``s`` is even;
    * ``R_{d,change} > R_{d,stay}``: change, except ``s ≡ K − 1 (mod K)`` (stay, probed);
    * otherwise: stay, except ``s ≡ K − 1 (mod K)`` (change, probed).

    Both arms are drawn from the same UEs and periods (the wanted changes), by a rule that
    does not look at the channel, so the comparison is an A/B test; the probes keep the
    rejected arm measured as the channel changes. Applying the stay arm also gives the
    same-rank labels the outcomes the BLER calibration lacked.

    Measured on Table 6 (offline-v4, seed 1, 32 UEs × 5 s, docs/results.md): RI-CQI-Tune on
    ``sionna`` −0.28 % / −2.39 % (medium / high SNR) without the check, +0.22 % / +0.18 % with
    it (worst cell −11.85 % → −1.57 %); on srsRAN +0.59 % / +0.94 % → +0.66 % / +0.95 %.

    Args:
        discount: ``γ_c`` in (0, 1].
        min_samples: ``n_min > 0``.
        probe_every: ``K >= 2``.
    """

    def __init__(
        self,
        discount: float = DEFAULT_CHECK_DISCOUNT,
        min_samples: float = DEFAULT_CHECK_MIN_SAMPLES,
        probe_every: int = DEFAULT_CHECK_PROBE_EVERY,
    ) -> None:
        if not (np.isfinite(discount) and 0.0 < discount <= 1.0):
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        if not (np.isfinite(min_samples) and min_samples > 0.0):
            raise ValueError(f"min_samples must be > 0, got {min_samples!r}")
        if isinstance(probe_every, bool) or int(probe_every) != probe_every or probe_every < 2:
            raise ValueError(f"probe_every must be an integer >= 2, got {probe_every!r}")
        self.discount = float(discount)
        self.min_samples = float(min_samples)
        self.probe_every = int(probe_every)
        self._bits = np.zeros((2, 2))  # [offset −1/+1, arm change/stay]: discounted Σ B
        self._promised = np.zeros((2, 2))  # discounted Σ n J_stay
        self._count = np.zeros((2, 2))  # discounted number of samples

    @property
    def ratio(self) -> np.ndarray:
        """float64 [2, 2]: ``R_{d,a}`` for ``d`` = −1, +1 (rows) and arms change, stay
        (columns); NaN where nothing was promised yet. Read-only copy."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._promised > 0, self._bits / np.where(self._promised > 0, self._promised, 1.0), np.nan)

    @property
    def count(self) -> np.ndarray:
        """float64 [2, 2]: discounted samples per (rank offset −1/+1, arm change/stay)."""
        return self._count.copy()

    def choose(self, offset: np.ndarray, counter: np.ndarray, ue_id: np.ndarray | None = None) -> np.ndarray:
        """Whether to apply each wanted rank change (see the class doc).

        Args:
            offset: int [M], the wanted rank offsets ``r − RI`` (±1; larger ones count as ±1).
            counter: int [M], each UE's number of earlier wanted changes (``c``).
            ue_id: int [M], the UEs' ids (``u``, staggers the UEs); None: 0 for all.

        Returns:
            bool [M]: True = change (apply the search's choice), False = stay.
        """
        row = (np.asarray(offset) > 0).astype(np.int64)
        c = np.asarray(counter, dtype=np.int64)
        if ue_id is not None:
            c = c + np.asarray(ue_id, dtype=np.int64)
        decided = (self._count >= self.min_samples).all(axis=1)  # [2]
        r = self.ratio
        favour_change = decided & (r[:, _CHANGE] > r[:, _STAY])  # [2]
        probe = c % self.probe_every == self.probe_every - 1
        return np.where(decided[row], favour_change[row] != probe, c % 2 == 0)

    def update(self, offset: np.ndarray, changed: np.ndarray, bits: np.ndarray, promised: np.ndarray) -> None:
        """Add outcomes: per sample its wanted offset [S] (±1), whether the change was
        applied [S] (bool), the served bits ``B`` [S] (>= 0) and ``n · J_stay`` [S] (> 0).
        An arm receiving ``m`` samples in one call is discounted by ``γ_c^m`` first."""
        bits = np.asarray(bits, dtype=np.float64)
        promised = np.asarray(promised, dtype=np.float64)
        if bits.size == 0:
            return
        if not (np.isfinite(bits).all() and (bits >= 0).all() and np.isfinite(promised).all() and (promised > 0).all()):
            raise ValueError("served bits must be >= 0 and promised bits > 0, all finite")
        flat = (np.asarray(offset) > 0).astype(np.int64) * 2 + np.where(np.asarray(changed, dtype=bool), _CHANGE, _STAY)
        count = np.bincount(flat, minlength=4).reshape(2, 2).astype(np.float64)
        decay = self.discount ** count
        self._bits = self._bits * decay + np.bincount(flat, weights=bits, minlength=4).reshape(2, 2)
        self._promised = self._promised * decay + np.bincount(flat, weights=promised, minlength=4).reshape(2, 2)
        self._count = self._count * decay + count

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (``version`` 1)."""
        return {
            "version": CHECK_STATE_VERSION,
            "discount": self.discount,
            "min_samples": self.min_samples,
            "probe_every": self.probe_every,
            "bits": self._bits.tolist(),
            "promised": self._promised.tolist(),
            "count": self._count.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "RankChangeCheck":
        """Inverse of :meth:`state_dict`.

        Raises:
            ValueError: unknown version, missing keys, wrong shapes, non-finite or negative
                values.
        """
        try:
            version = int(state["version"])
            check = cls(float(state["discount"]), float(state["min_samples"]), state["probe_every"])
            arrays = [np.asarray(state[k], dtype=np.float64) for k in ("bits", "promised", "count")]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"rank-change check state malformed: {exc!r}") from exc
        if version != CHECK_STATE_VERSION:
            raise ValueError(f"rank-change check state version {version} is not known ({CHECK_STATE_VERSION})")
        if any(a.shape != (2, 2) for a in arrays):
            raise ValueError("rank-change check state must hold (2, 2) arrays")
        if any(not np.isfinite(a).all() or (a < 0).any() for a in arrays):
            raise ValueError("rank-change check state has non-finite or negative values")
        check._bits, check._promised, check._count = arrays
        return check
