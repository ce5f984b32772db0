"""The real pair as LangChain chat models and LlamaIndex LLMs, on llama-cpp-python.

LangChain: :class:`UsageChatLlamaCpp` is langchain-community's ``ChatLlamaCpp`` plus two things
it lacks: ``usage_metadata`` on each message (``ChatLlamaCpp`` keeps llama.cpp's token counts
in ``llm_output`` only, so ``ChatHybrid.stats`` and ``hybrid-llm collect`` would see no token
usage) and, when asked, the token log-probabilities: in ``response_metadata["logprobs"]``
(where ``ChatOpenAI`` puts them and ``hybrid-llm collect`` reads them; ``ChatLlamaCpp`` keeps
them in ``generation_info``, which ``invoke`` drops) and as one JSON line per answer with its
mean in a side file (what this run's cascade analysis read: the collect that recorded its
data predates ``token_logprobs`` in the data file).

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


class UsageChatLlamaCpp(ChatLlamaCpp):
    """``ChatLlamaCpp`` whose messages carry ``usage_metadata``; optionally logs log-probs.

    Attributes:
        logprob_log: A JSONL file to append ``{"prompt", "text", "mean_logprob", "tokens"}``
            to for every answer (needs ``logprobs=1`` and ``logits_all=True``), or None.
    """

    logprob_log: str | None = None

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.logprob_log:  # llama-cpp-python returns log-probs only with top_logprobs
            kwargs.setdefault("top_logprobs", 1)
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
            if self.logprob_log:
                info = generation.generation_info or {}
                message.response_metadata["logprobs"] = info.get("logprobs")
                _log(self.logprob_log, messages[-1].text, message.text, info.get("logprobs"))
        return result


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
        logits_all=logprob_log is not None,
        logprobs=1 if logprob_log is not None else None,
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
