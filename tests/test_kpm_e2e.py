"""E2SM-KPM end to end: the xApp (local mode) and ``e2sim run`` as two processes over loopback.

(a) a KPM-only node: advisory mode, recommendations every period, fine-tuning, no control;
(b) KPM for reports + LT-LINKADAPT for control (``reportPath: kpm``): RI-CQI-Tune's
    throughput equals, within the 95 % interval over UEs, the same run with LT-LINKADAPT for
    both, on the same seed (lock-step clock).

Polls with generous deadlines (a loaded 2-core CI machine); no timing assertions.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from e2sim.experiment import paired_gain
from lighttune_xapp.advisory import RECOMMENDATION_KINDS, RECOMMENDATIONS_PATH
from tests.test_loop_e2e import (  # noqa: F401  (fixtures)
    DEADLINE_S,
    Procs,
    _free_port,
    _wait_for,
    e2sim_args,
    model_file,
    procs,
    start_xapp,
    stop_xapp,
)

N_UE = 32
MISMATCHED_CELL = ["--profile", "TDL-B100", "--doppler", "50", "--csi-period", "10", "--snr-range", "low",
                   "--ues", str(N_UE), "--seed", "5"]
"""Not the offline model's training channel (TDL-A30, 10 Hz); a 10 ms CSI period for many periods."""


def _get_json(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def test_kpm_only_node_gets_advisory_mode(procs: Procs, model_file: Path) -> None:
    http_port = _free_port()
    # 10 ms periods (2-3 transmissions per UE): --min-label-tx 1 to see fine-tuning in a short run
    xapp = start_xapp(procs, model_file, ["--tuner-mode", "ri_cqi", "--kpm-period", "10", "--min-label-tx", "1"],
                      http_port=http_port)
    results_path = procs.tmp / "e2sim.json"
    sim = procs.start("e2sim", e2sim_args(xapp["port"], "--kpm-only", *MISMATCHED_CELL, "--duration", "1",
                                          "--results", str(results_path)))

    def table() -> dict[str, Any] | None:
        body = _get_json(http_port, RECOMMENDATIONS_PATH)
        cell = body["nodes"].get("gnb-1", {}).get("cells", {}).get("1")
        return body if cell and cell["ues"] else None

    live = _wait_for(table, DEADLINE_S / 2, "advisory recommendations on the HTTP route")
    node = live["nodes"]["gnb-1"]
    assert node["missing_function"] == "LT-LINKADAPT" and node["imputed_features"] == []
    row = node["cells"]["1"]["ues"][0]
    assert row["kind"] in RECOMMENDATION_KINDS and 1 <= row["recommended_rank"] <= 4
    assert sim.wait(timeout=DEADLINE_S) == 0, procs.log("e2sim")
    results = json.loads(results_path.read_text())
    stats = stop_xapp(xapp, procs)

    assert results["completed"]
    (cell,) = results["cells"]
    # never waited for a control: the node has no LT-LINKADAPT to receive one
    assert cell["controls_received"] == 0 and cell["control_timeouts"] == 0 and cell["indications_sent"] == 0
    assert cell["kpm_indications_sent"] >= cell["periods"] - 1 >= 90
    xc = stats["cells"]["1"]
    assert xc["controls_sent"] == 0
    # recommendations published for every reported period, every UE
    assert xc["advisory_periods"] == xc["indications"] == cell["kpm_indications_sent"]
    counts = stats["advisory"]["gnb-1"]["cells"]["1"]["counts"]
    assert sum(counts.values()) == N_UE  # the last period's recommendations
    assert xc["ue_reports"] == N_UE * cell["kpm_indications_sent"] and xc["ue_reports_dropped"] == 0
    # fine-tuning on the mismatched channel
    assert xc["n_updates"] > 0 and xc["samples"] > 0
    summary = stats["nodes"]["gnb-1"]
    assert summary["advisory"] and not summary["control"] and summary["report_path"] == "kpm"
    assert summary["imputed_features"] == []  # e2sim sends every LT. measurement
    log = (procs.tmp / "xapp.log").read_text(errors="replace")
    assert "node gnb-1 offers E2SM-KPM but not LT-LINKADAPT: advisory mode" in log


def _run(procs: Procs, model: Path, report_path: str, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    procs.procs.clear()
    (procs.tmp / "ready.json").unlink(missing_ok=True)
    xapp = start_xapp(procs, model, ["--tuner-mode", "ri_cqi", "--report-path", report_path, "--min-label-tx", "1"])
    results_path = procs.tmp / f"e2sim-{tag}.json"
    sim = procs.start(f"e2sim-{tag}", e2sim_args(
        xapp["port"], "--kpm", "--profile", "TDL-A10", "--doppler", "20", "--csi-period", "10",
        "--snr-range", "medium", "--ues", str(N_UE), "--seed", "3", "--duration", "0.8",
        "--control-timeout", "30", "--results", str(results_path)))
    assert sim.wait(timeout=DEADLINE_S) == 0, procs.log(f"e2sim-{tag}")
    stats = stop_xapp(xapp, procs)
    (procs.tmp / "xapp-stats.json").rename(procs.tmp / f"xapp-stats-{tag}.json")
    return json.loads(results_path.read_text()), stats


def test_kpm_reports_with_service_model_control_match_service_model_only(procs: Procs, model_file: Path) -> None:
    kpm, kpm_stats = _run(procs, model_file, "kpm", "kpm")
    ours, _ = _run(procs, model_file, "service_model", "sm")
    assert kpm["completed"] and ours["completed"]
    (k,), (o,) = kpm["cells"], ours["cells"]
    # the KPM run: reports only through KPM, every period answered by a control in time
    assert k["indications_sent"] == 0 and k["kpm_indications_sent"] >= k["periods"] - 1 >= 70
    assert k["controls_applied"] == k["kpm_indications_sent"]
    assert k["control_timeouts"] == 0 and k["stale_controls"] == 0
    assert k["ue_decisions_applied"] == N_UE * k["controls_applied"]
    assert o["kpm_indications_sent"] == 0 and o["controls_applied"] == o["indications_sent"]
    summary = kpm_stats["nodes"]["gnb-1"]
    assert summary["report_path"] == "kpm" and summary["control"] and not summary["advisory"]
    assert kpm_stats["cells"]["1"]["n_updates"] > 0
    # same seed, same decisions: throughput per UE within the 95 % interval of the paired difference
    gain = paired_gain(np.asarray(k["ue_throughput_bps"]), np.asarray(o["ue_throughput_bps"]))
    assert gain.ci_low <= 0.0 <= gain.ci_high or abs(gain.gain) < 1e-9, gain
    assert abs(k["throughput_mbps_per_ue"] - o["throughput_mbps_per_ue"]) <= 0.02 * o["throughput_mbps_per_ue"]
