"""Train a router for your own model pair: collect responses, grade them, build (layer 4).

Modules:

- ``sources``: model SPECs and the adapters' collect-time plugins (the core's one edge to
  ``langchain_hybrid`` and ``llamaindex_hybrid``, imported by name only when a SPEC needs
  them); it re-exports ``model_calls``;
- ``model_calls``: the response-source protocol and one robust call (timeout, retries with
  backoff, blocking calls on the model's own threads, :mod:`shared_router._internal.model_threads`);
- ``settings``: ``EngineSettings`` (local or Ray, requests in flight, retries, progress) and
  ``InputFields`` (query, reference and id field names), passed down unchanged;
- ``journal``: the crash-safe append-only journal and atomic JSONL output;
- ``ray_engine``: runs batches of work on a pool of Ray actors;
- ``queries``: collect's query file (rows, ids, splits, unencodable text repaired);
- ``collect``: sampled responses of several models to a query file, resumably;
- ``judge``: the scoring stage, ``judge_file``: a quality score for every response;
- ``quality_base``: what an answer-quality metric is (``QualityMetric``, ``ScoreItem``,
  ``Judgement``);
- ``quality_lexical``: the ``match`` and ``rouge`` metrics (no model);
- ``quality_model_based``: the ``bartscore`` and ``embedding`` metrics;
- ``quality_llm_judge``: the ``judge`` metric, an LLM grading with a rubric;
- ``quality_metrics``: the metrics by name (``METRICS``, ``MetricSpec``, user functions);
- ``answer_parsing``: reading final answers, numbers, choices and judge scores out of text;
- ``build``: collect -> judge -> train -> calibrate -> report in one call.

Answer-quality metrics grade one response; routing evaluation (how good a router is) is
:mod:`shared_router.evaluation`. This package may import layers 0-3 of the core
(``errors``, ``types``, ``_internal``, ``data``, ``encoders``, ``model``, ``training``,
``evaluation``, ``routing``), never ``cli`` and never LangChain or LlamaIndex directly.
"""
