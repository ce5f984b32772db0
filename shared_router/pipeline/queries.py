"""The query file of ``collect``: rows, ids, splits, and the repair of unencodable text."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared_router._internal.validation import encodable_text
from shared_router.data import read_jsonl
from shared_router.errors import DataError
from shared_router.pipeline.settings import DEFAULT_FIELDS, InputFields

__all__ = ["SPLITS", "QueryRow", "read_queries", "split_for_id", "stable_id", "text_digest"]

logger = logging.getLogger(__name__)


def stable_id(query: str) -> str:
    """A stable id for a query that has none: ``"q-"`` and 16 hex digits of its sha256."""
    return "q-" + text_digest(query)


SPLITS = (("train", 80), ("val", 90), ("test", 100))
"""Split names with the cumulative share (in %) of the id-hash buckets they take."""


def split_for_id(row_id: str) -> str:
    """The split of a row by a hash of its id: 80% ``train``, 10% ``val``, 10% ``test``."""
    bucket = int(hashlib.sha256(encodable_text(row_id).encode("utf-8")).hexdigest()[:8], 16)
    bucket %= 100
    return next(name for name, upper in SPLITS if bucket < upper)


def text_digest(text: str) -> str:
    """16 hex digits of the sha256 of ``text`` (lone surrogates count as U+FFFD)."""
    return hashlib.sha256(encodable_text(text).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class QueryRow:
    """One input query.

    Attributes:
        id: The query id (as a string; the row keeps the original value).
        query: The prompt.
        row: The output row without collected results: ``id``, ``query``, ``reference``
            (when present), ``split`` and every other input field, including any ``models``
            already there.
        line: The input line number.
    """

    id: str
    query: str
    row: Mapping[str, Any]
    line: int


def read_queries(path: str | Path, *, fields: InputFields = DEFAULT_FIELDS) -> list[QueryRow]:
    """Read a JSONL file of queries.

    Rows without an id get :func:`stable_id`; rows without a ``split`` get
    :func:`split_for_id`. A lone surrogate in a query or a string id (``"\ud800"``: valid
    JSON that cannot be sent, hashed or written as UTF-8) is replaced by U+FFFD (the policy
    of :func:`shared_router._internal.validation.encodable_text`), with one warning per file;
    the output file gets the repaired text.

    Args:
        path: One JSON object per line.
        fields: The fields holding the prompt, the reference answer and the id.

    Returns:
        The queries in file order.

    Raises:
        DataError: If the file is missing or empty, a line is malformed, a query is missing
            or blank, or two rows have the same id (file and line named).
    """
    rows: list[QueryRow] = []
    seen: dict[str, int] = {}
    repaired: list[int] = []
    for line, obj in read_jsonl(path):
        query, raw_id = _query_and_id(obj, fields, path, line)
        if encodable_text(query) is not query or encodable_text(str(raw_id)) is not str(raw_id):
            repaired.append(line)
            query = encodable_text(query)
            raw_id = encodable_text(raw_id) if isinstance(raw_id, str) else raw_id
        key = str(raw_id)
        if key in seen:
            raise DataError(
                f"id {key!r} also on line {seen[key]}; ids must be unique (rows without an id "
                "get a hash of the query, so identical queries collide: drop duplicates)",
                path=str(path),
                line=line,
            )
        seen[key] = line
        row = _contract_row(obj, {"id": raw_id, "query": query}, fields, path, line)
        row.setdefault("split", split_for_id(key))
        rows.append(QueryRow(id=key, query=query, row=row, line=line))
    if not rows:
        raise DataError("no queries in the file; give one JSON object per line", path=str(path))
    if repaired:
        logger.warning(
            "%s: %d queries or ids hold lone surrogates (first on line %d), which cannot be "
            "encoded as UTF-8; they are replaced by U+FFFD in the prompts and the output. "
            "Fix the text at its source to keep it",
            path,
            len(repaired),
            repaired[0],
        )
    return rows


def _query_and_id(
    obj: Mapping[str, Any], fields: InputFields, path: str | Path, line: int
) -> tuple[str, str | int]:
    """The prompt of an input line and its id (a hash of the prompt where it has none)."""
    query = obj.get(fields.query)
    if not isinstance(query, str) or not query.strip():
        raise DataError(
            f"field {fields.query!r} must be a non-empty string, got {query!r:.80}; "
            "choose the field with --query-field",
            path=str(path),
            line=line,
        )
    raw_id = obj.get(fields.id)
    if raw_id is None:
        return query, stable_id(query)
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise DataError(
            f"field {fields.id!r} must be a string or an integer, got {raw_id!r}",
            path=str(path),
            line=line,
        )
    return query, raw_id


def _contract_row(
    obj: Mapping[str, Any], row: dict[str, Any], fields: InputFields, path: str | Path, line: int
) -> dict[str, Any]:
    """``row`` (id and query) with the reference and every other field of the input line."""
    if obj.get(fields.reference) is not None:
        row["reference"] = obj[fields.reference]
    for name, value in obj.items():
        if name in (fields.query, fields.reference, fields.id):
            continue
        if name in row:
            raise DataError(
                f"field {name!r} clashes with the renamed {name!r} field; rename one of them",
                path=str(path),
                line=line,
            )
        row[name] = value
    if not isinstance(row.get("models", {}), dict):
        raise DataError(
            f"'models' must be an object of model name -> result, got {row['models']!r:.60}",
            path=str(path),
            line=line,
        )
    return row
