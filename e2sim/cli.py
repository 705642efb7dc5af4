"""``e2sim`` command line: offline dataset, experiments, Table 6, trace recording.

Subcommands (``e2sim <command> --help`` for each)::

    e2sim dataset     --out train.npz [--samples 83200 --seed 0 --workers 2]
    e2sim experiment  --profile TDL-B50 --doppler 30 --correlation low --csi-period 80 \\
                      --snr 16 24 --ues 32 --duration-s 10 --seed 1 [--model F] [--trace F]
    e2sim table6      [--ues 32 --duration-s 10 --workers 2 --out-dir table6]
    e2sim record-trace --out trace.npz --profile TDL-B50 ... --duration-s 2
    e2sim du-mapping  --du sionna          (the xApp controls for this DU's MCS mapping)

Each command builds its parser in its own ``_add_<command>`` function, so further
subcommands (e.g. ``e2sim run``, the E2 node) plug in next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from threadpoolctl import threadpool_limits

from e2sim.channel import Scenario
from e2sim.channel.bler import CURVE_SETS, DEFAULT_CURVES
from e2sim.channel.scenario import (
    CORRELATION_LEVELS,
    CSI_PERIODS_MS,
    SNR_RANGES_DB,
    TRAINING_SCENARIO,
)
from e2sim.experiment import (
    PAPER_TRAINING_SAMPLES,
    TABLE6_ROWS,
    ModelSource,
    CONDITION_GRID,
    generate_dataset_conditions,
    generate_dataset_parallel,
    parse_condition,
    load_model,
    markdown_report,
    plot_result,
    packaged_model,
    quick_model,
    run_experiment,
    run_table6,
    table6_markdown,
    write_csv,
    write_dataset,
)
from e2sim.traces import TraceFormatError, TraceReplay, record_trace
from lighttune_core.linkadapt.presets import DEFAULT_PRESET, PRESET_NAMES

EXIT_USAGE: int = 2


def check_output_file(path: Path, option: str) -> None:
    """Refuse (ValueError) an output file that cannot be written, before any work is done.

    The directory must exist and be writable, and ``path`` must not be a directory.
    """
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a directory")
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path}: not writable")


def check_output_dir(path: Path, option: str) -> None:
    """Create ``path`` (with parents) and check it is writable; ValueError before any work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: not writable")


def _scenario_args(p: argparse.ArgumentParser, defaults: Scenario) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--profile", default=defaults.profile,
                   help="channel profile: AWGN or TDL-<A|B|C><delay spread ns>, e.g. TDL-B50 (default %(default)s)")
    p.add_argument("--doppler", type=float, default=defaults.doppler_hz, metavar="HZ",
                   help="maximum Doppler shift in Hz (default %(default)s)")
    p.add_argument("--correlation", default=defaults.correlation, choices=CORRELATION_LEVELS,
                   help="antenna correlation, TS 38.101-4 Annex B (default %(default)s)")
    p.add_argument("--csi-period", type=int, default=defaults.csi_period_ms, metavar="MS",
                   help=f"CSI-RS period in ms, one of {', '.join(map(str, CSI_PERIODS_MS))} (default %(default)s)")
    p.add_argument("--snr", type=float, nargs=2, default=list(defaults.snr_db), metavar=("LOW", "HIGH"),
                   help="per-UE mean SNR range in dB; the paper uses 0 12, 16 24, 28 40 (default %(default)s)")
    p.add_argument("--ues", type=int, default=defaults.n_ue, help="UEs in the cell (default %(default)s)")
    p.add_argument("--csi-error", type=float, default=defaults.csi_snr_error_db, metavar="DB",
                   help="std of the CSI SNR-estimation error in dB (default %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of every random draw (default %(default)s)")
    p.add_argument("--sched-interval", type=int, default=defaults.sched_interval_slots, metavar="SLOTS",
                   help="DU round-robin interval: each UE is scheduled every SLOTS slots and the UEs of a slot "
                        "share the RBs; 1 = every UE on all RBs every slot (default %(default)s)")
    _du_arg(p, defaults.du_preset)


def _du_arg(p: argparse.ArgumentParser, default: str = DEFAULT_PRESET) -> None:
    p.add_argument("--du", choices=PRESET_NAMES, default=default,
                   help="the DU's link adaptation, after a real gNB: srsran (srsRAN_Project's slow CQI-offset "
                        "OLLA), oai (OpenAirInterface's +-1 MCS per 100 ms BLER window) or sionna (1 dB per "
                        "NACK, the fast end) (default %(default)s)")
    add_bler_curves_argument(p)


