"""In-process experiments: the offline dataset, OLLA vs CQI-Tune vs RI-CQI-Tune, Table 6.

Common random numbers
---------------------
One channel source (live :class:`~e2sim.channel.LinkChannel` or a
:class:`~e2sim.traces.TraceReplay`) is stepped once per slot and the same
:class:`~e2sim.channel.SlotSINR` goes to three DUs (one per scheme) built from the same
scenario and seed, with the same per-slot HARQ uniforms; the CSI report of a CSI-RS slot
is measured once (it depends only on the channel and the seeded estimation error) and
shared by the three DUs. The schemes differ only in the
(RI, CQI) decisions applied, so throughput differences are paired, UE by UE.

Schemes
-------
* ``olla``: the DU alone (table RI/CQI + OLLA). A :class:`~lighttune_core.cell.CellTuner` in
  mode ``off`` still predicts the BLER of the DU's decisions and fine-tunes its own model
  copy, so the BLER-prediction error of the baseline decisions is measured too.
* ``cqi``: CQI-Tune, ``ri_cqi``: RI-CQI-Tune, each with its own copy of the model
  fine-tuned by LightTune, decisions sent through :meth:`e2sim.du.DU.apply_control`.
* Each scheme's decisions are also predicted by one **frozen** copy of the model (never
  updated): the prediction error "without fine-tuning".
* ``cqi_perfect``, ``ri_cqi_perfect`` (optional): the same policies with a **perfect** BLER
  predictor (:mod:`e2sim.headroom`): at the end of each CSI period the next period's slots
  are drawn ahead (the same stream, in the same order) and replayed once per candidate in
  a copy of the scheme's DU; the policy decides on the replayed true BLERs. Their
  :class:`HeadroomLog` holds the replay's forecast of the chosen decisions, what the DU
  then delivered, and the best-candidate oracle (max replayed bits per UE and period).
* References (optional, Table 6's ``--references``): ``cqi_backoff``, no model: every UE
  keeps its reported rank and is sent one CQI below its reported CQI each period
  (:func:`fixed_backoff`), what a constant rule gets; ``ri_cqi_hindsight``, RI-CQI-Tune with
  a *hindsight* predictor: at the end of each period the candidates are replayed
  (:func:`~e2sim.headroom.replay_candidates`, from the DU's current state) on the slots and
  HARQ draws of the period that just ended, and the policy decides on those true BLERs. It
  knows the past period perfectly but not the next one, so the gap between it and the
  perfect scheme is the part of the headroom that needs the future channel;
  ``ri_cqi_channel``, RI-CQI-Tune with a *channel-knowing* predictor: the next period's
  candidates replayed like the perfect scheme's, but with HARQ uniforms drawn independently
  of the DU's (their own seeded stream), answering each candidate's expected BLER, the mean
  block error probability of its transmissions (:mod:`e2sim.headroom`, "Channel-knowing
  predictor"). It knows the next period's channel but not its HARQ draws: the most any
  predictor can know.

Statistics
----------
Throughput of a UE = its ACKed bits / run time. The gain of a scheme over OLLA is
``mean_u(T_s,u − T_o,u) / mean_u(T_o,u)``; its 95 % confidence interval is
``± t_{0.975, U−1} · sd_u(T_s,u − T_o,u) / sqrt(U) / mean_u(T_o,u)`` — over UEs, which have
independent channels, treating the OLLA mean as fixed. UEs share the cell's model, so
they are not strictly independent under fine-tuning; the interval is a guide, not exact.
BLER = ΣNACK / Σ(ACK + NACK) over the run. Prediction error = mean over (UE, period)
samples with a defined BLER of ``|ŷ − y|``.

Offline dataset (``e2sim dataset``)
-----------------------------------
The paper's training scenario (TDL-A30, 10 Hz, 0–12 dB, low correlation, CSI-RS 80 ms).
Sample = ``build_features(reports_k, rank, cqi)`` of the decision applied in period
``k + 1`` and ``y = bler_label`` of that period's HARQ counts (periods without a
transmission are dropped). So the model also sees decisions other than the baseline, in
a fraction ``explore_fraction`` (default 0.5) of (UE, period) pairs the decision is
exploratory: rank ``r = r0 + d``, ``d`` uniform in {−1, 0, +1} (clipped to 1 .. max rank) and
CQI ``max(1, c_r − k)``, ``k`` uniform in 0 .. ``max_backoff`` (default 4), ``c_r`` RI-CQI-Tune's
anchor CQI of rank ``r`` (:func:`~lighttune_core.linkadapt.rank_cqi_anchor`, ``c0`` at
``r0``), so the data covers the candidates the policies ask about; seeded; the other
pairs keep the DU's table choice. UEs whose table CQI is 0 are never explored.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import multiprocessing
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import stats

from e2sim.channel import LinkChannel, Scenario, SlotSINR
from e2sim.channel.bler import DEFAULT_CURVES, LEGACY_CURVES, check_curves
from e2sim.channel.scenario import CORRELATION_LEVELS, SNR_RANGES_DB, TRAINING_SCENARIO
from e2sim.du import DU, DuRandomness
from e2sim.headroom import CandidateReplay, PerfectPredictor, policy_candidates, replay_candidates
from e2sim.traces import TraceReplay
from lighttune_core.cell import CellTuner, Decisions, LearnOutcome, TuneMode
from lighttune_core.linkadapt import rank_cqi_anchor
from lighttune_core.features import FEATURE_NAMES, N_FEATURES, bler_label, build_features
from lighttune_core.linkadapt.presets import DEFAULT_PRESET, get_preset
from lighttune_core.report import LinkReports
from lighttune_core.tuner import LightTuneModel

DATASET_VERSION: int = 1
"""Version of the dataset generator (stored in the dataset's ``meta``)."""
PAPER_TRAINING_SAMPLES: int = 83_200
DEFAULT_EXPLORE_FRACTION: float = 0.5
DEFAULT_MAX_BACKOFF: int = 4
SCHEMES: tuple[str, ...] = ("olla", "cqi", "ri_cqi")
PERFECT_SCHEMES: tuple[str, ...] = ("cqi_perfect", "ri_cqi_perfect")
"""The policies with the perfect (replayed) BLER predictor of :mod:`e2sim.headroom`."""
HINDSIGHT_SCHEMES: tuple[str, ...] = ("ri_cqi_hindsight",)
"""RI-CQI-Tune with the hindsight predictor: each candidate replayed
(:func:`~e2sim.headroom.replay_candidates`) on the period that just ended (module docstring,
"References")."""
RULE_SCHEMES: tuple[str, ...] = ("cqi_backoff",)
"""Decisions by a fixed rule, no model: ``cqi_backoff`` sends the reported rank and one CQI
below the reported CQI (:func:`fixed_backoff`)."""
CHANNEL_SCHEMES: tuple[str, ...] = ("ri_cqi_channel",)
"""RI-CQI-Tune with the channel-knowing predictor: the next period's candidates replayed on
independent HARQ draws, answered with their expected BLER (module docstring, "References")."""
REFERENCE_SCHEMES: tuple[str, ...] = RULE_SCHEMES + HINDSIGHT_SCHEMES + CHANNEL_SCHEMES
"""What Table 6's ``--references`` adds: a rule without a model, a predictor that knows the
past period perfectly and one that knows the next period's channel but not its draws."""
CHANNEL_REPLAY_STREAM: int = 0x43484E
"""Sub-stream id, within the scenario seed, of the channel-knowing predictor's HARQ uniforms
(independent of the DU's)."""
ALL_SCHEMES: tuple[str, ...] = SCHEMES + PERFECT_SCHEMES + REFERENCE_SCHEMES
SCHEME_MODES: dict[str, TuneMode] = {
    "olla": TuneMode.OFF, "cqi": TuneMode.CQI, "ri_cqi": TuneMode.RI_CQI,
    "cqi_perfect": TuneMode.CQI, "ri_cqi_perfect": TuneMode.RI_CQI,
    "cqi_backoff": TuneMode.CQI, "ri_cqi_hindsight": TuneMode.RI_CQI, "ri_cqi_channel": TuneMode.RI_CQI,
}
SCHEME_TITLES: dict[str, str] = {
    "olla": "OLLA", "cqi": "CQI-Tune", "ri_cqi": "RI-CQI-Tune",
    "cqi_perfect": "CQI-Tune, perfect predictor", "ri_cqi_perfect": "RI-CQI-Tune, perfect predictor",
    "cqi_backoff": "fixed back-off (1 CQI)", "ri_cqi_hindsight": "RI-CQI-Tune, hindsight predictor",
    "ri_cqi_channel": "RI-CQI-Tune, channel-knowing predictor",
}
FIXED_BACKOFF_CQI: int = 1
"""CQI steps the ``cqi_backoff`` rule backs off below the reported CQI."""
_NOTHING_LEARNED = LearnOutcome(0, 0, np.zeros(0), np.zeros(0, dtype=np.int64))
"""What a rule scheme learns in a period (it has no model)."""


def fixed_backoff(reports: LinkReports, steps: int = FIXED_BACKOFF_CQI) -> Decisions:
    """The no-model reference rule: every UE keeps its reported rank and gets CQI
    ``max(c0 − steps, min(c0, 1))`` (never below 1, and 0 stays 0: out of range).

    Args:
        reports: the cell's reports, ``N`` UEs.
        steps: CQI steps below the reported CQI ``c0``, >= 0.

    Returns:
        :class:`~lighttune_core.cell.Decisions` with ``rank`` = RI, the backed-off ``cqi``
        (int64 [N]), ``predicted_bler`` NaN (nothing is predicted) and ``control`` True.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    c0 = np.asarray(reports.cqi, dtype=np.int64)
    cqi = np.maximum(c0 - steps, np.minimum(c0, 1))
    return Decisions(np.asarray(reports.ue_id), np.asarray(reports.ri, dtype=np.int64).copy(), cqi,
                     np.full(c0.shape, np.nan), True)


class ChannelSource(Protocol):
    """What the experiments need of a channel: a live ``LinkChannel`` or a ``TraceReplay``."""

    scenario: Scenario
    subband_n_rb: np.ndarray

    def step(self) -> SlotSINR: ...


def _progress(iterable: Any, enabled: bool, desc: str, total: int | None = None, unit: str = "slot") -> Any:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, mininterval=1.0)


# ---------------------------------------------------------------------------- dataset
def generate_dataset(
    scenario: Scenario = TRAINING_SCENARIO,
    n_samples: int = PAPER_TRAINING_SAMPLES,
    explore_fraction: float = DEFAULT_EXPLORE_FRACTION,
    max_backoff: int = DEFAULT_MAX_BACKOFF,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Offline training samples from one cell (see the module docstring).

    Runs the scenario until ``n_samples`` samples with a defined BLER exist (the seed is
    ``scenario.seed``; exploration draws use the sub-stream ``(seed, 21)``).

    Returns:
        ``(features float64 [n_samples, 12], labels float64 [n_samples])``.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if not 0.0 <= explore_fraction <= 1.0:
        raise ValueError(f"explore_fraction must be in [0, 1], got {explore_fraction}")
    if max_backoff < 0:
        raise ValueError(f"max_backoff must be >= 0, got {max_backoff}")
    channel = LinkChannel(scenario)
    du = DU(scenario, subband_n_rb=channel.subband_n_rb)
    rng = np.random.default_rng([scenario.seed, 21])
    n = scenario.n_ue
    feats: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    have = 0
    pending_x = np.zeros((n, N_FEATURES))
    has_pending = np.zeros(n, dtype=bool)
    per_period = scenario.csi_period_slots
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_samples, desc=f"dataset {scenario.profile}", unit="sample", mininterval=1.0)
    while have < n_samples:
        out = None
        for _ in range(per_period + 1):
            out = du.step(channel.step())
            if out is not None:
                break
        if out is None:
            raise RuntimeError("the DU closed no CSI period; check the scenario")
        rep = out.reports
        label, valid = bler_label(rep.n_ack, rep.n_nack)
        use = valid & has_pending
        if use.any():
            feats.append(pending_x[use])
            labels.append(label[use])
            have += int(use.sum())
            if bar is not None:  # the last period may bring more samples than are kept
                bar.update(min(int(use.sum()), n_samples - bar.n))
        explore = (rng.random(n) < explore_fraction) & (rep.cqi > 0)
        d_rank = rng.integers(-1, 2, size=n)
        backoff = rng.integers(0, max_backoff + 1, size=n)
        rank = np.where(explore, np.clip(rep.ri + d_rank, 1, scenario.max_rank), rep.ri)
        # the CQI window of each rank starts at RI-CQI-Tune's anchor for that rank
        anchor = rank_cqi_anchor(rep, rank[:, None])[:, 0]
        cqi = np.where(explore, np.maximum(anchor - backoff, 1), rep.cqi)
        if explore.any():
            du.apply_control(rep.ue_id[explore], rank[explore], cqi[explore])
        pending_x = build_features(rep, rank, cqi)
        has_pending = np.ones(n, dtype=bool)
    if bar is not None:
        bar.close()
    return np.concatenate(feats)[:n_samples], np.concatenate(labels)[:n_samples]


def _dataset_worker(args: tuple[dict[str, Any], int, float, int]) -> tuple[np.ndarray, np.ndarray]:
    scenario_dict, n_samples, explore_fraction, max_backoff = args
    return generate_dataset(Scenario.from_dict(scenario_dict), n_samples, explore_fraction, max_backoff)


def generate_dataset_parallel(
    scenario: Scenario,
    n_samples: int,
    workers: int = 1,
    explore_fraction: float = DEFAULT_EXPLORE_FRACTION,
    max_backoff: int = DEFAULT_MAX_BACKOFF,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`generate_dataset` split over ``workers`` processes.

    Worker ``w`` simulates its own cell with seed ``scenario.seed + w`` and produces an equal
    share of the samples; the result is the concatenation in worker order (deterministic).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        return generate_dataset(scenario, n_samples, explore_fraction, max_backoff, progress)
    shares = [n_samples // workers + (1 if w < n_samples % workers else 0) for w in range(workers)]
    jobs = [
        ({**scenario.to_dict(), "seed": scenario.seed + w}, s, explore_fraction, max_backoff)
        for w, s in enumerate(shares)
        if s > 0
    ]
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        parts = list(_progress(pool.imap(_dataset_worker, jobs), progress, "dataset workers", len(jobs), "worker"))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


DatasetCondition = tuple[str, str]
"""``(correlation, snr_range)``: an antenna correlation of :data:`CORRELATION_LEVELS` and a
paper SNR range name of :data:`~e2sim.channel.scenario.SNR_RANGES_DB` (``low`` 0–12 dB,
``medium`` 16–24 dB, ``high`` 28–40 dB)."""

CONDITION_GRID: tuple[DatasetCondition, ...] = tuple(
    (corr, snr) for corr in CORRELATION_LEVELS for snr in ("low", "medium", "high")
)
"""Every antenna correlation × every paper SNR range (9 conditions): ``--conditions grid``."""


def parse_condition(spec: str) -> DatasetCondition:
    """``"medium:high"`` -> ``("medium", "high")`` (correlation, SNR range name).

    Raises:
        ValueError: naming the spec and the accepted values.
    """
    corr, sep, snr = spec.partition(":")
    if not sep or corr not in CORRELATION_LEVELS or snr not in SNR_RANGES_DB:
        raise ValueError(
            f"condition {spec!r}: expected CORRELATION:SNR with CORRELATION one of {', '.join(CORRELATION_LEVELS)} "
            f"and SNR one of {', '.join(SNR_RANGES_DB)} (e.g. medium:high), or 'grid'"
        )
    return corr, snr


def generate_dataset_conditions(
    scenario: Scenario,
    conditions: Sequence[DatasetCondition],
    n_samples: int,
    workers: int = 1,
    explore_fraction: float = DEFAULT_EXPLORE_FRACTION,
    max_backoff: int = DEFAULT_MAX_BACKOFF,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One training set over several radio conditions of the same channel profile.

    Condition ``k`` (``(correlation, snr_range)``) is simulated as its own cell: ``scenario``
    with that correlation and SNR range and seed ``scenario.seed + k``, giving an equal
    share of the ``n_samples`` (the first ``n_samples mod K`` one more). The shares are
    concatenated in condition order (deterministic whatever ``workers``, the processes
    that simulate the conditions side by side).

    Why: a model trained at 0–12 dB and low correlation only (the paper's scenario)
    predicts BLER 0 for every candidate at 16–24 dB and medium correlation (measured:
    offline-v2 on a TDL-B50 medium-correlation set, 6,000 samples, 100 % zeros, mean
    |error| 0.125 against the constant's 0.151), because its absolute SINR and CQI inputs
    lie outside anything it saw.

    Returns:
        ``(features float64 [n_samples, 12], labels float64 [n_samples])``.
    """
    if not conditions:
        raise ValueError("conditions must not be empty")
    for corr, snr in conditions:
        parse_condition(f"{corr}:{snr}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    k = len(conditions)
    if n_samples < k:
        raise ValueError(f"n_samples {n_samples} is fewer than the {k} conditions")
    shares = [n_samples // k + (1 if i < n_samples % k else 0) for i in range(k)]
    jobs = [
        ({**scenario.to_dict(), "correlation": corr, "snr_db": list(SNR_RANGES_DB[snr]), "seed": scenario.seed + i},
         share, explore_fraction, max_backoff)
        for i, ((corr, snr), share) in enumerate(zip(conditions, shares))
    ]
    if workers == 1:
        parts = [_dataset_worker(j) for j in _progress(jobs, progress, "dataset conditions", k, "condition")]
    else:
        with multiprocessing.get_context("spawn").Pool(min(workers, k)) as pool:
            parts = list(_progress(pool.imap(_dataset_worker, jobs), progress, "dataset conditions", k, "condition"))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def write_dataset(path: str | Path, features: np.ndarray, labels: np.ndarray, meta: dict[str, Any]) -> Path:
    """Write the offline dataset ``.npz`` (``features``, ``labels``, ``meta`` JSON string)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_FEATURES or y.shape != (x.shape[0],):
        raise ValueError(f"features must be [N, {N_FEATURES}] and labels [N], got {x.shape}, {y.shape}")
    full_meta = {"generator_version": DATASET_VERSION, "feature_names": list(FEATURE_NAMES), **meta}
    out = Path(path)
    with out.open("wb") as fh:
        np.savez(fh, features=x, labels=y, meta=np.array(json.dumps(full_meta, sort_keys=True)))
    return out


# ---------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelSource:
    """The model an experiment starts from and a sentence saying where it came from."""

    model: LightTuneModel
    description: str


def load_model(path: str | Path) -> ModelSource:
    """A model file written by ``LightTuneModel.to_bytes`` (e.g. by ``lighttune-train``)."""
    p = Path(path)
    try:
        model = LightTuneModel.from_bytes(p.read_bytes())
    except OSError as exc:
        raise ValueError(f"--model {p}: cannot read ({exc.strerror})") from exc
    return ModelSource(model, f"offline model from file {p.name} ({model.n_updates} updates recorded)")


def packaged_model() -> ModelSource:
    """The offline model shipped in :mod:`lighttune_models`, the one the xApp loads for
    ``modelPath: "builtin"`` (:data:`lighttune_models.BUILTIN_MODEL_FILE`).

    Raises:
        ValueError: the package data is missing (a broken install); the message says to pass
            ``--model`` or ``--quick-samples``.
    """
    from lighttune_models import BUILTIN_MODEL_FILE, builtin_model_bytes

    try:
        data = builtin_model_bytes()
    except OSError as exc:
        raise ValueError(f"the packaged offline model is missing ({exc}); pass --model FILE or --quick-samples N") from exc
    return ModelSource(LightTuneModel.from_bytes(data), f"packaged offline model {BUILTIN_MODEL_FILE}")


def quick_model(
    n_samples: int = 4000,
    epochs: int = 20,
    seed: int = 0,
    n_ue: int = 32,
    progress: bool = False,
) -> ModelSource:
    """A quickly trained stand-in for the offline model, trained in-process.

    Generates ``n_samples`` samples of the paper's training scenario (seed ``seed``, with
    ``n_ue`` UEs) and trains the FF network offline with
    :func:`lighttune_core.training.train_offline` (layer by layer, Adam) for ``epochs``
    epochs per layer — far smaller than the paper's 83,200 samples x 22,000 epochs, as
    the description says.
    """
    from lighttune_core.training import train_offline

    scenario = Scenario.from_dict({**TRAINING_SCENARIO.to_dict(), "n_ue": n_ue, "seed": seed})
    x, y = generate_dataset(scenario, n_samples, progress=progress)
    trained = train_offline(x, y, epochs=epochs, seed=seed)
    model = LightTuneModel.from_params(
        trained.params, seed=seed, **trained.model_arguments()
    )
    last = trained.history[-1]
    return ModelSource(
        model,
        f"in-process quick model: {n_samples} samples of {TRAINING_SCENARIO.profile} "
        f"{TRAINING_SCENARIO.doppler_hz:g} Hz {TRAINING_SCENARIO.snr_db[0]:g}-"
        f"{TRAINING_SCENARIO.snr_db[1]:g} dB, {epochs} Adam epochs per layer (training-set "
        f"mean |error| {last.mean_abs_error:.3f}); not the paper's 83,200 samples x 22,000 epochs",
    )


# ---------------------------------------------------------------------------- experiment
@dataclass
class SchemeResult:
    """Outcome of one scheme in one experiment (``U`` UEs, ``P`` periods)."""

    scheme: str
    throughput_bps: np.ndarray  # float64 [U], ACKed bits / run time
    n_ack: int
    n_nack: int
    abs_error_tuned: list[np.ndarray] = field(default_factory=list)  # per period, samples
    abs_error_frozen: list[np.ndarray] = field(default_factory=list)
    true_bler: list[np.ndarray] = field(default_factory=list)  # per period, labels of the frozen samples
    n_updates: int = 0
    period_throughput_bps: list[float] = field(default_factory=list)  # cell mean per UE
    period_end_s: list[float] = field(default_factory=list)

    @property
    def bler(self) -> float:
        total = self.n_ack + self.n_nack
        return self.n_nack / total if total else float("nan")

    @staticmethod
    def _mean(parts: list[np.ndarray]) -> float:
        allv = np.concatenate(parts) if parts else np.zeros(0)
        return float(allv.mean()) if allv.size else float("nan")

    @property
    def error_tuned(self) -> float:
        return self._mean(self.abs_error_tuned)

    @property
    def error_frozen(self) -> float:
        return self._mean(self.abs_error_frozen)


@dataclass(frozen=True)
class Gain:
    """Throughput gain of a scheme over OLLA with its 95 % confidence interval (fractions)."""

    gain: float
    ci_low: float
    ci_high: float


def paired_gain(scheme_bps: np.ndarray, olla_bps: np.ndarray) -> Gain:
    """Gain ``mean(T_s − T_o) / mean(T_o)`` with the over-UE 95 % interval (module docstring)."""
    d = np.asarray(scheme_bps, float) - np.asarray(olla_bps, float)
    base = float(np.mean(olla_bps))
    if base <= 0:
        return Gain(float("nan"), float("nan"), float("nan"))
    g = float(d.mean()) / base
    if d.size < 2:
        return Gain(g, float("nan"), float("nan"))
    half = float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)) / base
    return Gain(g, g - half, g + half)


@dataclass
class HeadroomLog:
    """What the replay of a perfect-predictor scheme forecast and what its DU delivered.

    Per completed CSI period after the first (``P'`` of them), int64 [3, U] arrays of
    ``(n_ack, n_nack, served_bits)`` per UE: ``replayed`` for the decision the policy chose,
    as the replay gave it, and ``delivered`` as the DU then reported it. ``oracle_bits``
    int64 [U]: the first period's delivered bits plus, for every later completed period,
    the best replayed candidate's bits (``max`` over the UE's candidates).
    ``n_candidates``: candidates replayed per period (all UEs).
    """

    oracle_bits: np.ndarray
    replayed: list[np.ndarray] = field(default_factory=list)
    delivered: list[np.ndarray] = field(default_factory=list)
    n_candidates: list[int] = field(default_factory=list)

    @property
    def n_mismatched(self) -> int:
        """(UE, period) pairs whose delivered counts differ from the replay's forecast."""
        if not self.replayed:
            return 0
        return int((np.stack(self.replayed) != np.stack(self.delivered)).any(axis=1).sum())


@dataclass
class ExperimentResult:
    """All schemes of one experiment."""

    scenario: Scenario
    duration_s: float
    model_description: str
    source: str
    schemes: dict[str, SchemeResult]
    headroom: dict[str, HeadroomLog] = field(default_factory=dict)
    """One :class:`HeadroomLog` per perfect-predictor scheme run."""

    def gain(self, scheme: str) -> Gain:
        return paired_gain(self.schemes[scheme].throughput_bps, self.schemes["olla"].throughput_bps)

    def oracle_throughput_bps(self, scheme: str = "ri_cqi_perfect") -> np.ndarray:
        """float64 [U], the best-candidate oracle's bits / run time on ``scheme``'s trajectory."""
        return self.headroom[scheme].oracle_bits / self.duration_s

    def oracle_gain(self, scheme: str = "ri_cqi_perfect") -> Gain:
        """Gain of the best-candidate oracle over OLLA (paired over UEs)."""
        return paired_gain(self.oracle_throughput_bps(scheme), self.schemes["olla"].throughput_bps)

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per scheme (the CSV content)."""
        out = []
        for name, res in self.schemes.items():
            g = self.gain(name)
            tuned, frozen = res.error_tuned, res.error_frozen
            out.append(
                {
                    "scheme": SCHEME_TITLES[name],
                    "mean_throughput_mbps": float(res.throughput_bps.mean() / 1e6),
                    "bler": res.bler,
                    "gain_over_olla_pct": 100 * g.gain,
                    "gain_ci95_low_pct": 100 * g.ci_low,
                    "gain_ci95_high_pct": 100 * g.ci_high,
                    "pred_error_finetuned": tuned,
                    "pred_error_frozen": frozen,
                    "pred_error_reduction_pct": 100 * (1 - tuned / frozen) if frozen > 0 else float("nan"),
                    "finetune_updates": res.n_updates,
                }
            )
        return out


def run_experiment(
    scenario: Scenario,
    duration_s: float,
    model: ModelSource,
    source: ChannelSource | None = None,
    schemes: Sequence[str] = SCHEMES,
    progress: bool = False,
    learn: bool = True,
    calibrate: bool = True,
    check_rank_changes: bool = True,
    probe_du_choice: bool = True,
) -> ExperimentResult:
    """Run OLLA, CQI-Tune and RI-CQI-Tune on common random numbers (module docstring).

    Args:
        scenario: the cell (its seed drives the channel, CSI errors and HARQ draws).
        duration_s: simulated time, s (> 0).
        model: the starting model; every scheme fine-tunes its own copy.
        source: channel source (default a live ``LinkChannel(scenario)``); a trace must
            have been recorded for ``scenario`` and hold enough slots.
        schemes: subset of :data:`ALL_SCHEMES` (``olla``, ``cqi``, ``ri_cqi``,
            ``cqi_perfect``, ``ri_cqi_perfect`` and the references ``cqi_backoff``,
            ``ri_cqi_hindsight``, ``ri_cqi_channel``); ``olla`` is always run.
        progress: tqdm progress bar.
        learn: fine-tune each scheme's model copy online (False: every scheme decides with
            the frozen offline model, the "fine-tuning off" ablation).
        calibrate: the model schemes rank candidates through their cell's online
            calibration (:mod:`lighttune_core.calibration`); False: the model's raw labels
            (the ablation). The perfect schemes are never calibrated.
        check_rank_changes: RI-CQI-Tune's rank changes go through its cell's A/B check in
            delivered bits (:class:`lighttune_core.calibration.RankChangeCheck`); False: every
            rank change the search picks is applied (the ablation). Not for the perfect schemes.
        probe_du_choice: the model schemes apply the DU's own choice to some back-offs whose
            label their calibration has no evidence for (:class:`lighttune_core.cell.CellTuner`);
            False: the ablation. Only with ``calibrate``.
    """
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    unknown = sorted(set(schemes) - set(ALL_SCHEMES))
    if unknown:
        raise ValueError(f"unknown scheme(s) {unknown}; choose from {ALL_SCHEMES}")
    names = ["olla"] + [s for s in ALL_SCHEMES if s in schemes and s != "olla"]
    n_slots = int(round(duration_s / scenario.slot_s))
    if n_slots < 2 * scenario.csi_period_slots:
        raise ValueError(
            f"duration_s {duration_s:g} s is shorter than two CSI periods ({2 * scenario.csi_period_ms} ms)"
        )
    if source is None:
        channel: ChannelSource = LinkChannel(scenario)
        source_name = "live channel"
    else:
        channel = source
        # the DU's scheduler interval and preset do not shape the channel a source delivers
        if channel.scenario.du_free() != scenario.du_free():
            raise ValueError("the channel source was made for another scenario")
        if isinstance(channel, TraceReplay):
            if channel.n_slots < n_slots:
                raise ValueError(
                    f"trace holds {channel.n_slots} slots, the run needs {n_slots} "
                    f"({duration_s:g} s)"
                )
            source_name = f"trace {channel.path.name}"
        else:
            source_name = "given channel"
    n = scenario.n_ue
    dus = {s: DU(scenario, subband_n_rb=channel.subband_n_rb) for s in names}
    # replay-driven predictors: the perfect ones replay the next period, the hindsight ones
    # the period that just ended, the channel-knowing ones the next period on their own draws
    replayed = {s: PerfectPredictor(expected=s in CHANNEL_SCHEMES) for s in names
                if s in PERFECT_SCHEMES + HINDSIGHT_SCHEMES + CHANNEL_SCHEMES}
    blind_draws = np.random.default_rng([scenario.seed, CHANNEL_REPLAY_STREAM])
    # float64 search: the committed experiment tables were made with it (the xApp's float32
    # search of a block model changed no decision in benchmarks/decision_search.py)
    tuners = {
        s: CellTuner(replayed[s] if s in replayed else copy.deepcopy(model.model), SCHEME_MODES[s],
                     learn=learn and s not in replayed, du_preset=dus[s].preset, mcs_table=scenario.mcs_table,
                     search_dtype=np.float64, calibrate=calibrate and s not in replayed,
                     check_rank_changes=check_rank_changes and s not in replayed,
                     probe_du_choice=probe_du_choice and s not in replayed)
        for s in names
        if s not in RULE_SCHEMES
    }
    headroom = {s: HeadroomLog(np.zeros(n, dtype=np.int64)) for s in replayed if s in PERFECT_SCHEMES}
    forecast: dict[str, tuple[np.ndarray, np.ndarray] | None] = {s: None for s in headroom}
    frozen = copy.deepcopy(model.model)
    frozen_pred = {s: np.full(n, np.nan) for s in names}
    results = {s: SchemeResult(s, np.zeros(n), 0, 0) for s in names}
    bits = {s: np.zeros(n, dtype=np.int64) for s in names}
    harq = DuRandomness(scenario.seed, n, scenario.csi_snr_error_db)
    slot_s = scenario.slot_s
    # slots drawn ahead (for the perfect schemes' replays), in stream order: every draw of
    # the channel and of the HARQ uniforms happens in the same order as without look-ahead
    ahead: deque[tuple[SlotSINR, np.ndarray]] = deque()
    drawn = 0
    # the slots of the period that just ended (for the hindsight schemes' replays)
    history: deque[tuple[SlotSINR, np.ndarray]] = deque(maxlen=scenario.csi_period_slots)

    def replay_for(s: str, rep: LinkReports, window: list[tuple[SlotSINR, np.ndarray]]) -> CandidateReplay:
        """Replay scheme ``s``'s candidates on ``window`` and hand the result to its predictor."""
        cand = policy_candidates(rep, tuners[s])
        replay = replay_candidates(dus[s], *cand, [w[0] for w in window], [w[1] for w in window])
        replayed[s].set_period(rep, replay)
        return replay

    def draw_ahead(k: int) -> None:
        nonlocal drawn
        while len(ahead) < k and drawn < n_slots:
            ahead.append((channel.step(), harq.harq_uniforms()))
            drawn += 1

    def next_period() -> list[tuple[SlotSINR, np.ndarray]]:
        """The next CSI period's slots and HARQ uniforms (drawn ahead; fewer at the run's end)."""
        draw_ahead(scenario.csi_period_slots)
        return list(ahead)[: scenario.csi_period_slots]

    for _ in _progress(range(n_slots), progress, f"experiment {scenario.profile}", n_slots):
        draw_ahead(1)
        slot, u = ahead.popleft()
        history.append((slot, u))
        shared_csi = None
        for s in names:
            out = dus[s].step(slot, u, shared_csi)
            if slot.csi_instant:
                shared_csi = dus[s].last_csi_report
            if out is None:
                continue
            rep = out.reports
            res = results[s]
            bits[s] += rep.served_bits
            res.n_ack += int(rep.n_ack.sum())
            res.n_nack += int(rep.n_nack.sum())
            length_s = (out.end_slot - out.start_slot) * slot_s
            res.period_throughput_bps.append(float(rep.served_bits.mean() / length_s))
            res.period_end_s.append(out.end_slot * slot_s)
            label, valid = bler_label(rep.n_ack, rep.n_nack)
            had = np.isfinite(frozen_pred[s])
            res.abs_error_frozen.append(np.abs(frozen_pred[s] - label)[valid & had])
            res.true_bler.append(label[valid & had])
            if s in headroom:
                log = headroom[s]
                expected = forecast[s]
                if expected is None:  # the first period: nothing was decided, nothing replayed
                    log.oracle_bits += rep.served_bits
                else:
                    log.replayed.append(expected[0])
                    log.delivered.append(np.stack([rep.n_ack, rep.n_nack, rep.served_bits]))
                    log.oracle_bits += expected[1]
                replay = replay_for(s, rep, next_period())
                log.n_candidates.append(int(replay.ue.shape[0]))
            elif s in CHANNEL_SCHEMES:  # the next period's channel, HARQ draws of its own
                window = next_period()
                own_draws = blind_draws.random((len(window), n))  # the same stream as one call per slot
                replay_for(s, rep, [(w[0], u) for w, u in zip(window, own_draws)])
            elif s in replayed:  # hindsight: the candidates on the period that just ended
                replay_for(s, rep, list(history)[max(0, len(history) - (out.end_slot - out.start_slot)):])
            if s in RULE_SCHEMES:
                decisions, learned = fixed_backoff(rep), _NOTHING_LEARNED
            else:
                decisions, learned = tuners[s].step(rep)
            if s in headroom:
                forecast[s] = (np.stack(replay.outcome(decisions.rank, decisions.cqi)), replay.best_bits())
            res.abs_error_tuned.append(learned.abs_error)
            res.n_updates += learned.n_updates
            frozen_pred[s] = frozen.predict_many(build_features(rep, decisions.rank, decisions.cqi))
            if decisions.control:
                dus[s].apply_control(decisions.ue_id, decisions.rank, decisions.cqi)
    run_s = n_slots * slot_s
    for s in names:
        results[s].throughput_bps = bits[s] / run_s
    return ExperimentResult(scenario, run_s, model.description, source_name, results, headroom)


# ---------------------------------------------------------------------------- output
def write_csv(result: ExperimentResult, path: str | Path) -> Path:
    """Summary rows (one per scheme) as CSV."""
    rows = result.rows()
    out = Path(path)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out


def _pct(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:+.1f}%"


def markdown_report(result: ExperimentResult) -> str:
    """The experiment summary as a markdown document."""
    sc = result.scenario
    lines = [
        f"# Experiment: {sc.profile}, {sc.doppler_hz:g} Hz, {sc.correlation} correlation, "
        f"CSI-RS {sc.csi_period_ms} ms, SNR {sc.snr_db[0]:g}-{sc.snr_db[1]:g} dB",
        "",
        f"- UEs: {sc.n_ue}, simulated time: {result.duration_s:g} s, seed: {sc.seed}, channel: {result.source}",
        f"- Model: {result.model_description}",
        "- Gain CI: 95 % over UEs of the paired per-UE throughput difference, divided by the OLLA mean.",
        "",
        "| scheme | throughput (Mbit/s per UE) | BLER | gain over OLLA [95% CI] "
        "| pred. error fine-tuned | pred. error frozen | error reduction | updates |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result.rows():
        lines.append(
            f"| {row['scheme']} | {row['mean_throughput_mbps']:.2f} | {row['bler']:.3f} | "
            f"{_pct(row['gain_over_olla_pct'])} [{_pct(row['gain_ci95_low_pct'])}, "
            f"{_pct(row['gain_ci95_high_pct'])}] | {row['pred_error_finetuned']:.3f} | "
            f"{row['pred_error_frozen']:.3f} | {_pct(row['pred_error_reduction_pct'])} | "
            f"{row['finetune_updates']} |"
        )
    return "\n".join(lines) + "\n"


def plot_result(result: ExperimentResult, path: str | Path, window: int = 5) -> Path:
    """PNG: cell throughput per UE and prediction error (fine-tuned and frozen) over time.

    Both are moving averages over ``window`` CSI periods.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def smooth(v: np.ndarray) -> np.ndarray:
        k = max(1, min(window, v.size))
        return np.convolve(v, np.ones(k) / k, mode="valid") if v.size else v

    fig, (ax_t, ax_e) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for i, (name, res) in enumerate(result.schemes.items()):
        color = f"C{i}"  # one colour per scheme in both panels
        t = np.asarray(res.period_end_s)
        thr = smooth(np.asarray(res.period_throughput_bps) / 1e6)
        ax_t.plot(t[t.size - thr.size :], thr, color=color, label=SCHEME_TITLES[name])
        tuned = np.array([e.mean() if e.size else np.nan for e in res.abs_error_tuned])
        frozen = np.array([e.mean() if e.size else np.nan for e in res.abs_error_frozen])
        for series, style, tag in ((tuned, "-", "fine-tuned"), (frozen, ":", "frozen")):
            ok = np.isfinite(series)
            sm = smooth(series[ok])
            ax_e.plot(t[ok][t[ok].size - sm.size :], sm, style, color=color, label=f"{SCHEME_TITLES[name]} {tag}")
    ax_t.set_ylabel("throughput per UE (Mbit/s)")
    ax_t.legend()
    ax_e.set_ylabel("|predicted - true| BLER")
    ax_e.set_xlabel("time (s)")
    ax_e.legend(fontsize=7, ncol=2)
    sc = result.scenario
    fig.suptitle(f"{sc.profile} {sc.doppler_hz:g} Hz, {sc.correlation}, CSI {sc.csi_period_ms} ms, "
                 f"SNR {sc.snr_db[0]:g}-{sc.snr_db[1]:g} dB")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------- Table 6
@dataclass(frozen=True)
class Table6Row:
    """One scenario row of the paper's Table 6 with the paper's gains (percent)."""

    csi_period_ms: int
    profile: str
    doppler_hz: float
    correlation: str
    paper_medium: tuple[float, float]  # (CQI-Tune, RI-CQI-Tune) at 16-24 dB
    paper_high: tuple[float, float]  # (CQI-Tune, RI-CQI-Tune) at 28-40 dB


TABLE6_ROWS: tuple[Table6Row, ...] = (
    Table6Row(80, "TDL-A10", 20, "low", (5.3, 2.6), (1.3, 2.6)),
    Table6Row(80, "TDL-B50", 30, "low", (12.1, 8.1), (2.0, 1.1)),
    Table6Row(80, "TDL-B200", 50, "low", (7.0, 6.3), (0.7, 11.0)),
    Table6Row(80, "TDL-C200", 50, "low", (9.1, 8.5), (1.3, 10.9)),
    Table6Row(80, "TDL-B50", 30, "medium", (1.1, 1.7), (0.8, 0.9)),
    Table6Row(80, "TDL-B200", 50, "medium", (1.5, 6.2), (3.4, 15.5)),
    Table6Row(80, "TDL-B50", 30, "high", (0.6, 1.4), (0.1, 2.1)),
    Table6Row(80, "TDL-B200", 50, "high", (-0.6, 1.4), (0.7, 12.6)),
    Table6Row(40, "TDL-B50", 30, "medium", (0.3, 1.6), (0.4, 5.2)),
    Table6Row(40, "TDL-B50", 30, "high", (0.5, 2.0), (2.4, 4.2)),
    Table6Row(40, "TDL-C200", 50, "low", (3.0, 6.7), (0.7, 9.1)),
    Table6Row(40, "TDL-C200", 50, "high", (0.2, 5.2), (0.6, 11.5)),
    Table6Row(10, "TDL-B50", 30, "low", (2.0, 1.0), (0.2, 1.8)),
    Table6Row(10, "TDL-C200", 50, "low", (0.7, 0.1), (-0.2, 7.7)),
    Table6Row(10, "TDL-A10", 20, "medium", (0.6, 0.2), (0.2, 3.0)),
    Table6Row(10, "TDL-C200", 50, "medium", (0.0, 3.1), (2.2, 6.1)),
)
"""The 16 rows of the paper's Table 6 (seed document 000, TABLE 6)."""


def _table6_job(
    args: tuple[int, str, int, int, float, bytes, str, str, str, bool, bool, bool, bool, bool],
) -> dict[str, Any]:
    (row_index, snr_name, n_ue, seed, duration_s, model_bytes, description, du_preset, bler_curves, perfect,
     calibrate, references, check_rank_changes, probe_du_choice) = args
    row = TABLE6_ROWS[row_index]
    scenario = Scenario(
        profile=row.profile,
        doppler_hz=float(row.doppler_hz),
        correlation=row.correlation,
        snr_db=SNR_RANGES_DB[snr_name],
        csi_period_ms=row.csi_period_ms,
        n_ue=n_ue,
        seed=seed,
        du_preset=du_preset,
        bler_curves=bler_curves,
    )
    model = ModelSource(LightTuneModel.from_bytes(model_bytes), description)
    schemes = SCHEMES + (("ri_cqi_perfect",) if perfect else ()) + (REFERENCE_SCHEMES if references else ())
    res = run_experiment(scenario, duration_s, model, schemes=schemes, calibrate=calibrate,
                         check_rank_changes=check_rank_changes, probe_du_choice=probe_du_choice)
    out: dict[str, Any] = {"row": row_index, "snr": snr_name, "calibrate": calibrate,
                           "rank_check": check_rank_changes, "probe_du_choice": calibrate and probe_du_choice}
    for s in ("cqi", "ri_cqi") + (REFERENCE_SCHEMES if references else ()):
        g = res.gain(s)
        out[s] = (g.gain, g.ci_low, g.ci_high)
    if references:
        out["recovered_hindsight"] = _recovered(res.gain("ri_cqi").gain, res.gain("ri_cqi_hindsight").gain)
        out["recovered_channel"] = _recovered(res.gain("ri_cqi").gain, res.gain("ri_cqi_channel").gain)
    out["olla_bler"] = res.schemes["olla"].bler
    out["du_preset"] = du_preset
    out["bler_curves"] = bler_curves
    for s in res.schemes:
        out[f"{s}_mbps"] = float(res.schemes[s].throughput_bps.mean() / 1e6)
    if perfect:
        out.update(headroom_summary(res))
    return out


def headroom_summary(result: ExperimentResult) -> dict[str, Any]:
    """The perfect-predictor columns of one Table 6 cell (JSON-able).

    Keys: ``ri_cqi_perfect`` and ``oracle`` as (gain, ci_low, ci_high) fractions over OLLA
    (the oracle: best replayed candidate per UE and period on the perfect scheme's
    trajectory); ``recovered`` = ``g_real / g_perfect`` of RI-CQI-Tune (``cqi_recovered``
    of CQI-Tune against the same perfect RI-CQI-Tune gain), None unless ``g_perfect > 0``;
    ``replay_mismatches``, the (UE, period) pairs where the DU did not deliver what the
    replay forecast for the chosen decision (0 when the replay is exact);
    ``replayed_candidates_per_ue``, the mean candidates replayed per UE and period.
    """
    perfect = result.gain("ri_cqi_perfect")
    oracle = result.oracle_gain("ri_cqi_perfect")
    log = result.headroom["ri_cqi_perfect"]
    out: dict[str, Any] = {
        "ri_cqi_perfect": (perfect.gain, perfect.ci_low, perfect.ci_high),
        "oracle": (oracle.gain, oracle.ci_low, oracle.ci_high),
        "oracle_mbps": float(result.oracle_throughput_bps("ri_cqi_perfect").mean() / 1e6),
        "replay_mismatches": log.n_mismatched,
        "replayed_candidates_per_ue": (
            float(np.mean(log.n_candidates)) / result.scenario.n_ue if log.n_candidates else float("nan")
        ),
    }
    for s, key in (("ri_cqi", "recovered"), ("cqi", "cqi_recovered")):
        out[key] = _recovered(result.gain(s).gain, perfect.gain)
    return out


def _recovered(gain: float, reference_gain: float) -> float | None:
    """``gain / reference_gain``, the share of a reference's gain a scheme recovers; None
    unless the reference gain is positive and the share finite."""
    share = gain / reference_gain if reference_gain > 0 else None
    return share if share is None or math.isfinite(share) else None


def run_table6(
    model: ModelSource,
    n_ue: int = 32,
    duration_s: float = 5.0,
    seed: int = 1,
    workers: int = 2,
    rows: Sequence[int] | None = None,
    progress: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    du_preset: str = DEFAULT_PRESET,
    perfect: bool = False,
    snrs: Sequence[str] = ("medium", "high"),
    calibrate: bool = True,
    references: bool = False,
    bler_curves: str = DEFAULT_CURVES,
    check_rank_changes: bool = True,
    probe_du_choice: bool = True,
) -> list[dict[str, Any]]:
    """Run Table 6's rows at medium and high SNR, ``workers`` processes in parallel.

    ``perfect`` adds the perfect-predictor RI-CQI-Tune (:mod:`e2sim.headroom`) to every run
    and its columns (:func:`headroom_summary`) to every result; ``snrs`` selects the SNR
    ranges (``"medium"``, ``"high"``); ``calibrate`` False runs the model schemes on the
    model's raw labels, ``check_rank_changes`` False applies every rank change RI-CQI-Tune
    picks and ``probe_du_choice`` False never applies the DU's choice in place of a back-off
    (:func:`run_experiment`); ``references`` adds the fixed back-off
    rule and the hindsight-predictor RI-CQI-Tune (:data:`REFERENCE_SCHEMES`) and their gains
    (keys ``cqi_backoff``, ``ri_cqi_hindsight``, and ``recovered_hindsight`` = RI-CQI-Tune's
    gain / the hindsight gain, None unless that is positive) and the channel-knowing
    RI-CQI-Tune (``ri_cqi_channel``, ``recovered_channel``); ``bler_curves`` picks the link
    model's curve set (:data:`e2sim.channel.bler.CURVE_SETS`). The progress bar counts runs. Measured with
    ``perfect``: 8 runs (rows 0, 1, 5, 7) of 32 UEs x 4 s took 480 s on 2 workers.

    Cost (measured on a loaded 2-core machine, 32 UEs, both CSI-RS measurement and three DUs
    per slot): about 10 s of wall time per simulated second for TDL-B50 / 80 ms and 43 s for
    TDL-C200 / 10 ms; the 32 runs at the default 5 s take an estimated 30-40 min on 2 workers.

    Returns:
        One dict per (row, SNR range): ``row``, ``snr``, ``cqi`` and ``ri_cqi`` as
        (gain, ci_low, ci_high) fractions, ``olla_bler``, ``du_preset``, ``bler_curves``, ``<scheme>_mbps``
        (mean throughput per UE, Mbit/s), and with ``perfect`` the keys of
        :func:`headroom_summary`; ordered by row then SNR.
    """
    selected = list(range(len(TABLE6_ROWS))) if rows is None else list(rows)
    for r in selected:
        if not 0 <= r < len(TABLE6_ROWS):
            raise ValueError(f"Table 6 row {r} does not exist (0 .. {len(TABLE6_ROWS) - 1})")
    bad_snr = [x for x in snrs if x not in ("medium", "high")]
    if bad_snr or not snrs:
        raise ValueError(f"snrs must be a non-empty subset of ('medium', 'high'), got {list(snrs)}")
    get_preset(du_preset)
    check_curves(bler_curves)
    blob = model.model.to_bytes()
    jobs = [
        (r, snr, n_ue, seed, duration_s, blob, model.description, du_preset, bler_curves, perfect, calibrate,
         references, check_rank_changes, probe_du_choice)
        for r in selected
        for snr in ("medium", "high")
        if snr in snrs
    ]
    results: list[dict[str, Any]] = []
    if workers <= 1:
        it: Any = map(_table6_job, jobs)
        for res in _progress(it, progress, "table 6", len(jobs), "run"):
            results.append(res)
            if on_result is not None:
                on_result(res)
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for res in _progress(pool.imap_unordered(_table6_job, jobs), progress, "table 6", len(jobs), "run"):
                results.append(res)
                if on_result is not None:
                    on_result(res)
    order = {"medium": 0, "high": 1}
    return sorted(results, key=lambda d: (d["row"], order[d["snr"]]))


def _flag_note(results: Sequence[dict[str, Any]], key: str, on: str, off: str) -> str:
    """``on`` or ``off`` as the flag ``key`` of every run of ``results`` is set (runs made
    before the flag existed count as off), ``"mixed"`` otherwise."""
    flags = {bool(d.get(key, False)) for d in results}
    if flags == {True}:
        return on
    if flags == {False}:
        return off
    return "mixed"


def _calibration_note(results: Sequence[dict[str, Any]]) -> str:
    """The ``- Calibration: …``, ``- Rank-change check: …`` and ``- DU-choice probes: …`` lines
    of a table's runs: whether the model schemes ranked candidates through the per-cell online
    calibration, whether RI-CQI-Tune's rank changes went through the A/B check, and whether
    back-offs were probed with the DU's own choice (runs made before the probes: off)."""
    cal = _flag_note(results, "calibrate",
                     "on (per-cell online calibration of the model's labels per rank offset, lighttune_core.calibration)",
                     "off (the model's raw labels)")
    check = _flag_note(results, "rank_check",
                       "on (RI-CQI-Tune's rank changes A/B-checked against the best same-rank candidate in "
                       "delivered bits, lighttune_core.calibration.RankChangeCheck)",
                       "off (every rank change the search picks is applied)")
    probe = _flag_note(results, "probe_du_choice",
                       "on (one in four back-offs whose DU choice the calibration has no evidence for "
                       "applies that choice, lighttune_core.cell.CellTuner)",
                       "off")
    return f"- Calibration: {cal}\n- Rank-change check: {check}\n- DU-choice probes: {probe}"


def _link_note(results: Sequence[dict[str, Any]]) -> str:
    """``- DU preset: …; BLER curves: …`` of a table's runs (older results without the keys
    were made with the default preset and the legacy curves)."""
    presets = sorted({str(d.get("du_preset", DEFAULT_PRESET)) for d in results})
    curves = sorted({str(d.get("bler_curves", LEGACY_CURVES)) for d in results})
    return f"- DU preset: {', '.join(presets)}; BLER curves: {', '.join(curves)}"


def table6_markdown(results: list[dict[str, Any]], model_description: str, n_ue: int, duration_s: float) -> str:
    """Our Table 6 beside the paper's numbers (markdown).

    Results of ``run_table6(..., perfect=True)`` give the headroom layout instead
    (:func:`headroom_markdown`).
    """
    if any("ri_cqi_perfect" in d or "ri_cqi_hindsight" in d for d in results):
        return headroom_markdown(results, model_description, n_ue, duration_s)
    by_key = {(d["row"], d["snr"]): d for d in results}
    lines = [
        "# Table 6: throughput gain over OLLA (ours [95% CI] | paper)",
        "",
        f"- Model: {model_description}",
        _link_note(results),
        _calibration_note(results),
        f"- Each cell: {n_ue} UEs, {duration_s:g} s, common random numbers; CI over UEs.",
        "",
        "| CSI-RS | channel | corr. | medium CQI-Tune | paper | medium RI-CQI-Tune | paper "
        "| high CQI-Tune | paper | high RI-CQI-Tune | paper |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(d: dict[str, Any] | None, key: str, paper: float) -> str:
        if d is None:
            return f"— | {paper:.1f}%"
        g, lo, hi = d[key]
        return f"{100 * g:+.1f}% [{100 * lo:+.1f}, {100 * hi:+.1f}] | {paper:.1f}%"

    for i, row in enumerate(TABLE6_ROWS):
        med, high = by_key.get((i, "medium")), by_key.get((i, "high"))
        if med is None and high is None:
            continue
        lines.append(
            f"| {row.csi_period_ms} ms | {row.profile}, {row.doppler_hz:g} Hz | {row.correlation} | "
            f"{cell(med, 'cqi', row.paper_medium[0])} | {cell(med, 'ri_cqi', row.paper_medium[1])} | "
            f"{cell(high, 'cqi', row.paper_high[0])} | {cell(high, 'ri_cqi', row.paper_high[1])} |"
        )
    return "\n".join(lines) + "\n"


def _share(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.0f}%"


def headroom_markdown(
    results: list[dict[str, Any]], model_description: str, n_ue: int, duration_s: float
) -> str:
    """Table 6 cells with the perfect predictor beside the real model (markdown).

    One line per (row, SNR): OLLA's mean throughput per UE and BLER, the gains over OLLA
    of CQI-Tune, RI-CQI-Tune, the perfect-predictor RI-CQI-Tune and the best-candidate
    oracle, and the share of the perfect gain that the real model recovers
    (``g_RI-CQI-Tune / g_perfect``; n/a unless the perfect gain is positive). Results with
    the reference schemes (``run_table6(..., references=True)``) add the fixed back-off
    rule, the hindsight-predictor and the channel-knowing-predictor RI-CQI-Tune and the
    shares of their gains that the real model recovers. A column no result has is shown as —.
    """
    refs = any("ri_cqi_hindsight" in d for d in results)
    lines = [
        "# Headroom: the real model against a perfect BLER predictor (gain over OLLA [95% CI])",
        "",
        f"- Model: {model_description}",
        _link_note(results),
        _calibration_note(results),
        f"- Each cell: {n_ue} UEs, {duration_s:g} s, common random numbers (every scheme sees the "
        "same channel and HARQ draws); CI over UEs.",
        "- Perfect predictor: each period's candidates replayed in the DU on the next period's "
        "slots; it returns their true (quantised) BLER to the same RI-CQI-Tune search. "
        "Oracle: the best replayed candidate per UE and period (upper bound of the search).",
        "- Recovered: RI-CQI-Tune's gain / the perfect predictor's gain.",
    ]
    if refs:
        lines += [
            f"- Fixed back-off: no model, the reported rank and one CQI below the reported CQI "
            f"({FIXED_BACKOFF_CQI} step) every period. Hindsight predictor: each period's candidates "
            "replayed in the DU on the period that just ended (its slots and HARQ draws, from the "
            "DU's current state): what a predictor that knew the last period perfectly would choose. "
            "Channel-knowing predictor: each period's candidates replayed on the next period's slots "
            "with HARQ draws of their own, answered with their expected BLER (mean block error "
            "probability): it knows the coming channel but not the draws. "
            "Recovered of hindsight / of channel: RI-CQI-Tune's gain / that reference's gain.",
        ]
    extra_head = (" | fixed back-off | hindsight RI-CQI-Tune | recovered of hindsight"
                  " | channel-knowing RI-CQI-Tune | recovered of channel") if refs else ""
    lines += [
        "",
        "| CSI-RS | channel | corr. | SNR | OLLA Mbit/s | OLLA BLER | CQI-Tune | RI-CQI-Tune "
        f"| perfect RI-CQI-Tune | recovered | oracle{extra_head} | paper RI-CQI-Tune | replay mismatches |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|---|---|" if refs else "") + "---|---|",
    ]

    def gain(d: dict[str, Any], key: str) -> str:
        g, lo, hi = d[key]
        return f"{_pct(100 * g)} [{_pct(100 * lo)}, {_pct(100 * hi)}]"

    order = {"medium": 0, "high": 1}
    for d in sorted(results, key=lambda r: (r["row"], order[r["snr"]])):
        row = TABLE6_ROWS[d["row"]]
        paper = row.paper_medium[1] if d["snr"] == "medium" else row.paper_high[1]
        has_perfect = "ri_cqi_perfect" in d
        lines.append(
            f"| {row.csi_period_ms} ms | {row.profile}, {row.doppler_hz:g} Hz | {row.correlation} | "
            f"{d['snr']} | {d.get('olla_mbps', float('nan')):.2f} | {d['olla_bler']:.3f} | "
            f"{gain(d, 'cqi')} | {gain(d, 'ri_cqi')} | "
            f"{gain(d, 'ri_cqi_perfect') if has_perfect else '—'} | "
            f"{_share(d.get('recovered')) if has_perfect else '—'} | "
            f"{gain(d, 'oracle') if has_perfect else '—'} | "
            + (f"{gain(d, 'cqi_backoff') if 'cqi_backoff' in d else '—'} | "
               f"{gain(d, 'ri_cqi_hindsight') if 'ri_cqi_hindsight' in d else '—'} | "
               f"{_share(d.get('recovered_hindsight')) if 'ri_cqi_hindsight' in d else '—'} | "
               f"{gain(d, 'ri_cqi_channel') if 'ri_cqi_channel' in d else '—'} | "
               f"{_share(d.get('recovered_channel')) if 'ri_cqi_channel' in d else '—'} | " if refs else "")
            + f"{paper:.1f}% | "
            f"{d.get('replay_mismatches', '—')} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "ALL_SCHEMES",
    "CHANNEL_SCHEMES",
    "DATASET_VERSION",
    "FIXED_BACKOFF_CQI",
    "HINDSIGHT_SCHEMES",
    "HeadroomLog",
    "PERFECT_SCHEMES",
    "REFERENCE_SCHEMES",
    "RULE_SCHEMES",
    "fixed_backoff",
    "headroom_markdown",
    "headroom_summary",
    "ExperimentResult",
    "Gain",
    "ModelSource",
    "SCHEMES",
    "SchemeResult",
    "TABLE6_ROWS",
    "Table6Row",
    "generate_dataset",
    "generate_dataset_parallel",
    "load_model",
    "markdown_report",
    "paired_gain",
    "plot_result",
    "quick_model",
    "run_experiment",
    "run_table6",
    "table6_markdown",
    "write_csv",
    "write_dataset",
]
