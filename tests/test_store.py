"""The run store: one transaction per outcome, cache keys, and outputs derived without duplicates."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.common.redact import redact
from pipeline.store.runstore import RunStore, cache_key
from schemas import (
    Article,
    AttemptLog,
    ExtractionResult,
    FailureRow,
    IncidentRecord,
    ModelExchange,
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


# -- model exchanges and prompts --

SYSTEM_PROMPT = "You read one news article and name, for each fact, the sentence that states it."


def text_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def exchange(article: Article, attempt: int, reply: str | None, *, chunk: int = 1) -> ModelExchange:
    user_prompt = f"[1] {article.text}"
    return ModelExchange(
        article_id=article.id,
        attempt=attempt,
        chunk=chunk,
        system_hash=text_hash(SYSTEM_PROMPT),
        user_hash=text_hash(user_prompt),
        system_prompt=SYSTEM_PROMPT,
        user_prompt=user_prompt,
        reply=reply,
        finish_reason="stop" if reply is not None else None,
    )


def with_exchanges(result: ExtractionResult, *exchanges: ModelExchange) -> ExtractionResult:
    return result.model_copy(update={"exchanges": list(exchanges)})


def count(store: RunStore, table: str) -> int:
    return int(store.connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_a_store_made_before_exchanges_existed_gains_their_tables_when_opened(tmp_path: Path) -> None:
    with RunStore(tmp_path / "out") as store:
        # A store written before migrations existed: no exchanges, no prompts, no _migrations.
        store.connection.executescript("DROP TABLE exchanges; DROP TABLE prompts; DROP TABLE _migrations;")
    with RunStore(tmp_path / "out") as store:
        tables = {row[0] for row in store.connection.execute("SELECT name FROM sqlite_master")}
        assert {"exchanges", "prompts", "exchanges_by_article"} <= tables


def test_exchanges_and_their_prompts_round_trip_in_attempt_order(store: RunStore) -> None:
    article = make_article("Two agents stopped a van on Main Street.")
    run = store.start_run("run")
    store.register_article(article, run_id=run, seq=1, key="k")
    sent = [exchange(article, 1, "not json at all"), exchange(article, 2, '{"event": "stop"}')]
    # Saved out of order (concurrent chunks may finish so); read back in attempt order.
    store.save_outcome(article, with_exchanges(success(article), sent[1], sent[0]), key="k", run_id=run)

    assert store.exchanges(article.id) == sent
    assert store.prompt_text(text_hash(SYSTEM_PROMPT)) == SYSTEM_PROMPT
    assert store.prompt_text(sent[0].user_hash) == sent[0].user_prompt
    assert store.prompt_text("sha256:unknown") is None
    rows = store.connection.execute("SELECT run_id, cache_key FROM exchanges").fetchall()
    assert [tuple(row) for row in rows] == [(run, "k"), (run, "k")]


def test_a_request_that_got_no_reply_is_kept_with_a_null_reply(store: RunStore) -> None:
    article = make_article("A story whose request timed out.")
    run = store.start_run("run")
    store.register_article(article, run_id=run, seq=1, key="k")
    store.save_outcome(
        article, with_exchanges(failed(article), exchange(article, 1, None)), key="k", run_id=run
    )
    [stored] = store.exchanges(article.id)
    assert stored.reply is None and stored.finish_reason is None


def test_the_system_prompt_shared_by_every_article_is_stored_once(store: RunStore) -> None:
    run = store.start_run("run")
    articles = [make_article("First story."), make_article("Second story.")]
    for seq, article in enumerate(articles, start=1):
        store.register_article(article, run_id=run, seq=seq, key="k")
        result = with_exchanges(success(article), exchange(article, 1, "{}"), exchange(article, 2, "{}"))
        store.save_outcome(article, result, key="k", run_id=run)

    shared = store.connection.execute(
        "SELECT COUNT(*) FROM prompts WHERE hash = ?", (text_hash(SYSTEM_PROMPT),)
    ).fetchone()[0]
    assert shared == 1
    assert count(store, "prompts") == 3  # one system prompt and one user prompt per article
    assert count(store, "exchanges") == 4


def test_secrets_in_model_replies_are_redacted(tmp_path: Path) -> None:
    secret = "hunter2-api-token-XYZ"
    article = make_article("A story whose reply echoes a key.")
    with RunStore(tmp_path / "out", secrets=[secret]) as store:
        run = store.start_run("run")
        store.register_article(article, run_id=run, seq=1, key="k")
        reply = f'{{"note": "my key is {secret}"}}'
        store.save_outcome(
            article, with_exchanges(success(article), exchange(article, 1, reply)), key="k", run_id=run
        )
        [stored] = store.exchanges(article.id)
    assert stored.reply == '{"note": "my key is [redacted]"}'
    for path in (tmp_path / "out").iterdir():
        assert secret.encode() not in path.read_bytes(), path


def test_exchanges_are_part_of_the_outcome_transaction(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    article = make_article("A story whose record cannot be written.")
    run = store.start_run("run")
    store.register_article(article, run_id=run, seq=1, key="k")

    def explode(self: IncidentRecord, **_: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(IncidentRecord, "model_dump_json", explode)
    with pytest.raises(RuntimeError):
        store.save_outcome(
            article, with_exchanges(success(article), exchange(article, 1, "{}")), key="k", run_id=run
        )
    assert (count(store, "exchanges"), count(store, "prompts")) == (0, 0)


def test_a_new_outcome_shows_its_own_exchanges_and_keeps_the_earlier_ones_as_history(
    store: RunStore,
) -> None:
    article = make_article("A story that failed, then worked on retry.")
    run = store.start_run("run")
    store.register_article(article, run_id=run, seq=1, key="k")
    first = [exchange(article, 1, "I cannot help"), exchange(article, 2, "still no")]
    store.save_outcome(article, with_exchanges(failed(article), *first), key="k", run_id=run)
    retry = store.start_run("retry-failed")
    second = [exchange(article, 1, '{"event": "stop"}')]
    store.save_outcome(article, with_exchanges(success(article), *second), key="k", run_id=retry)

    assert store.exchanges(article.id) == second
    assert store.exchanges(article.id, all_runs=True) == first + second
    log = store.exchange_log(article.id)
    assert [(entry.run_id, entry.cache_key) for entry in log] == [(retry, "k")]


def test_a_readopted_cached_outcome_brings_back_its_own_exchanges(store: RunStore) -> None:
    article = make_article("A story extracted by two models in turn.")
    asked_m1 = [exchange(article, 1, '{"model": "m1"}')]
    asked_m2 = [exchange(article, 1, '{"model": "m2"}')]
    run1 = store.start_run("run")
    store.register_article(article, run_id=run1, seq=1, key="k1")
    store.save_outcome(article, with_exchanges(success(article), *asked_m1), key="k1", run_id=run1)
    run2 = store.start_run("run")
    store.register_article(article, run_id=run2, seq=1, key="k2")
    store.save_outcome(article, with_exchanges(success(article), *asked_m2), key="k2", run_id=run2)
    assert store.exchanges(article.id) == asked_m2

    run3 = store.start_run("run")  # back to the first model: a cache hit, no new request
    assert store.register_article(article, run_id=run3, seq=1, key="k1").cached == "record"
    assert store.exchanges(article.id) == asked_m1


def test_each_exchange_is_joined_to_the_attempt_row_of_its_request(store: RunStore) -> None:
    article = make_article("A story that needed a re-ask.")
    run = store.start_run("run")
    store.register_article(article, run_id=run, seq=1, key="k")
    result = failed(article).model_copy(
        update={"exchanges": [exchange(article, 1, "{"), exchange(article, 2, "{")]}
    )
    store.save_outcome(article, result, key="k", run_id=run)
    log = store.exchange_log(article.id)
    assert [(e.attempt_log.kind if e.attempt_log else None) for e in log] == ["ask", "reask"]
    outcome = store.outcome(article.id)
    assert outcome is not None and outcome.status == "failure" and outcome.cache_key == "k"


def test_find_article_resolves_ids_prefixes_paths_and_file_names(store: RunStore) -> None:
    east = make_article("Eastern edition of the story.", "/feeds/east/story.md")
    west = make_article("Western edition of the story.", "/feeds/west/story.md")
    other = make_article("A different story.", "/feeds/east/other.md")
    run = store.start_run("run")
    for seq, article in enumerate((east, west, other), start=1):
        store.register_article(article, run_id=run, seq=seq, key="k")
    digest = east.id.removeprefix("sha256:")

    def found(ref: str) -> list[str]:
        return [article.id for article in store.find_article(ref)]

    assert found(east.id) == [east.id]
    assert found(digest[:12]) == [east.id]
    assert found("sha256:" + digest[:12]) == [east.id]
    assert found(digest[:12].upper()) == [east.id]
    assert found("/feeds/west/story.md") == [west.id]
    assert found("other.md") == [other.id]
    assert found("west/story.md") == [west.id]
    assert sorted(found("story.md")) == sorted([east.id, west.id])  # ambiguous: both returned
    assert found("ory.md") == []  # a file name matches whole path components only
    assert found("no-such-file.md") == []
    assert found("") == []


# -- failures a re-run asks again, and a store that cannot be written --
#
# These use real SQLite limits (``PRAGMA max_page_count``, ``PRAGMA query_only``) on the store's own
# connection: nothing in the store is replaced, SQLite itself refuses the write.


@pytest.mark.parametrize("reason", ["transport", "endpoint"])
def test_a_failure_caused_by_the_endpoint_is_never_a_cached_outcome(store: RunStore, reason: str) -> None:
    down = make_article(f"Story the endpoint never answered ({reason}).")
    bad_reply = make_article(f"Story the model answered badly ({reason}).")
    run1 = store.start_run("run")
    for seq, (article, why) in enumerate(((down, reason), (bad_reply, "validation")), start=1):
        store.register_article(article, run_id=run1, seq=seq, key="k")
        store.save_outcome(article, failed(article, reason=why), key="k", run_id=run1)

    run2 = store.start_run("run")
    assert store.register_article(down, run_id=run2, seq=1, key="k").cached is None  # asked again
    assert store.register_article(bad_reply, run_id=run2, seq=2, key="k").cached == "failure"


def pages(store: RunStore) -> int:
    return int(store.connection.execute("PRAGMA page_count").fetchone()[0])


def test_a_full_disk_is_a_store_error_naming_the_file_and_no_outcome_is_half_written(store: RunStore) -> None:
    from pipeline.store import runstore as store_module

    article = make_article("Story saved onto a full disk.")
    run = store.start_run("run")
    store.register_article(article, run_id=run, seq=1, key="k")
    store.connection.execute(f"PRAGMA max_page_count = {pages(store)}")  # no room for one more page

    big = success(article).model_copy(update={"exchanges": [exchange(article, 1, "x" * 50_000)]})
    with pytest.raises(store_module.StoreError) as raised:
        store.save_outcome(article, big, key="k", run_id=run)
    assert raised.value.path == store.db_path
    assert str(raised.value).startswith(f"cannot write the run store at {store.db_path}: disk full")
    assert "database or disk is full" in str(raised.value)
    assert (count(store, "attempts"), count(store, "exchanges"), count(store, "extractions")) == (0, 0, 0)
    assert store.outcome(article.id) == store_module.ArticleOutcome(status="pending")

    store.connection.execute("PRAGMA max_page_count = 1073741823")  # space freed: the store carries on
    store.save_outcome(article, big, key="k", run_id=run)
    saved = store.outcome(article.id)
    assert saved is not None and saved.status == "record"


def test_a_read_only_database_is_a_store_error_for_every_write(store: RunStore) -> None:
    from pipeline.store import runstore as store_module

    run = store.start_run("run")
    store.connection.execute("PRAGMA query_only = 1")
    for write in (
        lambda: store.start_run("run"),
        lambda: store.finish_run(run, status="finished", counts={}),
        lambda: store.register_article(make_article("Story."), run_id=run, seq=1, key="k"),
    ):
        with pytest.raises(store_module.StoreError, match="read-only"):
            write()


def test_opening_a_store_where_a_file_blocks_the_folder_is_a_store_error(tmp_path: Path) -> None:
    from pipeline.store import runstore as store_module

    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(store_module.StoreError, match="a file stands where a folder should be"):
        RunStore(tmp_path / "out")
    with pytest.raises(store_module.StoreError, match="a part of the path is not a folder"):
        RunStore(tmp_path / "out" / "inner")


def test_storage_failures_are_told_apart_from_one_articles_bad_data(tmp_path: Path) -> None:
    from pipeline.store.runstore import storage_cause

    db = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT NOT NULL)")
    db.execute("INSERT INTO t VALUES ('a', 'x')")

    def error_of(sql: str, *params: object) -> Exception:
        try:
            db.execute(sql, params)
        except Exception as error:  # noqa: BLE001 - the error is what the test looks at
            return error
        raise AssertionError(f"{sql} did not fail")

    # One article's data: not the store's fault.
    assert storage_cause(error_of("INSERT INTO t VALUES ('a', 'y')")) is None  # IntegrityError
    assert storage_cause(error_of("INSERT INTO t VALUES (?, ?)", "b", "\ud83d")) is None  # UnicodeEncodeError
    assert storage_cause(RuntimeError("disk full")) is None  # a word in a message is not a cause
    # The store or the folder: every later write fails too.
    db.execute("PRAGMA query_only = 1")
    assert (storage_cause(error_of("INSERT INTO t VALUES ('c', 'z')")) or "").startswith("read-only")
    assert (storage_cause(OSError(28, "No space left on device")) or "").startswith("disk full")
    assert (storage_cause(OSError(30, "Read-only file system")) or "").startswith("read-only file system")
    db.close()


def test_an_article_sqlite_cannot_store_can_still_be_recorded_as_a_failure(
    store: RunStore, tmp_path: Path
) -> None:
    # A JSON escape can leave a lone surrogate in an outlet name; SQLite cannot encode it.
    article = make_article("Story with a broken outlet name.", "/in/feed.jsonl:2").model_copy(
        update={"outlet": "Mesa \ud83d Courier"}
    )
    run = store.start_run("run")
    with pytest.raises(UnicodeEncodeError):
        store.register_article(article, run_id=run, seq=2, key="k")
    assert count(store, "articles") == 0  # the registration was rolled back whole

    failure = FailureRow(
        article_id=article.id,
        source_path=article.source_path,
        reason="bookkeeping",
        detail="could not be recorded",
        last_error="UnicodeEncodeError: surrogates not allowed",
    )
    store.record_article_failure(article, failure, run_id=run, seq=2, key="k")
    store.write_derived(tmp_path / "out")
    rows = jsonl(tmp_path / "out" / "failures.jsonl")
    assert [(row["article_id"], row["source_path"], row["reason"]) for row in rows] == [
        (article.id, "/in/feed.jsonl:2", "bookkeeping")
    ]
    kept = store.article(article.id)
    assert kept is not None and kept.outlet == "Mesa ? Courier"


def test_run_settings_and_cache_key_parts_are_stored_without_credentials(store: RunStore) -> None:
    store.start_run(
        "run",
        cache_key_parts={"model": "m1", "endpoint": "http://sk-test-9876543210abcd@127.0.0.1:8080/v1"},
        settings={"base_url": "http://127.0.0.1:8080/v1?key=AIzaQueryKey98765", "concurrency": 4},
    )
    stored = json.dumps(store.runs())
    assert "9876543210abcd" not in stored and "AIzaQueryKey98765" not in stored
    assert "127.0.0.1:8080/v1" in stored  # where the run went is kept, its credentials are not
