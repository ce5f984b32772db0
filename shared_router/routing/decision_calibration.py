"""Which calibration table turned a decision's quality knob into its threshold, as a label.

Both adapters show it beside the decision (LangChain's run metadata, LlamaIndex's
``RoutingEvent``): a ``max_quality_drop`` or ``large_share`` threshold comes from the router's
:class:`~shared_router.model.calibration.CalibrationTable`; a raw ``threshold``, a forced or a
fallback decision comes from none.
"""

from __future__ import annotations

from shared_router.types import RouteDecision

__all__ = ["CALIBRATED_KNOBS", "calibration_label"]

CALIBRATED_KNOBS = frozenset({"max_quality_drop", "large_share"})
"""The knobs whose threshold a calibration table gives."""


def calibration_label(router: object, decision: RouteDecision) -> str | None:
    """Name the table a calibrated knob was turned into ``decision``'s threshold with.

    Args:
        router: The router that decided (any object; one without ``calibration_`` has none).
        decision: Its decision.

    Returns:
        ``"<method>, n=<rows>, confidence=<level>"``, or None when no table decided: the
        router did not score (so it need not be loaded to ask), the knob is not calibrated,
        or the router has no table.
    """
    if decision.score is None or decision.knob.split(" ")[0] not in CALIBRATED_KNOBS:
        return None
    table = getattr(router, "calibration_", None)
    if table is None:
        return None
    return f"{table.method}, n={table.n}, confidence={table.confidence:g}"
