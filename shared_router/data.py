"""The JSONL routing-data contract and the loader for one (small, large) model pair.

One line per query::

    {"id": "...", "query": "...", "split": "train|val|test",
     "models": {"<model>": {"score": 0.0, "scores": [1.0, 0.0], "response": "..."}}}

``score`` is a quality in [0, 1]; ``scores`` (optional) holds one quality per sampled answer,
which the probabilistic labels need; ``split`` is optional.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from shared_router.errors import DataError, ModelNotInDataError

__all__ = ["PairData", "load_pair", "model_names", "read_jsonl"]

PathLike = str | Path


GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of a gzip file."""

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_jsonl(path: PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield every JSON object of a JSONL file with its 1-based line number.

    The file must be UTF-8 text (a leading byte order mark is skipped); lines end with
    ``\n``, ``\r\n`` or ``\r``. Blank lines are skipped.

    Args:
        path: The JSONL file.

    Yields:
        ``(line_number, object)`` pairs.

    Raises:
        DataError: If the file does not exist, is gzip-compressed, is not UTF-8, a line is
            not valid JSON, or a line is not a JSON object; the error names the file and the
            line.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError("file not found; pass the path of a JSONL data file", path=str(file))
    for number, line in _text_lines(file):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"invalid JSON ({exc.msg} at column {exc.colno}); "
                "each line must hold one JSON object",
                path=str(file),
                line=number,
            ) from exc
        if not isinstance(obj, dict):
            raise DataError(
                f"expected a JSON object, got {type(obj).__name__}",
                path=str(file),
                line=number,
            )
        yield number, obj


