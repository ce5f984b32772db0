"""Decisions the router did not make: forced or sticky ones, and those it failed to score.

Routing never loses a request: a router that raises while scoring makes the decision "large"
with the error as its reason (:meth:`RouterFailureLog.decision_for`), logged as a warning the
first time and at debug level after that, so a broken router is visible without flooding the
log. A forced or sticky decision (:func:`large_decision`) goes large without asking the router.
"""

from __future__ import annotations

import logging
import threading

from shared_router.types import RouteDecision

__all__ = ["RouterFailureLog", "large_decision"]


def large_decision(reason: str) -> RouteDecision:
    """A decision for the large model that the router did not score, with its reason."""
    return RouteDecision(model="large", score=None, threshold=None, knob="none", reason=reason)


class RouterFailureLog:
    """The large-model decisions for one service's router failures, logged.

    Args:
        logger: Where the failures are logged (the service's logger).
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._lock = threading.Lock()
        self._logged = False

    def decision_for(self, error: Exception, router_name: str) -> RouteDecision:
        """The large decision for a call ``router_name`` failed on with ``error``, logged.

        The first failure is a warning, every later one a debug message.
        """
        reason = f"router failed: {type(error).__name__}: {error}"
        with self._lock:
            first = not self._logged
            self._logged = True
        if first:
            self._logger.warning(
                "router %s: %s; the large model answers this call and any other the router "
                "fails on (each has fallback=True and the reason in its routing record, and "
                "stats.router_errors counts them); check the router and its input",
                router_name,
                reason,
            )
        else:
            self._logger.debug("router %s: %s; the large model answers", router_name, reason)
        return large_decision(reason)
