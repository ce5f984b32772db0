"""Learning the user's pair from the user's traffic: shadow evaluation, a store, live calibration.

Layer 4, just above :mod:`shared_router.pipeline` (whose answer-quality metrics judge shadow
calls): imports layers 0-3 and the pipeline, and only the CLI imports it. Modules:

- ``rows``: the stored values (:class:`ShadowRow`, traffic counters, router versions) and
  the schema version;
- ``store``: :func:`open_store` (SQLite by path, PostgreSQL by URL), the tables, the lock;
  ``store_postgres``: the PostgreSQL backend; ``store_writer``: the bounded buffer that keeps
  an unreachable store from failing anything;
- ``judges``: scoring both answers of a shadowed call (pointwise metric, pairwise LLM judge
  in random order, any callable);
- ``shadow``: :class:`ShadowEvaluator`, the shadow calls off the caller's path; ``costs``:
  what the calls cost, per call (:class:`ShadowCosts`) or per token (:class:`TokenCosts`);
- ``recalibration``: :class:`LiveCalibrator`, the threshold for ``max_quality_drop`` from
  live rows (bootstrap + unseen-losses bound), conservative until enough rows;
- ``retraining``: :class:`Retrainer`, refit the head on live rows and swap it in only if better;
  ``head_fit``: fitting that head (its labels, det or diff, and L2 chosen by cross-validation);
- ``live_routing``: :class:`LiveRouting`, one worker's router version, calibration, retraining;
- ``settings``: :class:`LiveSettings`, what a user passes to an adapter (``live=``), kept
  light to import;
- ``serving_loop``: :class:`LiveLoop`, the loop an adapter's routing service consults
  (live threshold, router version) and offers its answered calls to, refreshed on its own
  thread; ``serving_stats``: what ``llm.stats.live`` shows;
- ``report``: the store summarised (``hybrid-llm report``);
- ``replay``: the replay simulator on logged data (``hybrid-llm replay``).
"""
