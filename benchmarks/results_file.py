"""Where the benchmark scripts leave their figures: one JSON file each under ``benchmarks/results/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""``benchmarks/results/``."""


def save_results(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON to ``path`` (parents created) and say so on stdout."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"saved {out.name}")
    return out
