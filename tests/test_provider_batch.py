"""``triangulate run --batch``: the provider Batch API path, against loopback stubs.

Every test here talks to ``tests/batch_stub.py`` (files, batches and chat completions on
127.0.0.1), and the live comparison to ``tests/fault_server.py``; no test reaches a real provider.
Polls sleep for nothing (an injected sleep), so the batch paths run in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from batch_stub import BatchMode, BatchStub
from fault_server import FaultServer

from pipeline.batch.provider_batch import (
    BatchCaps,
    batch_caps,
    open_client,
    poll_backoff,
    run_provider_batch,
)
from pipeline.batch.runner import Progress, run_batch
from pipeline.extract.batchapi import BatchAPI, PollBackoff, parse_result_file, request_lines
from pipeline.extract.extractor import ExtractionSettings, Extractor
from pipeline.extract.providers import Endpoint
from pipeline.store.runstore import RunStore
from schemas import Article

MODEL = "batch-stub"
API_KEY = "sk-batch-test-secret-0123456789"


@pytest.fixture(autouse=True)
def _no_cap_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own cap overrides must not change how these tests split their batches."""
    monkeypatch.delenv("TRIANGULATE_BATCH_MAX_REQUESTS", raising=False)
    monkeypatch.delenv("TRIANGULATE_BATCH_MAX_BYTES", raising=False)


def story(number: int) -> str:
    return (
        f"Story {number:03d} from the county desk. Officers shot a man outside a store in Chandler "
        f"on Sunday, police said. He was {30 + number} years old. The sheriff said the deputy fired twice."
    )


def articles(count: int, *, texts: dict[int, str] | None = None) -> list[Article]:
    chosen = texts or {}
    return [
        Article.from_text(chosen.get(i, story(i)), source_path=f"in/{i:03d}.txt", outlet="Desk")
        for i in range(count)
    ]


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def endpoint(base_url: str) -> Endpoint:
    return Endpoint(base_url=base_url, model=MODEL, provider="openai-compatible", api_key=API_KEY)


def batch_run(
    stub: BatchStub,
    out: Path,
    items: list[Article],
    *,
    reasks: str = "live",
    settings: ExtractionSettings | None = None,
    lines: list[str] | None = None,
    caps: BatchCaps | None = None,
    api: type[BatchAPI] = BatchAPI,
    retry_failures: bool = False,
) -> tuple[RunStore, Any]:
    """One ``run --batch`` through the driver (its files and batches through an ``api``, default
    the real one); returns the open store and the summary."""
    store = RunStore(out, secrets=[API_KEY])

    async def go() -> Any:
        extractor = Extractor(endpoint(stub.base_url), settings or ExtractionSettings())
        client = api(open_client(endpoint(stub.base_url)))
        run_id = store.start_run("run", model=MODEL, provider="openai-compatible")
        try:
            return await run_provider_batch(
                items,
                extractor,
                store,
                run_id=run_id,
                api=client,
                reasks=reasks,
                progress=Progress(quiet=True),
                sleep=no_sleep,
                say=(lines.append if lines is not None else lambda _: None),
                caps=caps,
                retry_failures=retry_failures,
            )
        finally:
            await extractor.aclose()
            await client.client.close()

    try:
        return store, asyncio.run(go())
    except BaseException:
        store.close()
        raise


def asked_per_batch(stub: BatchStub, store: RunStore) -> list[set[str]]:
    """The articles each batch the stub created asks for, in creation order."""
    return [
        {request.article_id for request in store.batch_requests(batch.data["input_file_id"])}
        for batch in stub.batches.values()
    ]


def live_records(tmp_path: Path, items: list[Article]) -> dict[str, Any]:
    """The records a live run against the fault server gives ``items``, by article id."""
    with FaultServer() as server:
        live_store = RunStore(tmp_path / "live")

        async def live() -> None:
            extractor = Extractor(endpoint(server.base_url))
            await run_batch(items, extractor, live_store)
            await extractor.aclose()

        asyncio.run(live())
    with live_store:
        return {r.article_id: r.model_dump(mode="json") for r in live_store.records()}


def outcomes(store: RunStore) -> dict[str, tuple[str, str | None]]:
    """Article id -> (status, failure reason) for every article the store holds."""
    found: dict[str, tuple[str, str | None]] = {}
    for (article_id,) in store.connection.execute("SELECT id FROM articles"):
        outcome = store.outcome(article_id)
        assert outcome is not None
        found[article_id] = (outcome.status, outcome.failure.reason if outcome.failure else None)
    return found


