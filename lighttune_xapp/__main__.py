"""``lighttune-xapp``: run the LightTune xApp.

Two modes share everything but the transport:

- ``--mode local`` (default): the xApp terminates E2 itself (SCTP where the kernel has it,
  TCP otherwise) and serves E2 nodes such as ``e2sim run``; no RIC needed.
- ``--mode ric``: inside the OSC near-RT RIC, through RMR (ricxappframe), the Subscription
  Manager's REST API and SDL.

``lighttune-xapp --mode MODE --help`` lists the options of a mode.
"""

from __future__ import annotations

import argparse
import sys

from threadpoolctl import threadpool_limits


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    # One BLAS thread: the decision path multiplies small matrices, where OpenBLAS threads
    # only add contention (measured on 2 cores: 22 ms single-threaded vs 86 ms with 2 threads
    # for the [165000, 32] x [32, 32] product of a 1,000-UE RI-CQI-Tune search).
    threadpool_limits(1)
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="lighttune-xapp",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Run 'lighttune-xapp --mode local --help' or '--mode ric --help' for the options of a mode.",
        add_help=False,
    )
    parser.add_argument("--mode", choices=("local", "ric"), default="local", help="transport mode (default: local)")
    known, rest = parser.parse_known_args(args)
    if known.mode == "ric":
        from lighttune_xapp.transport.ric import main as mode_main
    else:
        from lighttune_xapp.local import main as mode_main
    if not rest and any(a in ("-h", "--help") for a in args):
        rest = ["--help"]
    return int(mode_main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
