"""Random vs hardest wrong-label negatives for offline FF training (held-out accuracy).

Run from the repository root::

    python benchmarks/ff_negatives.py

Trains :func:`lighttune_core.training.train_offline` (greedy, Adam 0.03, proposed loss,
batch 64, 15 epochs per layer, seed 0) on 3,000 samples of each synthetic task of
:mod:`lighttune_core.synthetic` and evaluates on 2,000 held-out samples (another seed), for
``[13, 32]`` and ``[13, 32, 32]``. Prints a table and saves it as markdown and JSON under
``benchmarks/results/``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from lighttune_core.synthetic import synthetic_bler_task, synthetic_threshold_task
from lighttune_core.training import NEGATIVE_KINDS, train_offline

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    tasks = {"threshold": synthetic_threshold_task, "link_budget": synthetic_bler_task}
    rows: list[dict[str, object]] = []
    for task_name, task in tasks.items():
        x, y = task(3000, seed=1)
        xe, ye = task(2000, seed=2)
        majority = float(np.mean(ye == np.bincount(np.round(y * 10).astype(int)).argmax() / 10))
        for sizes in ((13, 32), (13, 32, 32)):
            for kind in NEGATIVE_KINDS:
                t0 = time.perf_counter()
                result = train_offline(
                    x, y, layer_sizes=sizes, epochs=15, batch_size=64, negatives=kind, seed=0,
                    eval_features=xe, eval_labels=ye,
                )
                last = result.history[-1]
                layer1 = [r for r in result.history if r.layer == 1][-1]
                rows.append(
                    {
                        "task": task_name,
                        "layer_sizes": list(sizes),
                        "negatives": kind,
                        "accuracy": round(last.accuracy, 4),
                        "mean_abs_error": round(last.mean_abs_error, 4),
                        "layer1_accuracy": round(layer1.accuracy, 4),
                        "majority_class_accuracy": round(majority, 4),
                        "train_seconds": round(time.perf_counter() - t0, 2),
                    }
                )
                print(rows[-1], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"python": sys.version.split()[0], "numpy": np.__version__, "machine": platform.machine()}
    (RESULTS / "ff_negatives.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# Offline FF training: random vs hardest negatives",
        "",
        "`python benchmarks/ff_negatives.py` — greedy Adam 0.03, batch 64, 15 epochs/layer, seed 0,",
        "3,000 training / 2,000 held-out samples.",
        "",
        "| task | layers | negatives | held-out acc. | mean abs err | layer-1 acc. | majority acc. |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['layer_sizes']} | {r['negatives']} | {r['accuracy']:.3f} | "
            f"{r['mean_abs_error']:.3f} | {r['layer1_accuracy']:.3f} | {r['majority_class_accuracy']:.3f} |"
        )
    (RESULTS / "ff_negatives.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
