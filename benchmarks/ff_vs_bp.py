"""LightTune (forward-only) update and inference vs a backpropagation update: time and memory.

Run from the repository root (single-threaded BLAS is what a shared-core xApp should use)::

    OPENBLAS_NUM_THREADS=1 python benchmarks/ff_vs_bp.py [--wall]

Measured, for the same sample:

* ``predict_one``, ``learn_one`` (with and without an update), and the bare FF update
  (:func:`lighttune_core.ff.pair_update_inplace`) of :class:`LightTuneModel` ``[13, 32, 32]``;
* one backpropagation SGD update of the standard alternative: an MLP
  ``[12, M_1, ..., M_L, 11]`` (ReLU) with a softmax cross-entropy head over the 11 BLER
  labels, written here in numpy (forward keeping every layer's activations, backward
  computing every gradient, then the SGD step); torch too if importable;
* peak extra memory (tracemalloc) of one FF update and one BP update, for widths
  ``[13, 32, 32]`` and ``[13, 256, 256, 256]``;
* ``predict_many`` for 1, 100 and 10,000 samples (float64, and float32 compute for reference
  with its argmax disagreement rate against float64).

Times are the median of repeated runs of the process CPU time (``--wall``: wall clock).
Results are printed and saved as ``benchmarks/results/ff_vs_bp.{md,json}``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lighttune_core import ff
from lighttune_core.tuner import LightTuneModel

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS_US = {"predict_one": 30.0, "learn_one (update)": 60.0, "predict_many(10000)": 20_000.0}


TIMER: Callable[[], float] = time.process_time
"""CPU time of this process: on a shared, loaded machine wall-clock time mostly measures the
other processes (run with ``OPENBLAS_NUM_THREADS=1`` so that no BLAS helper thread is
counted). ``--wall`` switches to ``time.perf_counter``."""


def median_time_us(fn: Callable[[], Any], repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls, µs (:data:`TIMER`)."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = TIMER()
        for _ in range(inner):
            fn()
        samples.append((TIMER() - t0) / inner * 1e6)
    return float(np.median(samples))


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

    return median_time_us(step, 7, 200)


def main() -> None:
    global TIMER
    if "--wall" in sys.argv[1:]:
        TIMER = time.perf_counter
    rng = np.random.default_rng(0)
    x = rng.random(12)
    rows: dict[str, Any] = {}

    model = LightTuneModel(seed=0)
    y_hat = model.predict_one(x)
    far = 1.0 if y_hat < 0.5 else 0.0
    rows["predict_one_us"] = median_time_us(lambda: model.predict_one(x), 7, 2000)

    def learn_far() -> None:
        # the label is always >= delta from the prediction: every call updates
        model.learn_one(x, 1.0 if model.predict_one(x) < 0.5 else 0.0)

    t_pred = rows["predict_one_us"]
    rows["learn_one_update_us"] = median_time_us(learn_far, 7, 1000) - t_pred
    calm = LightTuneModel(seed=0)
    rows["learn_one_no_update_us"] = median_time_us(lambda: calm.learn_one(x, calm.predict_one(x)), 7, 1000) - t_pred
    assert model.n_updates == model.n_seen > 0 and calm.n_updates == 0

    memory: list[dict[str, Any]] = []
    for sizes in ((13, 32, 32), (13, 256, 256, 256)):
        params = ff.init_params(sizes, seed=0)
        bp = BackpropMlp(sizes[1:], seed=0)
        ff_us = median_time_us(lambda: ff.pair_update_inplace(params, x, 0.0, far, 0.03), 7, 500)
        bp_us = median_time_us(lambda: bp.update(x, 3), 7, 500)
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
    plan32 = ff.plan_inference(model.params, dtype=np.float32)
    for n in (1, 100, 10_000):
        xs = rng.random((n, 12))
        inner = max(1, 2000 // n)
        t64 = median_time_us(lambda: model.predict_many(xs), 7, inner)
        t32 = median_time_us(lambda: ff.predict_labels(model.params, xs, plan=plan32), 7, inner)
        disagree = float(np.mean(model.predict_many(xs) != ff.predict_labels(model.params, xs, plan=plan32)))
        many.append({"n": n, "float64_us": t64, "float32_us": t32, "float32_argmax_disagreement": disagree})
    rows["predict_many"] = many

    meta = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "timer": TIMER.__name__,
        "bp_baseline": "numpy MLP [12, hidden..., 11], softmax cross-entropy head, plain SGD",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ff_vs_bp.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")

    lines = [
        "# LightTune FF update vs backpropagation",
        "",
        f"`OPENBLAS_NUM_THREADS={meta['OPENBLAS_NUM_THREADS']} python benchmarks/ff_vs_bp.py` — "
        f"{meta['cpus']} CPUs, 1-min load {meta['load_average_1min']:.2f}, numpy {meta['numpy']}. "
        f"Median times by `time.{meta['timer']}`. BP baseline: numpy MLP with a softmax cross-entropy head over the 11 labels.",
        "",
        "| LightTuneModel [13, 32, 32] | µs | target µs |",
        "|---|---|---|",
        f"| predict_one | {rows['predict_one_us']:.1f} | {TARGETS_US['predict_one']:.0f} |",
        f"| learn_one with an update | {rows['learn_one_update_us']:.1f} | {TARGETS_US['learn_one (update)']:.0f} |",
        f"| learn_one without an update | {rows['learn_one_no_update_us']:.1f} | |",
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
    lines += ["", "| predict_many N | float64 µs | float32 µs | float32 argmax disagreement |", "|---|---|---|---|"]
    for r in many:
        lines.append(
            f"| {r['n']} | {r['float64_us']:.1f} | {r['float32_us']:.1f} | {r['float32_argmax_disagreement']:.4f} |"
        )
    lines.append(f"\nTarget: predict_many(10,000) ≤ {TARGETS_US['predict_many(10000)'] / 1000:.0f} ms.")
    (RESULTS / "ff_vs_bp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
