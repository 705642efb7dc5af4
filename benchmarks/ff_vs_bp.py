"""LightTune (forward-only) update and inference vs a backpropagation update: time and memory.

Run from the repository root (single-threaded BLAS is what a shared-core xApp should use)::

    python benchmarks/ff_vs_bp.py [--model FILE.ltm] [--out-name STEM]

Measured, for the same sample:

* ``predict_one`` and ``learn_one`` (with and without an update) of the packaged offline
  model (``lighttune_models.BUILTIN_MODEL_FILE``, the xApp's ``modelPath: builtin``; offline-v5
  ``[880, 32, 32]``) or of ``--model``, and the bare FF update
  (:func:`lighttune_core.ff.pair_update_inplace`);
* one backpropagation SGD update of the standard alternative: an MLP
  ``[12, M_1, ..., M_L, 11]`` (ReLU) with a softmax cross-entropy head over the 11 BLER
  labels, written here in numpy (forward keeping every layer's activations, backward
  computing every gradient, then the SGD step); torch too if importable;
* peak extra memory (tracemalloc) of one FF update and one BP update, for widths
  ``[13, 32, 32]`` and ``[13, 256, 256, 256]``;
* ``predict_many`` for 1, 100 and 10,000 samples (float64, and float32 compute for reference
  with its argmax disagreement rate against float64).

Times are wall clock (``time.perf_counter``) with BLAS limited to one thread: the best of
repeated loops for the predictions (``predict_many``: best of 40 loops, about 1 s for
10,000 samples, with the median beside it); for ``learn_one``, 4,000 individually timed calls on a
stream of different samples, each with a label at least δ from the model's prediction (so
each call updates the model, which keeps changing): the mean of the best
batch of 100 consecutive calls — the analogue of ``timeit``'s best of repeats, since this
shared VM has phases in which every call runs about twice as slow — with the median and
p10/p90 of all calls beside it. And ``timeit``-style, best of 7 passes over 1,000 different
samples: ``predict_one``, and ``learn_one`` on a copy of the model with lr 1e-12, so that its
predictions stay put and every call makes an update with the same arithmetic. Run on a quiet
machine.
Results are printed and saved as ``benchmarks/results/ff_vs_bp.{md,json}`` (``--out-name``
changes the stem). Up to the tenth session the model was ``offline-v2.ltm`` ``[143, 32, 32]``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import timeit
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from threadpoolctl import threadpool_limits

from lighttune_core import ff
from lighttune_core.tuner import LightTuneModel

def packaged_or_fresh_model(path: Path | None = None) -> tuple[LightTuneModel, str]:
    """The model file ``path``, else the xApp's packaged offline model (what ``learn_one`` runs
    on in the field), else a fresh seeded model; with the name the figures are reported under."""
    from lighttune_models import BUILTIN_MODEL_FILE, builtin_model_bytes

    if path is not None:
        return LightTuneModel.from_bytes(path.read_bytes()), f"model file {path.name}"
    try:
        return LightTuneModel.from_bytes(builtin_model_bytes()), f"packaged {BUILTIN_MODEL_FILE}"
    except OSError:
        return LightTuneModel(seed=0), "fresh LightTuneModel(seed=0)"


RESULTS = Path(__file__).resolve().parent / "results"
TARGETS_US = {"predict_one": 30.0, "learn_one (update)": 60.0, "predict_many(10000)": 20_000.0}


TIMER: Callable[[], float] = time.perf_counter
"""Wall clock at ~0.1 µs resolution (``time.process_time`` ticks in coarse steps on some
kernels and made short calls read as 0 or negative after subtraction). Run on a quiet machine;
BLAS is limited to one thread in :func:`main` (threadpoolctl), as in the xApp."""


def time_samples_us(fn: Callable[[], Any], repeats: int, inner: int) -> np.ndarray:
    """The mean time of ``inner`` calls, µs (:data:`TIMER`), for each of ``repeats`` loops."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = TIMER()
        for _ in range(inner):
            fn()
        samples.append((TIMER() - t0) / inner * 1e6)
    return np.asarray(samples)


