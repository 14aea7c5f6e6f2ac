"""The run store: one transaction per outcome, cache keys, and outputs derived without duplicates."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.store import RunStore, cache_key, redact
from schemas import (
    Article,
    AttemptLog,
    ExtractionResult,
    FailureRow,
    IncidentRecord,
    Provenance,
    Usage,
)

PARTS = {"model": "m1", "prompt_hash": "p1", "temperature": "0.0", "max_tokens": "2048"}


def make_article(text: str, path: str | None = None) -> Article:
    return Article.from_text(text, source_path=path or f"/in/{text[:8]}.txt", outlet="Mesa Courier")


def success(article: Article, *, tokens: int = 10, model: str = "m1") -> ExtractionResult:
    usage = Usage(prompt_tokens=tokens, completion_tokens=1, total_tokens=tokens + 1)
    record = IncidentRecord(
        article_id=article.id,
        source_path=article.source_path,
        provenance=Provenance(article_id=article.id, model=model, usage=usage, attempts=1),
    )
    attempts = [AttemptLog(article_id=article.id, attempt=1, kind="ask", model=model, usage=usage)]
    return ExtractionResult(article_id=article.id, record=record, attempts=attempts, usage=usage)


def failed(
    article: Article, reason: str = "validation", error: str = "ValidationError: bad"
) -> ExtractionResult:
    attempts = [
        AttemptLog(article_id=article.id, attempt=1, kind="ask", error=error),
        AttemptLog(article_id=article.id, attempt=2, kind="reask", error=error),
    ]
    failure = FailureRow(
        article_id=article.id,
        source_path=article.source_path,
        reason=reason,
        detail="the reply never matched the schema",
        attempts=2,
        last_error=error,
    )
    return ExtractionResult(article_id=article.id, failure=failure, attempts=attempts)


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore(tmp_path / "out") as opened:
        yield opened


def test_store_is_one_sqlite_file_in_wal_mode_in_the_output_dir(tmp_path: Path) -> None:
    with RunStore(tmp_path / "out"):
        pass
    db = sqlite3.connect(tmp_path / "out" / "triangulate.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"articles", "article_sources", "attempts", "extractions", "failures", "runs"} <= tables


def test_cache_key_covers_the_text_and_every_setting_that_changes_the_answer() -> None:
    base = cache_key("sha256:a", PARTS)
    assert base == cache_key("sha256:a", dict(reversed(list(PARTS.items()))))  # order does not matter
    assert cache_key("sha256:b", PARTS) != base
    for name in PARTS:
        assert cache_key("sha256:a", {**PARTS, name: PARTS[name] + "x"}) != base, name


def test_reading_the_same_text_twice_in_a_run_registers_one_article_with_both_paths(store: RunStore) -> None:
    run = store.start_run("run")
    first = make_article("Same story.", "/in/a.txt")
    second = make_article("Same story.", "/in/copy/a.txt")
    assert store.register_article(first, run_id=run, seq=1, key="k").first_in_run
    assert not store.register_article(second, run_id=run, seq=2, key="k").first_in_run
    assert store.source_paths(first.id) == ["/in/a.txt", "/in/copy/a.txt"]
    assert store.connection.execute("SELECT COUNT(*) FROM articles").fetchone()[0] == 1


def test_a_saved_record_is_a_cache_hit_for_the_same_key_only(store: RunStore, tmp_path: Path) -> None:
    article = make_article("Story one.")
    key = cache_key(article.id, PARTS)
    run1 = store.start_run("run")
    assert store.register_article(article, run_id=run1, seq=1, key=key).cached is None
    store.save_outcome(article, success(article), key=key, run_id=run1)

    run2 = store.start_run("run")
    assert store.register_article(article, run_id=run2, seq=1, key=key).cached == "record"
    run3 = store.start_run("run")
    other_key = cache_key(article.id, {**PARTS, "model": "m2"})
    assert store.register_article(article, run_id=run3, seq=1, key=other_key).cached is None
    run4 = store.start_run("run")
    assert store.register_article(article, run_id=run4, seq=1, key=None).cached is None  # --refresh


def test_a_failure_is_a_cached_outcome_unless_retrying_failures(store: RunStore) -> None:
    article = make_article("Story that fails.")
    run1 = store.start_run("run")
    store.register_article(article, run_id=run1, seq=1, key="k")
    store.save_outcome(article, failed(article), key="k", run_id=run1)
    run2 = store.start_run("run")
    assert store.register_article(article, run_id=run2, seq=1, key="k").cached == "failure"
    assert store.reuse_cached(article.id, "k", allow_cached_failure=False) is None


def test_each_outcome_is_one_transaction_rolled_back_whole_on_error(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    article = make_article("Story interrupted mid-write.")
    run = store.start_run("run")
    store.register_article(article, run_id=run, seq=1, key="k")

    def explode(self: IncidentRecord, **_: object) -> str:
        raise RuntimeError("disk full")

    # The attempts rows are written first; the record fails to serialise after them.
    monkeypatch.setattr(IncidentRecord, "model_dump_json", explode)
    with pytest.raises(RuntimeError):
        store.save_outcome(article, success(article), key="k", run_id=run)
    db = store.connection
    assert db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM extractions").fetchone()[0] == 0
    assert db.execute("SELECT status FROM articles").fetchone()[0] == "pending"


def test_success_supersedes_an_earlier_failure_of_the_same_article(store: RunStore, tmp_path: Path) -> None:
    article = make_article("Story that fails then works.")
    run1 = store.start_run("run")
    store.register_article(article, run_id=run1, seq=1, key="k")
    store.save_outcome(article, failed(article), key="k", run_id=run1)
    store.write_derived(tmp_path / "out")
    assert [row["article_id"] for row in jsonl(tmp_path / "out" / "failures.jsonl")] == [article.id]

    retry = store.start_run("retry-failed")
    store.save_outcome(article, success(article), key="k", run_id=retry)
    counts = store.write_derived(tmp_path / "out")
    assert (counts.records, counts.failures) == (1, 0)
    assert (tmp_path / "out" / "failures.jsonl").read_text() == ""
    assert store.connection.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0
    # Both attempts of the failure and the attempt of the success stay in the log.
    assert store.connection.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 3


def test_derived_outputs_follow_input_order_and_hold_each_article_once(
    store: RunStore, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    articles = [make_article(f"Story number {i}.") for i in range(5)]
    run = store.start_run("run")
    for seq, article in enumerate(articles, start=1):
        store.register_article(article, run_id=run, seq=seq, key="k")
    store.register_article(make_article("Story number 2.", "/in/dup.txt"), run_id=run, seq=6, key="k")
    store.record_input_failure(
        FailureRow(article_id=None, source_path="/in/bad.txt", reason="binary", detail="NUL byte"),
        run_id=run,
        seq=7,
    )
    # Outcomes arrive out of order, as concurrent workers finish them.
    for index in (3, 0, 4, 1):
        store.save_outcome(articles[index], success(articles[index]), key="k", run_id=run)
    store.save_outcome(articles[2], failed(articles[2]), key="k", run_id=run)

    for _ in range(2):  # rewriting never appends
        counts = store.write_derived(out)
    assert (counts.records, counts.failures) == (4, 2)
    assert [row["article_id"] for row in jsonl(out / "records.jsonl")] == [
        articles[i].id for i in (0, 1, 3, 4)
    ]
    failures = jsonl(out / "failures.jsonl")
    assert [(row["article_id"], row["reason"]) for row in failures] == [
        (articles[2].id, "validation"),
        (None, "binary"),
    ]
    leftovers = {p.name for p in out.iterdir()} - {"failures.jsonl", "records.jsonl"}
    assert all(name.startswith("triangulate.sqlite") for name in leftovers), leftovers  # no temp files


def test_outputs_describe_the_latest_runs_inputs_and_outcomes(store: RunStore, tmp_path: Path) -> None:
    kept, dropped = make_article("Story kept."), make_article("Story dropped from the inputs.")
    run1 = store.start_run("run")
    for seq, article in enumerate((kept, dropped), start=1):
        store.register_article(article, run_id=run1, seq=seq, key="k1")
        store.save_outcome(article, success(article), key="k1", run_id=run1)

    # A second run with another model reads only one article, and it fails there.
    run2 = store.start_run("run")
    store.register_article(kept, run_id=run2, seq=1, key="k2")
    store.save_outcome(kept, failed(kept), key="k2", run_id=run2)
    counts = store.write_derived(tmp_path / "out")
    assert (counts.records, counts.failures) == (0, 1)  # the old model's record is not this run's outcome
    assert store.connection.execute("SELECT COUNT(*) FROM extractions").fetchone()[0] == 2  # still cached


def test_a_path_that_reads_fine_again_clears_its_input_failure(store: RunStore, tmp_path: Path) -> None:
    run1 = store.start_run("run")
    store.record_input_failure(
        FailureRow(article_id=None, source_path="/in/a.txt", reason="decode", detail="not UTF-8"),
        run_id=run1,
        seq=1,
    )
    run2 = store.start_run("run")
    store.register_article(make_article("Fixed story.", "/in/a.txt"), run_id=run2, seq=1, key="k")
    assert store.connection.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0


def test_runs_left_running_by_a_killed_process_are_marked_killed(store: RunStore) -> None:
    first = store.start_run("run", model="m1", settings={"db": "postgresql://me:hunter22@db.example/x"})
    second = store.start_run("run", model="m1")
    store.finish_run(second, status="finished", counts={"records": 0})
    statuses = {run["run_id"]: run["status"] for run in store.runs()}
    assert statuses == {first: "killed", second: "finished"}
    assert "hunter22" not in json.dumps(store.runs())
    assert store.latest_input_run() == second


def test_secrets_in_error_texts_never_reach_the_store(tmp_path: Path) -> None:
    secret = "sk-test-0123456789abcdef"
    article = make_article("Story with a leaky error.")
    with RunStore(tmp_path / "out", secrets=[secret]) as store:
        run = store.start_run("run")
        store.register_article(article, run_id=run, seq=1, key="k")
        leaky = f"InternalServerError: upstream said Authorization: Bearer {secret}"
        store.save_outcome(article, failed(article, reason="transport", error=leaky), key="k", run_id=run)
        store.write_derived(tmp_path / "out")
    for path in (tmp_path / "out").iterdir():
        assert secret.encode() not in path.read_bytes(), path
    with RunStore(tmp_path / "out") as store:
        errors = [row[0] for row in store.connection.execute("SELECT error FROM attempts")]
    assert errors and all("[redacted]" in error for error in errors)


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("key sk-proj-abcdefghijklmnop rejected", "sk-proj-abcdefghijklmnop"),
        ("Authorization: Bearer abc.def-ghijklmnop", "abc.def-ghijklmnop"),
        ("postgresql://user:s3cret-pass@db:5432/x", "s3cret-pass"),
        ('{"api_key": "AIzaSyExampleKey123"}', "AIzaSyExampleKey123"),
    ],
)
def test_redact_removes_credential_shaped_strings(text: str, leaked: str) -> None:
    cleaned = redact(text)
    assert cleaned is not None and leaked not in cleaned and "[redacted]" in cleaned