def _text_lines(file: Path) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file with their 1-based numbers, decoded one by one.

    Raises:
        DataError: Naming the file (and line) when it is gzip-compressed or not UTF-8.
    """
    number = 0
    with file.open("rb") as handle:
        if handle.read(2) == GZIP_MAGIC:
            raise DataError(
                "this is a gzip-compressed file, not JSONL text; decompress it first "
                f"(for example: gzip -dc {file} > data.jsonl) and pass the decompressed file",
                path=str(file),
                line=1,
            )
        handle.seek(0)
        for raw in handle:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(file, raw, exc, number) from None
            if number == 0:
                text = text.removeprefix("\ufeff")
            for piece in text.removesuffix("\n").removesuffix("\r").split("\r"):
                number += 1
                yield number, piece


def _not_utf8(file: Path, raw: bytes, exc: UnicodeDecodeError, before: int) -> DataError:
    """The error for a line of ``file`` that does not decode as UTF-8."""
    line_start = raw.rfind(b"\r", 0, exc.start) + 1
    utf16 = before == 0 and raw[:2] in _UTF16_BOMS
    return DataError(
        f"not UTF-8 text{' (it looks like UTF-16)' if utf16 else ''}: byte "
        f"0x{raw[exc.start]:02x} at column {exc.start - line_start + 1} cannot be decoded; "
        "save the file as UTF-8 (for example: iconv -f "
        f"{'utf-16' if utf16 else 'latin1'} -t utf-8 FILE > data.jsonl)",
        path=str(file),
        line=before + 1 + raw.count(b"\r", 0, line_start),
    )


def _as_paths(path: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(path, (str, Path)):
        return [Path(path)]
    paths = [Path(p) for p in path]
    if not paths:
        raise DataError("no data file given; pass at least one JSONL path")
    return paths


def _models_of(obj: dict[str, Any], file: Path, line: int) -> dict[str, Any]:
    models = obj.get("models")
    if not isinstance(models, dict):
        raise DataError(
            f"'models' must be an object of model name -> result, got {type(models).__name__}",
            path=str(file),
            line=line,
        )
    return models


def model_names(path: PathLike | Sequence[PathLike]) -> list[str]:
    """Return the sorted union of the model names in one or several JSONL files.

    Args:
        path: One JSONL path or several.

    Returns:
        Every model name that appears under ``"models"`` on some line.

    Raises:
        DataError: If a line is malformed.
    """
    names: set[str] = set()
    for file in _as_paths(path):
        for line, obj in read_jsonl(file):
            names.update(_models_of(obj, file, line))
    return sorted(names)


@dataclass(frozen=True, eq=False)
class PairData:
    """Per-query qualities of one (small, large) model pair.

    Attributes:
        small: The small model's name.
        large: The large model's name.
        source: Where the rows came from (file paths, comma-separated).
        ids: Query ids.
        queries: Query texts.
        splits: Each row's split (``"train"``, ``"val"``, ``"test"``) or None.
        small_quality: The small model's quality per query, float64 in [0, 1].
        large_quality: The large model's quality per query, float64 in [0, 1].
        small_samples: Per query, the small model's quality per sampled answer (the
            ``scores`` list where present, else ``[score]``).
        large_samples: The same for the large model.
        skipped: Lines of the source that :func:`load_pair` left out because one model of
            the pair had no quality there; 0 for rows taken from other rows.
    """

    small: str
    large: str
    source: str
    ids: tuple[str, ...]
    queries: tuple[str, ...]
    splits: tuple[str | None, ...]
    small_quality: np.ndarray
    large_quality: np.ndarray
    small_samples: tuple[np.ndarray, ...]
    large_samples: tuple[np.ndarray, ...]
    skipped: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "small_quality", np.asarray(self.small_quality, dtype=np.float64))
        object.__setattr__(self, "large_quality", np.asarray(self.large_quality, dtype=np.float64))
        n = len(self.ids)
        lengths = {
            "queries": len(self.queries),
            "splits": len(self.splits),
            "small_quality": self.small_quality.shape[0] if self.small_quality.ndim == 1 else -1,
            "large_quality": self.large_quality.shape[0] if self.large_quality.ndim == 1 else -1,
            "small_samples": len(self.small_samples),
            "large_samples": len(self.large_samples),
        }
        wrong = {name: size for name, size in lengths.items() if size != n}
        if wrong:
            raise DataError(
                f"every field of PairData must be one-dimensional with one entry per id "
                f"({n} ids); got lengths {wrong}"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, indices: Sequence[int] | np.ndarray) -> PairData:
        """Return the rows at ``indices`` (integer positions or a boolean mask), in that order."""
        index = np.asarray(indices)
        if index.dtype == np.bool_:
            if index.shape != (len(self),):
                raise DataError(f"a boolean mask must have {len(self)} entries, got {index.shape}")
            index = np.flatnonzero(index)
        index = index.astype(np.intp, copy=False).reshape(-1)
        if index.size and (index.min() < -len(self) or index.max() >= len(self)):
            raise DataError(f"row indices must lie in [0, {len(self)}), got {index.tolist()[:10]}")
        rows = index.tolist()
        return PairData(
            small=self.small,
            large=self.large,
            source=self.source,
            ids=tuple(self.ids[i] for i in rows),
            queries=tuple(self.queries[i] for i in rows),
            splits=tuple(self.splits[i] for i in rows),
            small_quality=self.small_quality[index],
            large_quality=self.large_quality[index],
            small_samples=tuple(self.small_samples[i] for i in rows),
            large_samples=tuple(self.large_samples[i] for i in rows),
        )

    @property
    def split_names(self) -> tuple[str, ...]:
        """The distinct split names present, sorted."""
        return tuple(sorted({s for s in self.splits if s is not None}))

    def split(self, name: str) -> PairData:
        """Return the rows whose split is ``name``.

        Raises:
            DataError: If no row has that split; the message lists the splits present.
        """
        rows = [i for i, s in enumerate(self.splits) if s == name]
        if not rows:
            raise DataError(
                f"no row has split {name!r}; splits present: {list(self.split_names)}",
                path=self.source,
            )
        return self.take(rows)

    @cached_property
    def data_hash(self) -> str:
        """A sha256 over the pair names, ids, queries, scores and samples (hex)."""
        digest = hashlib.sha256()

        def text(value: str) -> None:
            raw = value.encode("utf-8")
            digest.update(len(raw).to_bytes(8, "little"))
            digest.update(raw)

        text(self.small)
        text(self.large)
        for row_id, query in zip(self.ids, self.queries, strict=True):
            text(row_id)
            text(query)
        digest.update(self.small_quality.astype("<f8").tobytes())
        digest.update(self.large_quality.astype("<f8").tobytes())
        for samples in (*self.small_samples, *self.large_samples):
            digest.update(len(samples).to_bytes(8, "little"))
            digest.update(samples.astype("<f8").tobytes())
        return digest.hexdigest()


def _quality(value: Any, what: str, file: Path, line: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(
            f"{what} must be a number in [0, 1], got {value!r}", path=str(file), line=line
        )
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise DataError(
            f"{what} must lie in [0, 1], got {value!r}; rescale the quality metric",
            path=str(file),
            line=line,
        )
    return number


def _samples(entry: dict[str, Any], score: float, model: str, file: Path, line: int) -> np.ndarray:
    raw = entry.get("scores")
    if raw is None:
        return np.array([score], dtype=np.float64)
    if not isinstance(raw, list) or not raw:
        raise DataError(
            f"models[{model!r}].scores must be a non-empty list of numbers in [0, 1], "
            f"got {raw!r:.80}",
            path=str(file),
            line=line,
        )
    values = [_quality(v, f"models[{model!r}].scores[{i}]", file, line) for i, v in enumerate(raw)]
    return np.array(values, dtype=np.float64)


def _row_fields(obj: dict[str, Any], file: Path, line: int) -> tuple[str, str, str | None]:
    """A line's ``query``, ``id`` (as a string) and ``split``, checked.

    Raises:
        DataError: Naming the file and line when a field has the wrong type.
    """
    query = obj.get("query")
    if not isinstance(query, str):
        raise DataError(
            f"'query' must be a string, got {type(query).__name__}",
            path=str(file),
            line=line,
        )
    row_id = obj.get("id")
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        raise DataError(
            f"'id' must be a string or an integer, got {row_id!r}",
            path=str(file),
            line=line,
        )
    split = obj.get("split")
    if split is not None and not isinstance(split, str):
        raise DataError(
            f"'split' must be a string or absent, got {split!r}", path=str(file), line=line
        )
    return query, str(row_id), split


def load_pair(
    path: PathLike | Sequence[PathLike],
    small: str,
    large: str,
    *,
    score_field: str = "score",
) -> PairData:
    """Load the rows where both models of a pair have a quality.

    Rows where either model is missing or its quality is null are skipped (counted in
    :attr:`PairData.skipped`). With several paths the rows are concatenated in order.

    Args:
        path: One JSONL path or several.
        small: The small model's name, as in the data.
        large: The large model's name, as in the data.
        score_field: Which field of a model's result is its quality (for example
            ``"ae2_weighted_vs_gpt4turbo"`` in ``alpaca_eval``). Per-sample ``scores`` are
            used only with the default ``"score"``; otherwise the one quality is the sample.

    Returns:
        The pair's rows.

    Raises:
        ModelNotInDataError: If ``small`` or ``large`` appears on no line; lists the names there.
        DataError: If a line is malformed (bad JSON, no ``query``, a quality outside [0, 1]),
            naming file and line; if ``small == large``; if the data holds no rows; if no
            result of the two models has ``score_field``; or if no row has both models.
    """
    if small == large:
        raise DataError(f"small and large must be two different models, got {small!r} twice")
    files = _as_paths(path)
    source = ", ".join(str(f) for f in files)
    ids: list[str] = []
    queries: list[str] = []
    splits: list[str | None] = []
    scores: dict[str, list[float]] = {small: [], large: []}
    samples: dict[str, list[np.ndarray]] = {small: [], large: []}
    names: set[str] = set()
    lines = 0
    fields_of_both: set[str] = set()  # the result fields of rows where both models answered
    for file in files:
        for line, obj in read_jsonl(file):
            lines += 1
            models = _models_of(obj, file, line)
            names.update(models)
            query, row_id, split = _row_fields(obj, file, line)
            small_entry, large_entry = models.get(small), models.get(large)
            if isinstance(small_entry, dict) and isinstance(large_entry, dict):
                fields_of_both.update(small_entry)
            if (
                not isinstance(small_entry, dict)
                or not isinstance(large_entry, dict)
                or small_entry.get(score_field) is None
                or large_entry.get(score_field) is None
            ):
                continue
            for model, entry in ((small, small_entry), (large, large_entry)):
                score = _quality(entry[score_field], f"models[{model!r}].{score_field}", file, line)
                scores[model].append(score)
                if score_field == "score":
                    samples[model].append(_samples(entry, score, model, file, line))
                else:
                    samples[model].append(np.array([score], dtype=np.float64))
            ids.append(row_id)
            queries.append(query)
            splits.append(split)
    if not lines:
        raise DataError("the data holds no rows (is the file empty?)", path=source)
    for model in (small, large):
        if model not in names:
            raise ModelNotInDataError(model, sorted(names), path=source)
    if not ids and fields_of_both and score_field not in fields_of_both:
        raise DataError(
            f"no result of {small!r} or {large!r} has a field {score_field!r}; their fields "
            f"there are {', '.join(sorted(fields_of_both))}: pick one of those",
            path=source,
        )
    if not ids:
        raise DataError(
            f"no row has a {score_field!r} for both {small!r} and {large!r}; "
            "pick two models that answered the same queries",
            path=source,
        )
    return PairData(
        small=small,
        large=large,
        source=source,
        ids=tuple(ids),
        queries=tuple(queries),
        splits=tuple(splits),
        small_quality=np.array(scores[small], dtype=np.float64),
        large_quality=np.array(scores[large], dtype=np.float64),
        small_samples=tuple(samples[small]),
        large_samples=tuple(samples[large]),
        skipped=lines - len(ids),
    )
