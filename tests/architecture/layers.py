"""The layer contract of the packages, and a checker that reads import statements.

Every module belongs to the deepest entry of :data:`RANKS` that names it or a package above
it. A module may import only modules of strictly lower rank, or modules of its own entry.
Imports inside functions count too, so a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

RANKS: dict[str, float] = {
    # layer 0: errors, values, infrastructure
    "shared_router.errors": 0.0,
    "shared_router.types": 0.1,
    "shared_router._internal": 0.1,
    # layer 1: data, encoders, the model's parts
    "shared_router.data": 1.0,
    "shared_router.encoders": 1.1,
    "shared_router.model": 1.2,
    # layer 2: training and routing evaluation (neither imports the other)
    "shared_router.training": 2.0,
    "shared_router.evaluation": 2.0,
    # layer 3: routing (Router, the serving front end, routed text)
    "shared_router.routing": 3.0,
    # layer 4: the collect / judge / build pipeline
    "shared_router.pipeline": 4.0,
    # layer 4, above the pipeline (its metrics judge shadow calls): the live loop
    "shared_router.live": 4.5,
    # layer 5: the command line and the adapters
    "shared_router.cli": 5.0,
    "langchain_hybrid": 5.0,
    "llamaindex_hybrid": 5.0,
}
"""Rank of each package or module; lower ranks never import higher ones."""

FACADE = "shared_router"
"""The core's top-level package: it re-exports the public names lazily and may name any
layer; no module of the core imports it."""

FRAMEWORKS = ("langchain", "langchain_core", "llama_index")
"""Top-level packages the core (``shared_router``) never imports."""


def entry_of(module: str, ranks: Mapping[str, float]) -> str | None:
    """The deepest entry of ``ranks`` that is ``module`` or a package above it."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in ranks:
            return candidate
    return None


def module_name(path: Path, root: Path) -> str:
    """``root/a/b.py`` -> ``a.b``; ``root/a/__init__.py`` -> ``a``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """Every module an ``import`` statement of a file names, at any depth, with its line."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def layer_violations(
    root: Path, packages: tuple[str, ...], ranks: Mapping[str, float] = RANKS
) -> list[str]:
    """The upward imports (and core imports of a framework) in the given packages.

    Args:
        root: The folder the packages are in.
        packages: Top-level package names to check.
        ranks: The layer contract.

    Returns:
        One ``"file:line: a (rank) imports b (rank)"`` line per violation.
    """
    found: list[str] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            if module == FACADE:
                continue
            own = entry_of(module, ranks)
            if own is None:
                found.append(f"{path}: {module} is in no layer; add it to RANKS")
                continue
            for line, target in imports_of(path, module):
                top = target.split(".")[0]
                if module.startswith("shared_router") and top in FRAMEWORKS:
                    found.append(f"{path}:{line}: the core module {module} imports {target}")
                    continue
                if target in ("shared_router", "shared_router.__init__") or (
                    target.startswith("shared_router.") and entry_of(target, ranks) is None
                ):
                    if module.startswith("shared_router"):
                        found.append(f"{path}:{line}: {module} imports the package top {target}")
                    continue
                other = entry_of(target, ranks)
                if other is None or other == own:
                    continue
                if ranks[other] >= ranks[own]:
                    found.append(
                        f"{path}:{line}: {module} (rank {ranks[own]}) imports {target} "
                        f"(rank {ranks[other]})"
                    )
    return found
