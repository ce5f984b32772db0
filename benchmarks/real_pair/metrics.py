"""Reference-match metrics for ``hybrid-llm judge --metric module:function``.

Each takes ``(query, response, reference)`` and returns a quality in [0, 1], the signature
the pipeline's callable metrics have (``docs/pipeline.md``, "Quality metrics").
"""

from __future__ import annotations

import ast
import re

CODE_FENCE = re.compile(r"```(?:python)?")
_WORD = re.compile(r"[a-z]+")


def crux_output_match(query: str, response: str, reference: str | None) -> float:
    """1.0 if the assertion's right-hand side in the response equals the reference literal.

    The answer is the text after the last ``==`` (the completed ``assert f(...) == X``), or the
    whole reply when it has none, without code fences and a trailing comment. Both sides are
    compared as Python literals where they parse (so ``[1,2]`` equals ``[1, 2]``), else as
    stripped strings.
    """
    text = CODE_FENCE.sub("", response).strip()
    lines = [line for line in text.splitlines() if "==" in line]
    answer = lines[-1].rsplit("==", 1)[1] if lines else text.splitlines()[0] if text else ""
    answer = answer.split("  #")[0].strip().rstrip(";")
    want = (reference or "").strip()
    try:
        return float(ast.literal_eval(answer) == ast.literal_eval(want))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return float(answer == want)


def concept_coverage(query: str, response: str, reference: str | None) -> float:
    """Share of the reference's comma-separated concepts that a sentence in the response uses.

    A reply with fewer than two words more than there are concepts is a list, not a
    sentence, and scores 0. A concept counts when a word of the response starts with its stem
    (the concept less its last letter when it is longer than four letters, so that "smokes"
    and "smoking" count for "smoke"); irregular forms ("sat" for "sit") do not count.
    """
    concepts = [c.strip().lower() for c in (reference or "").split(",") if c.strip()]
    if not concepts:
        return 0.0
    words = _WORD.findall(response.lower())
    if len(words) < len(concepts) + 2:
        return 0.0
    stems = [c if len(c) <= 4 else c[:-1] for c in concepts]
    return sum(any(word.startswith(stem) for word in words) for stem in stems) / len(stems)
