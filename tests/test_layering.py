"""The package layering of docs/interfaces.md: imports flow downward only.

``lighttune_models`` (data only: the shipped model files) <- ``lighttune_core`` (numpy) <- ``lighttune_e2`` (E2AP, service models, transport) <- both
``lighttune_xapp`` and ``e2sim``, which never import each other; ``lighttune_demo`` sits on top.
A user who installs the xApp image must not pull in the simulator, and the simulator must run
without the xApp's RIC dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level project packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "lighttune_models": {"lighttune_core", "lighttune_e2", "lighttune_xapp", "e2sim", "lighttune_demo"},
    "lighttune_core": {"lighttune_e2", "lighttune_xapp", "e2sim", "lighttune_demo"},
    "lighttune_e2": {"lighttune_xapp", "e2sim", "lighttune_demo"},
    "lighttune_xapp": {"e2sim", "lighttune_demo"},
    "e2sim": {"lighttune_xapp", "lighttune_demo"},
}


def imported_top_levels(path: Path) -> set[str]:
    """Top-level names of every ``import``/``from ... import`` in a file (also inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_downward(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no sources"
    offenders = {
        str(f.relative_to(ROOT)): sorted(imported_top_levels(f) & FORBIDDEN[package]) for f in files
    }
    offenders = {f: bad for f, bad in offenders.items() if bad}
    assert offenders == {}, f"{package} imports upward: {offenders}"


def test_the_scanner_sees_imports_inside_functions(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import os\n\ndef f():\n    from e2sim.node import x\n    import lighttune_xapp.app\n")
    assert imported_top_levels(src) == {"os", "e2sim", "lighttune_xapp"}
