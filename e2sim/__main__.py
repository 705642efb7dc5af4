"""``python -m e2sim``: the ``e2sim`` command line (:mod:`e2sim.cli`)."""

import sys

from e2sim.cli import main

sys.exit(main())
