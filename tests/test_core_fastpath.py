"""The fast decision path: blocked neuron-major forward, batch learning, unchecked and float32 search."""

from __future__ import annotations

import numpy as np
import pytest

from lighttune_core import ff
from lighttune_core.cell import CellTuner, TuneMode
from lighttune_core.features import BLER_LABELS
from lighttune_core.report import LinkReports
from lighttune_core.synthetic import random_reports, synthetic_threshold_task
from lighttune_core.tuner import LightTuneModel

# code paths compared bit for bit: run again under a second CPU-feature setting (.ci/run)
pytestmark = pytest.mark.float_sensitive


def _reports(n: int, seed: int) -> LinkReports:
    return random_reports(n, seed, first_tx=(1, 200))


@pytest.mark.parametrize("block", [1, 7, 100, 512, 5000])
@pytest.mark.parametrize(
    ("sizes", "encoding"), [(ff.PAPER_LAYER_SIZES, "scalar"), (ff.DEFAULT_LAYER_SIZES, "block")]
)
def test_block_size_does_not_change_the_goodness(block: int, sizes: tuple[int, ...], encoding: str) -> None:
    """Blocked goodness equals the plain forward of ``pair_inputs`` for both label encodings:
    ``||h_L||²`` for the paper's scalar input, ``Σ_l ||h_l||²`` for the block input."""
    params = ff.init_params(sizes, seed=3)
    plan = ff.plan_inference(params)
    assert plan.block == (encoding == "block")
    x = np.random.default_rng(4).random((300, 12)) * 2 - 0.5
    g_t = ff.goodness_all_labels_t(plan, x, block=block)
    assert g_t.shape == (11, 300) and g_t.dtype == np.float64
    outs = ff.forward(params, ff.pair_inputs(x[:, None, :], BLER_LABELS[None, :], encoding))
    used = outs if encoding == "block" else outs[-1:]
    direct = sum(np.sum(h * h, axis=-1) for h in used)
    np.testing.assert_allclose(g_t.T, direct, rtol=1e-12)
    for i in (0, 150, 299):
        np.testing.assert_allclose(ff.goodness_one_from_plan(plan, x[i]), g_t[:, i], rtol=1e-12)
    with pytest.raises(ValueError, match="block"):
        ff.goodness_all_labels_t(plan, x, block=0)


def test_deeper_networks_and_empty_input_use_the_same_kernel() -> None:
    params = ff.init_params((13, 16, 8, 8), seed=5)
    x = np.random.default_rng(6).random((40, 12))
    direct = ff.forward(params, ff.pair_inputs(x[:, None, :], BLER_LABELS[None, :]))[-1]
    np.testing.assert_allclose(ff.goodness_all_labels(params, x), np.sum(direct**2, axis=-1), rtol=1e-12)
    assert ff.goodness_all_labels(params, np.zeros((0, 12))).shape == (0, 11)
    assert ff.goodness_from_plan(ff.plan_inference(params), np.zeros((0, 12))).shape == (0, 11)


def test_learn_many_is_learn_one_in_order_bit_for_bit() -> None:
    x, y = synthetic_threshold_task(600, seed=7)
    one = LightTuneModel(seed=8)
    many = LightTuneModel.from_bytes(one.to_bytes())
    one.predict_many(x[:5])  # an inference plan refreshed in place from here on
    updates = sum(one.learn_one(x[i], y[i]) for i in range(len(y)))
    assert many.learn_many(x, y) == updates > 50
    assert many.to_bytes() == one.to_bytes()
    np.testing.assert_array_equal(many.predict_many(x), one.predict_many(x))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.ones((3, 11)), np.zeros(3), "shape"),
        (np.full((3, 12), np.nan), np.zeros(3), "finite"),
        (np.ones((3, 12)), np.zeros(2), "y must have shape"),
        (np.ones((3, 12)), np.array([0.0, 1.5, 0.1]), r"\[0, 1\]"),
        (np.ones((3, 12)), np.array([0.0, np.nan, 0.1]), r"\[0, 1\]"),
        (np.full((3, 12), 1e200), np.zeros(3), "too large"),
    ],
)
def test_learn_many_rejects_bad_batches_without_learning(x: np.ndarray, y: np.ndarray, message: str) -> None:
    model = LightTuneModel(seed=1)
    before = model.to_bytes()
    with pytest.raises(ValueError, match=message):
        model.learn_many(x, y)
    assert model.to_bytes() == before


