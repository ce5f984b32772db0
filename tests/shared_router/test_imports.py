"""The public names of shared_router: pinned, importable, and typed for static checkers."""

from __future__ import annotations

import ast
from pathlib import Path

import shared_router

PUBLIC = [
    "ArtifactError",
    "CalibrationError",
    "CalibrationTable",
    "CallableJudge",
    "DEFAULT_ENCODER",
    "DataError",
    "EmbeddingCache",
    "Encoder",
    "EmptyInputError",
    "EncoderError",
    "EvaluationReport",
    "FORMAT_VERSION",
    "HybridLLMError",
    "KnobError",
    "Labels",
    "LiveCalibrator",
    "LiveRouting",
    "LiveSettings",
    "LiveThreshold",
    "MLPHead",
    "ModelNotInDataError",
    "ModelPair",
    "ModelPrices",
    "OnlinePacer",
    "PairData",
    "PairwiseJudge",
    "PointwiseJudge",
    "QualityKnobs",
    "Retrainer",
    "RouteDecision",
    "Router",
    "RoutingError",
    "RoutingRecord",
    "RoutingService",
    "ShadowCosts",
    "ShadowEvaluator",
    "TokenCosts",
    "TrainingError",
    "__version__",
    "clip_head_tail",
    "evaluate_scores",
    "fine_tune_encoder",
    "fit_logistic",
    "load_pair",
    "load_router_folder",
    "make_labels",
    "model_names",
    "open_store",
    "plot_curves",
    "read_jsonl",
    "routing_text",
    "save_router_folder",
    "train_head",
    "train_router",
]


def test_public_names_are_pinned() -> None:
    assert shared_router.__all__ == PUBLIC
    assert all(hasattr(shared_router, name) for name in shared_router.__all__)


def test_every_lazy_name_is_also_declared_for_type_checkers() -> None:
    """Each name loaded on first use is imported in the TYPE_CHECKING block, from its module."""
    tree = ast.parse(Path(shared_router.__file__).read_text(encoding="utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    declared = {
        alias.name: node.module
        for node in ast.walk(block)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy = {name: f"shared_router.{module}" for name, module in shared_router._EXPORTS.items()}
    assert declared == lazy
    assert set(lazy) == set(PUBLIC) - {"__version__"}