def best_time_us(fn: Callable[[], Any], repeats: int, inner: int) -> float:
    """Best (least disturbed) over ``repeats`` of the mean time of ``inner`` calls, µs (:data:`TIMER`)."""
    return float(np.min(time_samples_us(fn, repeats, inner)))


def layers_label(model: LightTuneModel, x: np.ndarray) -> float:
    """The label LightTune's step screens with: the layers' arg-max goodness (with a softmax
    readout the model predicts the readout's median, which the step does not screen with)."""
    head = model.readout
    if head is None:
        return model.predict_one(x)
    model.readout = None
    try:
        return model.predict_one(x)
    finally:
        model.readout = head


def learn_call_times_us(model: LightTuneModel, xs: np.ndarray, far: bool) -> tuple[np.ndarray, int]:
    """Time single ``learn_one`` calls over the stream ``xs`` [N, 12], µs [N].

    With ``far`` each sample's label is chosen (untimed, from :func:`layers_label`) at least δ
    away from the layers' label, so every call makes an update on a model that keeps
    changing; otherwise the label is the prediction itself (no update). Only the
    ``learn_one`` call is inside the timer. Returns the times and the number of updates.
    """
    times = np.empty(xs.shape[0])
    before = model.n_updates
    for i, x in enumerate(xs):
        y_hat = layers_label(model, x)
        y = (1.0 if y_hat < 0.5 else 0.0) if far else y_hat
        t0 = TIMER()
        model.learn_one(x, y)
        times[i] = (TIMER() - t0) * 1e6
    return times, model.n_updates - before


def peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated (tracemalloc) while ``fn`` runs, over what was live before."""
    fn()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return int(peak - base)


class BackpropMlp:
    """Baseline: ReLU MLP ``[12, M_1, ..., M_L, 11]`` + softmax cross-entropy, plain SGD.

    ``update(x, k)``: forward keeping ``a_0..a_L`` (``O(Σ_l M_l)``), backward
    ``δ_L = softmax − onehot(k)``, ``δ_{l-1} = (W_lᵀ δ_l) ⊙ 1(a_{l-1} > 0)``, all gradients
    kept (``O(Σ_l M_l M_{l-1})``), then ``W ← W − lr ∇W`` for every layer.
    """

    def __init__(self, hidden: tuple[int, ...], seed: int = 0, lr: float = 0.03) -> None:
        rng = np.random.default_rng(seed)
        dims = (12,) + hidden + (11,)
        self.weights = [rng.standard_normal((o, i)) * np.sqrt(2.0 / i) for i, o in zip(dims[:-1], dims[1:])]
        self.biases = [np.zeros(o) for o in dims[1:]]
        self.lr = lr

    def update(self, x: np.ndarray, k: int) -> None:
        acts = [x]
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            acts.append(np.maximum(w @ acts[-1] + b, 0.0))
        logits = self.weights[-1] @ acts[-1] + self.biases[-1]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        delta = p
        delta[k] -= 1.0
        grads: list[tuple[np.ndarray, np.ndarray]] = []
        for layer in range(len(self.weights) - 1, -1, -1):
            grads.append((np.outer(delta, acts[layer]), delta))
            if layer:
                delta = (self.weights[layer].T @ delta) * (acts[layer] > 0)
        for (gw, gb), w, b in zip(reversed(grads), self.weights, self.biases):
            w -= self.lr * gw
            b -= self.lr * gb


def torch_update_us(hidden: tuple[int, ...], x: np.ndarray, k: int) -> float | None:
    """Time of one torch SGD step of the same BP baseline, µs; None without torch."""
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(1)
    dims = (12,) + hidden
    layers: list[Any] = []
    for i, o in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(i, o, dtype=torch.float64), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(dims[-1], 11, dtype=torch.float64))
    opt = torch.optim.SGD(net.parameters(), lr=0.03)
    xt = torch.from_numpy(x[None, :])
    kt = torch.tensor([k])

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), kt).backward()
        opt.step()

    return best_time_us(step, 7, 200)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, help="model file (default: the packaged builtin model)")
    ap.add_argument("--out-name", default="ff_vs_bp", help="stem of the saved results (default %(default)s)")
    args = ap.parse_args()
    threadpool_limits(1)
    rng = np.random.default_rng(0)
    x = rng.random(12)
    rows: dict[str, Any] = {}

    model, rows["model"] = packaged_or_fresh_model(args.model)
    y_hat = model.predict_one(x)
    far = 1.0 if y_hat < 0.5 else 0.0
    rows["predict_one_us"] = best_time_us(lambda: model.predict_one(x), 7, 2000)  # one sample, best of loops

    stream = rng.random((4000, 12))
    upd_times, n_upd = learn_call_times_us(model, stream, far=True)
    calm_times, n_calm = learn_call_times_us(model, stream, far=False)
    assert n_upd == stream.shape[0] and n_calm == 0
    # every call updates: a copy with lr 1e-12 keeps its predictions (and so the labels'
    # distance δ from them) while running exactly the arithmetic of an update
    still = LightTuneModel.from_bytes(model.to_bytes())
    still.lr = 1e-12
    pairs = [(xi, 1.0 if layers_label(still, xi) < 0.5 else 0.0) for xi in stream[:1000]]

    def learn_pairs() -> None:
        for xi, yi in pairs:
            still.learn_one(xi, yi)

    before = still.n_updates
    rows["learn_one_update_timeit_us"] = min(timeit.repeat(learn_pairs, number=1, repeat=7)) / len(pairs) * 1e6
    assert still.n_updates - before == 7 * len(pairs)
    rows["predict_one_stream_timeit_us"] = (
        min(timeit.repeat(lambda: [still.predict_one(xi) for xi, _ in pairs], number=1, repeat=7)) / len(pairs) * 1e6
    )
    # like timeit's best of repeats: the mean of the least disturbed batch of 100 calls (this
    # VM has phases of ~2x slower calls from outside); the median of all calls beside it
    rows["learn_one_update_us"] = float(upd_times.reshape(-1, 100).mean(axis=1).min())
    rows["learn_one_update_median_us"] = float(np.median(upd_times))
    rows["learn_one_update_p10_p90_us"] = [float(np.percentile(upd_times, 10)), float(np.percentile(upd_times, 90))]
    rows["learn_one_no_update_us"] = float(calm_times.reshape(-1, 100).mean(axis=1).min())
    rows["learn_one_no_update_median_us"] = float(np.median(calm_times))
    rows["learn_one_calls_timed"] = int(stream.shape[0])

    memory: list[dict[str, Any]] = []
    for sizes in ((13, 32, 32), (13, 256, 256, 256)):
        params = ff.init_params(sizes, seed=0)
        bp = BackpropMlp(sizes[1:], seed=0)
        ff_us = best_time_us(lambda: ff.pair_update_inplace(params, x, 0.0, far, 0.03), 7, 500)
        bp_us = best_time_us(lambda: bp.update(x, 3), 7, 500)
        memory.append(
            {
                "layer_sizes": list(sizes),
                "ff_update_us": ff_us,
                "bp_update_us": bp_us,
                "torch_bp_update_us": torch_update_us(sizes[1:], x, 3),
                "ff_update_peak_bytes": peak_bytes(lambda: ff.pair_update_inplace(params, x, 0.0, far, 0.03)),
                "bp_update_peak_bytes": peak_bytes(lambda: bp.update(x, 3)),
                "max_layer_weight_bytes": 8 * max(a * b for a, b in zip(sizes[:-1], sizes[1:])),
                "total_weight_bytes": 8 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:])),
            }
        )
    rows["update_comparison"] = memory

    many: list[dict[str, Any]] = []
    for n in (1, 100, 10_000):
        xs = rng.random((n, 12))
        inner = max(1, 2000 // n)
        # 40 loops (about 1 s for N = 10,000): this VM's speed drifts by up to 1.6x within
        # seconds, so the best of a longer spread of loops is the undisturbed figure; the
        # median is kept beside it
        t64 = time_samples_us(lambda: model.predict_many(xs), 40, inner)
        # the model's float32 path (its standardisation included)
        t32 = best_time_us(lambda: model.predict_many_unchecked(xs, np.float32), 7, inner)
        disagree = float(np.mean(model.predict_many(xs) != model.predict_many_unchecked(xs, np.float32)))
        many.append({"n": n, "float64_us": float(t64.min()), "float64_median_us": float(np.median(t64)),
                     "float32_us": t32, "float32_argmax_disagreement": disagree})
    rows["predict_many"] = many

    meta = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "blas_threads": 1,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "timer": TIMER.__name__,
        "bp_baseline": "numpy MLP [12, hidden..., 11], softmax cross-entropy head, plain SGD",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out_name}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")

    lines = [
        "# LightTune FF update vs backpropagation",
        "",
        f"`python benchmarks/ff_vs_bp.py` — "
        f"{meta['cpus']} CPUs, 1-min load {meta['load_average_1min']:.2f}, numpy {meta['numpy']}, one BLAS thread. "
        f"Times by `time.{meta['timer']}`: predict_one and bare updates, best of 7 loops; predict_many, best of 40 loops (median beside it); learn_one: {rows['learn_one_calls_timed']} single "
        f"calls on a changing model ({rows['model']}), the mean of the best batch of 100 (median of all calls in brackets). "
        f"BP baseline: numpy MLP with a softmax cross-entropy head over the 11 labels.",
        "",
        f"| LightTuneModel {list(model.layer_sizes)} | µs | target µs |",
        "|---|---|---|",
        f"| predict_one | {rows['predict_one_us']:.1f} | {TARGETS_US['predict_one']:.0f} |",
        f"| predict_one, 1,000 different samples, best of 7 passes | {rows['predict_one_stream_timeit_us']:.1f} | "
        f"{TARGETS_US['predict_one']:.0f} |",
        f"| learn_one with an update, 1,000 different samples, best of 7 passes (every call updates) "
        f"| {rows['learn_one_update_timeit_us']:.1f} | {TARGETS_US['learn_one (update)']:.0f} |",
        f"| learn_one with an update (all calls: median {rows['learn_one_update_median_us']:.1f}, "
        f"p10-p90 {rows['learn_one_update_p10_p90_us'][0]:.1f}-{rows['learn_one_update_p10_p90_us'][1]:.1f}) "
        f"| {rows['learn_one_update_us']:.1f} | {TARGETS_US['learn_one (update)']:.0f} |",
        f"| learn_one without an update (all calls: median {rows['learn_one_no_update_median_us']:.1f}) "
        f"| {rows['learn_one_no_update_us']:.1f} | |",
        "",
        "| layers | FF update µs | BP update µs | torch BP µs | FF peak bytes | BP peak bytes | max layer W bytes | all W bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in memory:
        torch_txt = "n/a (no torch)" if m["torch_bp_update_us"] is None else f"{m['torch_bp_update_us']:.1f}"
        lines.append(
            f"| {m['layer_sizes']} | {m['ff_update_us']:.1f} | {m['bp_update_us']:.1f} | {torch_txt} | "
            f"{m['ff_update_peak_bytes']} | {m['bp_update_peak_bytes']} | {m['max_layer_weight_bytes']} | "
            f"{m['total_weight_bytes']} |"
        )
    lines += ["", "| predict_many N | float64 µs, best of 40 (median) | float32 µs | float32 argmax disagreement |",
              "|---|---|---|---|"]
    for r in many:
        lines.append(
            f"| {r['n']} | {r['float64_us']:.1f} ({r['float64_median_us']:.1f}) | {r['float32_us']:.1f} | "
            f"{r['float32_argmax_disagreement']:.4f} |"
        )
    lines.append(f"\nTarget: predict_many(10,000) ≤ {TARGETS_US['predict_many(10000)'] / 1000:.0f} ms.")
    (RESULTS / f"{args.out_name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
