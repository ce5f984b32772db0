"""cli."""

from shared_router.cli.app import app, main

__all__ = ["app", "main"]
