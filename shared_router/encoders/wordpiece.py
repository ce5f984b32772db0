"""BERT word-piece tokenization in pure Python: the ids of HF ``tokenizers``, without it.

:class:`WordPieceTokenizer` reads a BERT ``tokenizer.json`` (normalizer ``BertNormalizer``,
``Lowercase`` or a sequence of them; pre-tokenizer ``BertPreTokenizer``; model ``WordPiece``;
added tokens matched on the raw or the normalised text) and gives the same content ids as
``tokenizers`` does for it, special tokens not added. Which characters each step drops, pads,
decomposes, lower-cases, splits at or isolates comes from ``wordpiece_chars.json``, probed from
``tokenizers`` one code point at a time (``scripts/export_wordpiece_chars.py``), so the answer
does not depend on the Unicode version of the running Python. Every step is a C-level string
pass (:meth:`str.translate`, :mod:`re`); the word-piece split of each distinct word is cached.

Any other ``tokenizer.json`` raises :class:`~shared_router.errors.EncoderError` naming what is
not supported: :func:`check_tokenizer_file` tells that before the weights are read, so such a
folder goes to the torch backend.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared_router.errors import EncoderError

__all__ = [
    "CHAR_TABLES_FILE",
    "CHAR_TABLES_FORMAT",
    "HANGUL_SYLLABLES",
    "WordPieceTokenizer",
    "check_tokenizer_file",
    "decompose_hangul",
]

CHAR_TABLES_FILE = Path(__file__).with_name("wordpiece_chars.json")
"""The character tables probed from ``tokenizers`` (``scripts/export_wordpiece_chars.py``)."""

CHAR_TABLES_FORMAT = 1
"""The version of :data:`CHAR_TABLES_FILE`'s layout this module reads."""

HANGUL_SYLLABLES = range(0xAC00, 0xD7A4)
"""Precomposed Hangul syllables: decomposed by formula, so the tables leave them out."""

_TABLE_KEYS = (
    "clean_removed",
    "clean_to_space",
    "chinese",
    "strip_removed",
    "strip_decomposed",
    "lowercase",
    "split_at",
    "isolated",
)

_WORD_CACHE_SIZE = 1 << 16  # distinct words whose pieces are kept; cleared when full

Step = Callable[[str], str]


def decompose_hangul(char: str) -> str:
    """A precomposed Hangul syllable's canonical decomposition into its jamo (Unicode 3.12).

    Args:
        char: One character of :data:`HANGUL_SYLLABLES`.

    Returns:
        Two or three jamo: leading consonant, vowel and, when there is one, trailing consonant.
    """
    index = ord(char) - HANGUL_SYLLABLES.start
    lead, rest = divmod(index, 21 * 28)
    vowel, tail = divmod(rest, 28)
    jamo = chr(0x1100 + lead) + chr(0x1161 + vowel)
    return jamo + chr(0x11A7 + tail) if tail else jamo


def _char_class(runs: Sequence[Sequence[int]]) -> str:
    return "".join(
        f"\\U{first:08x}" if first == last else f"\\U{first:08x}-\\U{last:08x}"
        for first, last in runs
    )


def _mapping(table: Mapping[str, str]) -> dict[int, str]:
    return {int(code, 16): text for code, text in table.items()}


@dataclass(frozen=True)
class _CharTables:
    """:data:`CHAR_TABLES_FILE`, compiled into the passes each step makes over a text."""

    clean_removed: re.Pattern[str]
    clean_to_space: dict[int, str]
    chinese: re.Pattern[str]
    strip: dict[int, str | None]
    lowercase: dict[int, str]
    words: re.Pattern[str]


