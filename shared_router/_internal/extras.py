"""The one gate for optional packages: import it, or say which pip command brings it."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

from shared_router.errors import MissingDependencyError

__all__ = ["install_hint", "require_extra"]


def install_hint(extra: str | None, requirements: Sequence[str]) -> str:
    """The pip command that installs what is missing: a hybrid-llm extra where one has it.

    Args:
        extra: The hybrid-llm extra (``"train"``: ``pip install "hybrid-llm[train]"``), or
            None for packages hybrid-llm depends on.
        requirements: The pip requirements (``"onnxruntime>=1.20"``), used when ``extra`` is
            None.
    """
    if extra is not None:
        return f'pip install "hybrid-llm[{extra}]"'  # double quotes: POSIX shells and cmd.exe
    quoted = " ".join(f'"{requirement}"' for requirement in requirements)
    return f"pip install {quoted} (dependencies of hybrid-llm)"


def require_extra(
    module: str, *, extra: str | None, purpose: str, requirements: Sequence[str] = ()
) -> ModuleType:
    """Import an optional module, or raise :class:`MissingDependencyError` naming its extra.

    Args:
        module: The module to import (``"torch"``, ``"matplotlib.pyplot"``).
        extra: The hybrid-llm extra that installs it, or None where it is a base dependency.
        purpose: What needs it, the start of the message (``"plot_curves"``).
        requirements: The pip requirements that bring it, for the message when ``extra`` is
            None; defaults to the module's top-level name.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: When the module (or one it needs) cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        missing = exc.name or top
        hint = install_hint(extra, requirements or (top,))
        raise MissingDependencyError(
            f"{purpose} needs {top} ({missing} cannot be imported); install it with: {hint}",
            package=missing,
            extra=extra,
        ) from exc
