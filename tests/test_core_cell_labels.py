"""Which periods LightTune learns from: a label needs enough transmissions to resolve λ = 0.1."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lighttune_core.cell import MIN_LABEL_TX, CellTuner, TuneMode
from lighttune_core.features import FEATURE_NAMES, UNKNOWN_PREV_BLER
from lighttune_core.report import LinkReports
from lighttune_core.synthetic import random_reports
from lighttune_core.tuner import LightTuneModel


def _run(first_tx: tuple[int, int], min_label_tx: int | None = None) -> tuple[int, int, CellTuner]:
    tuner = CellTuner(LightTuneModel(seed=4), TuneMode.RI_CQI, min_label_tx=min_label_tx)
    samples = updates = 0
    for period in range(5):
        _, outcome = tuner.step(random_reports(200, 80 + period, first_tx=first_tx))
        samples += outcome.n_samples
        updates += outcome.n_updates
    return samples, updates, tuner


def test_short_periods_are_scored_but_not_learned_from() -> None:
    samples, updates, tuner = _run((1, MIN_LABEL_TX - 1))
    assert samples == 4 * 200  # every period after the first has an outcome: all are scored
    assert updates == 0 and tuner.model.n_updates == 0


def test_periods_with_enough_transmissions_are_learned_from() -> None:
    _, updates, _ = _run((MIN_LABEL_TX, 200))
    assert updates > 0


def test_the_bound_is_a_setting() -> None:
    _, updates, _ = _run((1, MIN_LABEL_TX - 1), min_label_tx=1)
    assert updates > 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_a_bad_bound_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="min_label_tx"):
        CellTuner(LightTuneModel(seed=0), min_label_tx=bad)  # type: ignore[arg-type]


def _with_counts(reports: LinkReports, n_ack: int, n_nack: int) -> LinkReports:
    n = len(reports)
    return replace(reports, n_ack=np.full(n, n_ack, dtype=np.int64), n_nack=np.full(n, n_nack, dtype=np.int64))


def _prev_feature(tuner: CellTuner, reports: LinkReports) -> float:
    """The previous-BLER input of the decision the tuner takes on ``reports`` (UE 0)."""
    tuner.decide(reports)
    return float(tuner._pending_x[0, FEATURE_NAMES.index("prev_bler")])


def test_previous_bler_spans_enough_transmissions() -> None:
    # short periods (3 transmissions) are pooled until a window of >= 10 closes; a long
    # period (20) is a window on its own: the previous period's BLER, as in the training data
    base = random_reports(1, 5)
    tuner = CellTuner(LightTuneModel(seed=0), TuneMode.OFF)
    seen = [_prev_feature(tuner, _with_counts(base, a, b)) for a, b in [(2, 1), (3, 0), (1, 2), (3, 0)]]
    assert seen[:3] == [UNKNOWN_PREV_BLER] * 3
    assert seen[3] == pytest.approx(3 / 12)
    assert _prev_feature(tuner, _with_counts(base, 3, 0)) == pytest.approx(3 / 12)  # window open again
    assert _prev_feature(tuner, _with_counts(base, 15, 5)) == pytest.approx(5 / 23)  # 3 pooled + 20
    assert _prev_feature(tuner, _with_counts(base, 16, 4)) == pytest.approx(0.2)
    assert _prev_feature(tuner, _with_counts(base, 0, 0)) == pytest.approx(0.2)  # no transmission: kept


def test_the_xapp_reads_the_bound_from_its_descriptor() -> None:
    import json
    from pathlib import Path

    from lighttune_xapp.config import ConfigError, load_config

    descriptor = json.loads((Path(__file__).resolve().parents[1] / "xapp-descriptor" / "config-file.json").read_text())
    assert load_config(descriptor).min_label_tx == MIN_LABEL_TX
    descriptor["controls"]["minLabelTx"] = 3
    assert load_config(descriptor).min_label_tx == 3
    descriptor["controls"]["minLabelTx"] = 0
    with pytest.raises(ConfigError, match="minLabelTx"):
        load_config(descriptor)
