"""One exception hierarchy for hybrid-llm (layer 0: imports nothing of the package).

Every error raised on purpose by ``shared_router``, ``langchain_hybrid`` and
``llamaindex_hybrid`` derives from :class:`HybridLLMError`, so ``except HybridLLMError``
catches all of them; each also derives from the built-in exception it stands for, so that
``except ValueError`` (or ``ImportError``, ...) code keeps working. Messages say what was
received and how to fix it. A test scans the packages' ``raise`` statements and fails on a
bare built-in exception.

::

    HybridLLMError
    ├── DataError (ValueError)                a data file or data set is malformed
    │   └── ModelNotInDataError               a model name is not in the data
    ├── KnobError (ValueError)                a quality knob is doubled or out of range
    ├── ArtifactError (ValueError)            a router folder is missing, unknown or inconsistent
    ├── TrainingError (ValueError)            training cannot run on the data given
    ├── CalibrationError (ValueError)         a calibration table cannot be built or answer
    ├── EmptyInputError (ValueError)          a call carried nothing to answer
    ├── ConfigurationError (ValueError)       a setting or argument is out of its range
    ├── ModelTypeError (TypeError)            an object that is not the model kind expected
    ├── UnknownNameError (KeyError)           a name (curve, metric, ...) that does not exist
    ├── MissingDependencyError (ImportError)  an optional package is not installed
    ├── UnsupportedFeatureError (NotImplementedError)
    │                                         the wrapped models cannot do what was asked
    ├── UsageError (RuntimeError)             an object used in a state that does not allow it
    ├── EncoderError                          the text encoder could not load or encode
    └── RoutingError                          routing failed for another reason
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CalibrationError",
    "ConfigurationError",
    "DataError",
    "EmptyInputError",
    "EncoderError",
    "HybridLLMError",
    "KnobError",
    "MissingDependencyError",
    "ModelNotInDataError",
    "ModelTypeError",
    "RoutingError",
    "TrainingError",
    "UnknownNameError",
    "UnsupportedFeatureError",
    "UsageError",
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


class ConfigurationError(HybridLLMError, ValueError):
    """A setting or argument is out of its range (prices, sizes, modes, a router argument)."""


class ModelTypeError(HybridLLMError, TypeError):
    """An object was given where a model of another kind is expected."""


class UnknownNameError(HybridLLMError, KeyError):
    """A name was asked for that does not exist (a curve or metric of a report, ...).

    Unlike a plain :class:`KeyError`, its message is shown as written, not quoted.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(HybridLLMError, ImportError):
    """An optional package is not installed; the message names the pip command that adds it.

    Args:
        message: What needs the package and how to install it.
        package: The import name of the missing package.
        extra: The hybrid-llm extra that brings it, where there is one.
    """

    def __init__(self, message: str, *, package: str, extra: str | None = None) -> None:
        super().__init__(message, name=package)
        self.package = package
        self.extra = extra


class UnsupportedFeatureError(HybridLLMError, NotImplementedError):
    """The wrapped models cannot do what was asked (tool calling, structured output, ...)."""


class UsageError(HybridLLMError, RuntimeError):
    """An object was used in a state that does not allow it (a journal that is not open)."""
