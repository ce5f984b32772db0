"""Reading answers out of model text: final answers, numbers, choice letters, judge scores.

The ``match`` metric compares what these functions extract from a response with the
reference; the LLM judge reads its grade with :func:`parse_judge_score`.
"""

from __future__ import annotations

import json
import re
import string

__all__ = [
    "extract_choice",
    "extract_final_answer",
    "extract_number",
    "normalise_answer",
    "parse_judge_score",
]

_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:final answer|answer)\s*(?:is|:|=)\s*:?\s*([^\n]*?)(?:\.(?:\s|$)|\n|$)", re.IGNORECASE
)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|[-+]?\.\d+")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def _final_answer(text: str) -> tuple[str, bool]:
    for pattern in (_BOXED, _HASHES, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            return str(found[-1]).strip(), True
    return text.strip(), False


def extract_final_answer(text: str) -> str:
    """The final answer in a response.

    The last ``\\boxed{...}``, else the text after the last ``####``, else the phrase after
    the last "answer is" / "answer:" (up to the end of its sentence), else the whole text.

    Examples:
        >>> extract_final_answer("Let me think. The answer is Paris. It is in France.")
        'Paris'
    """
    return _final_answer(text)[0]


def normalise_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = _PUNCTUATION.sub(" ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract_number(text: str) -> float | None:
    """The numeric answer in a text, or None.

    In a marked final answer (see :func:`extract_final_answer`) the first number counts;
    otherwise the last number of the text. Thousands separators (``1,234``) and fractions
    (``3/4``) are read.

    Examples:
        >>> extract_number("3 apples and 4 pears make 7 fruits")
        7.0
        >>> extract_number("#### 1,234")
        1234.0
    """
    answer, marked = _final_answer(text)
    numbers = _NUMBER.findall(answer)
    if not numbers:
        return None
    token = (numbers[0] if marked else numbers[-1]).replace(",", "")
    numerator, _, denominator = token.partition("/")
    if denominator:
        return float(numerator) / float(denominator) if float(denominator) else None
    return float(numerator)


def extract_choice(text: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """The multiple-choice letter a text picks, or None.

    In order: the last "answer is B" / "Answer: (B)"; a text that starts with the letter
    alone (``B``, ``B.``, ``B)``, ``(B) ...``); the last parenthesised letter ``(B)``. Letters
    are upper case, so the article "A" in running text is not read as a choice.

    Examples:
        >>> extract_choice("Looking at the options, the answer is (C).")
        'C'
    """
    group = f"[{re.escape(letters)}]"
    stated = re.findall(rf"(?i:answer)\s*(?i:is|:)?\s*:?\s*\(?({group})\)?(?!\w)", text)
    if stated:
        return str(stated[-1])
    leading = re.match(rf"\s*(?:\(({group})\)|({group})(?:[.:)]|\s*$|\s*\n))", text)
    if leading:
        return leading.group(1) or leading.group(2)
    bracketed = re.findall(rf"\(({group})\)", text)
    return str(bracketed[-1]) if bracketed else None


_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_LABELLED = re.compile(
    r"(?:score|rating|grade)[\s*]*[:=]?[\s*]*(-?\d+(?:\.\d+)?)"
    r"\s*(?:(?:/|out of)\s*(\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_FRACTION = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_PERCENT = re.compile(r"(-?\d+(?:\.\d+)?)\s*%")
_BARE = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*\.?\s*")


def parse_judge_score(text: str, scale: float = 10.0) -> float | None:
    """Read a judge's score as a fraction in [0, 1], or None when it cannot be read.

    Accepted, in this order: a JSON object with ``score`` (or ``rating``) and optionally
    ``max`` / ``scale``; "Score: 7/10" / "Rating: 8" / "score = 4 out of 5" (the last one);
    a fraction "7/10"; a percentage "85%"; a bare number "7". Without a denominator the
    number is out of ``scale``. Values outside ``[0, denominator]`` are not accepted.

    Examples:
        >>> parse_judge_score("Reasoning... Score: 7/10")
        0.7
        >>> parse_judge_score('{"score": 4, "max": 5}')
        0.8
    """
    for found in _JSON_OBJECT.findall(text):
        try:
            obj = json.loads(found)
        except ValueError:
            continue
        if isinstance(obj, dict):
            value = obj.get("score", obj.get("rating"))
            if isinstance(value, str):
                return parse_judge_score(value, scale)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                top = obj.get("max", obj.get("scale", scale))
                if isinstance(top, (int, float)) and not isinstance(top, bool):
                    return _fraction(float(value), float(top))
    labelled = _LABELLED.findall(text)
    if labelled:
        value, top = labelled[-1]
        return _fraction(float(value), float(top) if top else scale)
    fractions = _FRACTION.findall(text)
    if fractions:
        value, top = fractions[-1]
        return _fraction(float(value), float(top))
    percents = _PERCENT.findall(text)
    if percents:
        return _fraction(float(percents[-1]), 100.0)
    bare = _BARE.fullmatch(text)
    return _fraction(float(bare.group(1)), scale) if bare else None


def _fraction(value: float, top: float) -> float | None:
    if top <= 0 or not 0.0 <= value <= top:
        return None
    return value / top
