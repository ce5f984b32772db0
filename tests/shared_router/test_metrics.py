"""Tests of answer extraction, the quality metrics and ``judge``, on hand-checked examples."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared_router.cli.app import main
from shared_router.data import load_pair
from shared_router.errors import DataError, ModelNotInDataError
from shared_router.pipeline.answer_parsing import (
    extract_choice,
    extract_final_answer,
    extract_number,
    normalise_answer,
    parse_judge_score,
)
from shared_router.pipeline.judge import judge_file
from shared_router.pipeline.quality_base import ScoreItem
from shared_router.pipeline.quality_lexical import MatchMetric, rouge_l_f1
from shared_router.pipeline.quality_llm_judge import LLMJudgeMetric
from shared_router.pipeline.quality_metrics import MetricSpec
from shared_router.pipeline.quality_model_based import BartScoreMetric, EmbeddingMetric
from shared_router.pipeline.settings import EngineSettings

STANDINS = "tests.shared_router.pipeline_standins"
QUIET = EngineSettings(progress=False)


def score(metric: Any, response: str, reference: str | None = None, query: str = "q") -> float:
    (judgement,) = metric.score_batch([ScoreItem(query, response, reference)])
    assert judgement.error is None
    return float(judgement.score)


# --------------------------------------------------------------------------- match


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Let me think. The answer is Paris. It is in France.", "Paris"),
        ("Working...\n#### 1,234", "1,234"),
        ("so $x = \\boxed{\\frac{1}{2}}$ and the answer is 3", "\\frac{1}{2}"),
        ("Final answer: 3.5", "3.5"),
        ("Just Paris", "Just Paris"),
    ],
)
def test_extract_final_answer(text: str, answer: str) -> None:
    assert extract_final_answer(text) == answer


def test_normalise_answer_drops_case_punctuation_and_articles() -> None:
    assert normalise_answer("  The Eiffel-Tower, in PARIS!  ") == "eiffel tower in paris"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("3 apples and 4 pears make 7 fruits", 7.0),
        ("The answer is 42 apples, bought for 5 dollars.", 42.0),
        ("#### 1,234", 1234.0),
        ("It is -3.5 degrees", -3.5),
        ("The answer is 3/4", 0.75),
        ("no digits here", None),
    ],
)
def test_extract_number(text: str, number: float | None) -> None:
    assert extract_number(text) == number


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Looking at the options, the answer is (C).", "C"),
        ("Answer: b", None),  # lower-case letters are words, not choices
        ("B. Because the others are wrong", "B"),
        ("(D) Mercury", "D"),
        ("A good choice would be (B)", "B"),
        ("I think the answer is B, not A", "B"),
        ("A cat sat down", None),
    ],
)
def test_extract_choice(text: str, letter: str | None) -> None:
    assert extract_choice(text) == letter


def test_match_modes_on_hand_checked_examples() -> None:
    exact = MatchMetric("exact")
    assert score(exact, " Paris ", "Paris") == 1.0
    assert score(exact, "paris", "Paris") == 0.0
    normalised = MatchMetric("normalised")
    assert score(normalised, "The answer is the Eiffel Tower.", "eiffel tower") == 1.0
    assert score(normalised, "It is the Eiffel Tower.", "eiffel tower") == 0.0
    contains = MatchMetric("contains")
    assert score(contains, "It is the Eiffel Tower.", "eiffel tower") == 1.0
    assert score(contains, "Eiffel Towers", "eiffel tower") == 0.0
    numeric = MatchMetric("numeric")
    assert score(numeric, "so the total is 1,234.0", "#### 1234") == 1.0
    assert score(numeric, "so the total is 1,235", "1234") == 0.0
    assert score(numeric, "no idea", "1234") == 0.0
    assert score(MatchMetric("choice"), "The answer is (B).", "B") == 1.0
    assert score(MatchMetric("choice"), "The answer is (B).", "(C) Venus") == 0.0
    regex = MatchMetric("regex", pattern=r"ANSWER=(\w+)")
    assert score(regex, "ANSWER=no ... ANSWER=Yes", "yes") == 1.0
    assert score(regex, "ANSWER=no", "yes") == 0.0


def test_match_rejects_bad_arguments() -> None:
    with pytest.raises(DataError, match="match mode must be one of exact, normalised"):
        MatchMetric("fuzzy")
    with pytest.raises(DataError, match="pattern=REGEX with mode=regex"):
        MatchMetric("regex")
    with pytest.raises(DataError, match="not a valid regex"):
        MatchMetric("regex", pattern="(")


# --------------------------------------------------------------------------- rouge / embedding


def test_rouge_l_f1_on_hand_checked_examples() -> None:
    # LCS("the cat on the mat", "the cat sat on the mat") = 5; P = 5/5, R = 5/6, F = 10/11
    assert rouge_l_f1("the cat on the mat", "The cat sat on the mat.") == pytest.approx(10 / 11)
    # LCS("a b c d", "a c e") = 2; P = 2/4, R = 2/3, F = 4/7
    assert rouge_l_f1("a b c d", "a c e") == pytest.approx(4 / 7)
    assert rouge_l_f1("same words", "Same, words!") == 1.0
    assert rouge_l_f1("x y", "z") == 0.0
    assert rouge_l_f1("", "z") == 0.0


def test_embedding_metric_is_the_clipped_cosine_of_the_encoder() -> None:
    from shared_router.encoders.encoder import Encoder

    metric = EmbeddingMetric()
    texts = ("Paris is the capital of France.", "France's capital city is Paris.")
    unrelated = "Photosynthesis converts light into chemical energy."
    assert score(metric, texts[0], texts[0]) == pytest.approx(1.0, abs=1e-6)
    vectors = Encoder("default").encode([texts[0], texts[1]]).astype(np.float64)
    cosine = vectors[0] @ vectors[1] / np.linalg.norm(vectors[0]) / np.linalg.norm(vectors[1])
    assert score(metric, texts[0], texts[1]) == pytest.approx(float(cosine), abs=1e-6)
    assert score(metric, texts[0], texts[1]) > score(metric, unrelated, texts[1]) + 0.3


# --------------------------------------------------------------------------- bartscore


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised BART with a word-level tokenizer, saved offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bart")
    words = [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
        "what",
        "is",
        "capital",
        "of",
        "france",
        "paris",
        "answer",
        "1",
        "2",
        "3",
        "4",
        "5",
        "dog",
        "ran",
    ]
    vocab = {w: i for i, w in enumerate(["<s>", "<pad>", "</s>", "<unk>", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    ).save_pretrained(folder)
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(vocab),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    BartForConditionalGeneration(config).save_pretrained(folder)
    return folder


def test_bartscore_is_exp_of_the_mean_token_log_likelihood(tiny_bart: Path) -> None:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    pairs = [("what is the capital of france", "paris"), ("the cat", "the cat sat on a mat")]
    metric = BartScoreMetric(model=str(tiny_bart), batch_size=2)
    batched = [j.score for j in metric.score_batch([ScoreItem(q, r) for q, r in pairs])]
    tokenizer = AutoTokenizer.from_pretrained(tiny_bart)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_bart).eval()
    for (query, response), got in zip(pairs, batched, strict=True):
        source = tokenizer([query], return_tensors="pt")
        labels = tokenizer([response], return_tensors="pt")["input_ids"]
        with torch.no_grad():  # transformers' loss is the mean token NLL of one example
            loss = model(**source, labels=labels).loss.item()
        assert got == pytest.approx(math.exp(-loss), rel=1e-5)
        assert 0.0 < got <= 1.0
        # padding next to a longer pair in the batch changes nothing
        (alone,) = metric.score_batch([ScoreItem(query, response)])
        assert alone.score == pytest.approx(got, rel=1e-6)


def test_bartscore_against_the_reference_needs_one(tiny_bart: Path) -> None:
    metric = BartScoreMetric(model=str(tiny_bart), source="reference")
    assert metric.needs_reference
    by_query = score(BartScoreMetric(model=str(tiny_bart)), "paris", query="the cat")
    by_reference = score(metric, "paris", reference="the cat", query="unrelated words")
    assert by_reference == pytest.approx(by_query, rel=1e-6)
    with pytest.raises(DataError, match="bartscore: cannot load model"):
        BartScoreMetric(model=str(tiny_bart / "missing")).score_batch([ScoreItem("a", "b")])


def test_judge_cli_with_tiny_bart_end_to_end(tiny_bart: Path, tmp_path: Path) -> None:
    data = write_data(
        tmp_path / "data.jsonl",
        [("what is the capital of france", None, {"s": ["paris", "the dog"], "l": ["paris"]})],
    )
    main(["judge", str(data), "--metric", "bartscore", "--metric-arg", f"model={tiny_bart}",
          "--no-progress"])  # fmt: skip
    (row,) = read_rows(data)
    small, large = row["models"]["s"], row["models"]["l"]
    assert small["metric"] == "bartscore"
    assert len(small["scores"]) == 2 and all(0 < s <= 1 for s in small["scores"])
    assert small["score"] == pytest.approx(sum(small["scores"]) / 2)
    assert large["scores"][0] == pytest.approx(small["scores"][0])  # same query and response


# --------------------------------------------------------------------------- LLM judge


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Reasoning... Score: 7/10", 0.7),
        ("**Score:** 8", 0.8),
        ('{"score": 4, "max": 5}', 0.8),
        ('```json\n{"rating": "3/4"}\n```', 0.75),
        ("I'd give it 6 out of 10.", 0.6),
        ("Score: 4 out of 5", 0.8),
        ("85%", 0.85),
        ("9", 0.9),
        (" 10. ", 1.0),
        ("Score: 11/10", None),
        ("Score: -1", None),
        ("It is quite good.", None),
        ("", None),
    ],
)
def test_parse_judge_score(reply: str, expected: float | None) -> None:
    got = parse_judge_score(reply, 10)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_llm_judge_retries_unreadable_replies_then_records_an_error() -> None:
    metric = LLMJudgeMetric(model=f"{STANDINS}:judge_model", attempts=2)
    try:
        judgements = metric.score_batch(
            [
                ScoreItem("q", "a fine answer", "ref"),
                ScoreItem("q", "json please"),
                ScoreItem("q", "flaky answer"),
                ScoreItem("q", "garbage answer"),
            ]
        )
    finally:
        metric.close()
    assert [j.score for j in judgements] == [0.7, 0.8, 0.9, None]
    assert judgements[3].error == (
        "unreadable judge reply after 2 tries: 'I would rather not say.'"
    )


def test_llm_judge_prompt_shows_the_reference_only_when_there_is_one() -> None:
    metric = LLMJudgeMetric(model=f"{STANDINS}:judge_model", rubric="Be strict.", scale=5)
    with_ref = metric.prompt(ScoreItem("What is 2+2?", "4", "four"))
    assert "Be strict." in with_ref and "Reference answer:\n<<<\nfour\n>>>" in with_ref
    assert 'as "Score: N/5"' in with_ref
    assert "Reference answer" not in metric.prompt(ScoreItem("What is 2+2?", "4"))


# --------------------------------------------------------------------------- callable / spec


def test_callable_metric_scores_and_records_failures() -> None:
    metric = MetricSpec(f"{STANDINS}:length_metric").build()
    judgements = metric.score_batch(
        [
            ScoreItem("q", "short one"),
            ScoreItem("q", "a much longer answer here"),
            ScoreItem("q", "boom"),
            ScoreItem("q", "big"),
        ]  # fmt: skip
    )
    assert [j.score for j in judgements] == [1.0, 0.5, None, None]
    assert judgements[2].error == f"{STANDINS}:length_metric raised ValueError: boom"
    assert judgements[3].error == f"{STANDINS}:length_metric returned 2.0, outside [0, 1]"


def test_metric_spec_rejects_unknown_names_and_arguments() -> None:
    with pytest.raises(DataError, match="use one of bartscore, match, rouge, embedding, judge"):
        MetricSpec("bleu").build()
    with pytest.raises(DataError, match="it takes: mode, pattern, tolerance, letters"):
        MetricSpec("match", {"modes": "exact"}).build()
    with pytest.raises(DataError, match="takes no arguments"):
        MetricSpec(f"{STANDINS}:length_metric", {"x": 1}).build()
    assert MetricSpec("match", {"mode": "numeric"}).identity == '["match", {"mode": "numeric"}]'


# --------------------------------------------------------------------------- judge_file


def write_data(path: Path, rows: list[tuple[str, str | None, dict[str, list[str]]]]) -> Path:
    lines = []
    for i, (query, reference, models) in enumerate(rows):
        row: dict[str, Any] = {"id": f"r{i}", "query": query}
        if reference is not None:
            row["reference"] = reference
        row["models"] = {
            name: {"responses": texts, "response": texts[0] if texts else None}
            for name, texts in models.items()
        }
        lines.append(json.dumps(row) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_judge_fills_scores_in_place_and_the_result_trains(tmp_path: Path) -> None:
    data = write_data(
        tmp_path / "data.jsonl",
        [
            ("What is 2 plus 2?", "4", {"s": ["It is 4", "It is 5"], "l": ["4"]}),
            ("What is 3 plus 3?", "6", {"s": ["6"], "l": ["The answer is 6.", "6.0"]}),
        ],
    )
    summary = judge_file(data, MetricSpec("match", {"mode": "numeric"}), engine=QUIET)
    assert (summary.rows, summary.responses, summary.scored, summary.errors) == (2, 6, 6, 0)
    first, second = read_rows(data)
    assert first["models"]["s"]["scores"] == [1.0, 0.0]
    assert first["models"]["s"]["score"] == 0.5
    assert first["models"]["s"]["metric"] == "match"
    assert second["models"]["l"]["scores"] == [1.0, 1.0]
    pair = load_pair(data, "s", "l")
    assert pair.small_quality.tolist() == [0.5, 1.0]
    assert pair.small_samples[0].tolist() == [1.0, 0.0]
    again = judge_file(data, MetricSpec("match", {"mode": "numeric"}), engine=QUIET)
    assert (again.skipped, again.scored) == (6, 0)
    assert read_rows(data) == [first, second]


def test_judge_to_another_file_leaves_the_input_alone(tmp_path: Path) -> None:
    data = write_data(tmp_path / "d.jsonl", [("q", "the cat sat", {"m": ["the cat"]})])
    before = data.read_text(encoding="utf-8")
    judge_file(data, "rouge", output=tmp_path / "out.jsonl", engine=QUIET)
    assert data.read_text(encoding="utf-8") == before
    # LCS 2; P = 2/2, R = 2/3, F = 0.8
    assert read_rows(tmp_path / "out.jsonl")[0]["models"]["m"]["score"] == pytest.approx(0.8)


def test_unscored_responses_null_the_score_and_are_retried(tmp_path: Path) -> None:
    data = write_data(
        tmp_path / "d.jsonl",
        [("q1", None, {"m": ["ok", "garbage"]}), ("q2", None, {"m": ["fine"]})],
    )
    spec = MetricSpec("judge", {"model": f"{STANDINS}:judge_model", "attempts": 1})
    summary = judge_file(data, spec, engine=QUIET)
    assert (summary.scored, summary.errors) == (2, 1)
    first, second = read_rows(data)
    assert first["models"]["m"]["score"] is None and "scores" not in first["models"]["m"]
    assert first["models"]["m"]["score_errors"] == [
        {"sample": 1, "error": "unreadable judge reply after 1 tries: 'I would rather not say.'"}
    ]
    assert second["models"]["m"]["score"] == pytest.approx(0.7)
    again = judge_file(data, spec, engine=QUIET)
    assert (again.skipped, again.scored, again.errors) == (2, 0, 1)


def test_missing_reference_names_the_metric_the_field_and_the_line(tmp_path: Path) -> None:
    data = write_data(tmp_path / "d.jsonl", [("q1", "a", {"m": ["a"]}), ("q2", None, {"m": ["b"]})])
    with pytest.raises(DataError) as error:
        judge_file(data, "rouge", engine=QUIET)
    assert str(error.value) == (
        f"{data}:2: metric 'rouge' needs a reference answer, but this row has no 'reference' "
        "field; add it or name another field with --reference-field"
    )
    judge_file(data, "embedding", reference_field="query", engine=QUIET)  # any field works


def test_judge_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        judge_file(empty, "match", engine=QUIET)
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"id": 1, "query": "q", "models": {"m": {"score": 1}}}) + "\n")
    with pytest.raises(DataError, match="no model has responses"):
        judge_file(bare, "match", engine=QUIET)
    data = write_data(tmp_path / "d.jsonl", [("q", "a", {"m": ["a"]})])
    with pytest.raises(ModelNotInDataError, match="models there: m"):
        judge_file(data, "match", models=["x"], engine=QUIET)
    with pytest.raises(SystemExit) as done:
        main(["judge", str(data), "--metric", "match", "--metric-arg", "mode", "--no-progress"])
    assert done.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --metric-arg takes key=value, got 'mode'"
