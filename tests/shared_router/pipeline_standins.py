"""Offline stand-in models for the pipeline tests (collect, judge, build), named by SPEC.

``PatternChat`` is a LangChain chat model with a known pattern: the ``large`` one answers
every question right; the ``small`` one gets arithmetic wrong (off by one) and everything
else right. So a router trained on their judged answers must learn "arithmetic -> large".
It can also fail on chosen queries or kill its process after a number of calls, to test
error handling and resuming.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from shared_router.pipeline.sources import Generation

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Germany": "Berlin",
    "Canada": "Ottawa",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Greece": "Athens",
    "Portugal": "Lisbon",
    "Austria": "Vienna",
    "Poland": "Warsaw",
    "Ireland": "Dublin",
    "Chile": "Santiago",
    "Cuba": "Havana",
    "Thailand": "Bangkok",
    "Russia": "Moscow",
}
OPPOSITES = {
    "hot": "cold",
    "up": "down",
    "light": "dark",
    "early": "late",
    "happy": "sad",
    "fast": "slow",
    "open": "closed",
    "full": "empty",
    "rich": "poor",
    "strong": "weak",
    "wet": "dry",
    "loud": "quiet",
    "old": "young",
    "hard": "soft",
    "thick": "thin",
    "heavy": "light",
    "inside": "outside",
    "win": "lose",
    "buy": "sell",
    "push": "pull",
}
_ARITHMETIC = re.compile(r"What is (\d+) (plus|times) (\d+)\?")
_CAPITAL = re.compile(r"(?:What|Which city) is the capital of (\w+)\?")
_OPPOSITE = re.compile(r"(?:What is|Name) the opposite of (?:the word )?'(\w+)'\??")


def make_queries(count: int, *, offset: int = 0) -> list[dict[str, Any]]:
    """Alternate arithmetic and word questions, each with its reference answer.

    Queries are distinct for ``count`` up to 160.

    Args:
        count: Queries to make.
        offset: Shifts the arithmetic operands, to make fresh queries.
    """
    rows: list[dict[str, Any]] = []
    words = [
        *((f"What is the capital of {c}?", a) for c, a in CAPITALS.items()),
        *((f"What is the opposite of '{w}'?", o) for w, o in OPPOSITES.items()),
        *((f"Which city is the capital of {c}?", a) for c, a in CAPITALS.items()),
        *((f"Name the opposite of the word '{w}'", o) for w, o in OPPOSITES.items()),
    ]
    for i in range(count):
        if i % 2 == 0:
            a, b = 3 + (7 * i + offset) % 89, 2 + (5 * i + 3 * offset) % 47
            op = "plus" if i % 4 == 0 else "times"
            query = f"What is {a} {op} {b}?"
            rows.append({"query": query, "reference": str(a + b if op == "plus" else a * b)})
        else:
            query, answer = words[(i // 2 + offset) % len(words)]
            rows.append({"query": query, "reference": answer})
    return rows


def is_arithmetic(query: str) -> bool:
    """Whether a stand-in query is an arithmetic question."""
    return _ARITHMETIC.fullmatch(query) is not None


def true_answer(query: str) -> str:
    """The right answer to a stand-in query ("unknown" for anything else)."""
    if match := _ARITHMETIC.fullmatch(query):
        a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
        return str(a + b if op == "plus" else a * b)
    if match := _CAPITAL.fullmatch(query):
        return CAPITALS.get(match.group(1), "unknown")
    if match := _OPPOSITE.fullmatch(query):
        return OPPOSITES.get(match.group(1), "unknown")
    return "unknown"


class PatternChat(BaseChatModel):
    """A chat model that answers "The answer is X." with the pattern of the module docstring.

    Attributes:
        size: ``"small"`` (arithmetic off by one) or ``"large"`` (always right).
        fail_on: Raise RuntimeError for queries containing this text.
        crash_after: Kill the whole process (``os._exit(3)``) on the call after this many.
    """

    size: str = "large"
    fail_on: str | None = None
    crash_after: int | None = None
    _calls: int = PrivateAttr(default=0)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "pattern-stand-in"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._calls += 1
            if self.crash_after is not None and self._calls > self.crash_after:
                os._exit(3)
        query = messages[-1].text
        if self.fail_on is not None and self.fail_on in query:
            raise RuntimeError(f"stand-in failure for {query!r}")
        answer = true_answer(query)
        if self.size == "small" and is_arithmetic(query):
            answer = str(int(answer) + 1)
        text = f"The answer is {answer}."
        usage = {
            "input_tokens": len(query.split()),
            "output_tokens": len(text.split()),
            "total_tokens": len(query.split()) + len(text.split()),
        }
        message = AIMessage(content=text, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


def small_model(**settings: Any) -> PatternChat:
    """The small stand-in (module:callable SPEC target)."""
    return PatternChat(size="small", **settings)


def large_model(**settings: Any) -> PatternChat:
    """The large stand-in (module:callable SPEC target)."""
    return PatternChat(size="large", **settings)


LARGE_INSTANCE = PatternChat(size="large")


class FlakySource:
    """A plain response source that fails its first ``failures`` tries of every prompt."""

    def __init__(self, failures: int = 2) -> None:
        self.failures = failures
        self.tries: dict[str, int] = {}

    async def generate(self, prompt: str) -> Generation:
        self.tries[prompt] = self.tries.get(prompt, 0) + 1
        if self.tries[prompt] <= self.failures:
            raise ConnectionError(f"try {self.tries[prompt]} refused")
        return Generation(f"echo: {prompt}", input_tokens=1, output_tokens=2)


class SlowSource:
    """A response source that takes ``seconds`` to answer."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds

    async def generate(self, prompt: str) -> Generation:
        await asyncio.sleep(self.seconds)
        return Generation("late")


