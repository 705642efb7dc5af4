"""The trained offline models shipped with the project (data only, the lowest layer).

Both the xApp (``modelPath: "builtin"``) and the simulator's experiments (``e2sim experiment``
and ``e2sim table6`` without ``--model``) load :data:`BUILTIN_MODEL_FILE` from here, so the two
sides run the same model without importing each other (``docs/interfaces.md``). The files are
``lighttune_core.ff.LightTuneModel.to_bytes`` images; README.md beside them says how each was
made, with its size and SHA-256. This package imports nothing of the project.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

BUILTIN_MODEL_FILE: str = "offline-v9.ltm"
"""The packaged offline model (``modelPath: "builtin"``; README.md beside it says how it was made)."""


def model_resource(name: str = BUILTIN_MODEL_FILE) -> Traversable:
    """The packaged model file ``name`` (e.g. ``"offline-v1.ltm"``) as an importlib resource.

    Raises:
        FileNotFoundError: no packaged model of that name (the message lists the ones there are).
    """
    here = resources.files(__name__)
    found = here.joinpath(name)
    if not found.is_file():
        shipped = sorted(f.name for f in here.iterdir() if f.name.endswith(".ltm"))
        raise FileNotFoundError(f"no packaged model {name!r}; the package ships {', '.join(shipped) or 'none'}")
    return found


def builtin_model_bytes(name: str = BUILTIN_MODEL_FILE) -> bytes:
    """The bytes of the packaged model ``name`` (default :data:`BUILTIN_MODEL_FILE`).

    Raises:
        FileNotFoundError: the package data is missing (a broken install) or ``name`` is unknown.
    """
    return model_resource(name).read_bytes()
