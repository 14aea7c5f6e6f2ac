"""Replayed real exchanges with the embedded default model, one cassette per example article.

In replay (the default, ``--record-mode=none``) the extractor points at a dead
loopback URL and vcrpy answers from ``cassettes/extract/``; requests are
matched on method, path and body, so any change to the prompt, schema,
settings or article text makes replay fail instead of returning a stale
answer. Re-record with ``--record-mode=rewrite`` (see docs/cassettes.md),
which starts the embedded model.

Two kinds of checks: what the pipeline guarantees about any output (a record
with provenance and located evidence, or an explained failure), and what was
recorded. When recording, each article's outcome (every value with its
evidence status and sentence) is written to ``cassettes/extract/outcomes.json``
from the run itself; replay must reproduce it exactly, so a change that turns a
recorded record into a failure, or changes one of its values, fails a test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CASSETTES_DIR, example_article_paths
from pydantic import BaseModel

from pipeline.batch.runner import decoding_settings
from pipeline.extract.extractor import ExtractionSettings, Extractor
from pipeline.extract.providers import EMBEDDED, Endpoint, open_endpoint
from schemas import Article, Cited, ExtractionResult, GroundingStatus, IncidentRecord, Statement

ENDPOINT_FILE = CASSETTES_DIR / "extract" / "endpoint.json"
OUTCOMES_FILE = CASSETTES_DIR / "extract" / "outcomes.json"
# Nothing listens on the discard port; in replay mode vcrpy answers before any connection.
DEAD_URL = "http://127.0.0.1:9/v1"
# Failure reasons a recorded (transport-fault-free) run can legitimately produce.
MODEL_FAILURE_REASONS = {"validation", "request"}

ARTICLE_NAMES = [path.name for path in example_article_paths()]


@pytest.fixture(scope="module")
def recorded_endpoint(record_mode: str) -> Iterator[Endpoint]:
    """A live embedded model when recording; otherwise the recorded endpoint's identity at a dead URL."""
    if record_mode == "none":
        if not ENDPOINT_FILE.is_file():
            pytest.skip(f"no cassettes recorded yet ({ENDPOINT_FILE}); see docs/cassettes.md")
        saved = json.loads(ENDPOINT_FILE.read_text(encoding="utf-8"))
        yield Endpoint(
            base_url=DEAD_URL,
            model=saved["model"],
            provider=saved["provider"],
            context_tokens=saved["context_tokens"],
            extra_body=saved["extra_body"],
            recommended=saved["recommended"],
        )
        return
    with open_endpoint(model=None, gguf=None, concurrency=1, env={}) as endpoint:
        ENDPOINT_FILE.parent.mkdir(parents=True, exist_ok=True)
        ENDPOINT_FILE.write_text(
            json.dumps(
                {
                    "model": endpoint.model,
                    "provider": endpoint.provider,
                    "context_tokens": endpoint.context_tokens,
                    "extra_body": dict(endpoint.extra_body),
                    "recommended": dict(endpoint.recommended),
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        yield endpoint


def cassette_settings(endpoint: Endpoint) -> ExtractionSettings:
    """The settings the CLI uses for this model (its recommended re-asks and max tokens), except:
    no transport retries (a request missing from the cassette fails at once instead of backing
    off five times) and a long timeout (recording on a busy machine). Neither changes a request
    body, so replay still matches what was recorded."""
    return ExtractionSettings(max_transport_retries=0, timeout_s=1200.0, **decoding_settings(endpoint))


def extract_one(endpoint: Endpoint, article: Article) -> tuple[ExtractionResult, Extractor]:
    extractor = Extractor(endpoint, cassette_settings(endpoint))

    async def go() -> ExtractionResult:
        try:
            return await extractor.extract(article)
        finally:
            await extractor.aclose()

    return asyncio.run(go()), extractor


def cited_values(record: IncidentRecord) -> Iterator[tuple[str, Cited[Any] | Statement]]:
    def walk(node: Any, path: str) -> Iterator[tuple[str, Cited[Any] | Statement]]:
        if isinstance(node, Cited | Statement):
            yield path, node
        elif isinstance(node, list):
            for index, item in enumerate(node):
                yield from walk(item, f"{path}[{index}]")
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                yield from walk(getattr(node, name), f"{path}.{name}" if path else name)

    for name in type(record).model_fields:
        if name != "provenance":
            yield from walk(getattr(record, name), name)


def check_result(result: ExtractionResult, article: Article, extractor: Extractor) -> None:
    attempts = result.attempts
    assert attempts, "every outcome records the requests it took"
    assert attempts[0].kind == "ask"
    assert all(entry.kind == "reask" for entry in attempts[1:]), "no transport faults in a recording"
    assert len(attempts) <= extractor.settings.max_reasks + 1
    assert all(entry.article_id == article.id for entry in attempts)
    assert all(entry.usage.prompt_tokens > 0 and entry.usage.completion_tokens > 0 for entry in attempts)
    assert result.usage.total_tokens == sum(entry.usage.total_tokens for entry in attempts)

    if result.record is None:
        failure = result.failure
        assert failure is not None
        assert failure.reason in MODEL_FAILURE_REASONS
        assert failure.attempts == len(attempts)
        assert failure.usage == result.usage
        assert failure.detail
        return

    record = IncidentRecord.model_validate_json(result.record.model_dump_json())
    assert record == result.record, "the record survives a JSON round trip"
    assert record.article_id == article.id
    provenance = record.provenance
    assert provenance.article_id == article.id
    assert provenance.source_path == article.source_path
    assert provenance.outlet == article.outlet and provenance.url == article.url
    assert provenance.published == article.published
    assert provenance.model == extractor.endpoint.model
    assert provenance.provider == EMBEDDED
    assert provenance.prompt_hash == extractor.prompt_hash
    assert provenance.attempts == len(attempts)
    assert provenance.usage == result.usage
    assert provenance.chunks == 1

    for path, cited in cited_values(record):
        if isinstance(cited, Cited) and cited.value is None:
            continue
        grounding = cited.grounding
        assert grounding is not None, f"{path} has no grounding"
        if grounding.status == GroundingStatus.unfound:
            assert grounding.start is None and grounding.end is None
            continue
        assert grounding.start is not None and grounding.end is not None
        assert 0 <= grounding.start < grounding.end <= len(article.text), path
        # Evidence is always the article's own text: the sentence (or the quotation) it sits in.
        assert article.text[grounding.start : grounding.end] == cited.quote, path
        assert grounding.sentence is not None, f"{path}: evidence names its sentence"
        if grounding.value_start is not None and grounding.value_end is not None:
            assert grounding.start <= grounding.value_start < grounding.value_end <= grounding.end, path
    assert provenance.plan is not None and provenance.plan.endswith(extractor.plan.name)
    assert [e.attempt for e in result.exchanges] == [a.attempt for a in attempts], "every request is kept"
    assert all(e.reply for e in result.exchanges), "every recorded request has its raw reply"


def outcome_of(result: ExtractionResult) -> dict[str, Any]:
    """What a recording produced, in a form that is compared exactly on replay."""
    if result.record is None:
        assert result.failure is not None
        return {"failure": result.failure.reason, "detail": result.failure.detail}
    values: dict[str, Any] = {}
    for path, cited in cited_values(result.record):
        grounding = cited.grounding
        shown = cited.quote if isinstance(cited, Statement) else cited.value
        values[path] = {
            "value": shown,
            "status": None if grounding is None else str(grounding.status),
            "sentence": None if grounding is None else grounding.sentence,
            "supported": None if grounding is None else grounding.supported,
            "speaker": cited.speaker_id if isinstance(cited, Statement) else cited.speaker,
        }
    return {"record": values}


def _outcomes() -> dict[str, Any]:
    if not OUTCOMES_FILE.is_file():
        return {}
    data: dict[str, Any] = json.loads(OUTCOMES_FILE.read_text(encoding="utf-8"))
    return data


@pytest.mark.vcr
@pytest.mark.parametrize("name", ARTICLE_NAMES)
def test_recorded_extraction_yields_a_checked_record_or_an_explained_failure(
    name: str,
    recorded_endpoint: Endpoint,
    example_articles: dict[str, Article],
    vcr: Any,
    record_mode: str,
) -> None:
    article = example_articles[name]
    result, extractor = extract_one(recorded_endpoint, article)
    if record_mode == "none" and result.failure is not None and result.failure.reason == "transport":
        pytest.fail(
            "a request did not match the cassette (prompt, schema, settings or article changed?); "
            "re-record as docs/cassettes.md says"
        )
    check_result(result, article, extractor)
    if record_mode == "none":
        assert vcr.play_count == len(result.attempts), "each request was answered from the cassette"
        assert vcr.all_played, "the cassette holds no exchange this run did not make"
        recorded = _outcomes().get(name)
        assert recorded is not None, f"no recorded outcome for {name} in {OUTCOMES_FILE.name}; re-record"
        assert outcome_of(result) == recorded, "replay must reproduce the recorded outcome exactly"
    else:
        outcomes = _outcomes()
        outcomes[name] = outcome_of(result)
        OUTCOMES_FILE.write_text(json.dumps(outcomes, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def test_the_recordings_cover_every_example_article() -> None:
    if not ENDPOINT_FILE.is_file():
        pytest.skip("no cassettes recorded yet")
    recorded = {path.stem for path in ENDPOINT_FILE.parent.glob("*.yaml")}
    for name in ARTICLE_NAMES:
        expected = f"test_recorded_extraction_yields_a_checked_record_or_an_explained_failure[{name}]"
        assert expected in recorded, f"no cassette for {name}"


@pytest.mark.live
def test_live_embedded_model_extracts_an_example_article_end_to_end(
    example_articles: dict[str, Article],
) -> None:
    """Runs the default embedded model for real (tens of seconds on 2 cores)."""
    article = example_articles[ARTICLE_NAMES[0]]
    with open_endpoint(model=None, gguf=None, concurrency=1, env={}) as endpoint:
        result, extractor = extract_one(endpoint, article)
    check_result(result, article, extractor)
    assert result.record is not None, "the default model fills a record for the first example article"


def test_replay_reproduces_a_record_for_every_example_article() -> None:
    """The recorded default model filled a record, not a failure, for each example article."""
    outcomes = _outcomes()
    if not outcomes:
        pytest.skip("no cassettes recorded yet")
    assert sorted(outcomes) == sorted(ARTICLE_NAMES)
    failed = [name for name, outcome in outcomes.items() if "record" not in outcome]
    assert failed == [], f"recorded failures: {failed}"


def test_cassettes_hold_no_credentials() -> None:
    folder = CASSETTES_DIR / "extract"
    if not folder.is_dir():
        pytest.skip("no cassettes recorded yet")
    for cassette in folder.glob("*.yaml"):
        text = cassette.read_text(encoding="utf-8").lower()
        assert "authorization" not in text, cassette.name
        assert "bearer" not in text, cassette.name
