"""hybrid-llm core: route each query to a small or a large LLM by predicted difficulty.

The public names below load on first use (PEP 562), so ``import shared_router`` stays light:
it imports neither torch, sentence-transformers, LangChain nor LlamaIndex. For example::

    from shared_router import Router

    router = Router.load("default")
    decision = router.route("What is 2 + 2?", max_quality_drop=0.01)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared_router.data import PairData, load_pair, model_names, read_jsonl
    from shared_router.encoders.cache import EmbeddingCache
    from shared_router.encoders.encoder import Encoder
    from shared_router.encoders.folders import DEFAULT_ENCODER
    from shared_router.errors import (
        ArtifactError,
        CalibrationError,
        DataError,
        EmptyInputError,
        EncoderError,
        HybridLLMError,
        KnobError,
        ModelNotInDataError,
        RoutingError,
        TrainingError,
    )
    from shared_router.evaluation.plots import plot_curves
    from shared_router.evaluation.report import EvaluationReport, evaluate_scores
    from shared_router.live.costs import ShadowCosts, TokenCosts
    from shared_router.live.judges import CallableJudge, PairwiseJudge, PointwiseJudge
    from shared_router.live.live_routing import LiveRouting
    from shared_router.live.recalibration import LiveCalibrator, LiveThreshold
    from shared_router.live.retraining import Retrainer
    from shared_router.live.settings import LiveSettings
    from shared_router.live.shadow import ShadowEvaluator
    from shared_router.live.store import open_store
    from shared_router.model.artifacts import load_router_folder, save_router_folder
    from shared_router.model.calibration import CalibrationTable, OnlinePacer
    from shared_router.model.head import MLPHead
    from shared_router.model.router_config import FORMAT_VERSION
    from shared_router.routing.accounting import ModelPrices
    from shared_router.routing.router import Router
    from shared_router.routing.serving import RoutingService
    from shared_router.routing.text import clip_head_tail, routing_text
    from shared_router.routing.train_router import train_router
    from shared_router.training.fine_tune import fine_tune_encoder
    from shared_router.training.labels import Labels, make_labels
    from shared_router.training.logistic import fit_logistic
    from shared_router.training.torch_head import train_head
    from shared_router.types import ModelPair, QualityKnobs, RouteDecision, RoutingRecord

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "CallableJudge": "live.judges",
    "LiveCalibrator": "live.recalibration",
    "LiveRouting": "live.live_routing",
    "LiveThreshold": "live.recalibration",
    "PairwiseJudge": "live.judges",
    "PointwiseJudge": "live.judges",
    "Retrainer": "live.retraining",
    "LiveSettings": "live.settings",
    "ShadowCosts": "live.costs",
    "TokenCosts": "live.costs",
    "ShadowEvaluator": "live.shadow",
    "open_store": "live.store",
    "FORMAT_VERSION": "model.router_config",
    "load_router_folder": "model.artifacts",
    "save_router_folder": "model.artifacts",
    "CalibrationTable": "model.calibration",
    "OnlinePacer": "model.calibration",
    "PairData": "data",
    "load_pair": "data",
    "model_names": "data",
    "read_jsonl": "data",
    "DEFAULT_ENCODER": "encoders.folders",
    "EmbeddingCache": "encoders.cache",
    "Encoder": "encoders.encoder",
    "ArtifactError": "errors",
    "CalibrationError": "errors",
    "DataError": "errors",
    "EncoderError": "errors",
    "HybridLLMError": "errors",
    "KnobError": "errors",
    "ModelNotInDataError": "errors",
    "RoutingError": "errors",
    "EmptyInputError": "errors",
    "TrainingError": "errors",
    "EvaluationReport": "evaluation.report",
    "evaluate_scores": "evaluation.report",
    "plot_curves": "evaluation.plots",
    "MLPHead": "model.head",
    "Labels": "training.labels",
    "make_labels": "training.labels",
    "Router": "routing.router",
    "train_router": "routing.train_router",
    "ModelPrices": "routing.accounting",
    "RoutingService": "routing.serving",
    "clip_head_tail": "routing.text",
    "routing_text": "routing.text",
    "fine_tune_encoder": "training.fine_tune",
    "fit_logistic": "training.logistic",
    "train_head": "training.torch_head",
    "ModelPair": "types",
    "QualityKnobs": "types",
    "RouteDecision": "types",
    "RoutingRecord": "types",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shared_router' has no attribute {name!r}")
    value = getattr(import_module(f"shared_router.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
