"""KPM indication format 3 encode/decode speed, asn1tools vs pycrate (64 and 1,000 UEs).

Run: ``.venv/bin/python benchmarks/kpm_codec.py``; prints a table and saves
``benchmarks/results/kpm_codec.json``.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from lighttune_e2.kpm.timing import time_indication_format3


def main() -> None:
    rows = [time_indication_format3(64, repeats=9), time_indication_format3(1000, repeats=3)]
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(f"{row[k]:.1f}" for k in keys))
    out = Path(__file__).parent / "results" / "kpm_codec.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"python": platform.python_version(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
