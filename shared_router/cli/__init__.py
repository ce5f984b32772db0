"""The ``hybrid-llm`` command line (layer 5: it may import every layer of the core).

Modules:

- ``app``: the typer app, its commands in ``--help`` order, and ``main`` (the console
  script), which turns library errors into one-line messages and exit code 2;
- ``options``: the flags several commands share, ``fail`` for a bad flag value, and
  ``RouterFlags`` (the router flags of ``train`` and ``build``);
- ``routing_commands``: ``demo``, ``route``, ``score`` and ``info``, with a trained router;
- ``training_commands``: ``train``, ``calibrate`` and ``evaluate`` on labelled data;
- ``pipeline_commands``: ``collect``, ``judge`` and ``build``, which read their flags into
  the pipeline's settings objects.

Commands import heavy libraries (the router, torch, rich tables) inside their bodies, so
``hybrid-llm --help`` starts fast. Nothing in the core imports this package.
"""

from shared_router.cli.app import app, main

__all__ = ["app", "main"]
