"""Layer 1: what a trained router is made of, and its folder format.

- ``head``: :class:`~shared_router.model.head.MLPHead`, embedding -> p(small is good enough),
  numpy inference.
- ``calibration``: :class:`~shared_router.model.calibration.CalibrationTable` (quality knobs ->
  thresholds, with an upper confidence bound) and the online large-share pacer.
- ``router_config``: the schema of ``config.json`` and its format version.
- ``artifacts``: reading and writing a router folder (safetensors + JSON, validated).
- ``model_card``: the folder's README.md.
- ``default/``: the bundled router (package data).

May import: layer 0, ``data`` and ``encoders``; never ``training`` or anything above.
"""