def add_bler_curves_argument(p: argparse.ArgumentParser) -> None:
    """``--bler-curves`` (the link model's curve set, ``Scenario.bler_curves``) of every
    command that makes a DU (also ``e2sim run``)."""
    p.add_argument("--bler-curves", choices=tuple(CURVE_SETS), default=DEFAULT_CURVES,
                   help="code-block BLER curves of the link model: ldpc-mc (LDPC Monte-Carlo at the DU's "
                        "code-block sizes, MCS tables 1-2) or sionna-tables (fitted to Sionna's PDSCH tables; "
                        "the results up to the fifth session) (default %(default)s)")


def _scenario(args: argparse.Namespace) -> Scenario:
    return Scenario(
        profile=args.profile,
        doppler_hz=args.doppler,
        correlation=args.correlation,
        snr_db=tuple(args.snr),
        csi_period_ms=args.csi_period,
        n_ue=args.ues,
        csi_snr_error_db=args.csi_error,
        seed=args.seed,
        sched_interval_slots=args.sched_interval,
        du_preset=args.du,
        bler_curves=args.bler_curves,
    )


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, metavar="FILE",
                   help="offline model (LightTuneModel.to_bytes file); default: the packaged model "
                        "(lighttune_models.BUILTIN_MODEL_FILE), the one the xApp loads for modelPath builtin")
    p.add_argument("--quick-samples", type=int, metavar="N",
                   help="instead of a model file, train a quick model in-process on N samples of the training "
                        "scenario (4000 take about 30 s)")


def _model(args: argparse.Namespace, progress: bool) -> ModelSource:
    if args.model is not None and args.quick_samples is not None:
        raise ValueError("give --model or --quick-samples, not both")
    if args.model is not None:
        return load_model(args.model)
    if args.quick_samples is None:
        return packaged_model()
    if args.quick_samples < 1:
        raise ValueError("--quick-samples must be >= 1")
    return quick_model(n_samples=args.quick_samples, seed=0, progress=progress)


def _add_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dataset",
        help="generate the offline training set (paper: TDL-A30, 10 Hz, 0-12 dB, CSI-RS 80 ms)",
        description="Generate the offline training set: features of the decision applied in a "
        "CSI period and the quantised true BLER of that period (docs/interfaces.md). Half of "
        "the (UE, period) pairs apply an exploratory decision (rank r0-1..r0+1, CQI backed off "
        "by 0..4) so the model learns BLERs of non-baseline decisions.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE.npz", help="output file")
    p.add_argument("--samples", type=int, default=PAPER_TRAINING_SAMPLES,
                   help="number of samples (default %(default)s, the paper's)")
    p.add_argument("--workers", type=int, default=1, help="processes, each simulating its own cell (default 1)")
    p.add_argument("--explore-fraction", type=float, default=0.5, help="share of exploratory decisions")
    p.add_argument("--conditions", nargs="+", metavar="CORR:SNR",
                   help="simulate several radio conditions of the profile, each as its own cell with an equal "
                        "share of the samples: CORRELATION:SNR pairs (correlation low|medium|high, SNR range "
                        "low 0-12 dB | medium 16-24 | high 28-40), e.g. 'low:low medium:high', or 'grid' for all "
                        "nine; overrides --correlation and --snr (default: the one condition of those options)")
    _scenario_args(p, TRAINING_SCENARIO)
    p.set_defaults(func=_cmd_dataset)


def _cmd_dataset(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    if args.samples < 1:
        raise ValueError("--samples must be >= 1")
    conditions = None
    if args.conditions is not None:
        specs = args.conditions
        conditions = list(CONDITION_GRID) if specs == ["grid"] else [parse_condition(c) for c in specs]
        if args.samples < len(conditions):
            raise ValueError(f"--samples {args.samples} is fewer than the {len(conditions)} --conditions")
    check_output_file(args.out, "--out")
    started = time.perf_counter()
    if conditions is None:
        x, y = generate_dataset_parallel(scenario, args.samples, args.workers, args.explore_fraction,
                                         progress=not args.quiet)
    else:
        x, y = generate_dataset_conditions(scenario, conditions, args.samples, args.workers, args.explore_fraction,
                                           progress=not args.quiet)
    meta = {"scenario": scenario.to_dict(), "seed": scenario.seed, "workers": args.workers,
            "explore_fraction": args.explore_fraction, "generator": "e2sim dataset"}
    if conditions is not None:
        meta["conditions"] = [{"correlation": c, "snr_range": r, "snr_db": list(SNR_RANGES_DB[r])} for c, r in conditions]
    write_dataset(args.out, x, y, meta)
    print(f"wrote {args.out}: {x.shape[0]} samples in {time.perf_counter() - started:.0f} s; "
          f"label mean {y.mean():.3f}")
    return 0


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="OLLA vs CQI-Tune vs RI-CQI-Tune on common random numbers",
        description="Run OLLA alone, CQI-Tune and RI-CQI-Tune (LightTune fine-tuning) on the same "
        "channel and HARQ draws; report throughput, BLER, gain over OLLA with a 95% CI over UEs, "
        "BLER-prediction error with and without fine-tuning, and the fine-tuning updates. "
        "Writes experiment.csv, experiment.md and experiment.png to --out-dir.",
        epilog="example: e2sim experiment --profile TDL-B50 --doppler 30 --correlation low "
        "--csi-period 80 --snr 16 24 --ues 32 --duration-s 10 --seed 1",
    )
    _scenario_args(p, Scenario(profile="TDL-B50", doppler_hz=30.0, snr_db=(16.0, 24.0), seed=1))
    p.add_argument("--duration-s", type=float, default=10.0, help="simulated seconds (default %(default)s)")
    p.add_argument("--trace", type=Path, metavar="FILE",
                   help="replay this channel trace instead of the live channel (its scenario is used)")
    p.add_argument("--out-dir", type=Path, default=Path("."), help="where results go (default: .)")
    _model_args(p)
    p.set_defaults(func=_cmd_experiment)