# -- the protocol pieces --


def test_request_lines_carry_one_custom_id_per_request_and_the_chat_completions_url() -> None:
    data = request_lines([("r1-a1-c1", {"model": "m"}), ("r1-a2-c1", {"model": "m"})])
    rows = [json.loads(line) for line in data.decode().splitlines()]
    assert [row["custom_id"] for row in rows] == ["r1-a1-c1", "r1-a2-c1"]
    assert {row["url"] for row in rows} == {"/v1/chat/completions"}
    assert {row["method"] for row in rows} == {"POST"}


def test_result_file_lines_name_their_error_and_skip_what_is_not_json() -> None:
    text = "\n".join(
        [
            json.dumps({"custom_id": "a", "response": {"status_code": 200, "body": {"choices": []}}}),
            "not json",
            json.dumps(
                {"custom_id": "b", "response": None, "error": {"code": "server_error", "message": "boom"}}
            ),
            json.dumps(
                {"custom_id": "c", "response": {"status_code": 429, "body": {"error": {"message": "slow"}}}}
            ),
        ]
    )
    lines = {line.custom_id: line for line in parse_result_file(text)}
    assert set(lines) == {"a", "b", "c"}
    assert lines["a"].ok and lines["a"].error is None
    assert lines["b"].error == "server_error: boom" and not lines["b"].ok
    assert lines["c"].error == "slow" and not lines["c"].ok


def test_poll_backoff_grows_to_its_cap_and_takes_its_first_delay_from_the_environment() -> None:
    delays = PollBackoff(initial_s=5, max_s=60, factor=2).delays()
    assert [next(delays) for _ in range(6)] == [5, 10, 20, 40, 60, 60]
    assert poll_backoff({}).initial_s == 5.0
    assert poll_backoff({"TRIANGULATE_BATCH_POLL_S": "0.01"}).initial_s == 0.01


def test_batch_bodies_are_the_bodies_a_live_run_sends(tmp_path: Path) -> None:
    """A long article (two chunks) and a short one: the batch file holds exactly what the live
    extractor sent to the loopback fault server, chunk for chunk."""
    items = articles(2, texts={0: " ".join(story(n) for n in range(8))})
    settings = ExtractionSettings(max_article_chars=400)
    with FaultServer() as server:

        async def live() -> None:
            extractor = Extractor(endpoint(server.base_url), settings)
            for article in items:
                await extractor.extract(article)
            await extractor.aclose()

        asyncio.run(live())
        sent = [request.body for request in server.requests]
    with BatchStub() as stub:
        batch_run(stub, tmp_path / "out", items, settings=settings)
        (input_file,) = [data for name, data in stub.files.values() if name.startswith("triangulate-")]
    submitted = [json.loads(line)["body"] for line in input_file.decode().splitlines()]
    assert len(submitted) > len(items)  # the long article was asked in chunks
    assert submitted == sent


# -- the same records as live --


def test_a_batch_run_gives_the_records_a_live_run_gives(tmp_path: Path) -> None:
    """The same articles, live against the fault server and in one batch against the batch stub
    (both answer with the same canned reading and count tokens alike): the same records, provenance
    (requests and tokens) included; records carry no timing fields."""
    items = articles(6)
    expected = live_records(tmp_path, items)
    with BatchStub() as stub:
        store, summary = batch_run(stub, tmp_path / "batch", items)
        assert stub.creations == 1 and stub.live_requests == []
    assert summary.records == 6 and summary.failures == 0
    batch_records = {r.article_id: r.model_dump(mode="json") for r in store.records()}
    assert len(batch_records) == 6
    assert batch_records == expected


def test_tokens_of_each_output_line_are_stored_per_article(tmp_path: Path) -> None:
    items = articles(3)
    with BatchStub() as stub:
        store, summary = batch_run(stub, tmp_path / "out", items)
        output = next(data for name, data in stub.files.values() if name.endswith("_output.jsonl"))
    by_article: dict[str, int] = {}
    for line in parse_result_file(output.decode()):
        requests = store.connection.execute(
            "SELECT article_id FROM batch_requests WHERE custom_id = ?", (line.custom_id,)
        ).fetchone()
        assert line.body is not None
        by_article[requests[0]] = line.body["usage"]["total_tokens"]
    for article in items:
        stored = store.connection.execute(
            "SELECT SUM(total_tokens) FROM attempts WHERE article_id = ?", (article.id,)
        ).fetchone()[0]
        assert stored == by_article[article.id] > 0
    assert summary.usage.total_tokens == sum(by_article.values())


