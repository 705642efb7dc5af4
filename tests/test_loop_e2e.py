"""End-to-end loop: the xApp (local mode) and ``e2sim run`` as two processes over loopback E2.

Every test starts real subprocesses, polls for conditions with generous deadlines (the CI
machine is a loaded 2-core box) and never asserts on timing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from e2sim.channel import Scenario
from e2sim.du import du_link_preset, xapp_du_controls
from lighttune_core.tuner import LightTuneModel
from lighttune_models import model_resource

REPO = Path(__file__).resolve().parents[1]
DEADLINE_S = 110.0
FAST_CELL = ["--profile", "TDL-A10", "--doppler", "20", "--csi-period", "10", "--snr-range", "medium",
             "--ues", "32", "--seed", "3"]
"""A cheap channel with a short CSI period: many periods per second of wall time."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


class Procs:
    """The subprocesses a test started (all killed at teardown)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


@pytest.fixture()
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.ltm"
    path.write_bytes(LightTuneModel(seed=0).to_bytes())
    return path


def start_xapp(procs: Procs, model: Path, extra: list[str], http_port: int = 0) -> dict[str, Any]:
    ready = procs.tmp / "ready.json"
    proc = procs.start("xapp", [
        "-m", "lighttune_xapp", "--mode", "local", "--listen", "127.0.0.1:0", "--transport", "tcp",
        "--model", str(model), "--ready-file", str(ready), "--http-port", str(http_port),
        "--stats-out", str(procs.tmp / "xapp-stats.json"), "--log-level", "WARNING", *extra,
    ])

    def up() -> dict[str, Any] | None:
        assert proc.poll() is None, f"xApp exited early:\n{procs.log('xapp')}"
        return json.loads(ready.read_text()) if ready.is_file() else None

    info = _wait_for(up, 60, "the xApp to listen")
    info["proc"] = proc
    return info


def http_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ric/v1/stats", timeout=10) as resp:
        return json.loads(resp.read())


def e2sim_args(port: int, *extra: str) -> list[str]:
    return ["-m", "e2sim.node", "--ric", f"127.0.0.1:{port}", "--transport", "tcp", "--quiet",
            "--reconnect-delay", "0.2", *extra]


def stop_xapp(info: dict[str, Any], procs: Procs) -> dict[str, Any]:
    proc: subprocess.Popen[bytes] = info["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, procs.log("xapp")
    return json.loads((procs.tmp / "xapp-stats.json").read_text())


def descriptor_with_du_preset(procs: Procs, du_preset: str) -> Path:
    """The checkout's xApp descriptor with the controls ``e2sim du-mapping --du du_preset``
    prints (``duPreset``, and the sionna DU's SINR thresholds), written to the test's
    temporary directory."""
    descriptor = json.loads((REPO / "xapp-descriptor" / "config-file.json").read_text())
    descriptor["controls"].update(xapp_du_controls(du_link_preset(Scenario(du_preset=du_preset))))
    path = procs.tmp / f"config-{du_preset}.json"
    path.write_text(json.dumps(descriptor))
    return path


def test_compare_loop_lockstep_controls_every_period(procs: Procs) -> None:
    """OLLA vs RI-CQI-Tune on common random numbers, mismatched scenario, lock-step clock.

    Runs the xApp as users do, with the packaged offline model (trained on TDL-A30, 10 Hz,
    low SNR: TDL-B200 at 50 Hz and high SNR is the mismatch). offline-v1 was trained on a DU
    with the 1 dB-per-NACK loop (now the ``sionna`` preset), so both ends run that preset:
    the DU (``--du``) and the xApp's delivered-bits scoring (``controls.duPreset``).
    """
    packaged = Path(str(model_resource("offline-v1.ltm")))
    config = descriptor_with_du_preset(procs, "sionna")
    xapp = start_xapp(procs, packaged, ["--config", str(config), "--cell-mode", "1=off", "--cell-mode", "2=ri_cqi",
                                        "--frozen-baseline"])
    results_path = procs.tmp / "e2sim.json"
    sim = procs.start("e2sim", e2sim_args(
        xapp["port"], "--compare", "olla,ri_cqi", "--du", "sionna", "--profile", "TDL-B200", "--doppler", "50",
        "--snr-range", "high", "--ues", "32", "--seed", "1", "--duration", "1.5",
        "--control-timeout", "30", "--results", str(results_path),
    ))
    assert sim.wait(timeout=DEADLINE_S) == 0, procs.log("e2sim")
    results = json.loads(results_path.read_text())
    stats = stop_xapp(xapp, procs)

    assert results["completed"]
    olla, tuned = results["cells"]
    assert (olla["scheme"], tuned["scheme"]) == ("olla", "ri_cqi")
    for cell in results["cells"]:
        # every period was reported and every report's control applied, none timed out
        assert cell["periods"] >= 15
        assert cell["indications_sent"] == cell["periods"]
        assert cell["controls_applied"] == cell["periods"]
        assert cell["control_timeouts"] == 0 and cell["stale_controls"] == 0
    assert olla["ue_decisions_applied"] == 0  # mode off: empty control, the DU keeps its choice
    assert tuned["ue_decisions_applied"] == 32 * tuned["periods"]
    assert stats["totals"]["e2_setups"] == 1 and stats["totals"]["subscriptions_accepted"] == 1
    xa_olla, xa_tuned = stats["cells"]["1"], stats["cells"]["2"]
    assert (xa_olla["mode"], xa_tuned["mode"]) == ("off", "ri_cqi")
    for xc, cell in ((xa_olla, olla), (xa_tuned, tuned)):
        assert xc["controls_sent"] == xc["controls_acked"] == cell["controls_applied"]
        assert xc["ue_reports"] == 32 * cell["periods"] and xc["ue_reports_dropped"] == 0
    assert xa_tuned["n_updates"] > 0 and xa_tuned["samples"] > 0
    # fine-tuning beats the frozen offline model on the same decisions
    assert xa_tuned["mean_abs_error"] < xa_tuned["mean_abs_error_frozen"]
    gain = results["gains_over_olla"]["ri_cqi"]
    assert gain["ci95_high"] >= 0.0, f"RI-CQI-Tune below OLLA beyond the 95% CI: {gain}"


def test_reconnect_resubscribes_and_keeps_models(procs: Procs, model_file: Path) -> None:
    """Kill e2sim mid-run, start it again: node state dropped, re-subscribed, models kept."""
    http_port = _free_port()
    # FAST_CELL's 10 ms periods hold 2-3 transmissions per UE: learn from each to see updates soon
    xapp = start_xapp(procs, model_file, ["--tuner-mode", "ri_cqi", "--min-label-tx", "1"], http_port=http_port)
    args = e2sim_args(xapp["port"], *FAST_CELL, "--duration", "600")
    first = procs.start("e2sim-1", args)

    def learned() -> dict[str, Any] | None:
        cell = http_stats(http_port)["cells"].get("1")
        return cell if cell and cell.get("n_updates", 0) > 0 and cell["indications"] >= 5 else None

    _wait_for(learned, DEADLINE_S / 2, "fine-tuning updates on cell 1")
    first.kill()
    first.wait(timeout=30)

    def dropped() -> dict[str, Any] | None:
        s = http_stats(http_port)
        return s if s["live_nodes"] == 0 and s["totals"]["disconnects"] == 1 else None

    after_kill = _wait_for(dropped, 30, "the xApp to drop the killed node")
    before = after_kill["cells"]["1"]
    assert after_kill["subscriptions"] == 0
    assert before["ues"] == 0  # pending per-UE decisions of the dead node were dropped

    procs.start("e2sim-2", args)

    def resumed() -> dict[str, Any] | None:
        s = http_stats(http_port)
        cell = s["cells"]["1"]
        ok = s["totals"]["e2_setups"] == 2 and s["subscriptions"] == 1 and cell["indications"] >= before["indications"] + 5
        return s if ok else None

    again = _wait_for(resumed, DEADLINE_S / 2, "re-subscription and new indications")
    cell = again["cells"]["1"]
    assert again["totals"]["subscriptions_accepted"] == 2
    assert cell["restored"] == before["restored"]  # the cell's model was not re-created
    assert cell["n_updates"] >= before["n_updates"]  # counters continue from where they were
    assert cell["samples"] > before["samples"]
    assert cell["controls_timed_out"] == 0
    stop_xapp(xapp, procs)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_garbage_frames_are_counted_and_the_good_cell_is_served(procs: Procs, model_file: Path) -> None:
    """Fuzz through the live loop: a third connection sends garbage; the E2 node keeps its service."""
    http_port = _free_port()
    xapp = start_xapp(procs, model_file, ["--tuner-mode", "cqi"], http_port=http_port)
    procs.start("e2sim", e2sim_args(xapp["port"], *FAST_CELL, "--duration", "600"))

    def served(min_ind: int) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            s = http_stats(http_port)
            cell = s["cells"].get("1")
            return s if cell and cell["indications"] >= min_ind else None
        return check

    base = _wait_for(served(3), DEADLINE_S / 2, "the good cell to be served")
    rng = np.random.default_rng(7)
    n_garbage = 40
    with socket.create_connection(("127.0.0.1", xapp["port"]), timeout=30) as bad:
        for i in range(n_garbage):
            payload = rng.integers(0, 256, size=int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
            if i % 4 == 0:  # a plausible E2AP start (initiatingMessage, E2 Setup) with a broken body
                payload = b"\x00\x01\x00" + payload
            bad.sendall(_frame(payload))
        counted = _wait_for(
            lambda: (s := http_stats(http_port))["totals"]["e2ap_decode_errors"] >= n_garbage and s,
            60, "the garbage PDUs to be counted")
        # an impossible frame length closes that connection only
        bad.sendall(struct.pack(">I", 0xFFFFFFFF))
        bad.settimeout(30)
        while bad.recv(65536):
            pass  # Error Indications, then EOF when the xApp closes the link
    assert counted["totals"]["e2ap_decode_errors"] >= n_garbage
    after = _wait_for(served(counted["cells"]["1"]["indications"] + 5), DEADLINE_S / 2,
                      "the good cell to keep being served after the garbage")
    cell = after["cells"]["1"]
    assert after["totals"]["e2ap_decode_errors"] >= n_garbage + 1
    assert after["live_nodes"] == 1 and after["subscriptions"] == 1
    assert cell["controls_timed_out"] == 0 and cell["controls_failed"] == 0
    assert cell["indications"] > base["cells"]["1"]["indications"]
    stop_xapp(xapp, procs)
