"""The torch backend of :class:`~shared_router.encoders.encoder.Encoder`: sentence-transformers.

Any model sentence-transformers loads, by name or path, with the same head+tail clipping of
long texts as the numpy and ONNX backends. sentence-transformers and torch come with the
``train`` extra and are imported only here, only when this backend is used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared_router._internal.extras import require_extra
from shared_router.encoders.clipping import clip_token_ids
from shared_router.encoders.folders import resolve_encoder_path
from shared_router.errors import EncoderError

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

__all__ = ["TorchBackend", "load_sentence_transformer", "tokenize_head_tail"]


def load_sentence_transformer(
    name_or_path: str | Path, *, device: str | None = None
) -> SentenceTransformer:
    """Load a sentence-transformers model (a fresh copy) by name or local path.

    Args:
        name_or_path: As for :class:`Encoder`.
        device: A torch device such as ``"cpu"`` or ``"cuda"``; None lets torch pick.

    Returns:
        The model.

    Raises:
        MissingDependencyError: When sentence-transformers is not installed.
        EncoderError: When the model cannot load.
    """
    local = resolve_encoder_path(name_or_path)
    library = require_extra(
        "sentence_transformers",
        extra="train",
        purpose=f"encoder {str(name_or_path)!r} on the torch backend",
    )
    try:
        model: SentenceTransformer = library.SentenceTransformer(
            str(local or name_or_path), device=device
        )
    except Exception as exc:  # hub, file and config errors come in many types
        where = f"local folder {str(local)!r}" if local else "no local folder of that name"
        raise EncoderError(
            f"could not load encoder {str(name_or_path)!r} with sentence-transformers ({where}): "
            f"{type(exc).__name__}: {exc}. Give the path of a local sentence-transformers "
            "folder, or a model name already in the Hugging Face cache."
        ) from exc
    return model


def tokenize_head_tail(
    model: SentenceTransformer, texts: Sequence[str], max_tokens: int
) -> dict[str, torch.Tensor]:
    """Tokenize texts for a sentence-transformers model, clipping long ones at head and tail.

    The special tokens the tokenizer adds (for BERT ``[CLS] ... [SEP]``) are kept, and the
    content in between is clipped to ``max_tokens - len(specials)`` ids by
    :func:`~shared_router.encoders.clipping.clip_token_ids`, exactly as the numpy backend does.

    Args:
        model: The model (its ``tokenizer`` is used).
        texts: The texts.
        max_tokens: Most ids per text, special tokens included.

    Returns:
        Padded features (``input_ids``, ``attention_mask`` and, where the tokenizer uses
        them, ``token_type_ids``) on the model's device, ready for ``model(features)``.
    """
    import torch

    tokenizer = model.tokenizer
    probe = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
    flags = list(probe["special_tokens_mask"])
    probe_ids = list(probe["input_ids"])
    first = flags.index(0)
    last = len(flags) - 1 - flags[::-1].index(0)
    prefix, suffix = probe_ids[:first], probe_ids[last + 1 :]
    budget = max_tokens - len(prefix) - len(suffix)
    content = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    rows = [[*prefix, *clip_token_ids(ids, budget), *suffix] for ids in content]
    width = max(len(row) for row in rows)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    features = {"input_ids": input_ids, "attention_mask": mask}
    if "token_type_ids" in tokenizer.model_input_names:
        features["token_type_ids"] = torch.zeros_like(input_ids)
    return {key: value.to(model.device) for key, value in features.items()}


class TorchBackend:
    """sentence-transformers with head+tail clipping; the same interface as the numpy one."""

    def __init__(self, model: SentenceTransformer, max_tokens: int | None) -> None:
        positions = getattr(getattr(model[0], "config", None), "max_position_embeddings", None)
        hard_limit = int(positions) if isinstance(positions, int) else 512
        tokens = int(max_tokens or model.max_seq_length or hard_limit)
        if not 3 <= tokens <= hard_limit:
            raise EncoderError(
                f"max_tokens must be between 3 and {hard_limit} (the model's positions), "
                f"got {tokens}"
            )
        self.model = model
        self.max_tokens = tokens
        get_dim = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise EncoderError("the sentence-transformers model does not report its dimension")
        self.dim = int(dim)
        model.eval()

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                features = tokenize_head_tail(self.model, chunk, self.max_tokens)
                vectors = self.model(features)["sentence_embedding"]
                out[start : start + len(chunk)] = vectors.float().cpu().numpy()
        return out

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()