@functools.cache
def _char_tables() -> _CharTables:
    try:
        raw = json.loads(CHAR_TABLES_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EncoderError(
            f"{CHAR_TABLES_FILE} could not be read ({exc}); reinstall hybrid-llm, or re-export "
            "it with scripts/export_wordpiece_chars.py"
        ) from exc
    if not isinstance(raw, dict) or raw.get("format_version") != CHAR_TABLES_FORMAT:
        found = raw.get("format_version") if isinstance(raw, dict) else type(raw).__name__
        raise EncoderError(
            f"{CHAR_TABLES_FILE} has format_version {found!r}; this hybrid-llm reads "
            f"{CHAR_TABLES_FORMAT}: reinstall it, or re-export the file with "
            "scripts/export_wordpiece_chars.py"
        )
    missing = [key for key in _TABLE_KEYS if key not in raw]
    if missing:
        raise EncoderError(f"{CHAR_TABLES_FILE} lacks {missing}; reinstall hybrid-llm")
    strip: dict[int, str | None] = {
        cp: None for first, last in raw["strip_removed"] for cp in range(first, last + 1)
    }
    strip.update(_mapping(raw["strip_decomposed"]))
    strip.update({cp: decompose_hangul(chr(cp)) for cp in HANGUL_SYLLABLES})
    split_at, isolated = _char_class(raw["split_at"]), _char_class(raw["isolated"])
    return _CharTables(
        clean_removed=re.compile(f"[{_char_class(raw['clean_removed'])}]+"),
        clean_to_space={
            cp: " " for first, last in raw["clean_to_space"] for cp in range(first, last + 1)
        },
        chinese=re.compile(f"([{_char_class(raw['chinese'])}])"),
        strip=strip,
        lowercase=_mapping(raw["lowercase"]),
        words=re.compile(f"[{isolated}]|[^{split_at}{isolated}]+"),
    )


def _lowercase_step(tables: _CharTables) -> Step:
    return lambda text: text.translate(tables.lowercase)


def _bert_steps(config: Mapping[str, Any], tables: _CharTables) -> list[Step]:
    """``BertNormalizer``'s steps, in its order: clean, Chinese characters, accents, case."""
    steps: list[Step] = []
    if config.get("clean_text", True):
        steps.append(
            lambda text: tables.clean_removed.sub("", text).translate(tables.clean_to_space)
        )
    if config.get("handle_chinese_chars", True):
        steps.append(lambda text: tables.chinese.sub(r" \1 ", text))
    lowercase = bool(config.get("lowercase", True))
    strip_accents = config.get("strip_accents")
    if strip_accents if strip_accents is not None else lowercase:
        steps.append(lambda text: text.translate(tables.strip))
    if lowercase:
        steps.append(_lowercase_step(tables))
    return steps


def _normalizer_members(config: Mapping[str, Any] | None, where: Path) -> list[Mapping[str, Any]]:
    if config is None:
        return []
    members = config.get("normalizers", []) if config.get("type") == "Sequence" else [config]
    for member in members:
        if member.get("type") not in ("BertNormalizer", "Lowercase"):
            raise EncoderError(
                f"{where} has normalizer {member.get('type')!r}; the numpy encoder's tokenizer "
                "runs BertNormalizer and Lowercase only; use the torch backend for this model"
            )
    return list(members)


@dataclass(frozen=True)
class _Parsed:
    """What :class:`WordPieceTokenizer` needs of a ``tokenizer.json``, checked."""

    vocab: dict[str, int]
    normalizers: list[Mapping[str, Any]]
    unk_token: str
    prefix: str
    max_chars: int
    raw_added: dict[str, int]
    normalized_added: dict[str, int]


def _parse(path: Path) -> _Parsed:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        model, added = raw["model"], raw.get("added_tokens") or []
        pre_tokenizer = raw.get("pre_tokenizer")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EncoderError(f"{path} could not be read as a tokenizer.json: {exc!r}") from exc
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise EncoderError(
            f"{path} has model {model.get('type')!r}; the numpy encoder's tokenizer runs "
            "WordPiece only; use the torch backend for this model"
        )
    if (pre_tokenizer or {}).get("type") != "BertPreTokenizer":
        found = (pre_tokenizer or {}).get("type")
        raise EncoderError(
            f"{path} has pre_tokenizer {found!r}; the numpy encoder's tokenizer runs "
            "BertPreTokenizer only; use the torch backend for this model"
        )
    raw_added: dict[str, int] = {}
    normalized_added: dict[str, int] = {}
    for token in added:
        if token.get("single_word") or token.get("lstrip") or token.get("rstrip"):
            raise EncoderError(
                f"{path}: added token {token.get('content')!r} uses single_word/lstrip/rstrip, "
                "which the numpy encoder's tokenizer does not; use the torch backend"
            )
        normalized = token.get("normalized", not token.get("special"))
        target = normalized_added if normalized else raw_added
        target[str(token["content"])] = int(token["id"])
    vocab = {str(piece): int(index) for piece, index in model["vocab"].items()}
    unk_token = str(model.get("unk_token", "[UNK]"))
    if unk_token not in vocab:
        raise EncoderError(f"{path}: the unknown token {unk_token!r} is not in the vocabulary")
    return _Parsed(
        vocab=vocab,
        normalizers=_normalizer_members(raw.get("normalizer"), path),
        unk_token=unk_token,
        prefix=str(model.get("continuing_subword_prefix", "##")),
        max_chars=int(model.get("max_input_chars_per_word", 100)),
        raw_added=raw_added,
        normalized_added=normalized_added,
    )


def check_tokenizer_file(path: Path) -> None:
    """Raise unless :class:`WordPieceTokenizer` runs this ``tokenizer.json``.

    Args:
        path: A ``tokenizer.json``.

    Raises:
        EncoderError: The file is unreadable, or not a BERT word-piece tokenizer this module
            runs; the message names what is not supported.
    """
    _parse(path)


def _alternation(tokens: Mapping[str, int]) -> re.Pattern[str] | None:
    """Leftmost-longest matching of ``tokens``: the longest first in a regex alternation."""
    if not tokens:
        return None
    ordered = sorted(tokens, key=len, reverse=True)
    return re.compile("|".join(re.escape(token) for token in ordered))


class WordPieceTokenizer:
    """A BERT word-piece tokenizer read from a ``tokenizer.json``; thread-safe.

    Use :meth:`from_file`.
    """

    def __init__(self, parsed: _Parsed, *, lowercase_first: bool) -> None:
        """Compile a parsed ``tokenizer.json``; use :meth:`from_file` instead.

        Args:
            parsed: The checked file.
            lowercase_first: Lower-case the text before the file's normalizer, unless that
                has a ``Lowercase`` member (as sentence-transformers' ``do_lower_case``).
        """
        tables = _char_tables()
        steps: list[Step] = []
        if lowercase_first and not any(m["type"] == "Lowercase" for m in parsed.normalizers):
            steps.append(_lowercase_step(tables))
        for member in parsed.normalizers:
            is_bert = member["type"] == "BertNormalizer"
            steps.extend(_bert_steps(member, tables) if is_bert else [_lowercase_step(tables)])
        self._steps = tuple(steps)
        self._words = tables.words
        self._vocab = parsed.vocab
        self._unk = (parsed.vocab[parsed.unk_token],)
        self._prefix = parsed.prefix
        self._max_chars = parsed.max_chars
        self._longest = max(len(piece) for piece in parsed.vocab)
        self._added = {**parsed.vocab, **parsed.raw_added, **parsed.normalized_added}
        self._raw_added = _alternation(parsed.raw_added)
        self._normalized_ids = {
            self._normalize(token): index for token, index in parsed.normalized_added.items()
        }
        self._normalized_added = _alternation(self._normalized_ids)
        self._pieces_of: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_file(cls, path: Path, *, lowercase_first: bool = False) -> WordPieceTokenizer:
        """Read a ``tokenizer.json``.

        Args:
            path: The file.
            lowercase_first: Lower-case before the file's normalizer unless it has a
                ``Lowercase`` member (sentence-transformers' ``do_lower_case``).

        Returns:
            The tokenizer.

        Raises:
            EncoderError: As :func:`check_tokenizer_file`.
        """
        return cls(_parse(path), lowercase_first=lowercase_first)

    def token_to_id(self, token: str) -> int | None:
        """A token's id (vocabulary or added token), or None when it has none."""
        return self._added.get(token)

    def encode(self, text: str) -> list[int]:
        """A text's ids, special tokens ([CLS], [SEP]) not added, as ``tokenizers`` gives them.

        Args:
            text: Any text without lone surrogates.

        Returns:
            The ids, in order.
        """
        ids: list[int] = []
        for segment, added in _split(text, self._raw_added):
            if added:
                ids.append(self._added[segment])
                continue
            normalized = self._normalize(segment)
            for part, part_added in _split(normalized, self._normalized_added):
                if part_added:
                    ids.append(self._normalized_ids[part])
                else:
                    for word in self._words.findall(part):
                        ids.extend(self._pieces(word))
        return ids

    def _normalize(self, text: str) -> str:
        for step in self._steps:
            text = step(text)
        return text

    def _pieces(self, word: str) -> tuple[int, ...]:
        """A word's ids: greedy longest match first, the whole word unknown if a piece is."""
        known = self._pieces_of.get(word)
        if known is not None:
            return known
        pieces = self._unk if len(word) > self._max_chars else self._split_word(word)
        if len(self._pieces_of) >= _WORD_CACHE_SIZE:
            self._pieces_of.clear()
        self._pieces_of[word] = pieces
        return pieces

    def _split_word(self, word: str) -> tuple[int, ...]:
        vocab, prefix, pieces, start = self._vocab, self._prefix, [], 0
        while start < len(word):
            end = min(len(word), start + self._longest)
            while end > start:
                index = vocab.get(word[start:end] if start == 0 else prefix + word[start:end])
                if index is not None:
                    break
                end -= 1
            else:
                return self._unk
            pieces.append(index)
            start = end
        return tuple(pieces)


def _split(text: str, tokens: re.Pattern[str] | None) -> list[tuple[str, bool]]:
    """``text`` cut at the matches of ``tokens``: (piece, is a match), empty pieces left out."""
    if tokens is None:
        return [(text, False)] if text else []
    out: list[tuple[str, bool]] = []
    start = 0
    for match in tokens.finditer(text):
        if match.start() > start:
            out.append((text[start : match.start()], False))
        out.append((match.group(), True))
        start = match.end()
    if start < len(text):
        out.append((text[start:], False))
    return out
