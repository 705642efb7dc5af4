"""``lighttune-demo``: the closed loop e2sim ⇄ xApp over E2 as two processes, one results table.

It starts

1. the xApp in local mode (``lighttune-xapp --mode local``) on a free loopback port, cells
   1, 2, 3 in modes ``off``, ``cqi``, ``ri_cqi``, with the frozen-model baseline on;
2. ``e2sim run --compare`` (lock-step clock): three cells sharing the channel realisation and
   the HARQ random numbers, so OLLA, CQI-Tune and RI-CQI-Tune see the same radio conditions;

shows e2sim's progress bar, stops the xApp with SIGTERM when e2sim is done (the xApp then
writes its per-cell statistics) and prints one table: per scheme the mean throughput per UE
(Mbit/s), BLER, throughput gain over OLLA with its 95 % confidence interval over UEs, the
xApp's fine-tuning updates and mean |BLER prediction error| with fine-tuning (and of the
never-updated offline model, in brackets).

Default scenario: TDL-B50, 30 Hz Doppler, low correlation, medium SNR (16–24 dB), CSI-RS
every 80 ms, 32 UEs, 6 s simulated — mismatched with the training scenario (TDL-A30, 10 Hz,
0–12 dB; a row of the paper's Table 6) — which takes about 1–3 minutes on two cores. TDL-B200
at 50 Hz costs about twice as much channel computation per slot.

The offline model: ``--model FILE``, else the packaged model (:data:`lighttune_models.BUILTIN_MODEL_FILE`); when neither is
there, a small stand-in is trained in-process first (:func:`e2sim.experiment.quick_model`;
the table says so).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from lighttune_models import BUILTIN_MODEL_FILE, builtin_model_bytes

SCHEME_CELLS: tuple[tuple[str, int, str, str], ...] = (
    ("olla", 1, "off", "OLLA"),
    ("cqi", 2, "cqi", "CQI-Tune"),
    ("ri_cqi", 3, "ri_cqi", "RI-CQI-Tune"),
)
"""(e2sim scheme, cell id, xApp cell mode, title) of the three compared cells."""
TAIL_LINES = 25


class DemoError(RuntimeError):
    """A demo step failed; the message says which process and shows its stderr tail."""


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no output)"
    return "\n".join(lines[-n:]) or "(no output)"


def resolve_model(model: str | None, workdir: Path, seed: int) -> tuple[Path, str]:
    """The offline model file to use and a sentence saying what it is."""
    if model is not None:
        path = Path(model)
        if not path.is_file():
            raise DemoError(f"--model {model}: no such file")
        return path, f"offline model {path.name}"
    try:
        data = builtin_model_bytes()
    except OSError:
        data = None
    if data is not None:
        path = workdir / BUILTIN_MODEL_FILE
        path.write_bytes(data)
        return path, f"packaged offline model {BUILTIN_MODEL_FILE}"
    from e2sim.experiment import quick_model

    print("lighttune-demo: the packaged offline model is not there; training a small stand-in first "
          "(pass --model FILE to skip this)", file=sys.stderr, flush=True)
    source = quick_model(n_samples=1024, passes=3, seed=seed, n_ue=32, progress=True)
    path = workdir / "stand-in.ltm"
    path.write_bytes(source.model.to_bytes())
    return path, source.description


def _forward(stream: IO[bytes], sink: IO[str], keep: deque[str]) -> None:
    """Copy a child's stderr to ours (the progress bar) and keep its last lines."""
    buf = b""
    while True:
        chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
        if not chunk:
            break
        sink.write(chunk.decode(errors="replace"))
        sink.flush()
        buf = (buf + chunk)[-16384:]
    keep.extend(buf.decode(errors="replace").replace("\r", "\n").splitlines()[-TAIL_LINES:])


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, log: Path, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready.is_file():
            return json.loads(ready.read_text())
        if proc.poll() is not None:
            raise DemoError(f"the xApp exited with status {proc.returncode} before listening:\n{_tail(log)}")
        time.sleep(0.1)
    raise DemoError(f"the xApp did not start listening within {timeout_s:g} s:\n{_tail(log)}")


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:+.1f}%"