def test_the_store_keeps_the_batch_and_file_ids_and_no_key(tmp_path: Path) -> None:
    items = articles(2)
    with BatchStub(mode=BatchMode(required_api_key=API_KEY, polls_before_done=2)) as stub:
        store, _ = batch_run(stub, tmp_path / "out", items)
        assert stub.unauthorized == 0  # every call carried the key, to the stub only
    (batch,) = store.provider_batches()
    assert batch.batch_id and batch.input_file_id and batch.output_file_id
    assert batch.status == "completed" and batch.finished_at and batch.ingested_at
    assert batch.request_count == 2
    store.close()
    assert API_KEY.encode() not in (tmp_path / "out" / "triangulate.sqlite").read_bytes()


@pytest.mark.slow  # a whole batch round against the stub; .ci/run runs the slow tests
def test_polling_shows_status_and_counts_until_the_batch_ends(tmp_path: Path) -> None:
    lines: list[str] = []
    with BatchStub(mode=BatchMode(polls_before_done=3)) as stub:
        batch_run(stub, tmp_path / "out", articles(2), lines=lines)
        assert stub.polls == 4
    progress = [line for line in lines if line.startswith("batch ")]
    assert progress[0].endswith("in_progress, 0/2 done")
    assert progress[-1].endswith("completed, 2/2 done")
    assert len(progress) == 2  # an unchanged status is not printed again


# -- splitting at the provider's caps --


def test_the_caps_are_openais_unless_the_environment_sets_others() -> None:
    assert batch_caps({}) == BatchCaps(max_requests=50_000, max_bytes=200_000_000)
    lowered = {"TRIANGULATE_BATCH_MAX_REQUESTS": "1000", "TRIANGULATE_BATCH_MAX_BYTES": " 5000000 "}
    assert batch_caps(lowered) == BatchCaps(max_requests=1000, max_bytes=5_000_000)
    for bad in ("0", "ten", "-5", "1e6"):
        with pytest.raises(ValueError, match="TRIANGULATE_BATCH_MAX_BYTES"):
            batch_caps({"TRIANGULATE_BATCH_MAX_BYTES": bad})


def test_a_cap_variable_that_is_not_a_number_stops_the_run_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIANGULATE_BATCH_MAX_REQUESTS", "lots")
    with BatchStub() as stub:
        store, summary = batch_run(stub, tmp_path / "out", articles(2))
        assert stub.uploads == 0 and stub.creations == 0
    assert summary.stopped is not None and "TRIANGULATE_BATCH_MAX_REQUESTS" in summary.stopped


def test_a_round_over_the_request_cap_is_split_into_batches_polled_together(tmp_path: Path) -> None:
    """Five articles, two requests per batch (the stub refuses more): ceil(5/2) = 3 batches, each
    named in its progress lines, all polled before the first one is done, and the records of a
    live run."""
    items = articles(5)
    expected = live_records(tmp_path, items)
    lines: list[str] = []
    with BatchStub(mode=BatchMode(max_requests=2, polls_before_done=3)) as stub:
        store, summary = batch_run(stub, tmp_path / "out", items, caps=BatchCaps(max_requests=2), lines=lines)
        assert stub.creations == 3 and stub.refused == 0
        assert [len(batch.lines) for batch in stub.batches.values()] == [2, 2, 1]
        assert asked_per_batch(stub, store) == [
            {a.id for a in items[:2]},
            {a.id for a in items[2:4]},
            {items[4].id},
        ]
    assert summary.records == 5 and summary.failures == 0
    assert {r.article_id: r.model_dump(mode="json") for r in store.records()} == expected
    progress = [line for line in lines if line.startswith("batch ")]
    assert "batch 2/3 batch-stub0004: in_progress, 0/2 done" in progress
    assert "batch 3/3 batch-stub0006: completed, 1/1 done" in progress
    first_done = progress.index("batch 1/3 batch-stub0002: completed, 2/2 done")
    assert any(line.startswith("batch 3/3 ") for line in progress[:first_done])


