"""One loaded router per process per source: ``"default"`` or a router folder.

Every :class:`~shared_router.routing.serving.RoutingService` (so every adapter instance) given
the same source shares the one :class:`~shared_router.routing.router.Router` that
:func:`shared_router` loads for it: ten ``ChatHybrid(router="default")`` hold one encoder, not
ten, and building an adapter per request loads nothing. A source is keyed by the folder it
names, resolved to an absolute path, so ``"default"`` and the bundled folder's own path, or
``"./r"`` and ``"/abs/r"``, are one source. The first caller loads it (once, under a lock of
that source only); later callers get the same object. A load that fails is not remembered:
the next call tries again (after the folder is fixed, say).

:func:`check_router_source` is what a service runs at construction, so that a misspelt folder
fails there and not on the first request.

Importing this module loads none of the router's code (folders, encoders): an adapter that
is imported but not yet called stays light; the first lookup imports them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from shared_router.errors import ArtifactError, HybridLLMError, RoutingError

if TYPE_CHECKING:
    from shared_router.routing.router import Router

__all__ = ["check_router_source", "shared_router", "source_key"]

_lock = threading.Lock()
_routers: dict[str, Router] = {}
_load_locks: dict[str, threading.Lock] = {}


def source_key(source: str | Path) -> str:
    """The key a source is shared under: its folder as an absolute path.

    Raises:
        ArtifactError: When ``source`` is ``"default"`` and the bundled router is missing.
    """
    from shared_router.routing.router_folder import router_folder_path

    return str(router_folder_path(source).resolve())


def check_router_source(source: str | Path) -> Path:
    """Check that a router source names a router folder, without loading it.

    Args:
        source: ``"default"`` or a router folder's path.

    Returns:
        The folder, as an absolute path.

    Raises:
        ArtifactError: When the folder does not exist or holds no ``config.json``.
    """
    from shared_router.model.artifacts import CONFIG_FILE
    from shared_router.routing.router_folder import router_folder_path

    folder = router_folder_path(source).resolve()
    if not folder.is_dir():
        raise ArtifactError(
            f"router {str(source)!r}: no such folder ({folder}); give 'default' for the bundled "
            "router, the path of a folder written by Router.save(), or a Router object"
        )
    if not (folder / CONFIG_FILE).is_file():
        raise ArtifactError(
            f"router {str(source)!r}: {folder} is not a router folder (it has no {CONFIG_FILE}); "
            "give 'default', the path of a folder written by Router.save(), or a Router object"
        )
    return folder


def shared_router(source: str | Path) -> Router:
    """The process's one router for ``source``, loaded on the first call (thread-safe).

    Args:
        source: ``"default"`` (the bundled router) or a router folder's path.

    Returns:
        The same :class:`~shared_router.routing.router.Router` for every caller naming the
        same folder.

    Raises:
        ArtifactError: When the folder is missing or invalid (the message names the source
            and the cause).
        RoutingError: When it fails to load for another reason (its encoder, say).
    """
    key = source_key(source)
    router = _routers.get(key)
    if router is not None:
        return router
    with _lock:
        load_lock = _load_locks.setdefault(key, threading.Lock())
    with load_lock:
        router = _routers.get(key)
        if router is None:
            router = _load(source, key)
            with _lock:
                _routers[key] = router
    return router


def _load(source: str | Path, key: str) -> Router:
    from shared_router.routing.router import Router
    from shared_router.routing.router_folder import DEFAULT_ROUTER

    check_router_source(source)
    spec: str | Path = DEFAULT_ROUTER if _is_default(source) else key
    try:
        return Router.load(spec)
    except HybridLLMError as exc:
        error = ArtifactError if isinstance(exc, ArtifactError) else RoutingError
        raise error(
            f"router {str(source)!r} could not be loaded: {type(exc).__name__}: {exc}; fix the "
            "folder (or write it again with Router.save), or give another router"
        ) from exc


def _is_default(source: str | Path) -> bool:
    from shared_router.routing.router_folder import DEFAULT_ROUTER

    return isinstance(source, str) and source == DEFAULT_ROUTER


def _after_fork_in_child() -> None:
    """Locks held by a parent's thread at ``fork`` would never be released in the child."""
    global _lock, _load_locks
    _lock = threading.Lock()
    _load_locks = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
