"""Replayed real exchanges with the embedded default model, one cassette per example article.

In replay (the default, ``--record-mode=none``) the extractor points at a dead
loopback URL and vcrpy answers from ``cassettes/extract/``; requests are
matched on method, path and body, so any change to the prompt, schema,
settings or article text makes replay fail instead of returning a stale
answer. Re-record with ``--record-mode=rewrite`` (see docs/cassettes.md),
which starts the embedded model.

The model is tiny and mostly wrong, so these tests check what the pipeline
guarantees about its output, never the values the model chose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CASSETTES_DIR, example_article_paths
from pydantic import BaseModel

from pipeline.extract import ExtractionSettings, Extractor
from pipeline.providers import EMBEDDED, EmbeddedServer, Endpoint, default_embedded_model
from schemas import Article, Cited, ExtractionResult, GroundingStatus, IncidentRecord, Statement

ENDPOINT_FILE = CASSETTES_DIR / "extract" / "endpoint.json"
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
        )
        return
    gguf = default_embedded_model()
    with EmbeddedServer(gguf, concurrency=1) as endpoint:
        ENDPOINT_FILE.parent.mkdir(parents=True, exist_ok=True)
        ENDPOINT_FILE.write_text(
            json.dumps(
                {
                    "model": endpoint.model,
                    "provider": endpoint.provider,
                    "context_tokens": endpoint.context_tokens,
                    "extra_body": dict(endpoint.extra_body),
                    "gguf": gguf.name,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        yield endpoint


# Default settings, except: no transport retries (a request missing from the cassette fails at
# once instead of backing off five times) and a long timeout (recording on a busy machine).
# Neither changes a request body, so replay still matches what was recorded.
CASSETTE_SETTINGS = ExtractionSettings(max_transport_retries=0, timeout_s=1200.0)


def extract_one(endpoint: Endpoint, article: Article) -> tuple[ExtractionResult, Extractor]:
    extractor = Extractor(endpoint, CASSETTE_SETTINGS)

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
        if grounding.status == GroundingStatus.exact:
            assert article.text[grounding.start : grounding.end] == cited.quote, path


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
    """Runs the default embedded model for real (tens of seconds to minutes on 2 cores)."""
    article = example_articles[ARTICLE_NAMES[0]]
    with EmbeddedServer(default_embedded_model(), concurrency=1) as endpoint:
        result, extractor = extract_one(endpoint, article)
    check_result(result, article, extractor)


def test_cassettes_hold_no_credentials() -> None:
    folder = CASSETTES_DIR / "extract"
    if not folder.is_dir():
        pytest.skip("no cassettes recorded yet")
    for cassette in folder.glob("*.yaml"):
        text = cassette.read_text(encoding="utf-8").lower()
        assert "authorization" not in text, cassette.name
        assert "bearer" not in text, cassette.name
