"""Router.load does not trust the folder (issue 15, item 7): the encoder identity in
config.json is compared with what would run, hub models need an opt-in, and "default" is
always the bundled router."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from shared_router.errors import ArtifactError
from shared_router.routing.router import Router
from shared_router.routing.router_folder import router_folder_path

BUNDLED_NAME = "hybrid-llm-default-v0"


def _copy_default(target: Path, edit: Any = None) -> Path:
    """A copy of the bundled router folder, its config.json changed by ``edit``."""
    shutil.copytree(router_folder_path("default"), target)
    if edit is not None:
        path = target / "config.json"
        config = json.loads(path.read_text(encoding="utf-8"))
        edit(config)
        path.write_text(json.dumps(config), encoding="utf-8")
    return target


def test_an_int8_trained_head_is_refused_on_fp32_vectors(tmp_path: Path) -> None:
    def to_fp32(config: dict[str, Any]) -> None:
        config["encoder"]["precision"] = "fp32"  # the identity still says |int8

    folder = _copy_default(tmp_path / "router", to_fp32)
    with pytest.raises(ArtifactError) as error:
        Router.load(folder)
    message = str(error.value)
    assert "max_tokens=256|int8" in message  # what it was trained on
    assert "max_tokens=256'" in message and "(fp32)" in message  # what would run


def test_other_weights_or_token_limit_than_recorded_are_refused(tmp_path: Path) -> None:
    def other_weights(config: dict[str, Any]) -> None:
        config["encoder"]["identity"] = (
            "all-MiniLM-L6-v2|sha256:0123456789abcdef|max_tokens=256|int8"
        )

    def other_limit(config: dict[str, Any]) -> None:
        config["encoder"]["max_tokens"] = 128

    with pytest.raises(ArtifactError, match="sha256:0123456789abcdef.*sha256:aad5"):
        Router.load(_copy_default(tmp_path / "weights", other_weights))
    with pytest.raises(ArtifactError, match="max_tokens=256.*max_tokens=128"):
        Router.load(_copy_default(tmp_path / "limit", other_limit))


def test_a_malformed_identity_is_an_invalid_config(tmp_path: Path) -> None:
    def malformed(config: dict[str, Any]) -> None:
        config["encoder"]["identity"] = 42

    with pytest.raises(ArtifactError, match="'encoder.identity' must be"):
        Router.load(_copy_default(tmp_path / "router", malformed))


def test_an_older_folder_without_an_identity_still_loads(tmp_path: Path) -> None:
    def older(config: dict[str, Any]) -> None:
        del config["encoder"]["identity"]

    router = Router.load(_copy_default(tmp_path / "router", older))
    assert router.encoder_ is not None and router.encoder_.precision == "int8"


def test_a_router_folder_naming_a_hub_model_is_refused_unless_asked(tmp_path: Path) -> None:
    def hub(config: dict[str, Any]) -> None:
        config["encoder"]["name"] = "sentence-transformers/all-mpnet-base-v2"
        config["encoder"]["precision"] = "fp32"
        del config["encoder"]["identity"]

    folder = _copy_default(tmp_path / "router", hub)
    with pytest.raises(ArtifactError, match="Hugging Face hub.*allow_download=True"):
        Router.load(folder)
    # Opting in loads the folder (the model itself loads on first use).
    router = Router.load(folder, allow_download=True)
    assert router.encoder_ is not None
    assert router.encoder_.name == "sentence-transformers/all-mpnet-base-v2"


def test_default_is_the_bundled_router_whatever_the_working_directory_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rename(config: dict[str, Any]) -> None:
        config["name"] = "a-local-router"

    _copy_default(tmp_path / "default", rename)
    monkeypatch.chdir(tmp_path)
    assert Router.load("default").name == BUNDLED_NAME
    assert Router.load().name == BUNDLED_NAME
    assert Router.load("./default").name == "a-local-router"  # a path
    assert Router.load(Path("default")).name == "a-local-router"


def test_an_int8_identity_without_a_precision_is_refused(tmp_path: Path) -> None:
    def no_precision(config: dict[str, Any]) -> None:
        del config["encoder"]["precision"]  # would run fp32 vectors through an int8 head

    with pytest.raises(ArtifactError, match=r"\(int8\), but this router would run.*\(fp32\)"):
        Router.load(_copy_default(tmp_path / "router", no_precision))
