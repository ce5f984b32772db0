"""A stand-in router for the adapters' fault tests: one fixed decision, or an error."""

from __future__ import annotations

from shared_router.types import QualityKnobs, RouteDecision


class FixedRouter:
    """A stand-in router that sends everything to one model, or raises ``error``."""

    name = "fixed"
    default_knobs = QualityKnobs(threshold=0.5)

    def __init__(self, model: str = "small", error: Exception | None = None) -> None:
        self.model = model
        self.error = error
        self.routed: list[str] = []

    def route(self, text: str, **knobs: float) -> RouteDecision:
        self.routed.append(text)
        if self.error is not None:
            raise self.error
        score = 0.9 if self.model == "small" else 0.1
        return RouteDecision(
            model=self.model,  # type: ignore[arg-type]
            score=score,
            threshold=0.5,
            knob="threshold",
            reason=f"score {score} vs threshold 0.5",
        )
