"""The import graph is visible from the files on disk, and it only points down.

Parses every module of the repository (no import, no installed package needed), resolves each
import of driftrank code to a file, and checks the layering::

    experiments -> agents -> adapt -> evaluator, generator -> envs

``envs`` imports neither torch nor anything above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("envs", "evaluator", "generator", "adapt", "agents", "experiments")
#: what each sub-package may import from the others (its own modules always)
ALLOWED = {
    "envs": set(),
    "evaluator": {"envs"},
    "generator": {"envs", "evaluator"},
    "adapt": {"envs", "evaluator", "generator"},
    "agents": {"envs", "evaluator", "generator", "adapt"},
    "experiments": {"envs", "evaluator", "generator", "adapt", "agents"},
}


def modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).glob("*.py"))


def module_name(path: Path) -> list[str]:
    """``ROOT/adapt/last.py`` -> ``["driftrank", "adapt", "last"]``."""
    parts = ["driftrank", *path.relative_to(ROOT).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports_of(path: Path) -> list[tuple[int, list[str]]]:
    """(line, absolute dotted name as a list) of every import in ``path``; a
    ``from X import y`` yields ``X.y`` (a module or a name inside ``X``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                assert len(base) >= 1, f"{path}:{node.lineno} imports above the package"
            else:
                base = []
            head = base + (node.module.split(".") if node.module else [])
            out += [(node.lineno, head + [a.name]) for a in node.names if a.name != "*"]
            out.append((node.lineno, head))
    return out


def resolve(name: list[str]) -> Path | None:
    """The file of the longest driftrank module prefix of ``name`` (None if it has none)."""
    for n in range(len(name), 1, -1):
        rel = Path(*name[1:n])
        for candidate in (ROOT / rel.with_suffix(".py"), ROOT / rel / "__init__.py"):
            if candidate.is_file():
                return candidate
    return ROOT / "__init__.py" if name == ["driftrank"] else None


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_driftrank_import_names_a_file_on_disk(path):
    for line, name in imports_of(path):
        if name[0] != "driftrank":
            continue
        assert resolve(name) is not None, f"{path.relative_to(ROOT)}:{line} imports " \
            f"{'.'.join(name)}, which is no file or folder of the repository"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_imports_upward(path):
    own = path.relative_to(ROOT).parts[0]
    for line, name in imports_of(path):
        if name[0] == "torch" and own == "envs":
            pytest.fail(f"{path.relative_to(ROOT)}:{line} imports torch; envs/ must stay "
                        "numpy-only")
        if name[0] != "driftrank" or len(name) < 2 or name[1] not in PACKAGES:
            continue
        target = name[1]
        assert target == own or target in ALLOWED[own], (
            f"{path.relative_to(ROOT)}:{line} imports {'.'.join(name)}: {own}/ may import only "
            f"{sorted(ALLOWED[own]) or 'numpy/gymnasium'} (experiments -> agents -> adapt -> "
            "evaluator/generator -> envs)")


def test_the_graph_is_connected_without_installing():
    """Every sub-package is reached by at least one arrow from another: the relative imports
    really are read as edges (a test that finds no edges would pass vacuously)."""
    edges = {(p.relative_to(ROOT).parts[0], name[1]) for p in modules()
             for _, name in imports_of(p)
             if name[0] == "driftrank" and len(name) > 1 and name[1] in PACKAGES}
    targets = {t for s, t in edges if s != t}
    assert targets >= {"envs", "evaluator", "generator", "adapt", "agents"}, edges
    assert ("experiments", "agents") in edges and ("agents", "adapt") in edges


def test_root_exports_resolve_to_files():
    """The lazy re-exports of ``driftrank`` point at modules that exist on disk."""
    tree = ast.parse((ROOT / "__init__.py").read_text())
    exports = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                   and any(getattr(t, "id", "") == "_EXPORTS" for t in n.targets))
    targets = ast.literal_eval(exports)
    assert {"make_agent", "run_cell", "run_grid", "ENV_ID"} <= set(targets)
    for name, module in targets.items():
        path = resolve(["driftrank", *module.lstrip(".").split(".")])
        assert path is not None, f"driftrank.{name} points at {module}, which is not on disk"
        text = path.read_text()
        assert name in text, f"driftrank.{name}: {path.relative_to(ROOT)} does not define it"
