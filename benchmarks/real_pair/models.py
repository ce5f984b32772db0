"""The real pair as LangChain chat models and LlamaIndex LLMs, on llama-cpp-python.

LangChain: :class:`UsageChatLlamaCpp` is langchain-community's ``ChatLlamaCpp`` plus two things
it lacks: ``usage_metadata`` on each message (``ChatLlamaCpp`` keeps llama.cpp's token counts
in ``llm_output`` only, so ``ChatHybrid.stats`` and ``hybrid-llm collect`` would see no token
usage) and, when asked, the token log-probabilities: in ``response_metadata["logprobs"]``
(where ``ChatOpenAI`` puts them and ``hybrid-llm collect`` reads them; ``ChatLlamaCpp`` keeps
them in ``generation_info``, which ``invoke`` drops) and as one JSON line per answer with its
mean in a side file (what the cascade analysis reads). The log-probabilities come from a
logits processor (:class:`TokenLogprobs`), not from llama-cpp-python's own ``logprobs``: those
need ``logits_all=True`` and made each answer of the small model 4-5x slower.

LlamaIndex: llama-index-llms-llama-cpp's ``LlamaCPP`` is a completion model whose default
``messages_to_prompt`` writes Llama-2 ``[INST]`` prompts; :func:`llamaindex_llm` gives it the
GGUF file's own chat template instead (the one ``ChatLlamaCpp`` applies), so both frameworks
send the models the same prompt.

The factories are ``module:callable`` SPECs for ``hybrid-llm collect``
(``benchmarks.real_pair.models:small_chat_model``) and are used by the live runs.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# llama.cpp's OpenMP threads spin while they wait; on a machine shared with other processes
# that makes every call several times slower (81 s instead of 2.4 s for one answer of the
# small model, measured here with 2 threads under load). Set before llama.cpp is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from langchain_community.chat_models import ChatLlamaCpp  # noqa: E402
from langchain_core.callbacks import CallbackManagerForLLMRun  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage  # noqa: E402
from langchain_core.outputs import ChatResult  # noqa: E402

from benchmarks.real_pair.weights import pair_paths  # noqa: E402

CONTEXT = 2048
THREADS = int(os.environ.get("HYBRID_LLAMA_THREADS", "2"))
MAX_TOKENS = 48
STOP = ["<|im_end|>", "<|endoftext|>"]
SAMPLING = {"top_p": 0.95, "top_k": 40, "repeat_penalty": 1.0}
"""Sampling settings shared by both frameworks (greedy when the temperature is 0)."""

_LOG_LOCK = threading.Lock()


class TokenLogprobs:
    """A llama.cpp logits processor that records the log-probability of each generated token.

    llama-cpp-python computes log-probabilities itself only with ``logits_all=True``, which
    keeps the logits of every position and ranks the whole vocabulary in Python for every
    token: one CRUX answer of the small model took 2.1 s that way against 0.46 s with this
    processor, with the same values. The processor sees the next-token logits before sampling
    (the model's own distribution, before temperature); the token drawn from them is the last
    input id of the next call. So an answer cut by ``max_tokens`` has its last token unscored
    (a stop token makes that one more call).
    """

    def __init__(self) -> None:
        """Start with no tokens."""
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self._previous: np.ndarray | None = None

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Score the token drawn from the previous call's logits; keep these logits."""
        if self._previous is not None:
            token, logits = int(input_ids[-1]), self._previous
            top = float(logits.max())
            log_total = top + float(np.log(np.exp(logits - top).sum()))
            self.token_ids.append(token)
            self.logprobs.append(float(logits[token]) - log_total)
        self._previous = np.array(scores, dtype=np.float64)
        return scores


class UsageChatLlamaCpp(ChatLlamaCpp):
    """``ChatLlamaCpp`` whose messages carry ``usage_metadata``; optionally logs log-probs.

    Attributes:
        logprob_log: A JSONL file to append ``{"prompt", "text", "mean_logprob", "tokens"}``
            to for every answer (recorded by :class:`TokenLogprobs`), or None.
    """

    logprob_log: str | None = None

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        recorder = TokenLogprobs() if self.logprob_log else None
        if recorder is not None:
            from llama_cpp import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([recorder])
        result = super()._generate(messages, stop, run_manager, **kwargs)
        usage = (result.llm_output or {}).get("token_usage") or {}
        for generation in result.generations:
            message = generation.message
            if isinstance(message, AIMessage) and usage:
                message.usage_metadata = {
                    "input_tokens": usage.get("prompt_tokens", 0),
                    "output_tokens": usage.get("completion_tokens", 0),
                    "total_tokens": usage.get("total_tokens", 0),
                }
            if self.logprob_log and recorder is not None:
                logprobs = self._openai_logprobs(recorder)
                message.response_metadata["logprobs"] = logprobs
                _log(self.logprob_log, messages[-1].text, message.text, logprobs)
        return result

    def _openai_logprobs(self, recorder: TokenLogprobs) -> dict[str, Any]:
        """The recorded tokens as ``ChatOpenAI`` shapes ``response_metadata["logprobs"]``."""
        return {
            "content": [
                {
                    "token": self.client.detokenize([token]).decode("utf-8", "replace"),
                    "logprob": logprob,
                }
                for token, logprob in zip(recorder.token_ids, recorder.logprobs, strict=True)
            ]
        }


def _log(log: str, prompt: str, text: str, logprobs: dict[str, Any] | None) -> None:
    """Append one answer's mean token log-probability to ``log``."""
    values = [
        float(item["logprob"])
        for item in (logprobs or {}).get("content") or []
        if item.get("logprob") is not None and math.isfinite(float(item["logprob"]))
    ]
    record = {
        "prompt": prompt,
        "text": text,
        "mean_logprob": sum(values) / len(values) if values else None,
        "tokens": len(values),
    }
    with _LOG_LOCK, Path(log).open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def chat_model(
    path: str | Path,
    *,
    temperature: float = 0.0,
    max_tokens: int = MAX_TOKENS,
    logprob_log: str | None = None,
    seed: int = -1,
) -> UsageChatLlamaCpp:
    """A llama.cpp chat model for one GGUF file.

    Args:
        path: The GGUF file.
        temperature: 0 is greedy.
        max_tokens: Most tokens per answer.
        logprob_log: Append each answer's mean token log-probability to this JSONL file.
        seed: llama.cpp's sampling seed (-1: random).

    Returns:
        The chat model.
    """
    return UsageChatLlamaCpp(
        model_path=str(path),
        n_ctx=CONTEXT,
        n_threads=THREADS,
        n_batch=512,
        temperature=temperature,
        max_tokens=max_tokens,
        stop=STOP,
        seed=seed,
        verbose=False,
        streaming=False,  # ChatLlamaCpp streams by default, and its stream has no usage
        logprob_log=logprob_log,
        **SAMPLING,
    )


def small_chat_model(**settings: Any) -> UsageChatLlamaCpp:
    """SmolLM2-135M-Instruct (the ``--small`` SPEC of ``hybrid-llm collect``)."""
    return chat_model(pair_paths().small, **settings)


def large_chat_model(**settings: Any) -> UsageChatLlamaCpp:
    """Qwen2.5-Coder-0.5B-Instruct (the ``--large`` SPEC of ``hybrid-llm collect``)."""
    return chat_model(pair_paths().large, **settings)


def chat_template_prompt(path: str | Path) -> Callable[[Sequence[Any]], str]:
    """``messages_to_prompt`` for LlamaIndex's ``LlamaCPP``: the GGUF file's chat template.

    Args:
        path: The GGUF file (only its vocabulary and metadata are read).

    Returns:
        A function from LlamaIndex chat messages to the prompt text.
    """
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)
    formatter = Jinja2ChatFormatter(
        template=vocab.metadata["tokenizer.chat_template"],
        eos_token=vocab._model.token_get_text(vocab.token_eos()),
        bos_token=vocab._model.token_get_text(vocab.token_bos()),
    )

    def messages_to_prompt(messages: Sequence[Any]) -> str:
        turns = [{"role": m.role.value, "content": m.content or ""} for m in messages]
        return str(formatter(messages=turns).prompt)

    return messages_to_prompt


def llamaindex_llm(path: str | Path, *, max_tokens: int = MAX_TOKENS) -> Any:
    """LlamaIndex's ``LlamaCPP`` for one GGUF file, greedy, with the file's chat template.

    Args:
        path: The GGUF file.
        max_tokens: Most tokens per answer.

    Returns:
        The LLM.
    """
    from llama_index.core.base.llms.types import ChatMessage, MessageRole
    from llama_index.llms.llama_cpp import LlamaCPP

    to_prompt = chat_template_prompt(path)
    return LlamaCPP(
        model_path=str(path),
        temperature=0.0,
        max_new_tokens=max_tokens,
        context_window=CONTEXT,
        generate_kwargs={**SAMPLING, "stop": STOP},
        model_kwargs={"n_threads": THREADS, "n_batch": 512},
        messages_to_prompt=to_prompt,
        completion_to_prompt=lambda text: to_prompt(
            [ChatMessage(role=MessageRole.USER, content=text)]
        ),
        verbose=False,
    )
