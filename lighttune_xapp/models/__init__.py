

from importlib import resources

BUILTIN_MODEL_FILE: str = "offline-v4.ltm"
"""The packaged offline model (``modelPath: "builtin"``; README.md beside it says how it was made)."""


def builtin_model_bytes() -> bytes:
    """The bytes of :data:`BUILTIN_MODEL_FILE` (a ``LightTuneModel.to_bytes`` file).

    Raises:
        OSError: the package data is missing (a broken install).
    """
    return resources.files(__name__).joinpath(BUILTIN_MODEL_FILE).read_bytes()
