"""`triangulate show DIR ARTICLE`: what the model was asked, what it answered, what the pipeline kept.

Each test builds a real run store by hand (articles, records with grounded
cited values, the model exchanges behind them) and reads it back through the
command line, as a reviewer auditing one article would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.store.runstore import RunStore
from schemas import (
    Article,
    AttemptLog,
    Cited,
    ExtractionResult,
    FailureRow,
    Grounding,
    GroundingStatus,
    IncidentRecord,
    ModelExchange,
    Provenance,
    Statement,
    Subject,
    When,
)

SYSTEM_PROMPT = "You read one numbered news article. For every fact, give the value and its sentence number."

LEDGER_TEXT = (
    "Two county deputies stopped a pickup on Ridge Road on Tuesday evening. "
    "The driver, Marisol Vance, 41, was taken to a hospital with a broken wrist. "
    '"Our deputies followed policy at every step," Sheriff Owen Pike said.'
)
LEDGER_SENTENCES = [
    "Two county deputies stopped a pickup on Ridge Road on Tuesday evening.",
    "The driver, Marisol Vance, 41, was taken to a hospital with a broken wrist.",
    '"Our deputies followed policy at every step," Sheriff Owen Pike said.',
]
# The first request's reply is cut off; the re-ask gets JSON back.
TRUNCATED_REPLY = '{"date": "2026-03-10", "date_sent'
JSON_REPLY = (
    '{"date": "2026-03-10", "date_sentence": 1, "subject_name": "Marisol Vance", "subject_sentence": 3}'
)
LONG_QUOTE = "The driver, Marisol Vance, 41, " + "was taken to a hospital with a broken wrist " * 6

GAZETTE_TEXT = "A crowd gathered outside the courthouse on Monday. Nobody was hurt."
REFUSAL = "I'm sorry, I can't help with that."


def text_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def numbered(sentences: list[str]) -> str:
    return "\n".join(f"[{number}] {sentence}" for number, sentence in enumerate(sentences, start=1))


def exchange(article: Article, attempt: int, reply: str | None, user_prompt: str) -> ModelExchange:
    return ModelExchange(
        article_id=article.id,
        attempt=attempt,
        system_hash=text_hash(SYSTEM_PROMPT),
        user_hash=text_hash(user_prompt),
        system_prompt=SYSTEM_PROMPT,
        user_prompt=user_prompt,
        reply=reply,
        finish_reason="length" if reply == TRUNCATED_REPLY else "stop",
    )


def ledger_result(article: Article) -> ExtractionResult:
    """A record with one supported and one unsupported value and a statement, from a re-asked request."""
    record = IncidentRecord(
        article_id=article.id,
        source_path=article.source_path,
        provenance=Provenance(article_id=article.id, model="m1", attempts=2),
        when=When(
            date=Cited[str](
                value="2026-03-10",
                quote=LEDGER_SENTENCES[0],
                attribution="outlet",
                grounding=Grounding(
                    status=GroundingStatus.sentence_match, start=0, end=70, sentence=1, supported=True
                ),
            )
        ),
        subjects=[
            Subject(
                name=Cited[str](
                    value="Marisol Vance",
                    quote=LONG_QUOTE,
                    attribution="outlet",
                    grounding=Grounding(status=GroundingStatus.model_cited, sentence=3, supported=False),
                )
            )
        ],
        statements=[
            Statement(
                speaker="Owen Pike",
                affiliation="Sheriff",
                quote="Our deputies followed policy at every step",
                grounding=Grounding(status=GroundingStatus.exact, sentence=3, supported=True),
            )
        ],
    )
    user_prompt = numbered(LEDGER_SENTENCES)
    return ExtractionResult(
        article_id=article.id,
        record=record,
        attempts=[
            AttemptLog(article_id=article.id, attempt=1, kind="ask", model="m1"),
            AttemptLog(article_id=article.id, attempt=2, kind="reask", model="m1"),
        ],
        exchanges=[
            exchange(article, 1, TRUNCATED_REPLY, user_prompt),
            exchange(article, 2, JSON_REPLY, user_prompt),
        ],
    )


def gazette_result(article: Article) -> ExtractionResult:
    """A failure: the model refused, twice."""
    user_prompt = numbered(["A crowd gathered outside the courthouse on Monday.", "Nobody was hurt."])
    return ExtractionResult(
        article_id=article.id,
        failure=FailureRow(
            article_id=article.id,
            source_path=article.source_path,
            reason="validation",
            detail="the reply was not JSON after 2 attempts",
            attempts=2,
            last_error="JSONDecodeError: Expecting value",
        ),
        attempts=[
            AttemptLog(
                article_id=article.id, attempt=1, kind="ask", error="JSONDecodeError: Expecting value"
            ),
            AttemptLog(
                article_id=article.id, attempt=2, kind="reask", error="JSONDecodeError: Expecting value"
            ),
        ],
        exchanges=[exchange(article, 1, REFUSAL, user_prompt), exchange(article, 2, REFUSAL, user_prompt)],
    )


@dataclass(frozen=True)
class Run:
    dir: Path
    ledger: Article
    gazette: Article


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    ledger = Article.from_text(
        LEDGER_TEXT,
        source_path="/feeds/east/01-ridge-ledger.md",
        outlet="Ridge Ledger",
        url="https://ledger.example/ridge-road",
        published=date(2026, 3, 11),
    )
    gazette = Article.from_text(GAZETTE_TEXT, source_path="/feeds/west/02-gazette.md", outlet="Gazette")
    run_dir = tmp_path / "runs" / "ridge"
    with RunStore(run_dir) as store:
        run_id = store.start_run("run")
        for seq, (article, result) in enumerate(
            [(ledger, ledger_result(ledger)), (gazette, gazette_result(gazette))], start=1
        ):
            store.register_article(article, run_id=run_id, seq=seq, key="k1")
            store.save_outcome(article, result, key="k1", run_id=run_id)
    yield Run(dir=run_dir, ledger=ledger, gazette=gazette)


def show(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["show", *(str(arg) for arg in args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def line_starting(text: str, prefix: str) -> str:
    [line] = [line for line in text.splitlines() if line.strip().startswith(prefix)]
    return line


def test_show_prints_the_article_the_numbered_prompt_and_the_raw_replies(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = show(capsys, run.dir, "01-ridge-ledger.md")
    assert code == 0
    for expected in (run.ledger.id, "/feeds/east/01-ridge-ledger.md", "Ridge Ledger", "2026-03-11"):
        assert expected in out
    assert "https://ledger.example/ridge-road" in out
    # The user prompt in full: every numbered sentence the model saw. The re-ask sent the same
    # prompt, so it is named by hash rather than printed twice.
    for number, sentence in enumerate(LEDGER_SENTENCES, start=1):
        assert out.count(f"    [{number}] {sentence}\n") == 1
    assert f"user prompt {text_hash(numbered(LEDGER_SENTENCES))} (as in request 1)" in out
    # A reply that is not JSON comes out verbatim; a JSON reply is indented, one key per line.
    assert TRUNCATED_REPLY in out
    assert "finish_reason length" in out
    assert '"subject_name": "Marisol Vance",' in out
    assert JSON_REPLY not in out
    # Requests are labelled with their kind from the attempt log.
    assert "attempt 1, chunk 1, ask" in out and "attempt 2, chunk 1, reask" in out


def test_the_system_prompt_is_named_by_hash_and_printed_only_with_prompt(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = show(capsys, run.dir, "01-ridge-ledger.md")
    assert text_hash(SYSTEM_PROMPT) in out
    assert SYSTEM_PROMPT not in out
    _, out, _ = show(capsys, run.dir, "01-ridge-ledger.md", "--prompt")
    assert out.count(SYSTEM_PROMPT) == 1
    assert f"system prompt {text_hash(SYSTEM_PROMPT)} (as in request 1)" in out


def test_each_cited_value_is_one_line_with_its_grounding(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = show(capsys, run.dir, "01-ridge-ledger.md")
    date_line = line_starting(out, "when.date ")
    for expected in ('"2026-03-10"', "sentence-match", "s1", "supported", LEDGER_SENTENCES[0]):
        assert expected in date_line
    name_line = line_starting(out, "subjects[0].name ")
    for expected in ('"Marisol Vance"', "model-cited", "s3", "unsupported"):
        assert expected in name_line
    # A long evidence quote is cut to about 160 characters on its line.
    assert LONG_QUOTE.strip() not in name_line
    assert "…" in name_line and len(name_line) < 160 + 120
    statement_line = line_starting(out, "statements[0] ")
    for expected in ("Owen Pike (Sheriff)", "exact", "s3", "Our deputies followed policy"):
        assert expected in statement_line


def test_json_output_holds_the_same_content(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = show(capsys, run.dir, "01-ridge-ledger.md", "--json")
    assert code == 0
    view = json.loads(out)
    assert {"article", "exchanges", "record", "failure"} <= set(view)
    assert view["article"]["id"] == run.ledger.id
    assert view["article"]["source_paths"] == ["/feeds/east/01-ridge-ledger.md"]
    assert [e["reply"] for e in view["exchanges"]] == [TRUNCATED_REPLY, JSON_REPLY]
    assert [e["kind"] for e in view["exchanges"]] == ["ask", "reask"]
    assert view["exchanges"][0]["user_prompt"] == numbered(LEDGER_SENTENCES)
    assert view["exchanges"][0]["system_prompt"] is None  # only with --prompt
    assert view["record"]["when"]["date"]["value"] == "2026-03-10"
    assert view["failure"] is None
    by_path = {row["path"]: row for row in view["values"]}
    assert by_path["subjects[0].name"]["supported"] is False
    assert by_path["subjects[0].name"]["quote"] == LONG_QUOTE  # whole in JSON


def test_a_failed_article_shows_its_failure_and_the_replies_that_caused_it(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = show(capsys, run.dir, "02-gazette.md")
    assert code == 0
    assert "Failure: validation" in out
    assert "the reply was not JSON after 2 attempts" in out
    assert "JSONDecodeError: Expecting value" in out
    assert out.count(REFUSAL) == 2
    assert "[1] A crowd gathered outside the courthouse on Monday." in out
    view = json.loads(show(capsys, run.dir, "02-gazette.md", "--json")[1])
    assert view["record"] is None and view["failure"]["reason"] == "validation"
    assert len(view["exchanges"]) == 2


@pytest.mark.parametrize(
    "ref",
    [
        "full-id",
        "hex-prefix",
        "sha256-prefix",
        "/feeds/west/02-gazette.md",
        "west/02-gazette.md",
        "02-gazette.md",
    ],
)
def test_an_article_is_found_by_id_prefix_path_or_file_name(
    run: Run, capsys: pytest.CaptureFixture[str], ref: str
) -> None:
    digest = run.gazette.id.removeprefix("sha256:")
    ref = {
        "full-id": run.gazette.id,
        "hex-prefix": digest[:10],
        "sha256-prefix": f"sha256:{digest[:10]}",
    }.get(ref, ref)
    code, out, _ = show(capsys, run.dir, ref)
    assert code == 0
    assert out.startswith(f"Article {run.gazette.id}\n")


def test_an_unknown_article_exits_2_with_a_hint(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = show(capsys, run.dir, "03-missing.md")
    assert code == 2 and out == ""
    assert (
        err.strip()
        == f"error: no article matches '03-missing.md' in {run.dir}; try an id prefix or a file name"
    )


def test_an_ambiguous_reference_exits_2_and_lists_the_candidates(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    twin = Article.from_text(
        "Another paper's account of the Ridge Road stop.", source_path="/feeds/west/01-ridge-ledger.md"
    )
    with RunStore(run.dir) as store:
        store.register_article(twin, run_id=store.start_run("run"), seq=1, key="k1")
    code, out, err = show(capsys, run.dir, "01-ridge-ledger.md")
    assert code == 2 and out == ""
    assert "'01-ridge-ledger.md' is ambiguous" in err
    assert f"{run.ledger.id}  /feeds/east/01-ridge-ledger.md" in err
    assert f"{twin.id}  /feeds/west/01-ridge-ledger.md" in err
    assert show(capsys, run.dir, "east/01-ridge-ledger.md")[0] == 0  # more of the path settles it


def test_a_folder_without_a_run_store_exits_2_and_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    code, out, err = show(capsys, empty, "01-ridge-ledger.md")
    assert code == 2 and out == ""
    assert err.startswith(f"error: no run store in {empty}")
    assert list(empty.iterdir()) == []  # showing never creates a store


def test_all_runs_adds_the_exchanges_of_earlier_outcomes(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    retried = ExtractionResult(
        article_id=run.gazette.id,
        failure=FailureRow(
            article_id=run.gazette.id, reason="transport", detail="server closed the connection"
        ),
        exchanges=[exchange(run.gazette, 1, None, "[1] A crowd gathered outside the courthouse on Monday.")],
    )
    with RunStore(run.dir) as store:
        store.save_outcome(run.gazette, retried, key="k1", run_id=store.start_run("retry-failed"))
    _, out, _ = show(capsys, run.dir, "02-gazette.md")
    assert "Failure: transport" in out
    assert "reply: none came back" in out and REFUSAL not in out
    _, out, _ = show(capsys, run.dir, "02-gazette.md", "--all-runs")
    assert out.count(REFUSAL) == 2 and "reply: none came back" in out