class GaugeSource:
    """A response source that records the most requests it had in flight at once."""

    in_flight = 0
    most_in_flight = 0

    async def generate(self, prompt: str) -> Generation:
        GaugeSource.in_flight += 1
        GaugeSource.most_in_flight = max(GaugeSource.most_in_flight, GaugeSource.in_flight)
        await asyncio.sleep(0.01)
        GaugeSource.in_flight -= 1
        return Generation(prompt.upper())


class InterruptingSource:
    """A response source interrupted as by Ctrl-C on call ``after + 1``.

    It raises ``KeyboardInterrupt`` in the call, where Python raises it for a SIGINT that
    arrives while the call runs. (Sending the process a real SIGINT let the interrupt land
    wherever the interpreter happened to be when it handled the signal; once in a full CI
    run it never reached ``collect``. ``test_a_killed_process_resumes_...`` kills a real
    process.)
    """

    def __init__(self, after: int) -> None:
        self.after = after
        self.calls = 0

    async def generate(self, prompt: str) -> Generation:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.calls > self.after:
            raise KeyboardInterrupt
        return Generation(f"answer to {prompt}")


def echo_source() -> FlakySource:
    """A source that never fails."""
    return FlakySource(failures=0)


def llamaindex_echo() -> Any:
    """LlamaIndex's MockLLM, which echoes the chat prompt."""
    from llama_index.core.llms.mock import MockLLM

    return MockLLM()


def not_a_model() -> str:
    """A factory that returns something that cannot answer prompts."""
    return "nope"


class JudgeChat(BaseChatModel):
    """A stand-in LLM judge whose reply depends on the response it grades.

    A response containing ``garbage`` always gets an unreadable reply; one containing
    ``flaky`` gets an unreadable reply first and ``Score: 9/10`` on the retry; one containing
    ``json`` gets ``{"score": 4, "max": 5}``; anything else gets a reasoned ``Score: 7/10``.
    """

    _seen: dict[str, int] = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "judge-stand-in"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = messages[-1].text
        graded = prompt.split("Response to grade:")[1]
        with self._lock:
            self._seen[prompt] = self._seen.get(prompt, 0) + 1
            tries = self._seen[prompt]
        if "garbage" in graded or ("flaky" in graded and tries == 1):
            reply = "I would rather not say."
        elif "flaky" in graded:
            reply = "Score: 9/10"
        elif "json" in graded:
            reply = 'Here you go: ```json\n{"score": 4, "max": 5}\n```'
        else:
            reply = "The response is mostly right but terse.\n**Score:** 7/10"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])


def judge_model() -> JudgeChat:
    """The stand-in judge (module:callable SPEC target)."""
    return JudgeChat()


def length_metric(query: str, response: str, reference: str | None) -> float:
    """A user metric: 1.0 for responses of at most 3 words, 0.5 otherwise; fails on 'boom'."""
    if "boom" in response:
        raise ValueError("boom")
    if "big" in response:
        return 2.0
    return 1.0 if len(response.split()) <= 3 else 0.5
