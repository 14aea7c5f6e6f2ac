"""The request layer at its edges: a deadline per HTTP attempt, replies that are not chat
completions, error texts that name their cause and the endpoint, and the endpoint in the cache key.

Each test names what it talks to:

* "(mock transport)": an ``httpx2.MockTransport`` scripted in-process (``ScriptedServer`` and the
  other helpers of ``tests/test_extract.py``);
* "(loopback fault server)": HTTP to ``tests/fault_server.py`` on 127.0.0.1;
* "(closed port)": a loopback port nothing listens on (``fault_server.closed_port``);
* "(no transport)": a function called directly.

Waits between transport retries go through a sleep that records instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
import openai
import pytest
from fault_server import HTML_PAGE, FaultMix, FaultServer, closed_port
from test_extract import (
    SECRET,
    RecordedSleep,
    ScriptedServer,
    good_reading,
    make_article,
    make_endpoint,
    make_extractor,
    ok,
)

from pipeline.common.redact import REDACTED
from pipeline.extract.extractor import ExtractionSettings, Extractor, describe_error
from pipeline.extract.providers import EMBEDDED, Endpoint
from schemas import ExtractionResult

STUB_URL = make_endpoint().base_url


def loopback_extractor(base_url: str, settings: ExtractionSettings, sleep: RecordedSleep) -> Extractor:
    endpoint = Endpoint(base_url=base_url, model="fault-stub", provider="openai-compatible", api_key=SECRET)
    return Extractor(endpoint, settings, sleep=sleep)


def run_within(seconds: float, extractor: Extractor, *articles: Any) -> list[ExtractionResult]:
    """``run``, but a result that takes longer than ``seconds`` fails the test instead of hanging it."""

    async def go() -> list[ExtractionResult]:
        try:
            return [await extractor.extract(article) for article in articles]
        finally:
            await extractor.aclose()

    async def guarded() -> list[ExtractionResult]:
        return await asyncio.wait_for(go(), seconds)

    try:
        return asyncio.run(guarded())
    except TimeoutError:
        pytest.fail(f"no result within {seconds} s: a request was not cut off at its timeout")


# --- every HTTP attempt has a wall-clock deadline ----------------------------------------------

TIMEOUT_S = 1.0
MARGIN_S = 1.0
TRICKLE = FaultMix(trickle=1.0, trickle_interval_s=0.2)
"""One byte every 0.2 s: every read is well inside a 1 s per-read timeout."""


@pytest.mark.slow  # seconds of real waiting; .ci/run runs the slow tests
def test_a_server_trickling_one_byte_at_a_time_is_cut_off_at_the_timeout_as_a_transport_timeout() -> None:
    """(loopback fault server) httpx's timeout bounds each read, not the request; the extractor's
    deadline bounds the whole attempt, and hitting it is a transport timeout: retried, then a
    "transport" failure saying no complete reply came."""
    settings = ExtractionSettings(timeout_s=TIMEOUT_S, max_transport_retries=1)
    sleep = RecordedSleep()
    with FaultServer(TRICKLE) as server:
        extractor = loopback_extractor(server.base_url, settings, sleep)
        started = time.monotonic()
        (result,) = run_within(10, extractor, make_article())
        elapsed = time.monotonic() - started
        outcomes = [log.outcome for log in server.requests]

    assert outcomes == ["trickle", "trickle"]
    assert elapsed < 2 * (TIMEOUT_S + MARGIN_S)
    assert [entry.kind for entry in result.attempts] == ["ask", "transport-retry"]
    for entry in result.attempts:
        assert TIMEOUT_S * 0.9 <= entry.latency_s < TIMEOUT_S + MARGIN_S
        assert entry.error == f"ReplyTimeout: no complete reply within 1 s at {server.base_url}"
    assert len(sleep.waits) == 1, "backed off once between the attempts, like any transport retry"
    failure = result.failure
    assert failure is not None and failure.reason == "transport"
    assert failure.last_error == f"ReplyTimeout: no complete reply within 1 s at {server.base_url}"


def test_an_attempt_cut_off_at_the_deadline_is_retried_and_the_retry_can_succeed() -> None:
    """(loopback fault server) The first answer trickles, the second is proper."""
    mix = FaultMix(trickle=1.0, trickle_interval_s=0.2, max_faults_per_article=1)
    settings = ExtractionSettings(timeout_s=TIMEOUT_S, max_transport_retries=2)
    with FaultServer(mix) as server:
        (result,) = run_within(
            10, loopback_extractor(server.base_url, settings, RecordedSleep()), make_article()
        )
        outcomes = [log.outcome for log in server.requests]

    assert outcomes == ["trickle", "ok"]
    assert result.record is not None
    assert [entry.kind for entry in result.attempts] == ["ask", "transport-retry"]
    assert (result.attempts[0].error or "").startswith("ReplyTimeout: no complete reply within 1 s")
    assert result.attempts[1].error is None


def test_the_deadline_holds_whatever_the_transport_and_names_the_seconds() -> None:
    """(mock transport) A handler that never answers: each attempt ends at ``timeout_s``."""

    async def never_answers(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(60)
        raise AssertionError("unreachable")

    server = ScriptedServer(never_answers)  # type: ignore[arg-type]
    settings = ExtractionSettings(timeout_s=0.2, max_transport_retries=2)
    (result,) = run_within(10, make_extractor(server, settings), make_article())

    assert len(server.requests) == 3
    assert result.failure is not None and result.failure.reason == "transport"
    assert result.failure.detail == "gave up after 2 transport retries"
    assert result.failure.last_error == f"ReplyTimeout: no complete reply within 0.2 s at {STUB_URL}"


# --- a reply that is not a chat completion ------------------------------------------------------


def test_an_html_page_instead_of_a_completion_is_an_endpoint_failure_asked_once() -> None:
    """(loopback fault server) A 200 text/html page (a proxy's sign-in page) is not the model's
    answer: no re-ask, no transport retry, and the failure says what came back."""
    settings = ExtractionSettings(max_reasks=2, max_transport_retries=3)
    sleep = RecordedSleep()
    with FaultServer(FaultMix(html_page=1.0)) as server:
        (result,) = run_within(10, loopback_extractor(server.base_url, settings, sleep), make_article())
        outcomes = [log.outcome for log in server.requests]

    assert outcomes == ["html_page"]
    assert sleep.waits == []
    failure = result.failure
    assert failure is not None and failure.reason == "endpoint"
    assert failure.detail.startswith(
        "endpoint returned HTML, not a chat completion (content-type text/html; charset=utf-8; "
        "first bytes: '<!DOCTYPE html> <html><head><title>Sign in - Corporate Web Proxy</title>"
    )
    assert len(failure.detail) < len(HTML_PAGE) + 100, "a snippet of the page, not all of it"
    assert failure.last_error == f"EndpointReplyError: {failure.detail} at {server.base_url}"
    assert "No choices" not in result.model_dump_json()
    assert [entry.kind for entry in result.attempts] == ["ask"]
    assert [exchange.reply for exchange in result.exchanges] == [None]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            httpx2.Response(
                200,
                content=b'{"error": {"message": "model is still loading"}}',
                headers={"content-type": "application/json"},
            ),
            "endpoint returned JSON without choices, not a chat completion (content-type application/json; "
            'first bytes: \'{"error": {"message": "model is still loading"}}\')',
        ),
        (
            httpx2.Response(200, json={**json.loads(ok(good_reading()).content), "choices": []}),
            "endpoint returned JSON without choices",
        ),
        (
            httpx2.Response(200, content=b"upstream gone", headers={"content-type": "application/json"}),
            "endpoint returned text, not a chat completion (content-type application/json; "
            "first bytes: 'upstream gone')",
        ),
        (
            httpx2.Response(200, content=b""),
            "endpoint returned an empty body, not a chat completion (content-type none; first bytes: '')",
        ),
    ],
    ids=["json-error-object", "empty-choices", "not-json-labelled-json", "empty-body"],
)
def test_other_replies_that_are_not_chat_completions_are_endpoint_failures_without_re_asks(
    reply: httpx2.Response, expected: str
) -> None:
    """(mock transport)"""
    server = ScriptedServer(reply, ok(good_reading()))
    (result,) = run_within(10, make_extractor(server, ExtractionSettings(max_reasks=2)), make_article())
    assert len(server.requests) == 1
    assert result.failure is not None and result.failure.reason == "endpoint"
    assert result.failure.detail.startswith(expected)


def test_a_key_echoed_in_a_page_never_reaches_the_failure_row() -> None:
    """(mock transport)"""
    page = f"<html><body>Proxy error. Request had Authorization: Bearer {SECRET}</body></html>"
    server = ScriptedServer(httpx2.Response(200, text=page, headers={"content-type": "text/html"}))
    (result,) = run_within(10, make_extractor(server), make_article())
    assert result.failure is not None and result.failure.reason == "endpoint"
    assert SECRET not in result.model_dump_json()
    assert REDACTED in result.failure.detail


def test_a_5xx_html_page_from_a_proxy_stays_a_retried_transport_error_that_names_the_endpoint() -> None:
    """(mock transport) A bad gateway may pass; only a 200 that is not a completion fails at once."""
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    bad_gateway = httpx2.Response(502, text=page, headers={"content-type": "text/html"})
    server = ScriptedServer(bad_gateway, ok(good_reading()))
    (result,) = run_within(10, make_extractor(server), make_article())
    assert result.record is not None
    assert [entry.kind for entry in result.attempts] == ["ask", "transport-retry"]
    first_error = result.attempts[0].error or ""
    assert first_error.startswith("InternalServerError: ")
    assert first_error.endswith(f" at {STUB_URL}")


# --- error texts: the underlying cause and the endpoint, never a secret -------------------------


def test_a_refused_connection_names_its_cause_and_the_endpoint() -> None:
    """(closed port)"""
    url = f"http://127.0.0.1:{closed_port()}/v1"
    settings = ExtractionSettings(max_transport_retries=1)
    (result,) = run_within(10, loopback_extractor(url, settings, RecordedSleep()), make_article())

    failure = result.failure
    assert failure is not None and failure.reason == "transport"
    for text in [failure.last_error or "", *(entry.error or "" for entry in result.attempts)]:
        assert text.startswith("APIConnectionError: Connection error. (cause: ConnectError: "), text
        assert text.endswith(f") at {url}"), text


@pytest.mark.parametrize(
    ("base_url", "secret", "shown"),
    [
        (
            "http://sk-test-1234567890abcdef@127.0.0.1:{port}/v1",
            "sk-test-1234567890abcdef",
            f"http://{REDACTED}@127.0.0.1:{{port}}/v1",
        ),
        (
            "http://127.0.0.1:{port}/v1?key=secretvalue123",
            "secretvalue123",
            f"http://127.0.0.1:{{port}}/v1?{REDACTED}",
        ),
    ],
    ids=["key-in-userinfo", "key-in-query"],
)
def test_a_key_in_the_base_url_is_never_shown_where_the_endpoint_is_named(
    base_url: str, secret: str, shown: str
) -> None:
    """(closed port) Not in attempt logs, failure rows or the cache key."""
    port = closed_port()
    extractor = loopback_extractor(
        base_url.format(port=port), ExtractionSettings(max_transport_retries=1), RecordedSleep()
    )
    key_parts = json.dumps(extractor.cache_key_parts)
    (result,) = run_within(10, extractor, make_article())

    assert result.failure is not None and result.failure.reason == "transport"
    assert (result.failure.last_error or "").endswith(f" at {shown.format(port=port)}")
    assert extractor.cache_key_parts["endpoint"] == shown.format(port=port)
    for text in [result.model_dump_json(), key_parts]:
        assert secret not in text
        assert SECRET not in text


def test_describe_error_appends_the_innermost_cause_with_a_message() -> None:
    """(no transport) Wrappers without a message are skipped; a cause chain that loops ends."""
    refused = ConnectionRefusedError(111, "Connection refused")
    silent = OSError()
    silent.__cause__ = refused
    outer = RuntimeError("Connection error.")
    outer.__cause__ = silent
    assert describe_error(outer) == (
        "RuntimeError: Connection error. (cause: ConnectionRefusedError: [Errno 111] Connection refused)"
    )

    first, second = ValueError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first
    assert describe_error(first) == "ValueError: first (cause: ValueError: second)"

    try:
        try:
            raise KeyError("hidden")
        except KeyError:
            raise ValueError("shown alone") from None
    except ValueError as suppressed:
        assert describe_error(suppressed) == "ValueError: shown alone"


def test_describe_error_names_the_endpoint_only_for_errors_from_talking_to_it() -> None:
    """(no transport) A model's invalid reply is not about the URL; a connection error is."""
    url = "http://sk-test-1234567890abcdef@llm.example:8080/v1"
    request = httpx2.Request("POST", "http://llm.example:8080/v1/chat/completions")
    lookup = httpx2.ConnectError("[Errno -2] Name or service not known", request=request)
    connection = openai.APIConnectionError(request=request)
    connection.__cause__ = lookup

    assert describe_error(connection, url=url) == (
        "APIConnectionError: Connection error. (cause: ConnectError: [Errno -2] Name or service not known)"
        f" at http://{REDACTED}@llm.example:8080/v1"
    )
    assert describe_error(ValueError("age: not a number"), url=url) == "ValueError: age: not a number"


# --- the endpoint is part of the cache key ------------------------------------------------------


def test_the_cache_key_names_the_endpoint_without_credentials() -> None:
    """(no transport) An outcome cached from one server is not served for another."""

    def endpoint_part(**endpoint_fields: Any) -> str:
        return make_extractor(ScriptedServer(), **endpoint_fields).cache_key_parts["endpoint"]

    assert endpoint_part() == STUB_URL
    assert endpoint_part(base_url="http://other.invalid/v1") == "http://other.invalid/v1"
    assert endpoint_part(base_url=STUB_URL + "/") == STUB_URL
    # A rotated key in the URL is the same server.
    assert (
        endpoint_part(base_url="http://sk-old-key-00000000@stub.invalid/v1")
        == endpoint_part(base_url="http://sk-new-key-11111111@stub.invalid/v1")
        == f"http://{REDACTED}@stub.invalid/v1"
    )
    base = make_extractor(ScriptedServer()).cache_key_parts
    assert make_extractor(ScriptedServer(), base_url="http://other.invalid/v1").cache_key_parts != base


def test_an_embedded_models_loopback_port_is_not_part_of_the_cache_key() -> None:
    """(no transport) The embedded server gets a fresh port every run; its answers do not change."""
    first = make_extractor(ScriptedServer(), base_url="http://127.0.0.1:41001/v1", provider=EMBEDDED)
    second = make_extractor(ScriptedServer(), base_url="http://127.0.0.1:52002/v1", provider=EMBEDDED)
    assert first.cache_key_parts == second.cache_key_parts
    assert first.cache_key_parts["endpoint"] == EMBEDDED