def request_sizes(stub: BatchStub) -> dict[int, int]:
    """Bytes of request lines per article number (``r1-a<n>-c<k>``) in the files uploaded to ``stub``."""
    sizes: dict[int, int] = {}
    for name, data in stub.files.values():
        if name.startswith("triangulate-"):
            for line in data.splitlines(keepends=True):
                number = int(json.loads(line)["custom_id"].split("-")[1][1:])
                sizes[number] = sizes.get(number, 0) + len(line)
    return sizes


def test_an_articles_chunks_stay_in_one_batch_and_each_file_stays_under_the_byte_cap(tmp_path: Path) -> None:
    """The byte cap is the long article's own size: it fits alone, never split, and no file
    uploaded is over the cap."""
    items = articles(6, texts={2: " ".join(story(n) for n in range(8))})
    settings = ExtractionSettings(max_article_chars=400)
    with BatchStub() as stub:
        batch_run(stub, tmp_path / "measure", items, settings=settings)
        sizes = request_sizes(stub)
    cap = max(sizes.values())
    assert cap == sizes[3] and cap < sum(sizes.values())  # article 3 (items[2]) is the long one
    with BatchStub(mode=BatchMode(max_bytes=cap)) as stub:
        store, summary = batch_run(
            stub, tmp_path / "out", items, settings=settings, caps=BatchCaps(max_bytes=cap)
        )
        assert stub.refused == 0 and stub.creations >= 2
        uploaded = [data for name, data in stub.files.values() if name.startswith("triangulate-")]
        asked = asked_per_batch(stub, store)
    assert all(len(data) <= cap for data in uploaded)
    for article in items:
        assert sum(article.id in batch for batch in asked) == 1, article.source_path
    chunks = store.connection.execute(
        "SELECT COUNT(*) FROM batch_requests WHERE article_id = ?", (items[2].id,)
    )
    assert chunks.fetchone()[0] > 1
    assert summary.records == 6 and summary.failures == 0


def test_an_article_over_the_byte_cap_fails_as_batch_too_large_and_the_others_go_on(tmp_path: Path) -> None:
    items = articles(4, texts={1: " ".join(story(n) for n in range(8))})
    settings = ExtractionSettings(max_article_chars=400)
    with BatchStub() as stub:
        batch_run(stub, tmp_path / "measure", items, settings=settings)
        sizes = request_sizes(stub)
    cap = 2 * max(sizes[n] for n in (1, 3, 4))
    assert sizes[2] > cap
    with BatchStub(mode=BatchMode(max_bytes=cap)) as stub:
        store, summary = batch_run(
            stub, tmp_path / "out", items, settings=settings, caps=BatchCaps(max_bytes=cap)
        )
        assert stub.refused == 0 and stub.creations == 2
        assert items[1].id not in set().union(*asked_per_batch(stub, store))
    found = outcomes(store)
    assert found[items[1].id] == ("failure", "batch-too-large")
    assert [found[a.id] for a in (items[0], items[2], items[3])] == [("record", None)] * 3
    (failure,) = store.iter_failures()
    assert "TRIANGULATE_BATCH_MAX_BYTES" in failure.detail and "retry-failed" in failure.detail
    assert summary.reason_counts == {"batch-too-large": 1} and summary.articles == 4


def test_an_article_with_more_chunks_than_the_request_cap_fails_as_batch_too_large(tmp_path: Path) -> None:
    items = articles(3, texts={0: " ".join(story(n) for n in range(8))})
    with BatchStub(mode=BatchMode(max_requests=1)) as stub:
        store, summary = batch_run(
            stub,
            tmp_path / "out",
            items,
            settings=ExtractionSettings(max_article_chars=400),
            caps=BatchCaps(max_requests=1),
        )
        assert stub.refused == 0 and stub.creations == 2
    found = outcomes(store)
    assert found[items[0].id] == ("failure", "batch-too-large")
    assert [found[a.id] for a in items[1:]] == [("record", None)] * 2
    assert "TRIANGULATE_BATCH_MAX_REQUESTS" in next(iter(store.iter_failures())).detail


