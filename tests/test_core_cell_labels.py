"""Which periods LightTune learns from: a label needs enough transmissions to resolve λ = 0.1."""

from __future__ import annotations

import numpy as np
import pytest

from lighttune_core.cell import MIN_LABEL_TX, CellTuner, TuneMode
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