def test_unchecked_prediction_float64_equals_predict_many_and_float32_nearly() -> None:
    model = LightTuneModel(seed=2)
    x = np.random.default_rng(3).random((3000, 12))
    exact = model.predict_many(x)
    np.testing.assert_array_equal(model.predict_many_unchecked(x), exact)
    f32 = model.predict_many_unchecked(x, np.float32)
    assert f32.dtype == np.float64 and np.all(np.isin(f32, BLER_LABELS))
    assert np.mean(f32 != exact) < 0.01  # only near-ties move
    # the float32 plan follows updates
    model.learn_many(x[:200], np.where(exact[:200] < 0.5, 1.0, 0.0))
    assert model.n_updates > 0
    assert np.mean(model.predict_many_unchecked(x, np.float32) != model.predict_many(x)) < 0.01
    with pytest.raises(ValueError, match="compute_dtype"):
        model.predict_many_unchecked(x, np.float16)
    assert model.predict_many_unchecked(np.zeros((0, 12))).shape == (0,)


@pytest.mark.parametrize("mode", [TuneMode.RI_CQI, TuneMode.CQI])
def test_float32_search_changes_almost_no_decision(mode: TuneMode) -> None:
    model = LightTuneModel(seed=0)
    reports = _reports(400, 11)
    d64 = CellTuner(model, mode).decide(reports)
    d32 = CellTuner(model, mode, search_dtype=np.float32).decide(reports)
    same = (d64.rank == d32.rank) & (d64.cqi == d32.cqi)
    assert np.mean(same) >= 0.98
    np.testing.assert_array_equal(d64.predicted_bler[same], d32.predicted_bler[same])


def test_search_rejects_bad_dtype_and_non_finite_features() -> None:
    with pytest.raises(ValueError, match="search_dtype"):
        CellTuner(LightTuneModel(seed=0), search_dtype=np.int64)
    reports = _reports(10, 12)
    snr = reports.csirs_snr_db.copy()
    snr[3] = np.inf  # an unvalidated report
    bad = LinkReports(**{**{f: getattr(reports, f) for f in reports.__dataclass_fields__}, "csirs_snr_db": snr})
    with pytest.raises(ValueError, match="finite"):
        CellTuner(LightTuneModel(seed=0)).decide(bad)


def _validate_reference(r: LinkReports) -> np.ndarray:
    """Field-by-field range checks of the interface table (the specification of ``validate``)."""
    ok = (r.ue_id >= 0) & (r.ue_id < 2**32)
    ok &= (r.ri >= 1) & (r.ri <= 4) & (r.cqi >= 0) & (r.cqi <= 15)
    ok &= (r.rank >= 1) & (r.rank <= 4) & (r.mcs >= 0) & (r.mcs <= 28)
    ok &= (r.n_ack >= 0) & (r.n_nack >= 0) & (r.served_bits >= 0)
    ok &= np.isfinite(r.csirs_snr_db) & (r.csirs_snr_db >= -30) & (r.csirs_snr_db <= 60)
    ok &= np.isfinite(r.olla_offset_db) & (r.olla_offset_db >= -20) & (r.olla_offset_db <= 20)
    ok &= np.isfinite(r.csi_age_ms) & (r.csi_age_ms >= 0)
    for i in range(len(r)):
        s = r.sinr_layers_db[i, : max(int(r.ri[i]), 0)]
        ok[i] &= bool(np.all(np.isfinite(s) & (s >= -30) & (s <= 60)))
    return ok


def test_validate_equals_the_field_by_field_reference_on_edge_values() -> None:
    rng = np.random.default_rng(21)
    base = _reports(3000, 22)
    fields = {f: getattr(base, f).copy() for f in base.__dataclass_fields__ if f != "cqi_table"}
    edges_int = np.array([-(2**63), -1, 0, 1, 3, 4, 5, 15, 16, 28, 29, 2**32 - 1, 2**32, 2**63 - 1])
    edges_float = np.array([np.nan, np.inf, -np.inf, -30.0, -30.000001, 60.0, 60.5, -20.0, 20.0, 20.1, 0.0, -0.0, -1e-300])
    for name, arr in fields.items():
        hit = rng.random(arr.shape[0]) < 0.05
        if name == "sinr_layers_db":
            cells = rng.random(arr.shape) < 0.05
            arr[cells] = rng.choice(edges_float, int(cells.sum()))
        elif arr.dtype == np.int64:
            arr[hit] = rng.choice(edges_int, int(hit.sum()))
        else:
            arr[hit] = rng.choice(edges_float, int(hit.sum()))
    reports = LinkReports(**fields)
    mask = reports.validate()
    assert mask.dtype == bool and 0.2 < mask.mean() < 0.9
    np.testing.assert_array_equal(mask, _validate_reference(reports))
    assert LinkReports(**{f: a[:0] for f, a in fields.items()}).validate().shape == (0,)