def _cmd_experiment(args: argparse.Namespace) -> int:
    source = None
    if args.trace is not None:
        source = TraceReplay(args.trace)
        scenario = source.scenario.with_du_of(_scenario(args))
    else:
        scenario = _scenario(args)
    if not args.duration_s > 0:
        raise ValueError("--duration-s must be > 0")
    check_output_dir(args.out_dir, "--out-dir")
    model = _model(args, progress=not args.quiet)
    result = run_experiment(scenario, args.duration_s, model, source=source, progress=not args.quiet)
    csv_path = write_csv(result, args.out_dir / "experiment.csv")
    md = markdown_report(result)
    (args.out_dir / "experiment.md").write_text(md)
    png = plot_result(result, args.out_dir / "experiment.png")
    print(md)
    print(f"wrote {csv_path}, {args.out_dir / 'experiment.md'}, {png}")
    return 0


def _add_table6(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table6",
        help="the paper's Table 6 (16 scenarios x medium/high SNR), ours beside the paper's",
        description="Run the 16 scenario rows of the paper's Table 6 at medium (16-24 dB) and "
        "high (28-40 dB) SNR in parallel processes and write table6.md / table6.json. "
        "Precision: each gain has a 95% CI over the UEs of its run (printed in the table).",
    )
    p.add_argument("--ues", type=int, default=32, help="UEs per run (default %(default)s)")
    p.add_argument("--duration-s", type=float, default=5.0, help="simulated seconds per run (default %(default)s; 45 min on 2 cores with 32 UEs)")
    p.add_argument("--seed", type=int, default=1, help="scenario seed of every run (default %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default %(default)s)")
    p.add_argument("--rows", type=int, nargs="+", metavar="I", help="only these rows (0-15)")
    _du_arg(p)
    p.add_argument("--perfect", action="store_true",
                   help="also run RI-CQI-Tune with a perfect BLER predictor (replay, e2sim.headroom) and "
                        "show its gain and the share the real model recovers")
    p.add_argument("--no-calibration", action="store_true",
                   help="rank candidates by the model's raw BLER labels instead of their per-cell online "
                        "calibration (lighttune_core.calibration): the ablation")
    p.add_argument("--no-rank-check", action="store_true",
                   help="apply every rank change RI-CQI-Tune's search picks instead of A/B-checking it "
                        "against the best same-rank candidate in delivered bits "
                        "(lighttune_core.calibration.RankChangeCheck): the ablation")
    p.add_argument("--no-probe", action="store_true",
                   help="never apply the DU's own choice in place of a CQI back-off to give the calibration "
                        "outcomes of a label it has no evidence for (lighttune_core.cell.CellTuner, "
                        "probe_du_choice): the ablation")
    p.add_argument("--references", action="store_true",
                   help="also run three references: a fixed one-CQI back-off without a model, "
                        "RI-CQI-Tune with a hindsight predictor (each period's candidates replayed on the "
                        "period that just ended) and RI-CQI-Tune with a channel-knowing predictor (each "
                        "candidate's expected BLER on the next period's channel, HARQ draws of its own: "
                        "no predictor can be expected to beat it in the same search); each replay costs "
                        "about what --perfect's does (the full table with --references took 13 min on 2 workers)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out-dir", type=Path, default=Path("."), help="where results go (default: .)")
    _model_args(p)
    p.set_defaults(func=_cmd_table6)


