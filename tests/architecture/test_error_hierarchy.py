"""One error hierarchy: every exception raised on purpose derives from HybridLLMError."""

from __future__ import annotations

import inspect
from pathlib import Path

import shared_router.errors as errors
from tests.architecture.raises import bare_builtin_raises, scan

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared_router", "langchain_hybrid", "llamaindex_hybrid")


def test_no_package_raises_a_bare_builtin_exception() -> None:
    assert scan(ROOT, PACKAGES) == []


def test_the_scan_finds_planted_bare_raises() -> None:
    source = (
        "def check(x):\n"
        "    if x < 0:\n"
        "        raise ValueError('negative')\n"
        "    raise KeyError\n"
        "def __getattr__(name):\n"
        "    raise AttributeError(name)\n"  # protocol: allowed
        "def reraise():\n"
        "    try:\n"
        "        pass\n"
        "    except OSError as exc:\n"
        "        raise exc\n"  # a re-raise: allowed
        "def ours():\n"
        "    raise DataError('fine')\n"
    )
    assert bare_builtin_raises(source, "m.py") == [
        "m.py:3: raise ValueError",
        "m.py:4: raise KeyError",
    ]


def test_every_error_class_is_in_the_hierarchy_and_in_the_tree() -> None:
    classes = [
        value
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ]
    assert sorted(c.__name__ for c in classes) == sorted(errors.__all__)
    tree = errors.__doc__ or ""
    for cls in classes:
        assert issubclass(cls, errors.HybridLLMError)
        assert cls.__name__ in tree, f"{cls.__name__} is missing from the tree in errors.py"


def test_errors_keep_working_for_callers_that_catch_the_builtin() -> None:
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.ModelTypeError, TypeError)
    assert issubclass(errors.UnknownNameError, KeyError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.UnsupportedFeatureError, NotImplementedError)
    assert issubclass(errors.UsageError, RuntimeError)
    missing = errors.MissingDependencyError("x needs y", package="y", extra="train")
    assert missing.name == "y" and missing.extra == "train"
    assert str(errors.UnknownNameError("no curve 'x'")) == "no curve 'x'"
