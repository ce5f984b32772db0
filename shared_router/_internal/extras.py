"""The one gate for optional packages: import it, or say which pip command brings it."""

from __future__ import annotations

import importlib
from types import ModuleType

from shared_router.errors import MissingDependencyError

__all__ = ["install_hint", "require_extra"]


def install_hint(extra: str | None, package: str) -> str:
    """The pip command that installs ``package``: through a hybrid-llm extra where one has it.

    Args:
        extra: The hybrid-llm extra (``"train"``), or None for a package hybrid-llm depends on.
        package: The distribution name or requirement (``"onnxruntime>=1.20"``).
    """
    if extra is None:
        return f'pip install "{package}" (a dependency of hybrid-llm)'
    return f"pip install 'hybrid-llm[{extra}]'"


def require_extra(
    module: str, *, extra: str | None, purpose: str, package: str | None = None
) -> ModuleType:
    """Import an optional module, or raise :class:`MissingDependencyError` naming its extra.

    Args:
        module: The module to import (``"torch"``, ``"matplotlib.pyplot"``).
        extra: The hybrid-llm extra that installs it, or None where it is a base dependency.
        purpose: What needs it, the start of the message (``"plot_curves"``).
        package: The pip requirement when it differs from the module's top-level name.

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
        raise MissingDependencyError(
            f"{purpose} needs {top} ({missing} cannot be imported: {exc}); install it with: "
            f"{install_hint(extra, package or top)}",
            package=missing,
            extra=extra,
        ) from exc