class _Counting:
    """A deterministic BLER predictor of the features that counts the rows it scores."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.rows = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.rows += x.shape[0]
        if self.kind == "zero":
            return np.zeros(x.shape[0])
        if self.kind == "one":
            return np.ones(x.shape[0])
        # a bumpy function of every feature, quantised to labels: many ties and reversals
        raw = 0.5 + 0.5 * np.sin(7.0 * x @ np.linspace(0.3, 2.1, 12) + 3.0 * x[:, 6] * x[:, 7])
        return np.round(np.clip(raw, 0.0, 1.0), 1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["bumpy", "zero", "one"])
def test_pruned_searches_decide_exactly_as_the_full_ones(seed: int, kind: str) -> None:
    from lighttune_core.linkadapt import cqi_tune, ri_cqi_tune

    reports = _reports(500, 30 + seed)
    for max_rank, window in ((4, 5), (2, 3), (4, 1)):
        full_p, pruned_p = _Counting(kind), _Counting(kind)
        full = ri_cqi_tune(full_p, reports, max_rank=max_rank, cqi_window=window)
        pruned = ri_cqi_tune(pruned_p, reports, max_rank=max_rank, cqi_window=window, prune=True)
        for a, b in zip(full, pruned):
            np.testing.assert_array_equal(a, b)
        assert pruned_p.rows <= full_p.rows
        if kind == "zero":  # the best bound wins outright: one prediction per UE
            assert pruned_p.rows == len(reports)
    for target, backoff in ((0.1, 14), (0.3, 4), (0.0, 2)):
        full_p, pruned_p = _Counting(kind), _Counting(kind)
        full_c = cqi_tune(full_p, reports, target_bler=target, max_backoff=backoff)
        pruned_c = cqi_tune(pruned_p, reports, target_bler=target, max_backoff=backoff, prune=True)
        for a, b in zip(full_c, pruned_c):
            np.testing.assert_array_equal(a, b)
        assert pruned_p.rows <= full_p.rows


def test_pruned_search_with_the_model_matches_the_full_search() -> None:
    from lighttune_core.linkadapt import ri_cqi_tune

    model = LightTuneModel(seed=3)
    reports = _reports(800, 40)
    full = ri_cqi_tune(model.predict_many, reports)
    pruned = ri_cqi_tune(model.predict_many, reports, prune=True)
    for a, b in zip(full, pruned):
        np.testing.assert_array_equal(a, b)


class _NoVersion:
    """The same model without a ``version``: the tuner must re-predict every sample."""

    def __init__(self, model: LightTuneModel) -> None:
        self._m = model
        self.delta = model.delta
        self.predicted_rows = 0

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        self.predicted_rows += x.shape[0]
        return self._m.predict_many(x)

    def learn_many(self, x: np.ndarray, y: np.ndarray) -> int:
        return self._m.learn_many(x, y)


def test_screen_reuses_decision_time_predictions_with_the_same_updates() -> None:
    # the decision-time prediction of an unchanged model replaces the screen's forward pass;
    # a model that cannot say whether it changed is re-predicted: same updates either way
    reuse = CellTuner(LightTuneModel(seed=3), TuneMode.RI_CQI)
    plain_model = _NoVersion(LightTuneModel(seed=3))
    plain = CellTuner(plain_model, TuneMode.RI_CQI)  # type: ignore[arg-type]
    total = 0
    for period in range(6):
        reports = _reports(300, 50 + period)
        a, b = reuse.step(reports), plain.step(reports)
        np.testing.assert_array_equal(a[0].cqi, b[0].cqi)
        np.testing.assert_array_equal(a[0].rank, b[0].rank)
        assert a[1].n_updates == b[1].n_updates
        total += a[1].n_updates
    assert total > 0 and plain_model.predicted_rows > 0
    for wa, wb in zip(reuse.model.params.weights, plain_model._m.params.weights):
        np.testing.assert_array_equal(wa, wb)
    # a model changed between decision and fit is re-predicted
    model = reuse.model
    samples = reuse.collect(_reports(300, 60))
    reuse.decide(_reports(300, 60))
    version = model.version
    model.params = ff.FFParams(model.params.weights, model.params.biases)
    assert model.version != version and np.all(samples.version != model.version)


def test_decide_then_fit_decides_with_the_model_before_the_period_is_learned() -> None:
    # the xApp's order: take the samples, decide, (send), fit: the decisions equal those of
    # a tuner that has not learned from this period, and the fit makes the same updates
    # (the rank-change check off: its per-UE counters would tell the two tuners apart)
    late = CellTuner(LightTuneModel(seed=5), TuneMode.RI_CQI, check_rank_changes=False)
    late.decide(_reports(200, 70))
    reports = _reports(200, 71)
    frozen = LightTuneModel.from_bytes(late.model.to_bytes())
    samples = late.collect(reports)
    decided = late.decide(reports)
    expected = CellTuner(frozen, TuneMode.RI_CQI, check_rank_changes=False).decide(reports)
    np.testing.assert_array_equal(decided.cqi, expected.cqi)
    np.testing.assert_array_equal(decided.rank, expected.rank)
    before = late.model.n_updates
    outcome = late.fit(samples)
    assert outcome.n_samples == 200 and outcome.n_updates == late.model.n_updates - before > 0
    with pytest.raises(ValueError, match="twice"):
        late.collect(reports.select(np.array([0, 0, 1])))


@pytest.mark.parametrize("prune", [True, False])
def test_ri_cqi_tune_hands_out_the_features_of_its_choice(prune: bool) -> None:
    from lighttune_core.features import build_features
    from lighttune_core.linkadapt import ri_cqi_tune

    reports = _reports(300, 80)
    model = LightTuneModel(seed=6)
    out = np.full((300, 12), np.nan)
    res = ri_cqi_tune(model.predict_many, reports, prune=prune, features_out=out)
    np.testing.assert_array_equal(out, build_features(reports, res.rank, res.cqi))
    with pytest.raises(ValueError, match="features_out"):
        ri_cqi_tune(model.predict_many, reports, features_out=np.empty((299, 12)))


def _partly_linear_params(seed: int) -> ff.FFParams:
    """[13, 32, 32] with large biases (every ReLU on for most inputs) except one layer-1 unit
    that a strongly weighted label turns off for some samples and labels."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 0.3, (32, 13))
    w1[0, 12] = -3.0
    b1 = rng.normal(1.5, 0.2, 32)
    b1[0] = 0.4
    w2 = rng.normal(0.0, 0.2, (32, 32))
    b2 = rng.normal(1.5, 0.3, 32)
    return ff.FFParams((w1, w2), (b1, b2))


