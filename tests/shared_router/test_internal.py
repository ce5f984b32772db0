"""The layer-0 helpers: the atomic writer, the extras gate, the validators."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from shared_router._internal.atomic import atomic_open, atomic_path, write_text_atomic
from shared_router._internal.extras import install_hint, require_extra
from shared_router._internal.validation import encodable_text, finite_vector, text_list
from shared_router.errors import DataError, EncoderError, MissingDependencyError


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_files_get_the_permissions_of_any_new_file(tmp_path: Path) -> None:
    plain, atomic = tmp_path / "plain", tmp_path / "atomic"
    plain.write_bytes(b"x")
    with atomic_path(atomic) as temporary:
        temporary.write_bytes(b"x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    tensors = tmp_path / "model.safetensors"  # safetensors makes its own files private
    with atomic_path(tensors) as temporary:
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(temporary))
    assert stat.S_IMODE(tensors.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    with atomic_open(tmp_path / "b", "wb") as binary:
        binary.write(b"\x00\x01")
    assert (tmp_path / "b").read_bytes() == b"\x00\x01"


def test_require_extra_names_the_extra_or_the_requirements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "hybrid-llm\[train\]"') as err:
        require_extra("torch", extra="train", purpose="training")
    assert isinstance(err.value, ImportError) and err.value.extra == "train"
    assert (
        install_hint(None, ("onnx>=1.16",))
        == 'pip install "onnx>=1.16" (dependencies of hybrid-llm)'
    )
    assert require_extra("json", extra=None, purpose="x").dumps([1]) == "[1]"


def test_validators_raise_the_callers_error() -> None:
    assert finite_vector([1, 2], "q").dtype == np.float64
    with pytest.raises(DataError, match="finite"):
        finite_vector([1.0, float("nan")], "q")
    with pytest.raises(EncoderError, match="wrap one text in a list"):
        text_list("one", "texts", EncoderError)
    with pytest.raises(EncoderError, match=r"texts\[1\] must be a str"):
        text_list(["a", 3], "texts", EncoderError)  # type: ignore[list-item]
    assert text_list(("a", "b"), "texts", EncoderError) == ["a", "b"]


def test_encodable_text_replaces_lone_surrogates_only() -> None:
    assert encodable_text("a\ud800b\udfff") == "a\ufffdb\ufffd"
    kept = "naïve 北京 😀"
    assert encodable_text(kept) is kept
    encodable_text("x\udc80").encode("utf-8")  # no UnicodeEncodeError