def test_one_expired_batch_of_a_round_fails_only_its_own_articles(tmp_path: Path) -> None:
    """Batch 1 expires (the stub answered its first half), batch 2 completes: the failure rows are
    batch 1's unanswered articles, and nothing of batch 2."""
    items = articles(4)
    mode = BatchMode(outcome_by_batch=("expired", "complete"), max_requests=2)
    with BatchStub(mode=mode) as stub:
        store, summary = batch_run(stub, tmp_path / "out", items, caps=BatchCaps(max_requests=2))
        expired, complete = asked_per_batch(stub, store)
    found = outcomes(store)
    assert expired == {items[0].id, items[1].id} and complete == {items[2].id, items[3].id}
    assert [found[a.id] for a in items] == [("record", None), ("failure", "batch-expired")] + [
        ("record", None)
    ] * 2
    assert summary.reason_counts == {"batch-expired": 1}


class Killed(Exception):
    """Stands in for a kill -9: raised out of the driver, nothing after it runs."""


class KilledBeforeTheSecondUpload(BatchAPI):
    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.uploads = 0

    async def upload(self, data: bytes, filename: str) -> str:
        self.uploads += 1
        if self.uploads == 2:
            raise Killed
        return await super().upload(data, filename)


def test_a_kill_between_two_batches_polls_the_created_one_and_builds_the_rest_again(tmp_path: Path) -> None:
    """Killed after batch 1 was created and before batch 2 was uploaded: the same command polls
    batch 1 (no second creation of it) and packs the three articles left into new batches; every
    article is asked exactly once and has its record."""
    items = articles(5)
    caps = BatchCaps(max_requests=2)
    with BatchStub(mode=BatchMode(max_requests=2)) as stub:
        with pytest.raises(Killed):
            batch_run(stub, tmp_path / "out", items, caps=caps, api=KilledBeforeTheSecondUpload)
        assert (stub.uploads, stub.creations) == (1, 1)
        lines: list[str] = []
        store, summary = batch_run(stub, tmp_path / "out", items, caps=caps, lines=lines)
        assert (stub.uploads, stub.creations, stub.refused) == (3, 3, 0)
        input_files = [batch.data["input_file_id"] for batch in stub.batches.values()]
        asked = asked_per_batch(stub, store)
    assert len(set(input_files)) == 3  # no input file made into two batches
    assert "resuming batch batch-stub0002" in lines
    assert asked[0] == {items[0].id, items[1].id}
    assert sorted(a for batch in asked for a in batch) == sorted(a.id for a in items)
    assert summary.records == 5 and set(outcomes(store).values()) == {("record", None)}


# -- batches that do not complete --


@pytest.mark.slow  # a whole batch round against the stub; .ci/run runs the slow tests
def test_an_expired_batch_fails_the_unanswered_articles_as_batch_expired(tmp_path: Path) -> None:
    items = articles(4)
    with BatchStub(mode=BatchMode(outcome="expired")) as stub:
        store, summary = batch_run(stub, tmp_path / "out", items)
    found = outcomes(store)
    assert sorted(found.values()) == [("failure", "batch-expired")] * 2 + [("record", None)] * 2
    assert summary.reason_counts == {"batch-expired": 2}


@pytest.mark.slow  # a whole batch round against the stub; .ci/run runs the slow tests
def test_a_failed_batch_fails_every_article_as_batch_failed_with_the_providers_reason(tmp_path: Path) -> None:
    items = articles(3)
    with BatchStub(mode=BatchMode(outcome="failed")) as stub:
        store, summary = batch_run(stub, tmp_path / "out", items)
    assert set(outcomes(store).values()) == {("failure", "batch-failed")}
    failure = next(iter(store.iter_failures()))
    assert failure.last_error is not None and "could not be run" in failure.last_error
    assert summary.records == 0 and summary.failures == 3


@pytest.mark.slow  # a whole batch round against the stub; .ci/run runs the slow tests
def test_lines_in_the_error_file_fail_their_articles_with_the_message_redacted(tmp_path: Path) -> None:
    """The stub quotes the Authorization header in each error line; the failure row must not."""
    items = articles(4)
    mode = BatchMode(outcome="partial", error_every=2, echo_authorization_in_errors=True)
    with BatchStub(mode=mode) as stub:
        store, _ = batch_run(stub, tmp_path / "out", items)
        error_file = next(data for name, data in stub.files.values() if name.endswith("_error.jsonl"))
    assert API_KEY.encode() in error_file  # the stub did leak it
    assert sorted(outcomes(store).values()) == [("failure", "batch-error")] * 2 + [("record", None)] * 2
    for failure in store.iter_failures():
        assert failure.last_error is not None and "The model server failed this request" in failure.last_error
        assert API_KEY not in failure.last_error
    store.close()
    assert API_KEY.encode() not in (tmp_path / "out" / "triangulate.sqlite").read_bytes()


