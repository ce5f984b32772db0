"""Layer 3: routing queries, the part the adapters use.

- ``router``: :class:`~shared_router.routing.router.Router`: fit, calibrate, score, route,
  save, load.
- ``head_fitting``: the router's head trained with the settings it holds.
- ``router_folder``: a Router as a router folder and back; the bundled ``"default"``.
- ``train_router``: the paper's recipe on a model pair's data.
- ``serving``: :class:`~shared_router.routing.serving.RoutingService`, the front end both
  adapters share (knobs, fallbacks, records, stats, sticky conversations).
- ``text``: the one place that turns a conversation into the text that is routed, and its
  conversation key.

May import: layers 0-2; never ``pipeline``, ``cli`` or the adapters.
"""
