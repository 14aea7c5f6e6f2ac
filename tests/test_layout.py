"""The stage packages: data flows one way, and each package says what it owns.

The order below is the direction data flows. A module may import from its own
package, from the shared foundations (``common``, ``kinds``) and from stages
earlier in the list, never from a later one: an import that points backwards is
a cycle waiting to happen, and it is caught here, imports inside functions
included.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline"

FOUNDATIONS = ("common", "kinds")
STAGES = ("ingest", "evidence", "extract", "store", "reconcile", "outputs", "review", "batch", "cli")
ORDER = {name: rank for rank, name in enumerate(FOUNDATIONS + STAGES)}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "pipeline" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "pipeline":
                found += [(node.lineno, f"pipeline.{alias.name}") for alias in node.names]
    return found


def _stage_modules() -> list[Path]:
    return sorted(
        path for path in PIPELINE.rglob("*.py") if path.parent != PIPELINE and "data" not in path.parts
    )


def test_every_module_of_pipeline_lives_in_a_stage_or_foundation_package() -> None:
    # The Python API (api.py) sits above every stage, like the CLI: it only calls them.
    entry_points = {"__init__.py", "__main__.py", "api.py"}
    loose = sorted(path.name for path in PIPELINE.glob("*.py") if path.name not in entry_points)
    assert loose == [], "modules outside a stage package"
    packages = sorted(path.name for path in PIPELINE.iterdir() if (path / "__init__.py").is_file())
    assert packages == sorted(ORDER)


def test_no_stage_imports_a_later_stage() -> None:
    backwards = []
    for path in _stage_modules():
        own = path.relative_to(PIPELINE).parts[0]
        for line, module in _imports(path):
            other = _package_of(module)
            if other == "api":
                backwards.append(f"{path.relative_to(PIPELINE.parent)}:{line} imports the Python API")
                continue
            if other is None or other == own or other not in ORDER:
                continue
            if ORDER[other] > ORDER[own] or (own in FOUNDATIONS and other in STAGES):
                backwards.append(f"{path.relative_to(PIPELINE.parent)}:{line} imports {module}")
    assert backwards == []


def test_foundations_import_no_stage() -> None:
    for path in PIPELINE.glob("common/*.py"):
        assert all(_package_of(module) in (None, "common") for _, module in _imports(path)), path


@pytest.mark.parametrize("package", FOUNDATIONS + STAGES)
def test_each_package_says_in_its_docstring_what_it_owns(package: str) -> None:
    module = importlib.import_module(f"pipeline.{package}")
    doc = (module.__doc__ or "").strip()
    assert len(doc) > 60 and "TODO" not in doc


def test_only_the_cli_knows_about_flags() -> None:
    flag_users = sorted(
        str(path.relative_to(PIPELINE.parent))
        for path in _stage_modules()
        if path.relative_to(PIPELINE).parts[0] != "cli"
        and any(module in ("argparse", "click") for _, module in _imports(path))
    )
    assert flag_users == []
