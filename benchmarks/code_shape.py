"""The shape of the code: module sizes, long functions, bare built-in raises.

Usage (from the repository root; any checkout, for a before/after comparison)::

    python benchmarks/code_shape.py                  # the three packages
    python benchmarks/code_shape.py --max-lines 500 --max-function 60

Prints every module with its line count (marked when over ``--max-lines``), every function
whose code (docstring excluded) is over ``--max-function`` lines or that takes over 10
parameters, and the count of ``raise`` statements of a bare built-in exception.
"""

from __future__ import annotations

import argparse
import ast
import builtins
from pathlib import Path

PACKAGES = ("shared_router", "langchain_hybrid", "llamaindex_hybrid")
BUILTIN_EXCEPTIONS = {
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type)
    and issubclass(getattr(builtins, name), BaseException)
}


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    length = (node.end_lineno or node.lineno) - node.lineno + 1
    first = node.body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    if docstring and isinstance(first.value.value, str):  # type: ignore[attr-defined]
        length -= (first.end_lineno or first.lineno) - first.lineno + 1
    return length


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
    return count - (1 if args.args and args.args[0].arg in ("self", "cls") else 0)


def main() -> None:
    """Print the report for the packages below the current folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-lines", type=int, default=500)
    parser.add_argument("--max-function", type=int, default=60)
    options = parser.parse_args()
    modules = lines = long_functions = bare_raises = 0
    for package in PACKAGES:
        for path in sorted(Path(package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            count = text.count("\n")
            modules, lines = modules + 1, lines + count
            print(f"{count:5d} {path}" + ("  <-- over" if count > options.max_lines else ""))
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    size, params = _code_lines(node), _parameters(node)
                    if size > options.max_function or params > 10:
                        long_functions += size > options.max_function
                        print(f"        {node.name}: {size} code lines, {params} parameters")
                elif isinstance(node, ast.Raise) and node.exc is not None:
                    target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                    if isinstance(target, ast.Name) and target.id in BUILTIN_EXCEPTIONS:
                        bare_raises += 1
    print(
        f"{modules} modules, {lines} lines; {long_functions} functions over "
        f"{options.max_function} code lines; {bare_raises} raises of a bare built-in exception "
        "(a module __getattr__'s AttributeError, which the protocol requires, included)"
    )


if __name__ == "__main__":
    main()
