"""Re-export the character tables of :mod:`shared_router.encoders.wordpiece` from HF tokenizers.

The pure-Python BERT tokenizer of the base install treats each character as the Rust
``tokenizers`` library does: which characters ``BertNormalizer``'s clean-text step drops or
turns into a space, which ones its Chinese-character step pads with spaces, what its
accent-stripping step (NFD, then no non-spacing marks) and its lower-casing step make of each
one, and which ones ``BertPreTokenizer`` splits at or isolates. Those answers depend on the
Unicode tables compiled into ``tokenizers``, not on Python's :mod:`unicodedata`, so they are
probed here, one code point at a time, and written to
``shared_router/encoders/wordpiece_chars.json``. The same bytes on every run with the same
``tokenizers``; ``tests/shared_router/test_wordpiece.py`` checks the tokenizer against
``tokenizers`` on every code point and on real prompts.

Needs ``tokenizers`` (in the ``train`` and ``test`` extras)::

    python scripts/export_wordpiece_chars.py
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path

from tokenizers import normalizers, pre_tokenizers

from shared_router.encoders.wordpiece import (
    CHAR_TABLES_FILE,
    CHAR_TABLES_FORMAT,
    HANGUL_SYLLABLES,
    decompose_hangul,
)

_SURROGATES = range(0xD800, 0xE000)


def _code_points() -> Iterable[int]:
    return (cp for cp in range(0x110000) if cp not in _SURROGATES)


def _ranges(code_points: Iterable[int]) -> list[list[int]]:
    """Sorted code points as inclusive ``[first, last]`` runs."""
    runs: list[list[int]] = []
    for cp in code_points:
        if runs and runs[-1][1] == cp - 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    return runs


def _stage(**flags: bool) -> Callable[[str], str]:
    options = {"clean_text": False, "handle_chinese_chars": False, "strip_accents": False}
    options["lowercase"] = False
    options.update(flags)
    return normalizers.BertNormalizer(**options).normalize_str


def _tables() -> dict[str, object]:
    clean, chinese = _stage(clean_text=True), _stage(handle_chinese_chars=True)
    strip, lower = _stage(strip_accents=True), _stage(lowercase=True)
    lowercase = normalizers.Lowercase().normalize_str
    split = pre_tokenizers.BertPreTokenizer().pre_tokenize_str
    removed, spaces, padded, stripped, split_at, isolated = [], [], [], [], [], []
    decomposed: dict[str, str] = {}
    lowered: dict[str, str] = {}
    for cp in _code_points():
        char = chr(cp)
        cleaned = clean(char)
        if cleaned == "":
            removed.append(cp)
        elif cleaned == " " and char != " ":
            spaces.append(cp)
        elif cleaned != char:
            raise SystemExit(f"clean-text makes U+{cp:04X} {cleaned!r}; the tables cannot say so")
        if chinese(char) == f" {char} ":
            padded.append(cp)
        bare = strip(char)
        if bare == "":
            stripped.append(cp)
        elif bare != char:
            if cp in HANGUL_SYLLABLES:
                if bare != decompose_hangul(char):
                    raise SystemExit(f"U+{cp:04X} is not decomposed as Hangul: {bare!r}")
            else:
                decomposed[f"{cp:04X}"] = bare
        small = lower(char)
        if small != lowercase(char):
            raise SystemExit(f"U+{cp:04X}: BertNormalizer and Lowercase lower-case it apart")
        if small != char:
            lowered[f"{cp:04X}"] = small
        words = [word for word, _ in split(f"a{char}b")]
        if words == ["a", "b"]:
            split_at.append(cp)
        elif words == ["a", char, "b"]:
            isolated.append(cp)
        elif words != [f"a{char}b"]:
            raise SystemExit(f"BertPreTokenizer splits 'a' U+{cp:04X} 'b' as {words}")
    return {
        "format_version": CHAR_TABLES_FORMAT,
        "generated_by": "scripts/export_wordpiece_chars.py",
        "tokenizers_version": version("tokenizers"),
        "clean_removed": _ranges(removed),
        "clean_to_space": _ranges(spaces),
        "chinese": _ranges(padded),
        "strip_removed": _ranges(stripped),
        "strip_decomposed": decomposed,
        "lowercase": lowered,
        "split_at": _ranges(split_at),
        "isolated": _ranges(isolated),
    }


def main() -> None:
    """Write the tables to the path named on the command line, or to the package's file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination", nargs="?", type=Path, default=CHAR_TABLES_FILE)
    args = parser.parse_args()
    text = json.dumps(_tables(), ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    args.destination.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.destination} ({len(text):,} bytes)")


if __name__ == "__main__":
    main()