def test_closed_form_goodness_only_where_every_relu_is_on_and_equal_there() -> None:
    # the all-labels closed form (two layers, every ReLU on) must accept no sample that has a
    # unit off for some label, must give the forward pass's goodness where it accepts, and
    # the block kernel must give the forward pass's goodness for all samples either way
    params = _partly_linear_params(1)
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.0, (2000, 12)) * rng.uniform(0.1, 3.0, (2000, 1))
    plan = ff.plan_inference(params)
    hs = ff.forward(params, ff.pair_inputs(x[:, None, :], BLER_LABELS[None, :]))
    all_on = np.all(hs[0] > 0, axis=(1, 2)) & np.all(hs[1] > 0, axis=(1, 2))
    direct = np.sum(hs[1] ** 2, axis=-1).T  # [K, N]
    out = np.full((11, 2000), np.nan)
    ok = ff._goodness_affine_t(plan, x, ff._workspace(plan, 2000), out)
    assert 0.1 < ok.mean() < 0.9
    assert not np.any(ok & ~all_on)
    np.testing.assert_allclose(out[:, ok], direct[:, ok], rtol=1e-12)
    np.testing.assert_allclose(ff.goodness_all_labels_t(plan, x), direct, rtol=1e-12)
    model = LightTuneModel.from_params(params)
    np.testing.assert_array_equal(model.predict_many(x[:400]), [model.predict_one(v) for v in x[:400]])


@pytest.mark.parametrize("widths", [(8, 40), (40, 5)])
@pytest.mark.parametrize("labels", [BLER_LABELS, np.array([-0.5, 0.0, 0.3, 2.0])])
def test_closed_form_other_widths_and_labels(widths: tuple[int, int], labels: np.ndarray) -> None:
    # the closed form's bound and polynomials are built from the plan's own widths and labels
    # (negative and > 1 labels included): never a sample with a unit off, forward-pass values
    rng = np.random.default_rng(sum(widths) + labels.shape[0])
    m1, m2 = widths
    params = ff.FFParams(
        (rng.normal(0.0, 0.3, (m1, 13)), rng.normal(0.0, 0.2, (m2, m1))),
        (rng.normal(1.5, 0.2, m1), rng.normal(1.5, 0.3, m2)),
    )
    x = rng.normal(0.0, 1.0, (1500, 12)) * rng.uniform(0.1, 3.0, (1500, 1))
    plan = ff.plan_inference(params, labels=labels)
    hs = ff.forward(params, ff.pair_inputs(x[:, None, :], labels[None, :]))
    all_on = np.all(hs[0] > 0, axis=(1, 2)) & np.all(hs[1] > 0, axis=(1, 2))
    direct = np.sum(hs[1] ** 2, axis=-1).T
    out = np.empty((labels.shape[0], 1500))
    ok = ff._goodness_affine_t(plan, x, ff._workspace(plan, 1500), out)
    assert ok.mean() > 0.8
    assert not np.any(ok & ~all_on)
    np.testing.assert_allclose(out[:, ok], direct[:, ok], rtol=1e-12)
    np.testing.assert_allclose(ff.goodness_all_labels_t(plan, x), direct, rtol=1e-12)
