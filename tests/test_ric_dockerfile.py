"""The Dockerfile: multi-stage, pinned bases, non-root, ports and entrypoint as the descriptor says.

Parsed with a small reader of Dockerfile instructions (comments, backslash continuations,
``ARG`` defaults substituted into ``FROM``), enough for the checks below.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR = json.loads((ROOT / "xapp-descriptor" / "config-file.json").read_text())


@dataclass
class Instruction:
    keyword: str  # upper-case, e.g. "FROM"
    value: str  # the rest, continuations joined
    line: int  # first line, 1-based


@dataclass
class Stage:
    image: str  # base image after ARG substitution
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def parse_instructions(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions; ``\\`` at line end continues the instruction."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, value = " ".join(p for p in pending if p).partition(" ")
        out.append(Instruction(keyword.upper(), value.strip(), start))
        pending = []
    if pending:
        raise ValueError(f"instruction starting at line {start} ends with a continuation")
    return out


def _substitute(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), value)


def parse_stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in parse_instructions(text):
        if ins.keyword == "ARG" and not stages:
            name, _, default = ins.value.partition("=")
            global_args[name.strip()] = default.strip()
        elif ins.keyword == "FROM":
            words = ins.value.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(_substitute(words[0], global_args), name))
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword != "ARG":
            raise ValueError(f"line {ins.line}: {ins.keyword} before the first FROM")
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages((ROOT / "Dockerfile").read_text())[1]


def _of(stage: Stage, keyword: str) -> list[Instruction]:
    return [i for i in stage.instructions if i.keyword == keyword]


def test_parser_handles_continuations_and_comments() -> None:
    text = "ARG B=img:1.2\n# c\nFROM ${B} AS x\nRUN a \\\n  # inside\n  && b\nUSER 5\n"
    args, parsed = parse_stages(text)
    assert args == {"B": "img:1.2"}
    assert parsed[0].image == "img:1.2" and parsed[0].name == "x"
    assert [(i.keyword, i.value, i.line) for i in parsed[0].instructions] == [("RUN", "a && b", 4), ("USER", "5", 7)]
    with pytest.raises(ValueError, match="continuation"):
        parse_instructions("RUN a \\\n")


def test_multi_stage_with_named_builder(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder_names = {s.name for s in stages[:-1]}
    copies_from = {
        m.group(1) for i in _of(stages[-1], "COPY") if (m := re.search(r"--from=(\S+)", i.value))
    }
    assert copies_from and copies_from <= builder_names


def test_base_images_pinned(stages: list[Stage]) -> None:
    for stage in stages:
        image = stage.image
        assert "$" not in image, f"unresolved ARG in FROM {image}"
        reference, _, digest = image.partition("@")
        repo, _, tag = reference.rpartition(":")
        assert repo and tag and tag != "latest", f"base image {image} is not pinned to a tag"
        assert re.search(r"\d+\.\d+\.\d+", tag), f"base tag {tag} is not a precise version"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"base image {image} has no sha256 digest"


def test_final_stage_runs_as_non_root(stages: list[Stage]) -> None:
    users = _of(stages[-1], "USER")
    assert users, "final stage sets no USER"
    user = users[-1].value.split(":")[0]
    assert user not in ("root", "0")
    if user.isdigit():
        assert int(user) > 0


def test_exposed_ports_equal_the_descriptor(stages: list[Stage]) -> None:
    exposed = {int(p.split("/")[0]) for i in _of(stages[-1], "EXPOSE") for p in i.value.split()}
    assert exposed == {p["port"] for p in DESCRIPTOR["messaging"]["ports"]}


def test_entrypoint_starts_ric_mode(stages: list[Stage]) -> None:
    entry = _of(stages[-1], "ENTRYPOINT")[-1]
    assert json.loads(entry.value) == ["lighttune-xapp", "--mode", "ric"]  # exec form: signals reach the app


def test_environment_and_rmr_library(stages: list[Stage]) -> None:
    final = stages[-1]
    env: dict[str, str] = {}
    for ins in _of(final, "ENV"):
        for token in shlex.split(ins.value):
            key, _, value = token.partition("=")
            env[key] = value
    assert env["CONFIG_FILE"] == "/opt/ric/config/config-file.json"
    copies = " ".join(i.value for i in _of(final, "COPY"))
    assert "librmr_si.so" in copies
    global_args = parse_stages((ROOT / "Dockerfile").read_text())[0]
    assert global_args["RMR_VERSION"] == "4.9.4"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    assert {".git", ".venv", "tests"} <= ignored
    copied = {
        source.rstrip("/")
        for s in parse_stages((ROOT / "Dockerfile").read_text())[1]
        for i in _of(s, "COPY")
        if "--from" not in i.value
        for source in i.value.split()[:-1]
    }
    assert {"pyproject.toml", "lighttune_xapp", "xapp-descriptor"} <= copied
    assert not copied & ignored, f"the Dockerfile copies ignored paths: {copied & ignored}"