def results_table(e2sim: dict[str, Any], xapp: dict[str, Any], model_note: str) -> str:
    """The demo's table from e2sim's ``--results`` and the xApp's ``--stats-out`` JSON."""
    cells = {c["scheme"]: c for c in e2sim["cells"]}
    gains = e2sim.get("gains_over_olla", {})
    stats = xapp.get("cells", {})
    head = (f"{'scheme':<12} {'Mbit/s per UE':>13} {'BLER':>6} {'gain over OLLA [95% CI]':>27} "
            f"{'updates':>8} {'|BLER err| tuned (frozen)':>26}")
    lines = [head, "-" * len(head)]
    for scheme, cell_id, _mode, title in SCHEME_CELLS:
        c = cells.get(scheme)
        if c is None:
            continue
        s = stats.get(str(cell_id), {})
        g = gains.get(scheme)
        gain = "baseline" if scheme == "olla" else (
            "n/a" if g is None else f"{_pct(g['gain'])} [{_pct(g['ci95_low'])}, {_pct(g['ci95_high'])}]")
        err, frozen = s.get("mean_abs_error"), s.get("mean_abs_error_frozen")
        err_s = "n/a" if err is None else f"{err:.3f}" + ("" if frozen is None else f" ({frozen:.3f})")
        bler = "n/a" if c["bler"] is None else f"{c['bler']:.3f}"
        lines.append(f"{title:<12} {c['throughput_mbps_per_ue']:>13.1f} {bler:>6} {gain:>27} "
                     f"{s.get('n_updates', 0):>8} {err_s:>26}")
    sc = e2sim["scenario"]
    timeouts = sum(c["control_timeouts"] for c in e2sim["cells"])
    applied = sum(c["controls_applied"] for c in e2sim["cells"])
    lines += [
        "",
        f"scenario: {sc['profile']} {sc['doppler_hz']:g} Hz, {sc['correlation']} correlation, SNR "
        f"{sc['snr_db'][0]:g}-{sc['snr_db'][1]:g} dB, CSI-RS {sc['csi_period_ms']} ms, {sc['n_ue']} UEs/cell, "
        f"seed {sc['seed']}, {e2sim['simulated_s']:.1f} s simulated",
        f"DU: {sc.get('du_preset', 'n/a')} link-adaptation preset, {sc.get('bler_curves', 'n/a')} BLER curves",
        f"model: {model_note}",
        f"E2: {applied} controls applied, {timeouts} timed out; OLLA cell runs without control, "
        "CQI-Tune and RI-CQI-Tune cells fine-tune their own model copy",
        "gain CI: 95 % over UEs of the paired per-UE throughput difference (common random numbers)",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lighttune-demo",
        description="Run the xApp (local mode) and 'e2sim run --compare' as two processes over E2 and print "
        "OLLA vs CQI-Tune vs RI-CQI-Tune.",
    )
    p.add_argument("--profile", default="TDL-B50", help="channel profile (default %(default)s)")
    p.add_argument("--doppler", type=float, default=30.0, metavar="HZ", help="maximum Doppler, Hz (default %(default)s)")
    p.add_argument("--correlation", default="low", choices=("low", "medium", "high"),
                   help="antenna correlation (default %(default)s)")
    p.add_argument("--snr-range", default="medium", choices=("low", "medium", "high"),
                   help="per-UE mean SNR range: low 0-12, medium 16-24, high 28-40 dB (default %(default)s)")
    p.add_argument("--csi-period", type=int, default=80, metavar="MS", help="CSI-RS period, ms (default %(default)s)")
    p.add_argument("--ues", type=int, default=32, help="UEs per cell (default %(default)s)")
    p.add_argument("--duration", type=float, default=6.0, metavar="S", help="simulated time, s (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed of the scenario (default %(default)s)")
    p.add_argument("--model", metavar="FILE", help="offline model (.ltm); default the packaged one")
    p.add_argument("--config", metavar="FILE",
                   help="xApp descriptor (config-file.json) for the xApp; default $CONFIG_FILE, else the checkout's "
                   "xapp-descriptor/config-file.json, else the one shipped in the package")
    p.add_argument("--transport", default="auto", choices=("auto", "sctp", "tcp"), help="E2 transport (default auto)")
    p.add_argument("--results", metavar="FILE.json", help="also write both processes' figures to this file")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                   help="give up when e2sim has not finished after this long (default %(default)s)")
    return p


def check_config(path: str | None) -> None:
    """Refuse a ``--config`` descriptor that is missing or invalid before anything starts."""
    if path is None:
        return
    from lighttune_xapp.app import read_descriptor
    from lighttune_xapp.config import ConfigError, load_config

    try:
        load_config(read_descriptor(path))
    except ConfigError as exc:
        raise DemoError(f"--config {path}: {exc}") from None


