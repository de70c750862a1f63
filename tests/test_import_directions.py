"""The allowed import directions (DESIGN.md, "Where code lives"; docs/architecture.md):

    kernels <- realtime <- train, export        server.py -> realtime        bench -> anything

``kernels/`` imports nothing from the project; ``realtime/`` imports only ``kernels`` (and itself);
``train/`` imports ``kernels`` and ``realtime``; ``export/`` those and ``train`` (it reads checkpoints);
nothing in the product imports ``bench`` or ``tests``. Every import statement counts, at module level or
inside a function.
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


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n\ndef f():\n    from train.checkpoint import load_checkpoint\n    import realtime.nets\n"
    )
    assert imported_packages(sample) == {("train", 4), ("realtime", 5)}