def test_every_article_ends_as_exactly_one_record_or_failure(tmp_path: Path) -> None:
    items = articles(5) + [Article.from_text("   ", source_path="in/empty.txt")]
    with BatchStub(mode=BatchMode(outcome="expired")) as stub:
        store, _ = batch_run(stub, tmp_path / "out", items)
    found = outcomes(store)
    assert set(found) == {article.id for article in items}
    assert all(status in ("record", "failure") for status, _ in found.values())
    assert found[items[-1].id] == ("failure", "empty")
    assert store.outcome_counts().get("pending", 0) == 0


# -- re-asks --


def test_replies_that_fail_validation_are_asked_again_live_by_default(tmp_path: Path) -> None:
    items = articles(3)
    with BatchStub(mode=BatchMode(invalid_marker="Story 001")) as stub:
        store, summary = batch_run(stub, tmp_path / "out", items)
        assert stub.creations == 1
        assert len(stub.live_requests) == 1
        assert "Story 001" in json.dumps(stub.live_requests[0])
    assert set(outcomes(store).values()) == {("record", None)}
    kinds = [
        row[0]
        for row in store.connection.execute(
            "SELECT kind FROM attempts WHERE article_id = ? ORDER BY attempt", (items[1].id,)
        )
    ]
    assert kinds == ["ask", "ask"]  # the batch reply, then the live ask: both cost tokens
    assert summary.requests == 4


@pytest.mark.slow  # a whole batch round against the stub; .ci/run runs the slow tests
def test_replies_that_fail_validation_go_to_one_second_batch_when_asked(tmp_path: Path) -> None:
    """The stub answers the marked article badly in every batch: after the second batch it fails
    as a validation failure, and nothing is asked live."""
    items = articles(3)
    with BatchStub(mode=BatchMode(invalid_marker="Story 002")) as stub:
        store, _ = batch_run(stub, tmp_path / "out", items, reasks="batch")
        assert stub.creations == 2 and stub.live_requests == []
    found = outcomes(store)
    assert found[items[2].id] == ("failure", "validation")
    assert [found[a.id] for a in items[:2]] == [("record", None)] * 2
    rounds = [b.round for b in store.provider_batches()]
    assert rounds == [1, 2]
    assert store.batch_requests(store.provider_batches()[1].input_file_id)[0].article_id == items[2].id


# -- resume --


def submit_and_stop(stub: BatchStub, out: Path, items: list[Article]) -> None:
    """A run cancelled once the stub has created its batch (which stays in progress)."""
    stub.mode = BatchMode(polls_before_done=10**6)

    async def first() -> None:
        store = RunStore(out, secrets=[API_KEY])
        extractor = Extractor(endpoint(stub.base_url))
        run_id = store.start_run("run", model=MODEL)
        task = asyncio.create_task(
            run_provider_batch(items, extractor, store, run_id=run_id, sleep=no_sleep, say=lambda _: None)
        )
        while not stub.creations:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await extractor.aclose()
        store.close()

    asyncio.run(first())
    stub.mode = BatchMode()


def test_a_run_stopped_after_the_upload_finds_its_batch_instead_of_creating_one(tmp_path: Path) -> None:
    """The store holds an uploaded file whose batch id was never recorded (killed right after
    create): the next run finds the batch by its input file and creates none."""
    items = articles(2)
    with BatchStub() as stub:
        submit_and_stop(stub, tmp_path / "out", items)
        with RunStore(tmp_path / "out") as store:
            # Forget the batch id, as if the kill came between create and the store's write.
            store.connection.execute("UPDATE provider_batches SET batch_id = NULL, status = 'uploaded'")
        store, summary = batch_run(stub, tmp_path / "out", items)
        assert stub.creations == 1
    assert summary.records == 2
    (batch,) = store.provider_batches()
    assert batch.batch_id == "batch-stub0002"


def test_a_retry_of_failed_articles_leaves_the_open_batch_of_the_runs_pending_articles_open(
    tmp_path: Path,
) -> None:
    """``retry-failed --batch`` reads only the failed articles: a batch that answers none of them
    may be what a stopped run's pending articles wait for, so it is neither polled nor closed, and
    the next run resumes it without a second submission."""
    items = articles(2)
    with BatchStub() as stub:
        submit_and_stop(stub, tmp_path / "out", items)
        polls = stub.batches["batch-stub0002"].polls
        store, _ = batch_run(stub, tmp_path / "out", [], retry_failures=True)
        (batch,) = store.provider_batches()
        assert batch.ingested_at is None and stub.batches["batch-stub0002"].polls == polls
        store.close()
        store, summary = batch_run(stub, tmp_path / "out", items)
        assert stub.creations == 1
    assert summary.records == 2


