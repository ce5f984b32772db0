"""One exception hierarchy for hybrid-llm.

Every error raised on purpose by the library derives from :class:`HybridLLMError`, so
``except HybridLLMError`` catches all of them. Errors that are about bad input also derive
from :class:`ValueError` so that generic callers keep working. Messages say what was
received and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CalibrationError",
    "DataError",
    "EmptyInputError",
    "EncoderError",
    "HybridLLMError",
    "KnobError",
    "ModelNotInDataError",
    "RoutingError",
    "TrainingError",
]


class HybridLLMError(Exception):
    """Base class of every error raised by hybrid-llm."""


class DataError(HybridLLMError, ValueError):
    """A data file or in-memory data set is malformed.

    Args:
        message: What is wrong and how to fix it.
        path: The file, where the data came from a file.
        line: The 1-based line number, where the problem is on one line.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class ModelNotInDataError(DataError):
    """A model name asked for is not in the data.

    Args:
        name: The model name that was asked for.
        available: The model names the data holds.
        path: The file that was searched.
    """

    def __init__(self, name: str, available: list[str], *, path: str | None = None) -> None:
        self.name = name
        self.available = sorted(available)
        shown = ", ".join(self.available[:60])
        more = f" (and {len(self.available) - 60} more)" if len(self.available) > 60 else ""
        super().__init__(
            f"model {name!r} is not in the data; models there: {shown}{more}", path=path
        )


class KnobError(HybridLLMError, ValueError):
    """A quality knob (max_quality_drop, large_share, threshold) is doubled or out of range."""


class ArtifactError(HybridLLMError, ValueError):
    """A router folder is missing a file, has an unknown format version, or is inconsistent."""


class EncoderError(HybridLLMError):
    """The text encoder could not be loaded or could not encode."""


class TrainingError(HybridLLMError, ValueError):
    """Training could not run on the data it was given (too few rows, one class only, ...)."""


class CalibrationError(HybridLLMError, ValueError):
    """A calibration table could not be built or cannot answer the request."""


class EmptyInputError(HybridLLMError, ValueError):
    """A call carried nothing to answer (no messages, or an empty prompt)."""


class RoutingError(HybridLLMError):
    """Routing failed for a reason other than bad knobs (for example the router raised)."""