def scenario_arguments(args: argparse.Namespace) -> list[str]:
    """The scenario options the demo hands to ``e2sim run``."""
    return [
        "--profile", args.profile, "--doppler", str(args.doppler), "--correlation", args.correlation,
        "--snr-range", args.snr_range, "--csi-period", str(args.csi_period), "--ues", str(args.ues),
        "--duration", str(args.duration), "--seed", str(args.seed),
    ]


def check_scenario(args: argparse.Namespace) -> None:
    """Refuse a scenario e2sim would refuse (``--profile X`` ...) before anything starts:
    the very checks of ``e2sim run`` (its parser and :class:`~e2sim.channel.Scenario`)."""
    from e2sim.node import add_run_arguments, scenario_from_args

    parser = argparse.ArgumentParser(prog="e2sim run", add_help=False)
    add_run_arguments(parser)
    try:
        scenario_from_args(parser.parse_args(scenario_arguments(args)))
    except ValueError as exc:
        raise DemoError(f"scenario: {exc}") from None
    if not args.duration > 0:
        raise DemoError(f"--duration must be > 0 s, got {args.duration:g}")
    if not args.timeout > 0:
        raise DemoError(f"--timeout must be > 0 s, got {args.timeout:g}")
    if args.results is not None:
        from e2sim.cli import check_output_file

        try:
            check_output_file(Path(args.results), "--results")
        except ValueError as exc:
            raise DemoError(str(exc)) from None


def run_demo(args: argparse.Namespace) -> int:
    """Run the two processes and print the table; returns the exit status."""
    check_config(args.config)
    check_scenario(args)
    with tempfile.TemporaryDirectory(prefix="lighttune-demo-") as tmp:
        work = Path(tmp)
        model, model_note = resolve_model(args.model, work, args.seed)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        xapp_log = work / "xapp.log"
        ready = work / "ready.json"
        xapp_stats = work / "xapp-stats.json"
        xapp_cmd = [
            sys.executable, "-m", "lighttune_xapp", "--mode", "local", "--listen", "127.0.0.1:0",
            "--transport", args.transport, "--model", str(model), "--ready-file", str(ready),
            "--stats-out", str(xapp_stats), "--frozen-baseline", "--log-level", "WARNING",
        ]
        if args.config is not None:
            xapp_cmd += ["--config", str(Path(args.config).resolve())]
        for _scheme, cell_id, mode, _title in SCHEME_CELLS:
            xapp_cmd += ["--cell-mode", f"{cell_id}={mode}"]
        with xapp_log.open("wb") as xlog:
            xapp = subprocess.Popen(xapp_cmd, stdout=xlog, stderr=subprocess.STDOUT, env=env)
            try:
                info = _wait_ready(xapp, ready, xapp_log, 120.0)
                e2sim_results = work / "e2sim.json"
                sim_cmd = [
                    sys.executable, "-m", "e2sim.node", "--ric", f"127.0.0.1:{info['port']}",
                    "--transport", info["transport"], "--compare", *scenario_arguments(args),
                    "--results", str(e2sim_results),
                ]
                print(f"lighttune-demo: xApp listening on 127.0.0.1:{info['port']} ({info['transport']}); "
                      f"starting e2sim ({args.profile} {args.doppler:g} Hz, {args.snr_range} SNR, "
                      f"{args.ues} UEs x 3 cells, {args.duration:g} s)", file=sys.stderr, flush=True)
                sim = subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                tail: deque[str] = deque(maxlen=TAIL_LINES)
                assert sim.stderr is not None
                pump = threading.Thread(target=_forward, args=(sim.stderr, sys.stderr, tail), daemon=True)
                pump.start()
                try:
                    sim_code = sim.wait(timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    _stop(sim)
                    raise DemoError(f"e2sim did not finish within {args.timeout:g} s") from None
                pump.join(timeout=5)
                if sim_code != 0 or not e2sim_results.is_file():
                    raise DemoError(f"e2sim exited with status {sim_code}:\n" + "\n".join(tail)
                                    + f"\n--- xApp log tail ---\n{_tail(xapp_log)}")
            finally:
                xapp_code = _stop(xapp)
        if not xapp_stats.is_file():
            raise DemoError(f"the xApp (status {xapp_code}) wrote no statistics:\n{_tail(xapp_log)}")
        e2 = json.loads(e2sim_results.read_text())
        xs = json.loads(xapp_stats.read_text())
        print()
        print(results_table(e2, xs, model_note))
        if args.results:
            Path(args.results).write_text(json.dumps({"e2sim": e2, "xapp": xs, "model": model_note}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point of ``lighttune-demo``."""
    args = build_parser().parse_args(argv)
    try:
        return run_demo(args)
    except DemoError as exc:
        print(f"lighttune-demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lighttune-demo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
