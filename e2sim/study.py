"""Studies of the paper's reproduction: BLER-prediction error, δ, loss, fine-tuning off, new scenarios.

Every study is a list of :class:`StudyJob` (one in-process
:func:`e2sim.experiment.run_experiment` each, common random numbers inside a job) run in
``workers`` processes; a job returns a JSON-able summary (:func:`summarise`), and each
study turns its summaries into a markdown table, a CSV and, where useful, a PNG.

Studies (``e2sim study <name> --model FILE --out-dir DIR``)
-----------------------------------------------------------
* ``prediction`` — the paper's BLER-prediction experiment: the DU alone (table RI/CQI +
  OLLA) decides; the offline model predicts the BLER of each decision, **frozen** and
  **fine-tuned** by LightTune, on the same decisions. Error = mean over (UE, period)
  samples with a defined BLER of ``|ŷ − y|``; reduction ``= 1 − e_tuned / e_frozen``
  (the paper: up to 48.8 %). Scenarios: the trained channel (TDL-A30, 10 Hz) at low /
  medium / high SNR and untrained ones (:data:`PREDICTION_SCENARIOS`).
* ``delta`` — the fine-tuning threshold δ ∈ {0.1, 0.2, 0.3, 0.5}: updates per 1,000
  labelled reports against the error, on the same channel realisation for every δ.
* ``loss`` — Softplus (eq. 5) vs the proposed loss (eq. 7): two offline models trained on
  the same data with the same budget, each fine-tuned with its own loss.
* ``finetune`` — CQI-Tune and RI-CQI-Tune with fine-tuning on and off (frozen offline
  model deciding), gains over OLLA and the per-UE paired difference on − off.
* ``scenarios`` — two scenarios not in the paper: TDL-C300 at 100 Hz and a 20 ms CSI-RS
  period, all three schemes, gains and prediction errors.
* ``headroom`` — the perfect BLER predictor (:mod:`e2sim.headroom`: each period's candidates
  replayed in the DU on the next period's slots) beside the real model on Table 6 cells:
  OLLA's throughput, the gains of CQI-Tune, RI-CQI-Tune, the perfect-predictor RI-CQI-Tune
  and the best-candidate oracle, and the share ``g_real / g_perfect`` of the perfect gain
  that the real model recovers; ``--only`` selects Table 6 rows (0 .. 15), ``--snr`` the SNR
  ranges.
* ``table6-plot`` — the throughput gain per Table 6 scenario (ours with the 95 % interval
  beside the paper's), from the JSON that ``e2sim table6`` writes.

Every simulated study runs on the DU preset of ``--du`` and the BLER curve set of
``--bler-curves`` (defaults: ``srsran``, ``ldpc-mc``); both are recorded in its JSON.

Because a job's seed fixes its channel, CSI errors and HARQ draws, two jobs with the same
scenario and seed see the same radio conditions: the OLLA arm is identical, and per-UE
throughputs of two jobs can be compared pairwise (:func:`paired_gain`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from e2sim.channel import Scenario
from e2sim.channel.bler import DEFAULT_CURVES
from e2sim.channel.scenario import SNR_RANGES_DB
from e2sim.cli import add_bler_curves_argument
from e2sim.experiment import (
    SCHEME_TITLES,
    SCHEMES,
    TABLE6_ROWS,
    ModelSource,
    SchemeResult,
    headroom_markdown,
    load_model,
    paired_gain,
    run_experiment,
    run_table6,
)
from lighttune_core.linkadapt.presets import DEFAULT_PRESET, PRESET_NAMES
from lighttune_core.tuner import LightTuneModel

OLLA_TARGET_BLER: float = 0.1
"""BLER the DU's OLLA steers to; the constant prediction a model must beat."""

ScenarioSpec = tuple[str, float, str, int, str]
"""``(profile, doppler_hz, correlation, csi_period_ms, snr range name)``."""

PREDICTION_SCENARIOS: tuple[ScenarioSpec, ...] = (
    ("TDL-A30", 10.0, "low", 80, "low"),
    ("TDL-A30", 10.0, "low", 80, "medium"),
    ("TDL-A30", 10.0, "low", 80, "high"),
    ("TDL-B50", 30.0, "low", 80, "medium"),
    ("TDL-B50", 30.0, "low", 80, "high"),
    ("TDL-B200", 50.0, "low", 80, "medium"),
    ("TDL-B200", 50.0, "low", 80, "high"),
    ("TDL-C200", 50.0, "low", 80, "medium"),
    ("TDL-C200", 50.0, "low", 80, "high"),
)
"""Trained channel (first three, the first is the training condition itself) and untrained ones."""

DELTA_VALUES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
DELTA_SCENARIOS: tuple[ScenarioSpec, ...] = (
    ("TDL-B50", 30.0, "low", 80, "medium"),
    ("TDL-B200", 50.0, "low", 80, "high"),
)
LOSS_SCENARIOS: tuple[ScenarioSpec, ...] = (
    ("TDL-A30", 10.0, "low", 80, "low"),
    ("TDL-B50", 30.0, "low", 80, "medium"),
    ("TDL-B200", 50.0, "low", 80, "high"),
)
FINETUNE_SCENARIOS: tuple[ScenarioSpec, ...] = (
    ("TDL-B50", 30.0, "low", 80, "medium"),
    ("TDL-B200", 50.0, "medium", 80, "high"),
    ("TDL-C200", 50.0, "low", 40, "high"),
)
NEW_SCENARIOS: tuple[ScenarioSpec, ...] = (
    ("TDL-C300", 100.0, "low", 80, "medium"),
    ("TDL-C300", 100.0, "low", 80, "high"),
    ("TDL-B50", 30.0, "low", 20, "medium"),
    ("TDL-B50", 30.0, "low", 20, "high"),
)
"""Not in the paper: a long-delay, fast channel (TDL-C300, 100 Hz) and a 20 ms CSI-RS period."""


