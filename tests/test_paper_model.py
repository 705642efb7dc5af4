"""The shipped offline model (lighttune_models/offline-v9.ltm: offline-v6's network trained on the
80 ms, 40 ms and 20 ms CSI-RS data): loads, is small, predicts; and offline-v7.ltm, offline-v6
with a softmax readout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from e2sim.channel import Scenario
from e2sim.channel.scenario import TRAINING_SCENARIO
from e2sim.experiment import generate_dataset_conditions
from lighttune_core.tuner import LightTuneModel
from lighttune_core.training import STD_FLOOR
from lighttune_models import builtin_model_bytes
from lighttune_xapp.app import BUILTIN_MODEL, load_offline_model

# the shipped model on simulated data: run again under a second CPU-feature setting (.ci/run)
pytestmark = pytest.mark.float_sensitive

MODELS = Path(__file__).resolve().parents[1] / "lighttune_models"


@pytest.fixture(scope="module")
def shipped() -> LightTuneModel:
    return load_offline_model(BUILTIN_MODEL)


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    """Held-out data of the training channel with a seed the shipped model never saw, on the
    DU and link it was trained for (offline-v9: the default srsRAN preset, round-robin interval
    8, the default ldpc-mc BLER curves), in
    two of its nine training conditions: medium correlation at 16-24 dB and high correlation at
    28-40 dB, where the paper-condition model (offline-v2) predicted BLER 0 for everything."""
    scenario = Scenario.from_dict({**TRAINING_SCENARIO.to_dict(), "n_ue": 32, "seed": 97})
    return generate_dataset_conditions(scenario, [("medium", "medium"), ("high", "high")], 1600)


def test_builtin_model_has_the_paper_hyperparameters(shipped: LightTuneModel) -> None:
    # the label-conditioned input 11 labels x (F + 1) for the F = 75 encoded values (the 12
    # standardised features and 8 quantile bins of each, fewer where a feature has fewer
    # values, none for the CSI age, constant in the training data; gain 1), the paper's hidden
    # widths, loss, threshold and delta; the online lr measured for this network (tuner.ONLINE_LR)
    enc = shipped.encoding
    assert enc.width == 12 + sum(e.shape[0] + 1 for e in enc.bin_edges) == 75 and enc.gain == 1.0
    assert all(e.shape[0] <= 7 for e in enc.bin_edges) and enc.bin_edges[10].size == 0
    assert enc.scale[10] == STD_FLOOR  # the constant CSI age: floored, not 1e-6
    assert shipped.layer_sizes == (11 * 76, 32, 32)
    assert (shipped.threshold, shipped.lr, shipped.delta, shipped.loss) == (9.0, 0.0003, 0.3, "proposed")
    assert np.all(shipped.feature_scale > 0) and not np.all(shipped.feature_scale == 1.0)
    assert shipped.n_updates == 0  # offline-trained only: no online update recorded yet
    assert shipped.readout is None  # the arg-max goodness (offline-v7 adds a readout)


@pytest.mark.parametrize("name", ["offline-v9.ltm", "offline-v8.ltm", "offline-v7.ltm", "offline-v6.ltm", "offline-v5.ltm", "offline-v4.ltm", "offline-v3.ltm", "offline-v2.ltm", "offline-v1.ltm"])
def test_shipped_file_is_small_packaged_and_documented(name: str) -> None:
    data = builtin_model_bytes(name)
    # offline-v5's 880-wide input: 234,752 bytes (offline-v6, -v8 and -v9: 223,456); offline-v7 adds the
    # readout and its online iterate (2 x 11 x 704 weights): 358,816 bytes
    assert len(data) < 400_000
    readme = (MODELS / "README.md").read_text()
    assert hashlib.sha256(data).hexdigest() in readme, "models/README.md must state the file's SHA-256"
    assert "lighttune-train" in readme and "e2sim dataset" in readme


def test_beats_a_random_model_on_heldout_data(shipped: LightTuneModel, heldout: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = heldout
    err_shipped = np.abs(shipped.predict_many(x) - y).mean()
    for seed in range(3):
        # a random network of the shipped one's architecture and standardisation
        random_model = LightTuneModel(layer_sizes=shipped.layer_sizes, seed=seed, feature_mean=shipped.feature_mean,
                                      feature_scale=shipped.feature_scale, input_bins=shipped.encoding.bin_edges,
                                      input_gain=shipped.encoding.gain)
        err_random = np.abs(random_model.predict_many(x) - y).mean()
        assert err_shipped < err_random, (seed, err_shipped, err_random)
    # and it beats the flat prediction of the OLLA target by a clear margin (measured on this
    # set: 0.129 against 0.172 for the constant 0.1; offline-v8 0.125, offline-v6 0.122, offline-v4 0.128,
    # offline-v7 0.106)
    assert err_shipped < 0.8 * np.abs(0.1 - y).mean()


def test_fine_tuning_starts_from_the_shipped_parameters(shipped: LightTuneModel,
                                                       heldout: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = heldout
    again = load_offline_model(BUILTIN_MODEL)
    np.testing.assert_array_equal(again.predict_many(x), shipped.predict_many(x))
    # a sample predicted far off triggers exactly one update; the shipped copy is unchanged
    pred = again.predict_many(x)
    far = np.flatnonzero(np.abs(pred - 1.0) >= 0.3)
    assert far.size > 0
    assert again.learn_one(x[far[0]], 1.0)
    assert again.n_updates == 1 and shipped.n_updates == 0


def test_model_path_picks_any_packaged_model_by_name(caplog: pytest.LogCaptureFixture) -> None:
    """``modelPath: "builtin:NAME"`` loads another packaged model (offline-v4: the smaller,
    faster network of before the input bins); an unknown name is a config error that lists
    the packaged ones. A model trained with a constant feature scaled by ~0 (offline-v5's CSI
    age) loads with a warning that says so."""
    import logging

    from lighttune_xapp.config import ConfigError

    with caplog.at_level(logging.WARNING, logger="lighttune_xapp.app"):
        load_offline_model("builtin")
        assert not caplog.records  # offline-v9: no feature scaled below the floor
        v5 = load_offline_model("builtin:offline-v5.ltm")
    assert v5.layer_sizes == (880, 32, 32)
    assert "csi_age" in caplog.text and "constant in the model's training data" in caplog.text
    older = load_offline_model("builtin:offline-v4.ltm")
    assert older.layer_sizes == (143, 32, 32) and not older.encoding.has_bins
    assert older.to_bytes() == builtin_model_bytes("offline-v4.ltm")
    with pytest.raises(ConfigError, match="controls.modelPath.*offline-v6.ltm"):
        load_offline_model("builtin:offline-v10.ltm")


def test_offline_v7_is_offline_v6s_kind_of_network_with_a_readout_that_predicts_better(
    shipped: LightTuneModel, heldout: tuple[np.ndarray, np.ndarray]
) -> None:
    """``modelPath: "builtin:offline-v7.ltm"``: the same encoding and layers' shape as the
    builtin, plus a softmax readout on the 11 x 64 hidden activities whose median label is
    closer to the outcomes than the layers' arg-max goodness (measured on this set: 0.106
    against the builtin's 0.125)."""
    v7 = load_offline_model("builtin:offline-v7.ltm")
    assert v7.layer_sizes == shipped.layer_sizes and v7.encoding.width == shipped.encoding.width
    assert v7.readout is not None and v7.readout.weight.shape == (11, 11 * 64)
    assert (v7.readout_lr, v7.readout_average, v7.lr) == (0.003, 0.02, 0.0003)
    # fitted offline: the online iterate starts at the readout itself
    assert np.array_equal(v7.readout.fast_weight, v7.readout.weight)
    x, y = heldout
    err_v7 = np.abs(v7.predict_many(x) - y).mean()
    assert err_v7 < 0.92 * np.abs(shipped.predict_many(x) - y).mean()
    assert err_v7 < 0.7 * np.abs(0.1 - y).mean()
