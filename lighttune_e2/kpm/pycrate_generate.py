"""Development-time generator of the pycrate runtime modules for E2SM-KPM.

pycrate needs its ASN.1 compiler to turn a module text into Python classes. Compiling at
first use costs the compiler's global state (one module set at a time) and ~0.1-0.3 s per
version; importing a generated module costs ~0.15 s and has no global state. We therefore
generate once, at development time, and commit the generated files as data under
``generated/`` (one per KPM version). Re-run after changing a schema file::

    python -m lighttune_e2.kpm.pycrate_generate

The generated files are machine output of pycrate's compiler, not hand-written code.
"""

from __future__ import annotations

from pathlib import Path

from lighttune_e2.kpm.schema import SCHEMA_FILES, KpmVersion

GENERATED_DIR: Path = Path(__file__).with_name("generated")


def generated_module_name(version: KpmVersion) -> str:
    """Python module name (inside ``generated/``) of the pycrate classes for ``version``."""
    return "kpm_" + version.value.replace(".", "_")


def generate(version: KpmVersion) -> Path:
    """Compile the schema of ``version`` with pycrate and write its runtime module.

    Returns the path of the written ``.py`` file.
    """
    from pycrate_asn1c.asnproc import (
        GLOBAL,
        PycrateGenerator,
        compile_text,
        generate_modules,
    )

    GLOBAL.clear()
    compile_text(SCHEMA_FILES[version].read_text(encoding="ascii"))
    out = GENERATED_DIR / f"{generated_module_name(version)}.py"
    generate_modules(PycrateGenerator, str(out))
    GLOBAL.clear()
    return out


def main() -> None:
    """Regenerate the pycrate modules of every supported KPM version."""
    GENERATED_DIR.mkdir(exist_ok=True)
    init = GENERATED_DIR / "__init__.py"
    if not init.exists():
        init.write_text('"""pycrate runtime modules generated from ../asn1/*.asn1 (data; do not edit)."""\n')
    for version in KpmVersion:
        print(generate(version))


if __name__ == "__main__":
    main()