def make_scenario(spec: ScenarioSpec, n_ue: int, seed: int, du_preset: str = DEFAULT_PRESET,
                  bler_curves: str = DEFAULT_CURVES) -> Scenario:
    """The :class:`Scenario` of a spec (SNR range by name, see ``SNR_RANGES_DB``) on the DU
    preset ``du_preset`` with the BLER curve set ``bler_curves``."""
    profile, doppler, correlation, csi_ms, snr = spec
    if snr not in SNR_RANGES_DB:
        raise ValueError(f"SNR range must be one of {tuple(SNR_RANGES_DB)}, got {snr!r}")
    return Scenario(profile=profile, doppler_hz=float(doppler), correlation=correlation,
                    snr_db=SNR_RANGES_DB[snr], csi_period_ms=int(csi_ms), n_ue=n_ue, seed=seed,
                    du_preset=du_preset, bler_curves=bler_curves)


def scenario_label(spec: ScenarioSpec) -> str:
    """Short human label, e.g. ``TDL-B50 30 Hz, low corr., 80 ms, medium SNR``."""
    profile, doppler, correlation, csi_ms, snr = spec
    return f"{profile} {doppler:g} Hz, {correlation} corr., {csi_ms} ms, {snr} SNR"


# ---------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class StudyJob:
    """One in-process experiment of a study.

    Attributes:
        tag: what the job is within its study (e.g. ``"delta=0.3"``), copied to the summary.
        spec: the scenario.
        n_ue: UEs in the cell; seed: the scenario seed; duration_s: simulated seconds.
        schemes: schemes to run (``olla`` always runs).
        learn: LightTune fine-tuning on (True) or off (frozen model decides).
        model_bytes: the starting model (``LightTuneModel.to_bytes``).
        model_description: where the model came from.
        du_preset, bler_curves: the DU's link-adaptation preset and the link model's curve set.
    """

    tag: str
    spec: ScenarioSpec
    n_ue: int
    seed: int
    duration_s: float
    schemes: tuple[str, ...]
    learn: bool
    model_bytes: bytes
    model_description: str
    du_preset: str = DEFAULT_PRESET
    bler_curves: str = DEFAULT_CURVES


def _series(parts: list[np.ndarray]) -> list[float | None]:
    return [float(p.mean()) if p.size else None for p in parts]


def summarise_scheme(res: SchemeResult, olla: SchemeResult) -> dict[str, Any]:
    """JSON-able figures of one scheme of one experiment.

    ``error_*`` are means of ``|ŷ − y|`` over labelled (UE, period) samples;
    ``updates_per_1000 = 1000 · updates / samples``; ``error_constant_target`` is the error of
    the constant prediction ``ŷ = 0.1`` (the OLLA target) on the same samples and
    ``label_share_at_target`` the share of true labels equal to 0.1; ``gain`` is ``(g, low, high)`` of the
    paired gain over OLLA (fractions); the ``*_series`` are per-period means (None where a
    period had no labelled sample) at times ``period_end_s``.
    """
    samples = int(sum(e.size for e in res.abs_error_tuned))
    tuned, frozen = res.error_tuned, res.error_frozen
    labels = np.concatenate(res.true_bler) if res.true_bler else np.zeros(0)
    on_target = np.abs(labels - OLLA_TARGET_BLER) < 1e-6
    g = paired_gain(res.throughput_bps, olla.throughput_bps)
    return {
        "throughput_bps": [float(v) for v in res.throughput_bps],
        "mean_throughput_mbps": float(res.throughput_bps.mean() / 1e6),
        "bler": res.bler,
        "error_tuned": tuned,
        "error_frozen": frozen,
        "error_reduction_pct": 100.0 * (1.0 - tuned / frozen) if frozen > 0 else float("nan"),
        "samples": samples,
        "label_mean": float(labels.mean()) if labels.size else float("nan"),
        "label_share_at_target": float(on_target.mean()) if labels.size else float("nan"),
        "error_constant_target": float(np.abs(labels - OLLA_TARGET_BLER).mean()) if labels.size else float("nan"),
        "updates": int(res.n_updates),
        "updates_per_1000": 1000.0 * res.n_updates / samples if samples else float("nan"),
        "gain": [g.gain, g.ci_low, g.ci_high],
        "error_tuned_series": _series(res.abs_error_tuned),
        "error_frozen_series": _series(res.abs_error_frozen),
        "error_constant_series": _series([np.abs(y - OLLA_TARGET_BLER) for y in res.true_bler]),
        "period_end_s": [float(t) for t in res.period_end_s],
    }


def run_study_job(job: StudyJob) -> dict[str, Any]:
    """Run one job; returns ``{"tag", "spec", "learn", "delta", "loss", "schemes": {name: summary}}``."""
    model = LightTuneModel.from_bytes(job.model_bytes)
    scenario = make_scenario(job.spec, job.n_ue, job.seed, job.du_preset, job.bler_curves)
    result = run_experiment(scenario, job.duration_s, ModelSource(model, job.model_description),
                            schemes=job.schemes, learn=job.learn)
    olla = result.schemes["olla"]
    return {
        "tag": job.tag,
        "spec": list(job.spec),
        "label": scenario_label(job.spec),
        "n_ue": job.n_ue,
        "seed": job.seed,
        "duration_s": result.duration_s,
        "learn": job.learn,
        "delta": model.delta,
        "loss": model.loss,
        "du_preset": job.du_preset,
        "bler_curves": job.bler_curves,
        "schemes": {name: summarise_scheme(res, olla) for name, res in result.schemes.items()},
    }