@pytest.mark.slow  # a whole batch round against the stub; .ci/run runs the slow tests
def test_a_resumed_run_with_other_settings_does_not_take_the_old_batch_replies(tmp_path: Path) -> None:
    """Changing max_tokens changes the cache key: the open batch answers requests that this run
    would not send, so its articles go into a new batch and the old one is closed unread."""
    items = articles(2)
    with BatchStub() as stub:
        submit_and_stop(stub, tmp_path / "out", items)
        polls_of_old = stub.batches["batch-stub0002"].polls
        store, summary = batch_run(stub, tmp_path / "out", items, settings=ExtractionSettings(max_tokens=512))
        assert stub.creations == 2
        assert stub.batches["batch-stub0002"].polls == polls_of_old  # not even polled again
    assert summary.records == 2
    old, new = store.provider_batches()
    assert old.ingested_at is not None and old.status != "completed"
    assert new.status == "completed"
    bodies = [json.loads(line)["body"] for line in stub.files[new.input_file_id][1].decode().splitlines()]
    assert {body["max_tokens"] for body in bodies} == {512}


def _stats(base_url: str) -> dict[str, Any]:
    root = base_url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/stub/stats", timeout=5) as reply:
        data: dict[str, Any] = json.loads(reply.read())
    return data


@pytest.mark.slow
def test_kill_9_between_submit_and_ingest_resumes_without_a_second_submission(tmp_path: Path) -> None:
    """``triangulate run --batch`` in a subprocess against the batch stub in its own process: killed
    once the store records the batch (still in progress), then run again; the stub saw one
    batch creation, and every article has its record."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i:03d}.txt").write_text(story(i), encoding="utf-8")
    stub_script = Path(__file__).with_name("batch_stub.py")
    stub = subprocess.Popen(
        [sys.executable, str(stub_script), "--polls-before-done", "1000000", "--required-api-key", API_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stub.stdout is not None
        base_url = stub.stdout.readline().strip()
        env = {
            **os.environ,
            "OPENAI_BASE_URL": base_url,
            "OPENAI_API_KEY": API_KEY,
            "TRIANGULATE_BATCH_POLL_S": "0.05",
        }
        command = [sys.executable, "-m", "pipeline", "run", str(folder), "--out", str(out)]
        command += ["--model", MODEL, "--batch", "--no-reconcile"]
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        db_path = out / "triangulate.sqlite"
        deadline = time.monotonic() + 120
        while True:
            if first.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {first.communicate()}")
            if time.monotonic() > deadline:
                first.kill()
                pytest.fail("the batch was never recorded")
            if db_path.exists() and _recorded_batch(db_path) and _stats(base_url)["polls"] >= 2:
                break
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert _stats(base_url)["creations"] == 1
        request = urllib.request.Request(base_url.removesuffix("/v1") + "/stub/release", method="POST")
        urllib.request.urlopen(request, timeout=5).close()
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert "resuming batch batch-stub0002" in again.stderr
        stats = _stats(base_url)
        assert stats["creations"] == 1 and stats["uploads"] == 1 and stats["unauthorized"] == 0
        records = (out / "records.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(records) == 5
        assert API_KEY not in again.stderr and API_KEY.encode() not in db_path.read_bytes()
    finally:
        stub.kill()
        stub.wait()


def _recorded_batch(db_path: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT batch_id FROM provider_batches").fetchone()
    except sqlite3.OperationalError:
        return False
    return row is not None and row[0] is not None


# -- refusals and the command --


@pytest.mark.slow  # a whole batch round against the stub; .ci/run runs the slow tests
def test_a_refused_key_stops_the_run_with_every_article_pending_and_the_key_redacted(tmp_path: Path) -> None:
    """The stub wants another key: the upload is refused (401); nothing is marked failed, so the
    same command resumes once the key is fixed."""
    items = articles(2)
    with BatchStub(mode=BatchMode(required_api_key="sk-the-right-one-000000")) as stub:
        store, summary = batch_run(stub, tmp_path / "out", items)
        assert stub.creations == 0 and stub.unauthorized >= 1
    assert summary.stopped is not None and "AuthenticationError" in summary.stopped
    assert API_KEY not in summary.stopped
    assert set(outcomes(store).values()) == {("pending", None)}
    assert store.provider_batches() == []


def test_triangulate_run_batch_writes_the_records_and_notes_batch_in_the_run_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.batch.runner import EXIT_OK, run
    from schemas.options import RunOptions

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i:03d}.txt").write_text(story(i), encoding="utf-8")
    with BatchStub(mode=BatchMode(polls_before_done=1)) as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setenv("TRIANGULATE_BATCH_POLL_S", "0")
        options = RunOptions(out=out, paths=(folder,), model=MODEL, batch=True, reconcile=False)
        assert run(options) == EXIT_OK
        assert stub.creations == 1 and stub.live_requests == []
    err = capsys.readouterr().err
    assert "submitted batch batch-stub0002: 3 requests for 3 articles" in err
    assert "completed, 3/3 done" in err
    assert len((out / "records.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    with RunStore(out) as store:
        settings = json.loads(store.runs()[-1]["settings"])
    assert settings["batch"] is True and settings["batch_reasks"] == "live"


def test_retry_failed_batch_asks_the_expired_articles_again_in_a_new_batch_and_replaces_their_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run --batch`` whose batch expires leaves batch-expired failure rows; ``retry-failed
    --batch`` asks exactly those articles in a second batch (nothing live), and then every article
    has its record: the two runs' records add up to the inputs and no failure row is left."""
    from pipeline.batch.runner import EXIT_OK, EXIT_PARTIAL, retry_failed, run
    from schemas.options import RunOptions

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i:03d}.txt").write_text(story(i), encoding="utf-8")
    with BatchStub(mode=BatchMode(outcome_by_batch=("expired",))) as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        monkeypatch.setenv("TRIANGULATE_BATCH_POLL_S", "0")
        first = RunOptions(out=out, paths=(folder,), model=MODEL, batch=True, reconcile=False, quiet=True)
        assert run(first) == EXIT_PARTIAL
        with RunStore(out) as store:
            failed = {row.article_id: row.reason for row in store.iter_failures()}
            recorded = {record.article_id for record in store.records()}
        assert set(failed.values()) == {"batch-expired"} and len(failed) == 2 and len(recorded) == 2

        again = RunOptions(out=out, model=MODEL, batch=True, reconcile=False, quiet=True)
        assert retry_failed(again) == EXIT_OK
        assert stub.creations == 2 and stub.live_requests == []
        with RunStore(out) as store:
            (retried,) = asked_per_batch(stub, store)[1:]
    assert retried == set(failed)  # only the failed articles, none of the records
    with RunStore(out) as store:
        assert store.outcome_counts() == {"record": 4, "failure": 0, "pending": 0, "input_failure": 0}
        assert list(store.iter_failures()) == []
        assert {record.article_id for record in store.records()} == recorded | set(failed)
        (_, retry_run) = store.runs()
        assert retry_run["kind"] == "retry-failed" and json.loads(retry_run["settings"])["batch"] is True
        assert [batch.run_id for batch in store.provider_batches()][1] == retry_run["run_id"]
    assert len((out / "records.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    assert (out / "failures.jsonl").read_text(encoding="utf-8").strip() == ""


def test_retry_failed_takes_batch_and_batch_reasks_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.batch import runner
    from pipeline.cli.main import main
    from schemas.options import RunOptions

    started: list[RunOptions] = []

    def start(options: RunOptions) -> int:
        started.append(options)
        return 0

    monkeypatch.setattr(runner, "retry_failed", start)
    assert main(["retry-failed", "o", "--batch", "--batch-reasks", "batch"]) == 0
    assert main(["retry-failed", "o"]) == 0
    assert [(o.command, o.batch, o.batch_reasks) for o in started] == [
        ("retry-failed", True, "batch"),
        ("retry-failed", False, "live"),
    ]


def test_batch_reasks_accepts_only_live_or_batch() -> None:
    from schemas.options import RunOptions

    assert RunOptions(out=Path("x"), batch=True, batch_reasks="batch").problems() == []
    assert RunOptions(out=Path("x"), batch_reasks="later").problems() == [
        "batch_reasks must be 'live' or 'batch'"
    ]
