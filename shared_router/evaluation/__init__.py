"""Layer 2: how well a router routes, beside random, the oracle and the length heuristic.

Not to be confused with :mod:`shared_router.pipeline.quality_metrics`, which grades one
answer of one model: this package compares *routing decisions* on queries whose answer
qualities are known.

- ``curves``: cost-quality curves and their metrics (cost advantage at a quality drop, gap
  recovered, APGR, CPT).
- ``report``: :class:`~shared_router.evaluation.report.EvaluationReport` and
  :func:`~shared_router.evaluation.report.evaluate_scores`.
- ``plots``: the curves as a PNG (the ``plot`` extra).

May import: layers 0-1; never ``training``, ``routing`` or anything above.
"""
