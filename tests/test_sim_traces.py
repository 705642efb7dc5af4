"""Trace record/replay: bit-identical replay, metadata, external import checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from e2sim.channel import LinkChannel, Scenario
from e2sim.du import DU
from e2sim.traces import (
    TraceFormatError,
    TraceReplay,
    import_external_trace,
    record_trace,
)

SCENARIO = Scenario(profile="TDL-B50", doppler_hz=30.0, n_ue=5, snr_db=(5.0, 25.0),
                    csi_period_ms=10, csi_snr_error_db=0.5, seed=4)
N_SLOTS = 120


def _du_run(source: LinkChannel | TraceReplay) -> list[tuple[np.ndarray, ...]]:
    du = DU(source.scenario, subband_n_rb=source.subband_n_rb)
    rows = []
    for _ in range(N_SLOTS):
        out = du.step(source.step())
        if out is not None:
            r = out.reports
            rows.append((r.ri, r.cqi, r.sinr_layers_db, r.mcs, r.n_ack, r.n_nack,
                         r.served_bits, r.olla_offset_db, out.mean_tb_bler))
    return rows


@pytest.mark.float_sensitive
def test_replay_is_bit_identical_to_live(tmp_path: Path) -> None:
    path = record_trace(SCENARIO, N_SLOTS, tmp_path / "t.npz")
    live = LinkChannel(SCENARIO)
    replay = TraceReplay(path)
    assert replay.scenario == SCENARIO and replay.n_slots == N_SLOTS
    for _ in range(N_SLOTS):
        a, b = live.step(), replay.step()
        assert a.slot == b.slot and a.csi_instant == b.csi_instant
        assert a.sinr_db.dtype == b.sinr_db.dtype == np.float32
        assert np.array_equal(a.sinr_db, b.sinr_db, equal_nan=True)
        assert np.array_equal(a.csirs_snr_db, b.csirs_snr_db)
    with pytest.raises(EOFError):
        replay.step()
    live_rows = _du_run(LinkChannel(SCENARIO))
    trace_rows = _du_run(TraceReplay(path))
    assert len(live_rows) == len(trace_rows) > 5
    for x, y in zip(live_rows, trace_rows):
        for u, v in zip(x, y):
            assert np.array_equal(u, v, equal_nan=True)


def test_metadata_and_schema_checks(tmp_path: Path) -> None:
    path = record_trace(SCENARIO, 10, tmp_path / "t.npz", dtype="float16")
    with np.load(path) as npz:
        meta = json.loads(str(npz["meta"]))
        assert int(npz["schema_version"]) == 1
        assert npz["sinr_packed"].dtype == np.float16
        assert npz["sinr_packed"].shape == (10, 5, 10, LinkChannel(SCENARIO).n_subbands)
    assert meta["format"] == "lighttune-e2sim-trace" and meta["n_slots"] == 10
    assert Scenario.from_dict(meta["scenario"]) == SCENARIO
    replay = TraceReplay(path)
    live = LinkChannel(SCENARIO).step()
    got = replay.step().sinr_db
    assert np.allclose(got, live.sinr_db, atol=0.05, equal_nan=True)
    bad = tmp_path / "bad.npz"
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    members["schema_version"] = np.int64(99)
    np.savez(bad, **members)
    with pytest.raises(TraceFormatError, match="schema_version 99"):
        TraceReplay(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TraceFormatError):
        TraceReplay(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="dtype"):
        record_trace(SCENARIO, 3, tmp_path / "x.npz", dtype="int8")


def test_import_external_trace(tmp_path: Path) -> None:
    scenario = Scenario(profile="TDL-A30", n_ue=3, csi_period_ms=10, seed=1)
    rng = np.random.default_rng(0)
    t, u = 40, 3
    sinr = rng.uniform(0.0, 20.0, size=(t, u, 2, 2, 4))  # ranks 1-2 only, 4 subbands
    path = import_external_trace(tmp_path / "ext.npz", scenario, sinr, source="other LLS")
    replay = TraceReplay(path)
    assert replay.info.source == "external: other LLS" and replay.n_slots == t
    first = replay.step()
    assert first.csi_instant
    assert np.allclose(first.sinr_db[:, :2, :2], np.where(np.tril(np.ones((2, 2)))[None, :, :, None] > 0,
                                                          sinr[0], np.nan), equal_nan=True)
    assert np.all(np.isnan(first.sinr_db[:, 2:]))
    du = DU(scenario, subband_n_rb=replay.subband_n_rb)
    outs = [o for s in [first, *replay] if (o := du.step(s)) is not None]
    assert outs and all(np.all(o.reports.ri <= 2) for o in outs)
    with pytest.raises(ValueError, match="UEs"):
        import_external_trace(tmp_path / "e.npz", scenario, sinr[:, :2])
    with pytest.raises(ValueError, match="in dB"):
        import_external_trace(tmp_path / "e.npz", scenario, sinr * 100)
    holes = sinr.copy()
    holes[3, 1, 1, 0, 2] = np.nan
    with pytest.raises(ValueError, match="rank 2"):
        import_external_trace(tmp_path / "e.npz", scenario, holes)