def _cmd_table6(args: argparse.Namespace) -> int:
    if args.ues < 2:
        raise ValueError("--ues must be >= 2 (the CI is over UEs)")
    if not args.duration_s > 0:
        raise ValueError("--duration-s must be > 0")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.rows is not None:
        bad = [r for r in args.rows if not 0 <= r < len(TABLE6_ROWS)]
        if bad:
            raise ValueError(f"--rows {' '.join(map(str, bad))}: Table 6 has rows 0-{len(TABLE6_ROWS) - 1}")
    check_output_dir(args.out_dir, "--out-dir")
    model = _model(args, progress=not args.quiet)
    started = time.perf_counter()
    results = run_table6(model, args.ues, args.duration_s, args.seed, args.workers, args.rows,
                         progress=not args.quiet, du_preset=args.du, bler_curves=args.bler_curves,
                         perfect=args.perfect, calibrate=not args.no_calibration, references=args.references,
                         check_rank_changes=not args.no_rank_check, probe_du_choice=not args.no_probe)
    md = table6_markdown(results, model.description, args.ues, args.duration_s)
    md += f"\nWall time {time.perf_counter() - started:.0f} s with {args.workers} worker(s).\n"
    (args.out_dir / "table6.md").write_text(md)
    (args.out_dir / "table6.json").write_text(json.dumps(results, indent=1))
    print(md)
    return 0


def _add_record_trace(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record-trace",
        help="record the live channel's per-slot SINR stream to a trace file",
        description="Record a channel trace (e2sim.traces format, schema 1) for later replay "
        "with `e2sim experiment --trace`. float32 replays bit-identically; float16 halves the size.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE.npz", help="trace file to write")
    p.add_argument("--duration-s", type=float, default=2.0, help="seconds to record (default %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="SINR sample type: float32 replays bit-identically, float16 halves the file "
                   "(default %(default)s)")
    _scenario_args(p, Scenario(profile="TDL-B50", doppler_hz=30.0, snr_db=(16.0, 24.0), seed=1))
    p.set_defaults(func=_cmd_record_trace)


def _cmd_record_trace(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    if not args.duration_s > 0:
        raise ValueError("--duration-s must be > 0")
    check_output_file(args.out, "--out")
    n_slots = int(round(args.duration_s / scenario.slot_s))
    path = record_trace(scenario, n_slots, args.out, args.dtype, progress=not args.quiet)
    print(f"wrote {path}: {n_slots} slots, {path.stat().st_size / 1e6:.1f} MB")
    return 0


def _add_du_mapping(sub: argparse._SubParsersAction) -> None:
    d = Scenario()
    p = sub.add_parser(
        "du-mapping",
        help="print the xApp controls that make it score candidates with this DU's MCS mapping",
        description="Print, as JSON, the xApp descriptor's controls entries (duPreset and, for the "
        "sionna SINR-offset DU, duSinrThresholds: the SINR at which each CQI and MCS meets the BLER "
        "target on the simulator's curves) for a DU run with the same options (`e2sim run --du ...`). "
        "Merge them into the descriptor's controls section.",
    )
    _du_arg(p, d.du_preset)
    p.add_argument("--n-rb", type=int, default=d.n_rb, help="resource blocks (default %(default)s)")
    p.add_argument("--cqi-table", type=int, default=d.cqi_table, help="CQI table 1..3 (default %(default)s)")
    p.add_argument("--mcs-table", type=int, default=d.mcs_table, help="MCS table 1..3 (default %(default)s)")
    p.set_defaults(func=_cmd_du_mapping)


def _cmd_du_mapping(args: argparse.Namespace) -> int:
    from e2sim.du import du_link_preset, xapp_du_controls

    scenario = Scenario(n_rb=args.n_rb, cqi_table=args.cqi_table, mcs_table=args.mcs_table, du_preset=args.du,
                        bler_curves=args.bler_curves)
    print(json.dumps(xapp_du_controls(du_link_preset(scenario)), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``e2sim`` argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="e2sim",
        description="LightTune E2 node simulator: link-level cell model (channel, DU), offline "
        "dataset, OLLA/CQI-Tune/RI-CQI-Tune experiments and the paper's Table 6.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_dataset(sub)
    _add_experiment(sub)
    _add_table6(sub)
    _add_record_trace(sub)
    _add_du_mapping(sub)
    from e2sim.node import add_run_parser  # the live E2 node (imports the E2 codecs)

    add_run_parser(sub)
    from e2sim.study import add_study_parser  # reproduction studies (docs/results.md)

    add_study_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``e2sim`` console script; returns the exit status."""
    threadpool_limits(1)  # small matrices: BLAS threads only add contention (see lighttune_xapp.__main__)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, TraceFormatError, EOFError) as exc:
        print(f"e2sim {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file that could not be read or written: one line, no traceback
        where = f" {exc.filename}" if exc.filename else ""
        print(f"e2sim {args.command}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
