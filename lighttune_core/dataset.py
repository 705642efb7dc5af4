"""Dataset files (``.npz``): ``features`` float64 [N, 12], ``labels`` float64 [N] (quantised
BLER in {0.0, 0.1, ..., 1.0}) and ``meta`` (a JSON string: scenario, DU preset, seed ...).

``e2sim dataset`` writes them; ``lighttune-train``, ``e2sim study`` and the benchmarks read them
with :func:`load_dataset`, which lives here so that readers need not import the xApp.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from lighttune_core.features import N_FEATURES


class DatasetError(ValueError):
    """The dataset file is missing or does not follow the documented layout."""


def load_dataset(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """``(features [N, 12], labels [N], meta)`` of a dataset file.

    Raises:
        DatasetError: naming the file and the missing/malformed field.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("features", "labels", "meta") if k not in data.files]
            if missing:
                raise DatasetError(f"{path}: missing array(s) {missing} (need features, labels, meta)")
            features = np.asarray(data["features"])
            labels = np.asarray(data["labels"])
            meta_raw = data["meta"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable .npz dataset ({exc})") from exc
    if features.ndim != 2 or features.shape[1] != N_FEATURES or features.dtype.kind not in "fiu":
        raise DatasetError(f"{path}: features must be numeric [N, {N_FEATURES}], got {features.dtype} {features.shape}")
    if labels.shape != (features.shape[0],) or labels.dtype.kind not in "fiu":
        raise DatasetError(f"{path}: labels must be numeric [{features.shape[0]}], got {labels.dtype} {labels.shape}")
    try:
        meta = json.loads(str(meta_raw.item() if meta_raw.ndim == 0 else meta_raw.tobytes().decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: meta is not a JSON string ({exc})") from exc
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: meta must be a JSON object")
    return features.astype(np.float64), labels.astype(np.float64), meta
