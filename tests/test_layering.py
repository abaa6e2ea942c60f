"""Imports point downward only: a module may import its own layer or the ones below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "maskserve"

# Lower number = lower layer. protocols, backends and storage are siblings that must not import each other.
LAYERS: dict[str, int] = {
    "domain": 0,
    "errors": 0,
    "params": 0,
    "config": 1,
    "logs": 1,
    "protocols": 2,
    "backends": 2,
    "storage": 2,
    "core": 3,
    "api": 4,
    # Batch jobs: the engine without a server, beside the transports.
    "jobs": 4,
    "server": 5,
    "cli": 5,
    "ray": 5,
    "__main__": 6,
}
SIBLINGS = {"protocols", "backends", "storage"}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("maskserve")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("maskserve"):
            # "from maskserve import x" names a module x when x is one.
            if node.module == "maskserve":
                found += [(node.lineno, f"maskserve.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    problems: list[str] = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        own = _unit(".".join(rel.parts))
        if own == "__init__":
            continue
        for line, target in _imports(path):
            other = _unit(target)
            if other in {"__init__", "__version__"}:
                continue
            if other not in LAYERS:
                problems.append(f"{rel}.py:{line} imports {target}, which has no layer; add it to LAYERS")
            elif LAYERS[other] > LAYERS[own]:
                problems.append(f"{rel}.py:{line} ({own}) imports {target} ({other}), a higher layer")
            elif other != own and own in SIBLINGS and other in SIBLINGS:
                problems.append(f"{rel}.py:{line} ({own}) imports its sibling layer {target}")
    return problems


def test_every_top_level_module_has_a_layer() -> None:
    units = {
        p.stem if p.parent == PACKAGE else p.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py")
    }
    missing = sorted(units - set(LAYERS) - {"__init__"})
    assert not missing, f"modules without a layer: {missing}"


def test_imports_point_downward() -> None:
    assert violations() == []


def test_checker_catches_an_upward_import(tmp_path: Path) -> None:
    fake = tmp_path / "maskserve"
    (fake / "protocols").mkdir(parents=True)
    (fake / "protocols" / "bad.py").write_text("from maskserve.core.engine import Engine\n")
    (fake / "backends").mkdir()
    (fake / "backends" / "sib.py").write_text("import maskserve.protocols.hf\n")
    (fake / "domain.py").write_text("from maskserve import config\n")
    found = violations(fake)
    assert len(found) == 3, found


@pytest.mark.parametrize("name", ["domain", "errors", "params", "config"])
def test_bottom_layers_do_not_import_frameworks(name: str) -> None:
    paths = (
        [PACKAGE / f"{name}.py"]
        if (PACKAGE / f"{name}.py").is_file()
        else sorted((PACKAGE / name).rglob("*.py"))
    )
    assert paths, name
    for path in paths:
        source = path.read_text(encoding="utf-8")
        for framework in ("fastapi", "starlette", "torch", "grpc", "transformers"):
            assert f"import {framework}" not in source, path
            assert f"from {framework}" not in source, path


@pytest.mark.parametrize("folder", ["protocols", "backends", "core"])
def test_lower_layers_know_no_web_framework(folder: str) -> None:
    for path in (PACKAGE / folder).rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for framework in ("fastapi", "starlette", "uvicorn"):
            assert f"import {framework}" not in source, path
            assert f"from {framework}" not in source, path
