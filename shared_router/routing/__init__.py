"""Layer 3: routing queries, the part the adapters use.

- ``router``: :class:`~shared_router.routing.router.Router`: fit, calibrate, score, route,
  save, load.
- ``decisions``: the router's decisions: a quality knob to a threshold, a score to small or
  large.
- ``head_fitting``: the router's head trained with the settings it holds.
- ``router_folder``: a Router as a router folder and back; the bundled ``"default"``.
- ``train_router``: the paper's recipe on a model pair's data.
- ``serving``: :class:`~shared_router.routing.serving.RoutingService`, the front end both
  adapters share (knobs, fallbacks, records, stats, sticky conversations).
- ``accounting``: what a service counts: calls, tokens, their cost (``ModelPrices``,
  ``StatsSnapshot``).
- ``service_threads``: a service's bounded thread pools for synchronous models and the router.
- ``router_failures``: decisions the router did not make (forced, sticky, failed), logged.
- ``sticky``: the conversations that went large, for sticky routing.
- ``pacing``: a ``large_share`` knob held on live traffic by online pacers.
- ``registry``: one loaded router per process per source (``"default"`` or a folder).
- ``batching``: concurrent decisions' texts scored together, in micro-batches, on the
  router's own thread.
- ``text``: the one place that turns a conversation into the text that is routed.
- ``failures``: which errors of the small model make the large model answer.
- ``decision_calibration``: which calibration table decided a threshold, as the adapters
  show it.

May import: layers 0-2; never ``pipeline``, ``cli`` or the adapters.
"""