def run_jobs(
    jobs: Sequence[StudyJob],
    workers: int = 2,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the jobs in ``workers`` processes; results in the order of ``jobs``."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not jobs:
        raise ValueError("no jobs to run")
    out: list[dict[str, Any] | None] = [None] * len(jobs)
    indexed = list(enumerate(jobs))
    if workers == 1 or len(jobs) == 1:
        for i, job in indexed:
            out[i] = run_study_job(job)
            if on_result is not None:
                on_result(out[i])  # type: ignore[arg-type]
    else:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for i, res in pool.imap_unordered(_indexed_job, indexed):
                out[i] = res
                if on_result is not None:
                    on_result(res)
    return [r for r in out if r is not None]


def _indexed_job(item: tuple[int, StudyJob]) -> tuple[int, dict[str, Any]]:
    return item[0], run_study_job(item[1])


def with_hyperparameters(model: LightTuneModel, **changes: Any) -> LightTuneModel:
    """A copy of ``model`` (parameters and counters) with some hyperparameters changed."""
    state = model.state_dict()
    state["hyperparameters"] = {**state["hyperparameters"], **changes}
    return LightTuneModel.from_state_dict(state)


# ---------------------------------------------------------------------------- study job lists
def _jobs(specs: Sequence[ScenarioSpec], model: ModelSource, n_ue: int, seed: int, duration_s: float,
          schemes: tuple[str, ...], learn: bool = True, tag: str = "") -> list[StudyJob]:
    blob = model.model.to_bytes()
    return [StudyJob(tag, spec, n_ue, seed, duration_s, schemes, learn, blob, model.description) for spec in specs]


def prediction_jobs(model: ModelSource, n_ue: int, seed: int, duration_s: float,
                    specs: Sequence[ScenarioSpec] = PREDICTION_SCENARIOS) -> list[StudyJob]:
    """OLLA-only jobs: frozen vs fine-tuned BLER-prediction error of the DU's decisions."""
    return _jobs(specs, model, n_ue, seed, duration_s, ("olla",), tag="prediction")


def delta_jobs(model: ModelSource, n_ue: int, seed: int, duration_s: float,
               deltas: Sequence[float] = DELTA_VALUES,
               specs: Sequence[ScenarioSpec] = DELTA_SCENARIOS) -> list[StudyJob]:
    """OLLA-only jobs, one per (scenario, δ), same seed (same channel) for every δ."""
    for d in deltas:
        if not 0.0 < d <= 1.0:
            raise ValueError(f"delta must be in (0, 1], got {d!r}")
    jobs: list[StudyJob] = []
    for d in deltas:
        varied = ModelSource(with_hyperparameters(model.model, delta=float(d)), model.description)
        jobs += _jobs(specs, varied, n_ue, seed, duration_s, ("olla",), tag=f"delta={d:g}")
    return jobs


def loss_jobs(proposed: ModelSource, softplus: ModelSource, n_ue: int, seed: int, duration_s: float,
              specs: Sequence[ScenarioSpec] = LOSS_SCENARIOS) -> list[StudyJob]:
    """OLLA-only jobs for the two offline models, each fine-tuned with its own loss."""
    if proposed.model.loss != "proposed" or softplus.model.loss != "softplus":
        raise ValueError(
            f"loss study needs a proposed-loss and a softplus-loss model, got "
            f"{proposed.model.loss!r} and {softplus.model.loss!r}"
        )
    return (_jobs(specs, proposed, n_ue, seed, duration_s, ("olla",), tag="proposed")
            + _jobs(specs, softplus, n_ue, seed, duration_s, ("olla",), tag="softplus"))


def finetune_jobs(model: ModelSource, n_ue: int, seed: int, duration_s: float,
                  specs: Sequence[ScenarioSpec] = FINETUNE_SCENARIOS) -> list[StudyJob]:
    """All three schemes, fine-tuning on and off, per scenario."""
    return (_jobs(specs, model, n_ue, seed, duration_s, SCHEMES, learn=True, tag="on")
            + _jobs(specs, model, n_ue, seed, duration_s, SCHEMES, learn=False, tag="off"))


def scenario_jobs(model: ModelSource, n_ue: int, seed: int, duration_s: float,
                  specs: Sequence[ScenarioSpec] = NEW_SCENARIOS) -> list[StudyJob]:
    """All three schemes with fine-tuning in the scenarios the paper does not cover."""
    return _jobs(specs, model, n_ue, seed, duration_s, SCHEMES, tag="new")


# ---------------------------------------------------------------------------- tables
def _f(v: float, fmt: str = ".3f") -> str:
    return "n/a" if v is None or not math.isfinite(v) else format(v, fmt)


def _gain_cell(g: Sequence[float]) -> str:
    if not all(math.isfinite(v) for v in g):
        return "n/a"
    return f"{100 * g[0]:+.1f}% [{100 * g[1]:+.1f}, {100 * g[2]:+.1f}]"


def prediction_rows(results: Sequence[dict[str, Any]], scheme: str = "olla") -> list[dict[str, Any]]:
    """Flat rows (CSV/markdown) of the prediction error of ``scheme`` per job."""
    rows = []
    for r in results:
        s = r["schemes"][scheme]
        rows.append({
            "tag": r["tag"], "scenario": r["label"], "delta": r["delta"], "loss": r["loss"],
            "samples": s["samples"], "label_share_at_target": s["label_share_at_target"],
            "error_constant_target": s["error_constant_target"],
            "error_frozen": s["error_frozen"], "error_finetuned": s["error_tuned"],
            "error_reduction_pct": s["error_reduction_pct"], "updates": s["updates"],
            "updates_per_1000": s["updates_per_1000"], "olla_bler": r["schemes"]["olla"]["bler"],
        })
    return rows


def gain_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows of gains over OLLA and errors of CQI-Tune / RI-CQI-Tune per job."""
    rows = []
    for r in results:
        for name in ("cqi", "ri_cqi"):
            if name not in r["schemes"]:
                continue
            s = r["schemes"][name]
            rows.append({
                "tag": r["tag"], "scenario": r["label"], "scheme": SCHEME_TITLES[name],
                "fine_tuning": "on" if r["learn"] else "off",
                "gain_pct": 100 * s["gain"][0], "gain_ci95_low_pct": 100 * s["gain"][1],
                "gain_ci95_high_pct": 100 * s["gain"][2], "bler": s["bler"],
                "olla_bler": r["schemes"]["olla"]["bler"], "error_frozen": s["error_frozen"],
                "error_finetuned": s["error_tuned"], "updates": s["updates"],
            })
    return rows


def write_rows_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Rows as CSV (floats with 6 significant digits)."""
    if not rows:
        raise ValueError("no rows to write")
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def prediction_markdown(rows: Sequence[dict[str, Any]], title: str, by: str | None = None) -> str:
    """Markdown table of :func:`prediction_rows`; ``by`` adds that column first (e.g. ``delta``)."""
    first = f"| {by} " if by else ""
    lines = [f"## {title}", "",
             f"{first}| scenario | samples | labels = 0.1 | error of ŷ = 0.1 | error frozen | error fine-tuned "
             "| reduction | updates | updates / 1000 reports | OLLA BLER |",
             ("|---" if by else "") + "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lead = f"| {r[by]} " if by else ""
        lines.append(
            f"{lead}| {r['scenario']} | {r['samples']} | {_f(100 * r['label_share_at_target'], '.0f')}% | "
            f"{_f(r['error_constant_target'])} | {_f(r['error_frozen'])} | {_f(r['error_finetuned'])} | "
            f"{_f(r['error_reduction_pct'], '+.1f')}% | {r['updates']} | {_f(r['updates_per_1000'], '.1f')} | "
            f"{_f(r['olla_bler'])} |")
    return "\n".join(lines) + "\n"


def gain_markdown(results: Sequence[dict[str, Any]], title: str) -> str:
    """Markdown table: per job, OLLA BLER and each tuner's gain [95 % CI], BLER and errors."""
    lines = [f"## {title}", "",
             "| scenario | fine-tuning | OLLA BLER | CQI-Tune gain [95% CI] | CQI-Tune BLER | RI-CQI-Tune gain [95% CI] "
             "| RI-CQI-Tune BLER | RI-CQI-Tune error frozen → fine-tuned | updates |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c, rc = r["schemes"]["cqi"], r["schemes"]["ri_cqi"]
        lines.append(
            f"| {r['label']} | {'on' if r['learn'] else 'off'} | {_f(r['schemes']['olla']['bler'])} | "
            f"{_gain_cell(c['gain'])} | {_f(c['bler'])} | {_gain_cell(rc['gain'])} | {_f(rc['bler'])} | "
            f"{_f(rc['error_frozen'])} → {_f(rc['error_tuned'])} | {c['updates']} / {rc['updates']} |")
    return "\n".join(lines) + "\n"


def finetune_paired_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario and tuner: throughput with fine-tuning on vs off, paired over UEs.

    The on and off jobs of a scenario share the seed, so UE ``u`` has the same channel in
    both; ``gain = mean_u(T_on − T_off) / mean_u(T_off)`` with its 95 % interval.
    """
    on = {tuple(r["spec"]): r for r in results if r["learn"]}
    off = {tuple(r["spec"]): r for r in results if not r["learn"]}
    rows = []
    for key, r_on in on.items():
        r_off = off.get(key)
        if r_off is None:
            continue
        for name in ("cqi", "ri_cqi"):
            g = paired_gain(np.array(r_on["schemes"][name]["throughput_bps"]),
                            np.array(r_off["schemes"][name]["throughput_bps"]))
            rows.append({"scenario": r_on["label"], "scheme": SCHEME_TITLES[name],
                         "gain_on_vs_off_pct": 100 * g.gain, "ci95_low_pct": 100 * g.ci_low,
                         "ci95_high_pct": 100 * g.ci_high})
    return rows


# ---------------------------------------------------------------------------- plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _moving(v: np.ndarray, k: int) -> np.ndarray:
    """Trailing moving average over ``k`` points (fewer at the start), same length as ``v``."""
    if v.size == 0:
        return v
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(1, v.size + 1)
    lo = np.maximum(i - max(1, k), 0)
    return (c[i] - c[lo]) / (i - lo)


def plot_error_over_time(results: Sequence[dict[str, Any]], path: Path, window: int = 5,
                         scheme: str = "olla") -> Path:
    """PNG grid, one panel per job: |ŷ − y| over time, frozen vs fine-tuned vs constant 0.1.

    Trailing moving average over ``window`` CSI periods of the per-period mean error.
    """
    plt = _pyplot()
    n = len(results)
    cols = min(3, n)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), squeeze=False, sharey=True)
    for ax, r in zip(axes.ravel(), results):
        s = r["schemes"][scheme]
        t = np.asarray(s["period_end_s"])
        for key, style, name in (("error_constant_series", "--", "ŷ = 0.1 always"),
                                 ("error_frozen_series", ":", "frozen"), ("error_tuned_series", "-", "fine-tuned")):
            v = np.array([np.nan if x is None else x for x in s[key]], dtype=float)
            ok = np.isfinite(v)
            mean_key = "error_constant_target" if key == "error_constant_series" else key.replace("_series", "")
            ax.plot(t[ok], _moving(v[ok], window), style, lw=1.0 if "constant" in key else 1.6,
                    color="grey" if "constant" in key else None, label=f"{name} ({_f(s[mean_key])})")
        ax.set_title(r["label"].replace(", low corr.", ""), fontsize=8.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean |predicted − true| BLER")
    for ax in axes[-1, :]:
        ax.set_xlabel("time (s)")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle(f"BLER-prediction error, moving average over {window} CSI periods "
                 f"(legend: mean over the run)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_delta(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """PNG: updates per 1,000 reports vs fine-tuned error, one line per scenario, points = δ."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_label.setdefault(r["label"], []).append(r)
    for label, rs in by_label.items():
        rs = sorted(rs, key=lambda r: r["delta"])
        x = [r["schemes"]["olla"]["updates_per_1000"] for r in rs]
        y = [r["schemes"]["olla"]["error_tuned"] for r in rs]
        line = ax.plot(x, y, "o-", label=label)[0]
        ax.axhline(rs[0]["schemes"]["olla"]["error_frozen"], color=line.get_color(), ls=":", lw=1)
        for r, xi, yi in zip(rs, x, y):
            ax.annotate(f"δ={r['delta']:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("LightTune updates per 1,000 labelled reports")
    ax.set_ylabel("mean |predicted − true| BLER (fine-tuned)")
    ax.set_title("Fine-tuning threshold δ (dotted: frozen model)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def table6_comparison_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows of Table 6: ours (gain and 95 % CI, percent) beside the paper's figure.

    ``paper_in_ci`` tells whether the paper's gain lies inside our interval; ``difference_pct``
    is ours minus the paper's.
    """
    rows = []
    for d in results:
        row = TABLE6_ROWS[int(d["row"])]
        paper = row.paper_medium if d["snr"] == "medium" else row.paper_high
        for j, scheme in enumerate(("cqi", "ri_cqi")):
            g, lo, hi = (100 * float(v) for v in d[scheme])
            rows.append({
                "row": int(d["row"]), "csi_period_ms": row.csi_period_ms, "channel": row.profile,
                "doppler_hz": row.doppler_hz, "correlation": row.correlation, "snr": d["snr"],
                "scheme": SCHEME_TITLES[scheme], "gain_pct": g, "ci95_low_pct": lo, "ci95_high_pct": hi,
                "paper_pct": paper[j], "difference_pct": g - paper[j], "paper_in_ci": bool(lo <= paper[j] <= hi),
                "olla_bler": float(d["olla_bler"]),
            })
    return rows


def plot_table6(results: Sequence[dict[str, Any]], path: Path) -> Path:
    """PNG: Table 6 throughput gains over OLLA, ours (95 % CI bars) beside the paper's.

    ``results`` is what :func:`e2sim.experiment.run_table6` returns (``table6.json``).
    """
    plt = _pyplot()
    by_key = {(d["row"], d["snr"]): d for d in results}
    fig, axes = plt.subplots(2, 1, figsize=(12, 7.5), sharex=True)
    labels = [f"{r.csi_period_ms} ms {r.profile.replace('TDL-', '')} {r.doppler_hz:g}Hz {r.correlation}"
              for r in TABLE6_ROWS]
    x = np.arange(len(TABLE6_ROWS))
    for ax, snr in zip(axes, ("medium", "high")):
        for j, (scheme, color) in enumerate((("cqi", "tab:blue"), ("ri_cqi", "tab:orange"))):
            ours = np.full((len(x), 3), np.nan)
            for i in x:
                d = by_key.get((int(i), snr))
                if d is not None:
                    ours[i] = d[scheme]
            paper = np.array([(r.paper_medium if snr == "medium" else r.paper_high)[j] for r in TABLE6_ROWS])
            off = -0.2 + 0.4 * j
            err = np.vstack([ours[:, 0] - ours[:, 1], ours[:, 2] - ours[:, 0]]) * 100
            ax.bar(x + off - 0.09, ours[:, 0] * 100, 0.18, color=color, yerr=err, capsize=2,
                   label=f"{SCHEME_TITLES[scheme]} ours (95% CI)")
            ax.bar(x + off + 0.09, paper, 0.18, color=color, alpha=0.35, hatch="//",
                   label=f"{SCHEME_TITLES[scheme]} paper")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel(f"gain over OLLA (%), {snr} SNR")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=4, loc="upper right")
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    fig.suptitle("Table 6: throughput gain of CQI-Tune and RI-CQI-Tune over OLLA", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_training_curve(curve_csv: Path, path: Path) -> Path:
    """PNG of a ``lighttune-train`` curve CSV: loss and held-out accuracy / mean |error| per epoch.

    The CSV has columns ``layer, epoch, loss, holdout_accuracy, holdout_mean_abs_error``;
    layers are trained one after the other, so the x axis is the cumulative epoch.
    """
    try:
        with curve_csv.open() as fh:
            rows = list(csv.DictReader(fh))
        layer = np.array([int(r["layer"]) for r in rows])
        loss = np.array([float(r["loss"]) for r in rows])
        acc = np.array([float(r["holdout_accuracy"]) for r in rows])
        mae = np.array([float(r["holdout_mean_abs_error"]) for r in rows])
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"--curve {curve_csv}: not a lighttune-train curve CSV ({exc})") from exc
    if layer.size == 0:
        raise ValueError(f"--curve {curve_csv}: no epochs")
    plt = _pyplot()
    x = np.arange(1, layer.size + 1)
    fig, (ax_l, ax_a) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for lay in np.unique(layer):
        m = layer == lay
        ax_l.plot(x[m], loss[m], label=f"layer {lay} local loss")
        ax_a.plot(x[m], acc[m], "-", color=f"C{lay - 1}", label=f"accuracy (network up to layer {lay})")
    ax_l.set_yscale("log" if np.all(loss > 0) else "symlog")
    ax_e = ax_a.twinx()
    ax_e.plot(x, mae, "k:", lw=1.2, label="mean |error| (right axis)")
    ax_e.set_ylabel("held-out mean |predicted - true| BLER")
    ax_l.set_ylabel("training loss (mean over batches)")
    ax_a.set_ylabel("held-out accuracy")
    ax_a.set_xlabel("epoch (layers trained one after the other)")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
    ax_l.legend(fontsize=8)
    lines = ax_a.get_legend_handles_labels()
    extra = ax_e.get_legend_handles_labels()
    ax_a.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=8, loc="lower right")
    fig.suptitle(f"Offline training curve ({curve_csv.name}); final held-out accuracy {acc[-1]:.3f}, "
                 f"mean |error| {mae[-1]:.4f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def e2_loop_comparison(e2_results: dict[str, Any], model: ModelSource) -> tuple[list[dict[str, Any]], str]:
    """Compare an ``e2sim run --compare`` results JSON with the same run in process.

    Runs :func:`run_experiment` on the results' scenario (same seed) for the same
    simulated time and, per scheme, sets the E2-loop figures beside the in-process ones.
    Both use common random numbers, so UE ``u`` has the same channel in both; the per-UE
    paired difference ``mean_u(T_e2,u − T_ip,u) / mean_u(T_ip,u)`` with its 95 % interval
    says whether the two paths agree.

    Returns:
        ``(rows, markdown)``.
    """
    try:
        scenario = Scenario.from_dict(e2_results["scenario"])
        duration_s = float(e2_results["simulated_s"])
        cells = {c["scheme"]: c for c in e2_results["cells"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"e2sim run results lack a field ({exc})") from exc
    schemes = tuple(s for s in SCHEMES if s in cells)
    if "olla" not in cells or len(schemes) < 2:
        raise ValueError("the e2sim run results must come from --compare with olla and a tuner")
    inproc = run_experiment(scenario, duration_s, model, schemes=schemes)
    gains = e2_results.get("gains_over_olla", {})
    rows = []
    for s in schemes:
        e2_bps = np.asarray(cells[s]["ue_throughput_bps"], dtype=float)
        ip = inproc.schemes[s]
        g_ip = inproc.gain(s)
        g_e2 = gains.get(s)
        diff = paired_gain(e2_bps, ip.throughput_bps)
        rows.append({
            "scheme": SCHEME_TITLES[s],
            "e2_mbps_per_ue": float(e2_bps.mean() / 1e6),
            "inprocess_mbps_per_ue": float(ip.throughput_bps.mean() / 1e6),
            "e2_bler": cells[s]["bler"],
            "inprocess_bler": ip.bler,
            "e2_gain": None if g_e2 is None else [g_e2["gain"], g_e2["ci95_low"], g_e2["ci95_high"]],
            "inprocess_gain": None if s == "olla" else [g_ip.gain, g_ip.ci_low, g_ip.ci_high],
            "e2_vs_inprocess": [diff.gain, diff.ci_low, diff.ci_high],
        })
    sc = scenario
    md = [f"## E2 loop vs in-process: {sc.profile} {sc.doppler_hz:g} Hz, {sc.correlation} corr., "
          f"CSI-RS {sc.csi_period_ms} ms, SNR {sc.snr_db[0]:g}-{sc.snr_db[1]:g} dB, {sc.n_ue} UEs, "
          f"seed {sc.seed}, {duration_s:g} s", "",
          f"- Model: {model.description}",
          f"- E2 loop: {e2_results.get('clock', '?')} clock, completed: {e2_results.get('completed')}, "
          f"wall {e2_results.get('wall_s', float('nan')):.0f} s", "",
          "| scheme | Mbit/s per UE (E2 / in-process) | BLER (E2 / in-process) | gain over OLLA E2 [95% CI] "
          "| gain over OLLA in-process [95% CI] | E2 − in-process, paired [95% CI] |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(
            f"| {r['scheme']} | {r['e2_mbps_per_ue']:.2f} / {r['inprocess_mbps_per_ue']:.2f} | "
            f"{_f(r['e2_bler'])} / {_f(r['inprocess_bler'])} | "
            f"{'—' if r['e2_gain'] is None else _gain_cell(r['e2_gain'])} | "
            f"{'—' if r['inprocess_gain'] is None else _gain_cell(r['inprocess_gain'])} | "
            f"{_gain_cell(r['e2_vs_inprocess'])} |")
    return rows, "\n".join(md) + "\n"


def dataset_report(features: np.ndarray, labels: np.ndarray, model: LightTuneModel | None = None) -> str:
    """Markdown: how informative a dataset's labels are, and how a model does on it.

    * the label histogram and the error of every constant prediction (the best constant is
      the bar any model must clear);
    * the label mean and the share of labels != 0.1 per candidate offset
      ``(Δrank, ΔCQI) = (r − RI, c − CQI)`` (features 6/5 and 7/4 of
      :mod:`lighttune_core.features`): how much a decision other than the DU's moves the BLER;
    * with ``model``: its accuracy and mean ``|ŷ − y|`` against the majority label.

    Args:
        features: float [N, 12]; labels: float [N] in {0.0, ..., 1.0}.
    """
    from lighttune_core.features import BLER_LABELS
    from lighttune_core.report import MAX_CQI, MAX_RANK

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 12 or y.shape != (x.shape[0],) or y.size == 0:
        raise ValueError(f"need features [N, 12] and labels [N] with N > 0, got {x.shape} and {y.shape}")
    k = np.rint(y / 0.1).astype(int)
    counts = np.bincount(k, minlength=BLER_LABELS.size)
    const_err = np.abs(BLER_LABELS[:, None] - y[None, :]).mean(axis=1)
    best = int(np.argmin(const_err))
    lines = [f"- Samples: {y.size}; label mean {y.mean():.4f}", "",
             "| label | share | error of the constant prediction |", "|---|---|---|"]
    for i in np.flatnonzero(counts):
        lines.append(f"| {BLER_LABELS[i]:.1f} | {100 * counts[i] / y.size:.1f}% | {const_err[i]:.4f} |")
    lines += ["", f"Best constant: ŷ = {BLER_LABELS[best]:.1f}, error {const_err[best]:.4f}, "
              f"accuracy {counts[best] / y.size:.3f}.", ""]
    d_rank = np.rint(x[:, 6] * MAX_RANK - x[:, 5] * MAX_RANK).astype(int)
    d_cqi = np.rint(x[:, 7] * MAX_CQI - x[:, 4] * MAX_CQI).astype(int)
    lines += ["| Δrank | ΔCQI | samples | label mean | share ≠ 0.1 | share ≥ 0.2 |", "|---|---|---|---|---|---|"]
    for dr in np.unique(d_rank):
        for dc in np.unique(d_cqi):
            m = (d_rank == dr) & (d_cqi == dc)
            if m.sum() >= 20:
                lines.append(f"| {dr:+d} | {dc:+d} | {int(m.sum())} | {y[m].mean():.3f} | "
                             f"{np.mean(k[m] != 1):.3f} | {np.mean(k[m] >= 2):.3f} |")
    if model is not None:
        pred = model.predict_many(x)
        err = np.abs(pred - y)
        lines += ["", f"Model: accuracy {np.mean(err < 0.05):.3f} (majority label {counts.max() / y.size:.3f}), "
                  f"mean |ŷ − y| {err.mean():.4f} (best constant {const_err[best]:.4f}); "
                  f"predicted-label shares: " + ", ".join(
                      f"{BLER_LABELS[i]:.1f}: {100 * c / y.size:.1f}%"
                      for i, c in enumerate(np.bincount(np.rint(pred / 0.1).astype(int), minlength=11)) if c)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- CLI
STUDIES: tuple[str, ...] = ("prediction", "delta", "loss", "finetune", "scenarios", "headroom")
TOOLS: tuple[str, ...] = ("table6-plot", "training-curve", "e2-compare", "dataset-report")


def _write_json(results: Sequence[dict[str, Any]], path: Path, command: str, wall_s: float) -> None:
    path.write_text(json.dumps({"command": command, "wall_s": wall_s, "results": list(results)}, indent=0))


def _header(name: str, command: str, model: ModelSource, args: argparse.Namespace, wall_s: float) -> str:
    return (f"# Study: {name}\n\n- Command: `{command}`\n- Model: {model.description}\n"
            f"- Each run: {args.ues} UEs, {args.duration_s:g} s simulated, seed {args.seed}; "
            f"wall time of the study {wall_s:.0f} s with {args.workers} worker(s).\n\n")


def add_study_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``e2sim study`` on the ``e2sim`` subcommand parser."""
    p = sub.add_parser(
        "study",
        help="reproduction studies: prediction error, delta, loss, fine-tuning off, new scenarios, Table 6 plot",
        description="Run one of the reproduction studies (see e2sim.study) and write "
        "<name>.md, <name>.csv, <name>.json (and PNGs) to --out-dir.",
    )
    p.add_argument("name", choices=(*STUDIES, *TOOLS), help="which study (or plot/comparison tool)")
    p.add_argument("--model", type=Path, metavar="FILE", help="offline model (.ltm; required except for table6-plot)")
    p.add_argument("--softplus-model", type=Path, metavar="FILE", help="softplus-loss offline model (loss study)")
    p.add_argument("--table6-json", type=Path, metavar="FILE", help="table6.json of `e2sim table6` (table6-plot)")
    p.add_argument("--dataset", type=Path, metavar="FILE.npz", help="offline dataset (dataset-report)")
    p.add_argument("--curve", type=Path, metavar="FILE.csv", help="lighttune-train curve CSV (training-curve)")
    p.add_argument("--e2-results", type=Path, metavar="FILE.json",
                   help="results JSON of `e2sim run --compare ... --results` (e2-compare)")
    p.add_argument("--only", type=int, nargs="+", metavar="I",
                   help="run only these scenarios of the study's list (0-based indices; headroom: Table 6 rows 0-15)")
    p.add_argument("--snr", choices=("medium", "high"), nargs="+", default=["medium", "high"],
                   help="headroom: SNR ranges of each Table 6 row (default: both)")
    p.add_argument("--du", choices=PRESET_NAMES, default=DEFAULT_PRESET,
                   help="the DU's link-adaptation preset of every simulated study (default %(default)s)")
    add_bler_curves_argument(p)
    p.add_argument("--ues", type=int, default=32, help="UEs per run (default %(default)s)")
    p.add_argument("--duration-s", type=float, default=10.0, help="simulated seconds per run (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="scenario seed of every run (default %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default %(default)s)")
    p.add_argument("--out-dir", type=Path, default=Path("."), help="where results go (default: .)")
    p.set_defaults(func=_cmd_study)


def _cmd_study(args: argparse.Namespace) -> int:
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.name == "table6-plot":
        if args.table6_json is None:
            raise ValueError("table6-plot needs --table6-json FILE")
        try:
            results = json.loads(args.table6_json.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--table6-json {args.table6_json}: cannot read ({exc})") from exc
        out = plot_table6(results, args.out_dir / "table6_gains.png")
        rows = table6_comparison_rows(results)
        csv_path = write_rows_csv(rows, args.out_dir / "table6_vs_paper.csv")
        inside = sum(r["paper_in_ci"] for r in rows)
        print(f"wrote {out}, {csv_path}; the paper's gain lies inside our 95% CI in {inside} of {len(rows)} cells")
        return 0
    if args.name == "training-curve":
        if args.curve is None:
            raise ValueError("training-curve needs --curve FILE.csv")
        out = plot_training_curve(args.curve, args.out_dir / "training_curve.png")
        print(f"wrote {out}")
        return 0
    if args.name == "dataset-report":
        if args.dataset is None:
            raise ValueError("dataset-report needs --dataset FILE.npz")
        from lighttune_core.dataset import load_dataset

        x, y, meta = load_dataset(args.dataset)
        model = None if args.model is None else load_model(args.model).model
        md = (f"## Dataset {args.dataset.name}" + (f" and model {args.model.name}" if args.model else "")
              + f"\n\n- Scenario: {meta.get('scenario')}\n" + dataset_report(x, y, model))
        out = args.out_dir / f"dataset_{args.dataset.stem}.md"
        out.write_text(md)
        print(md)
        return 0
    if args.model is None:
        raise ValueError(f"study {args.name} needs --model FILE")
    if args.name == "e2-compare":
        if args.e2_results is None:
            raise ValueError("e2-compare needs --e2-results FILE.json")
        try:
            e2 = json.loads(args.e2_results.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--e2-results {args.e2_results}: cannot read ({exc})") from exc
        rows, md = e2_loop_comparison(e2, load_model(args.model))
        (args.out_dir / "e2_loop.md").write_text(md)
        (args.out_dir / "e2_loop.json").write_text(json.dumps(rows, indent=1))
        print(md)
        return 0
    if args.ues < 2:
        raise ValueError("--ues must be >= 2 (intervals are over UEs)")
    if not (args.duration_s > 0 and math.isfinite(args.duration_s)):
        raise ValueError("--duration-s must be > 0")
    if args.workers < 1:
        raise ValueError("--workers must be >= 1")
    if args.name == "headroom":
        return _cmd_headroom(args)
    model = load_model(args.model)
    common = (args.ues, args.seed, args.duration_s)
    full = {"prediction": PREDICTION_SCENARIOS, "delta": DELTA_SCENARIOS, "loss": LOSS_SCENARIOS,
            "finetune": FINETUNE_SCENARIOS, "scenarios": NEW_SCENARIOS}[args.name]
    specs = full
    if args.only:
        bad = [i for i in args.only if not 0 <= i < len(full)]
        if bad:
            raise ValueError(f"--only {bad}: the {args.name} study has scenarios 0 .. {len(full) - 1}")
        specs = tuple(full[i] for i in args.only)
    if args.name == "prediction":
        jobs = prediction_jobs(model, *common, specs=specs)
    elif args.name == "delta":
        jobs = delta_jobs(model, *common, specs=specs)
    elif args.name == "loss":
        if args.softplus_model is None:
            raise ValueError("the loss study needs --softplus-model FILE")
        jobs = loss_jobs(model, load_model(args.softplus_model), *common, specs=specs)
    elif args.name == "finetune":
        jobs = finetune_jobs(model, *common, specs=specs)
    else:
        jobs = scenario_jobs(model, *common, specs=specs)
    jobs = [replace(job, du_preset=args.du, bler_curves=args.bler_curves) for job in jobs]
    started = time.perf_counter()
    results = run_jobs(jobs, args.workers, on_result=lambda r: print(f"done: {r['tag']} {r['label']}", flush=True))
    wall = time.perf_counter() - started
    command = (f"e2sim study {args.name} --model {args.model.name}"
               + (f" --only {' '.join(map(str, args.only))}" if args.only else "")
               + (f" --softplus-model {args.softplus_model.name}" if args.softplus_model else "")
               + f" --du {args.du} --bler-curves {args.bler_curves}"
               + f" --ues {args.ues} --duration-s {args.duration_s:g} --seed {args.seed} --workers {args.workers}")
    out = args.out_dir
    name = args.name
    md = _header(name, command, model, args, wall)
    if name in ("prediction", "delta", "loss"):
        rows = prediction_rows(results)
        by = {"prediction": None, "delta": "delta", "loss": "loss"}[name]
        md += prediction_markdown(rows, "BLER-prediction error of the DU's decisions (OLLA)", by=by)
        write_rows_csv(rows, out / f"{name}.csv")
        if name == "prediction":
            plot_error_over_time(results, out / "prediction_error_over_time.png")
        elif name == "delta":
            plot_delta(results, out / "delta.png")
        else:
            plot_error_over_time(results, out / "loss_error_over_time.png")
    else:
        md += gain_markdown(results, "Throughput gain over OLLA and prediction error")
        write_rows_csv(gain_rows(results), out / f"{name}.csv")
        if name == "finetune":
            paired = finetune_paired_rows(results)
            md += "\n## Fine-tuning on vs off, paired over UEs (same channel)\n\n"
            md += "| scenario | scheme | throughput on vs off [95% CI] |\n|---|---|---|\n"
            for r in paired:
                md += (f"| {r['scenario']} | {r['scheme']} | "
                       f"{_gain_cell([r['gain_on_vs_off_pct'] / 100, r['ci95_low_pct'] / 100, r['ci95_high_pct'] / 100])} |\n")
        else:
            plot_error_over_time(results, out / "new_scenarios_error_over_time.png", scheme="ri_cqi")
    (out / f"{name}.md").write_text(md)
    _write_json(results, out / f"{name}.json", command, wall)
    print(md)
    return 0


def headroom_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat CSV rows of ``run_table6(..., perfect=True)`` results (gains in percent)."""
    rows = []
    for d in results:
        t6 = TABLE6_ROWS[d["row"]]
        row: dict[str, Any] = {
            "row": d["row"], "csi_period_ms": t6.csi_period_ms, "profile": t6.profile,
            "doppler_hz": t6.doppler_hz, "correlation": t6.correlation, "snr": d["snr"],
            "du_preset": d.get("du_preset", DEFAULT_PRESET), "olla_mbps": d["olla_mbps"],
            "olla_bler": d["olla_bler"],
        }
        for key in ("cqi", "ri_cqi", "ri_cqi_perfect", "oracle"):
            g, lo, hi = d[key]
            row[f"{key}_gain_pct"] = 100 * g
            row[f"{key}_ci95_low_pct"] = 100 * lo
            row[f"{key}_ci95_high_pct"] = 100 * hi
        for key in ("recovered", "cqi_recovered"):
            row[f"{key}_pct"] = float("nan") if d[key] is None else 100 * d[key]
        row["replay_mismatches"] = d["replay_mismatches"]
        row["replayed_candidates_per_ue"] = d["replayed_candidates_per_ue"]
        rows.append(row)
    return rows


def _cmd_headroom(args: argparse.Namespace) -> int:
    """``e2sim study headroom``: Table 6 cells with the perfect predictor (module docstring)."""
    rows = list(range(len(TABLE6_ROWS))) if not args.only else list(args.only)
    bad = [i for i in rows if not 0 <= i < len(TABLE6_ROWS)]
    if bad:
        raise ValueError(f"--only {bad}: Table 6 has rows 0 .. {len(TABLE6_ROWS) - 1}")
    model = load_model(args.model)
    started = time.perf_counter()
    results = run_table6(model, args.ues, args.duration_s, args.seed, args.workers, rows, progress=True,
                         du_preset=args.du, bler_curves=args.bler_curves, perfect=True, snrs=tuple(args.snr))
    wall = time.perf_counter() - started
    command = (f"e2sim study headroom --model {args.model.name} --du {args.du} --bler-curves {args.bler_curves}"
               + (f" --only {' '.join(map(str, args.only))}" if args.only else "")
               + f" --snr {' '.join(args.snr)} --ues {args.ues} --duration-s {args.duration_s:g}"
               + f" --seed {args.seed} --workers {args.workers}")
    md = (f"- Command: `{command}`\n- Wall time {wall:.0f} s with {args.workers} worker(s).\n\n"
          + headroom_markdown(results, model.description, args.ues, args.duration_s))
    out = args.out_dir
    (out / "headroom.md").write_text(md)
    write_rows_csv(headroom_rows(results), out / "headroom.csv")
    _write_json(results, out / "headroom.json", command, wall)
    print(md)
    return 0


__all__ = [
    "DELTA_VALUES",
    "FINETUNE_SCENARIOS",
    "LOSS_SCENARIOS",
    "NEW_SCENARIOS",
    "PREDICTION_SCENARIOS",
    "STUDIES",
    "StudyJob",
    "TOOLS",
    "add_study_parser",
    "dataset_report",
    "e2_loop_comparison",
    "plot_training_curve",
    "delta_jobs",
    "finetune_jobs",
    "finetune_paired_rows",
    "gain_rows",
    "headroom_rows",
    "loss_jobs",
    "make_scenario",
    "plot_delta",
    "plot_error_over_time",
    "plot_table6",
    "prediction_jobs",
    "prediction_rows",
    "run_jobs",
    "run_study_job",
    "scenario_jobs",
    "scenario_label",
    "summarise_scheme",
    "table6_comparison_rows",
    "with_hyperparameters",
]
