"""A checker of ``raise`` statements: every exception raised on purpose is a HybridLLMError."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

BUILTIN_EXCEPTIONS = frozenset(
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type)
    and issubclass(getattr(builtins, name), BaseException)
)
"""The names of Python's built-in exception classes."""

PROTOCOL_RAISES = frozenset({("__getattr__", "AttributeError")})
"""``(function, exception)`` pairs a protocol requires: a module's or class's ``__getattr__``
must raise AttributeError for a missing name."""


def bare_builtin_raises(source: str, filename: str = "<source>") -> list[str]:
    """Every ``raise Builtin(...)`` or ``raise Builtin`` in ``source``, outside protocol needs.

    A re-raise (``raise``, ``raise error`` of a caught or built exception held in a variable)
    is not a new exception and is not reported.
    """
    found: list[str] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = (
                child.name
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                else function
            )
            if isinstance(child, ast.Raise) and child.exc is not None:
                target = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                name = target.id if isinstance(target, ast.Name) else None
                if name in BUILTIN_EXCEPTIONS and (function, name) not in PROTOCOL_RAISES:
                    found.append(f"{filename}:{child.lineno}: raise {name}")
            visit(child, inner)

    visit(ast.parse(source), None)
    return found


def scan(root: Path, packages: tuple[str, ...]) -> list[str]:
    """:func:`bare_builtin_raises` over every module of the packages."""
    found: list[str] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found += bare_builtin_raises(path.read_text(encoding="utf-8"), str(path))
    return found
