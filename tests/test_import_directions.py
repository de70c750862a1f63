"""The allowed import directions (docs/architecture.md, "Allowed import directions"):

    kernels <- realtime <- train, export        server.py -> realtime        bench -> anything

and inside ``realtime/``, its rooms:

    realtime (top-level modules) <- pose <- model <- serving, offline

``kernels/`` imports nothing from the project; ``realtime/`` imports only ``kernels`` (and itself);
``train/`` imports ``kernels`` and ``realtime``; ``export/`` those and ``train`` (it reads checkpoints);
nothing in the product imports ``bench`` or ``tests``. Inside ``realtime/``, the light top-level modules
(``catalog``, ``cli``, ``console``, ``video``, ``targets``) import no room; ``pose`` imports none of the
others; ``model`` imports ``pose``; ``serving`` and ``offline`` import ``pose`` and ``model`` but not each
other. Every import statement counts, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("kernels", "realtime", "train", "export", "server", "bench", "tests")
#: package -> the project packages it may import.
ALLOWED = {
    "kernels": set(),
    "realtime": {"kernels"},
    "train": {"kernels", "realtime"},
    "export": {"kernels", "realtime", "train"},
    "server": {"kernels", "realtime"},
}


#: The rooms of ``realtime/`` (sub-packages); its other modules are its light base.
ROOMS = ("pose", "model", "serving", "offline")
#: room -> the rooms it may import (the base and kernels always).
ROOMS_ALLOWED = {
    "base": set(),
    "pose": set(),
    "model": {"pose"},
    "serving": {"pose", "model"},
    "offline": {"pose", "model"},
}


def room_of(dotted: str) -> str:
    """The room of a ``realtime`` module's dotted name (``realtime.pose.skeleton`` -> ``pose``)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else "base"


def imported_modules(path: Path) -> set[tuple[str, int]]:
    """(dotted module name, line) of every absolute import in a file (``from a import b`` counts ``a.b``,
    which names a module where ``b`` is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
    return found


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(top-level project package, line) of every import in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in PROJECT:
                found.add((top, node.lineno))
    return found


def product_files() -> list[tuple[str, Path]]:
    files = [
        (package, path)
        for package in ALLOWED
        if package != "server"
        for path in (ROOT / package).rglob("*.py")
    ]
    return [*files, ("server", ROOT / "server.py")]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_allowed_directions(package: str) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for owner, path in product_files()
        if owner == package
        for top, line in sorted(imported_packages(path))
        if top != package and top not in ALLOWED[package]
    ]
    assert not bad, f"{package} may import only {sorted(ALLOWED[package]) or 'nothing of the project'}: {bad}"


@pytest.mark.parametrize("room", sorted(ROOMS_ALLOWED))
def test_realtime_rooms_follow_the_allowed_directions(room: str) -> None:
    files = [
        p for p in (ROOT / "realtime").rglob("*.py") if room_of(".".join(p.relative_to(ROOT).parts)) == room
    ]
    assert files, f"no files in realtime's {room} room"
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in files
        for name, line in sorted(imported_modules(path))
        if name.split(".")[0] == "realtime" and room_of(name) not in {room, "base", *ROOMS_ALLOWED[room]}
    ]
    allowed = sorted({"base", *ROOMS_ALLOWED[room]})
    assert not bad, f"realtime's {room} room may import only {allowed} of realtime: {bad}"


def test_room_of() -> None:
    assert room_of("realtime.pose.skeleton") == "pose" and room_of("realtime.model") == "model"
    assert room_of("realtime.catalog") == "base" and room_of("realtime.targets.DEFAULT_TARGET") == "base"
    assert room_of("realtime.serving.workers.LatestSlot") == "serving"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n\ndef f():\n    from train.checkpoint import load_checkpoint\n"
        "    import realtime.model.nets\n"
    )
    assert imported_packages(sample) == {("train", 4), ("realtime", 5)}
