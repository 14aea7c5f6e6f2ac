"""One LLM call per article (or per chunk of a long one): a validated, sentence-cited ``IncidentRecord``.

The model reads the article as numbered sentences and fills the flat
:class:`~schemas.contract.ArticleReading`: values, each beside the number of
the sentence that states it. It copies no quotes. :mod:`pipeline.evidence.cite` then
locates the evidence for every value in the article's own sentences and builds
the stored record, which :func:`pipeline.evidence.ground.ground_record` completes with
canonical speakers.

Two retry layers, kept apart so they never multiply:

* **Transport** (429, 5xx, timeouts, dropped connections): every HTTP request
  is wrapped in a tenacity loop with jittered exponential backoff that honours
  ``Retry-After``. The openai client's own retries are off (``max_retries=0``).
  Each HTTP attempt has a wall-clock deadline of ``timeout_s`` (:class:`ReplyTimeout`):
  httpx's timeouts are per read, so a server sending a byte now and then would
  otherwise hold a request forever.
* **Re-asks** (the reply is not valid JSON for the contract): instructor
  appends the error to the conversation and asks again. Each re-ask resends the
  whole conversation, so the loop stops on ``max_reasks`` or on the per-article
  ``token_budget``, whichever comes first. At temperature 0 a local model
  answers a re-ask with the same reply, so the embedded models recommend none
  (``Endpoint.recommended``).

Every request and its raw reply are kept as :class:`~schemas.run.ModelExchange`
entries on the result, so the run store can show what the model was asked and
what it answered.

A 200 reply that is not a chat completion at all (an HTML page from a proxy, a
JSON error object) is neither: it is an ``endpoint`` failure
(:class:`EndpointReplyError`), neither retried nor re-asked.

``Extractor.extract`` never raises for a problem with one article; it returns
an ``ExtractionResult`` holding a record or a ``FailureRow``. It raises
:class:`ExtractorConfigError` only for problems that affect every article
(bad key, unknown model).

Failure reasons (``FailureRow.reason``) it writes: ``transport`` (the
:data:`TRANSPORT_ERRORS` outlasted the transport retries), ``endpoint``,
``request`` (another HTTP 4xx), ``validation`` and ``empty``. Error texts name
the innermost cause of an error and, for errors from talking to the endpoint,
its URL, always through :mod:`pipeline.common.redact`.
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from string import Template
from typing import TYPE_CHECKING, Any, Self

import instructor
import openai
from instructor.core import (
    AsyncValidationError,
    Hooks,
    IncompleteOutputException,
    ResponseParsingError,
)
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

import prompts
from pipeline.common.redact import redact, redact_url
from pipeline.evidence.cite import EVIDENCE_VERSION, cite_reading
from pipeline.evidence.locate import Sentence, number_sentences, split_sentences
from pipeline.extract.plans import DEFAULT_PLAN, PLANS, Plan
from pipeline.extract.providers import EMBEDDED
from schemas import (
    SCHEMA_VERSION,
    Article,
    ArticleReading,
    AttemptLog,
    Cited,
    ExtractionResult,
    FailureRow,
    IncidentFacts,
    IncidentRecord,
    ModelExchange,
    Provenance,
    Statement,
    Usage,
)
from schemas.contract import CONTRACT_NAME

if TYPE_CHECKING:
    import httpx2
    from openai.types.chat import ChatCompletion

    from pipeline.extract.providers import Endpoint

# instructor logs every exhausted re-ask at ERROR with the full validation error; the same facts
# land in our AttemptLogs and FailureRows, so on a batch run its log lines are pure noise.
logging.getLogger("instructor.v2.retry").setLevel(logging.CRITICAL)

SYSTEM_TEMPLATE = "extract_system.md"
EXAMPLE_FILE = "extract_example.md"
USER_TEMPLATE = "extract_user.md"


class ReplyTimeout(TimeoutError):
    """One HTTP attempt got no complete reply within ``ExtractionSettings.timeout_s`` (wall clock).

    httpx's timeouts bound each read, not the request: a server sending a byte every few seconds
    never trips them. This deadline does, and it is retried like ``openai.APITimeoutError``.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete reply within {seconds:g} s")
        self.seconds = seconds


class EndpointReplyError(Exception):
    """A successful HTTP reply that is not a chat completion (an HTML page, a JSON error object).

    Not a model's bad answer (nothing to re-ask) and not a transient fault (a 5xx page is an
    ``openai.InternalServerError`` and retried as transport): the base URL points at something
    that is not a chat-completions API, so the article fails at once with reason ``endpoint``.
    """


# Connection-level failures, retried by the transport layer; what is left after the retries is a
# FailureRow with reason "transport".
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
    ReplyTimeout,
)
# Errors that would repeat for every article: stop the run instead of writing a failure per article.
CONFIG_ERRORS: tuple[type[Exception], ...] = (
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.NotFoundError,
)
# Validation failures instructor re-asks on (mirrors instructor's own list).
REASKABLE_ERRORS: tuple[type[Exception], ...] = (
    ValidationError,
    json.JSONDecodeError,
    AsyncValidationError,
    ResponseParsingError,
)

# Chunk sizing for models with a known context window. English news runs at
# about 4 characters per token; 3 leaves headroom for names and numbers.
CHARS_PER_TOKEN = 3
PROMPT_OVERHEAD_TOKENS = 1400
DEFAULT_MAX_ARTICLE_CHARS = 100_000

MAX_RETRY_AFTER_S = 120.0
MAX_BACKOFF_S = 60.0
ERROR_TEXT_LIMIT = 2000
CAUSE_TEXT_LIMIT = 300
REPLY_SNIPPET_CHARS = 120


# The response model, wrapped for instructor once here through its public ``openai_schema``. Handed
# a plain model, instructor wraps it in a new class on every request (pydantic.create_model, ~5 ms
# of CPU) and then regenerates that new class's JSON schema (~2 ms): on a batch against a fast
# endpoint that was half the CPU per article. A class that already is an OpenAISchema is used as
# it is, and ArticleReading caches its schema per class.
RESPONSE_MODEL: type[ArticleReading] = instructor.openai_schema(ArticleReading)


class ExtractorConfigError(RuntimeError):
    """The endpoint rejected the request in a way that would repeat for every article."""


@dataclass(frozen=True)
class ExtractionSettings:
    max_reasks: int = 2
    max_transport_retries: int = 5
    timeout_s: float = 300.0
    temperature: float = 0.0
    max_tokens: int = 1024
    token_budget: int | None = None
    """Total tokens per article across the first ask and its re-asks; None for no limit."""
    max_article_chars: int | None = None
    """Longer articles are split into chunks; None derives it from the model's context window."""
    plan: str = DEFAULT_PLAN


def system_prompt(plan: Plan) -> str:
    """The fixed system prompt of ``plan``: identical for every article, so a server's prompt
    cache (llama.cpp ``cache_prompt``) pays for it once per run."""
    example = prompts.load(EXAMPLE_FILE) if plan.worked_example else ""
    return Template(prompts.load(SYSTEM_TEMPLATE)).substitute(example=example)


# --- chunking and merging -------------------------------------------------------------------


def chunk_sentences(sentences: Sequence[Sentence], max_chars: int) -> list[list[Sentence]]:
    """Consecutive runs of sentences of at most ``max_chars`` characters each (a longer sentence
    stands alone), renumbered from 1 within each chunk as the model will see them."""
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    chunks: list[list[Sentence]] = []
    current: list[Sentence] = []
    size = 0
    for sentence in sentences:
        length = len(sentence.text) + 8
        if current and size + length > max_chars:
            chunks.append(current)
            current, size = [], 0
        current.append(sentence)
        size += length
    if current:
        chunks.append(current)
    return [[replace(s, number=i) for i, s in enumerate(chunk, start=1)] for chunk in chunks]


def _dedupe_key(item: BaseModel) -> str:
    name = getattr(item, "name", None)
    if isinstance(name, Cited) and isinstance(name.value, str):
        return f"{type(item).__name__}:{name.value.casefold().strip()}"
    if isinstance(item, Statement):
        return f"Statement:{item.speaker.casefold()}:{item.quote.strip()}"
    return json.dumps(item.model_dump(mode="json"), sort_keys=True)


def _merge_models(first: BaseModel, later: BaseModel) -> BaseModel:
    updates: dict[str, Any] = {}
    for name in type(first).model_fields:
        mine, theirs = getattr(first, name), getattr(later, name)
        if isinstance(mine, BaseModel) and not isinstance(mine, Cited) and isinstance(theirs, BaseModel):
            updates[name] = _merge_models(mine, theirs)
        elif isinstance(mine, list):
            seen = {_dedupe_key(item) for item in mine}
            merged = list(mine)
            for item in theirs:
                key = _dedupe_key(item)
                if key not in seen:
                    seen.add(key)
                    merged.append(item)
            updates[name] = merged
        elif mine is None or mine == "unknown" or (isinstance(mine, Cited) and mine.value is None):
            updates[name] = theirs
    return first.model_copy(update=updates)


def merge_facts(parts: Sequence[IncidentFacts]) -> IncidentFacts:
    """Merge chunk extractions: the first non-null wins per scalar field; lists are concatenated
    and de-duplicated (agencies and subjects by name, statements by speaker and quote)."""
    if not parts:
        return IncidentFacts()
    merged: BaseModel = IncidentFacts.model_validate(parts[0].model_dump())
    for part in parts[1:]:
        merged = _merge_models(merged, part)
    return IncidentFacts.model_validate(merged.model_dump())


# --- transport helpers ----------------------------------------------------------------------


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def innermost_cause(error: BaseException) -> BaseException | None:
    """The deepest exception with a message in ``error``'s cause chain, or None.

    Follows ``__cause__``, else ``__context__`` unless it was suppressed (``raise ... from
    None``), as a traceback does; a cycle ends the walk. A cause whose text ``error``'s own text
    already holds adds nothing and is not returned.
    """
    seen = {id(error)}
    found: BaseException | None = None
    current: BaseException | None = error
    while current is not None:
        nxt = current.__cause__
        if nxt is None and not current.__suppress_context__:
            nxt = current.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        if str(nxt).strip():
            found = nxt
        current = nxt
    if found is None or _error_text(found) in _error_text(error):
        return None
    return found


def _names_endpoint(error: BaseException) -> bool:
    """Whether ``error`` came from talking to the endpoint (not from judging the model's reply)."""
    return isinstance(error, (openai.APIError, ReplyTimeout, EndpointReplyError))


def describe_error(error: BaseException, *, secret: str | None = None, url: str | None = None) -> str:
    """``Class: message (cause: Class: message) at URL``, secrets scrubbed, length capped.

    The cause is :func:`innermost_cause` (what "Connection error." hides: refused, DNS, bad
    scheme). ``url`` (the endpoint's base URL) is named only for errors from talking to the
    endpoint, with its credentials and query string replaced (:func:`pipeline.common.redact.redact_url`).
    Everything passes through :func:`pipeline.common.redact.redact`, with ``secret`` as a known secret.
    """
    suffix = ""
    cause = innermost_cause(error)
    if cause is not None:
        cause_text = _error_text(cause)
        if len(cause_text) > CAUSE_TEXT_LIMIT:
            cause_text = cause_text[:CAUSE_TEXT_LIMIT] + "..."
        suffix += f" (cause: {cause_text})"
    if url and _names_endpoint(error):
        suffix += f" at {redact_url(url)}"
    head = _error_text(error)
    room = max(0, ERROR_TEXT_LIMIT - len(suffix))
    if len(head) > room:
        head = head[:room] + "..."
    return redact(head + suffix, [secret] if secret else []) or ""


def endpoint_identity(endpoint: Endpoint) -> str:
    """Which server answers, for the cache key: the base URL without credentials or query.

    An embedded model's server is started by this process on a fresh loopback port each run;
    its port says nothing about the answers (the model name does), so it is ``embedded``.
    """
    if endpoint.provider == EMBEDDED:
        return EMBEDDED
    return redact_url(endpoint.base_url.rstrip("/"))


def not_a_chat_completion(response: httpx2.Response) -> str | None:
    """Why a successful HTTP reply is not a chat completion, or None if it is one.

    Judged on the raw reply rather than on what openai parsed from it: for a body that is not
    JSON openai returns the text as a plain ``str``, and for JSON of any shape an unvalidated
    ``ChatCompletion`` whose ``choices`` may be missing; neither keeps the content type or the
    bytes, which are what tell a proxy's sign-in page from a model's reply.
    """
    content_type = response.headers.get("content-type", "") or "none"
    body = response.content
    snippet = " ".join(body[: REPLY_SNIPPET_CHARS * 4].decode("utf-8", errors="replace").split())
    if len(snippet) > REPLY_SNIPPET_CHARS:
        snippet = snippet[:REPLY_SNIPPET_CHARS] + "..."
    seen = f"(content-type {content_type}; first bytes: {snippet!r})"
    try:
        data = json.loads(body)
    except ValueError:
        looks_html = "html" in content_type.lower() or snippet.lstrip().startswith("<")
        kind = "HTML" if looks_html else "text" if snippet else "an empty body"
        return f"endpoint returned {kind}, not a chat completion {seen}"
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        return f"endpoint returned JSON without choices, not a chat completion {seen}"
    return None


def retry_after_seconds(error: BaseException, *, now: datetime | None = None) -> float | None:
    """The server's requested wait from ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date)."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


_jittered_backoff = wait_exponential_jitter(initial=1.0, max=MAX_BACKOFF_S, jitter=1.0)


def transport_wait(retry_state: RetryCallState) -> float:
    """Jittered exponential backoff, or the server's ``Retry-After`` when it sends one (capped)."""
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None else None
    if error is not None:
        requested = retry_after_seconds(error)
        if requested is not None:
            return min(requested, MAX_RETRY_AFTER_S)
    return float(_jittered_backoff(retry_state))


def _usage_of(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return Usage()
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        total_tokens=usage.total_tokens or 0,
    )


def _root_cause(error: BaseException) -> BaseException:
    """Unwrap instructor's ``InstructorRetryException`` (and similar) to the underlying error."""
    seen: set[int] = set()
    current = error
    while id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current, TRANSPORT_ERRORS + CONFIG_ERRORS + (openai.APIStatusError, EndpointReplyError)
        ):
            return current
        cause = current.__cause__ or current.__context__
        if cause is None:
            return current
        current = cause
    return current


# --- per-article bookkeeping ----------------------------------------------------------------


@dataclass
class _ArticleRun:
    """Requests made for one article, across chunks, re-asks and transport retries."""

    article_id: str
    model: str
    secret: str
    url: str = ""
    """The endpoint's base URL, named in errors from talking to it (redacted there)."""
    logs: list[AttemptLog] = field(default_factory=list)
    chunk_requests: int = 0
    chunk: int = 1
    exchanges: list[ModelExchange] = field(default_factory=list)
    """Every request of the article with its raw reply, oldest first."""
    capture: bool = False
    """Build each request and hand back its body instead of sending it (:meth:`Extractor.request_bodies`)."""
    replies: list[Any] | None = None
    """Chat-completion bodies to answer the requests with, oldest first, instead of asking the
    endpoint (:meth:`Extractor.extract_from_replies`); None asks the endpoint."""

    @property
    def usage(self) -> Usage:
        total = Usage()
        for entry in self.logs:
            total = total + entry.usage
        return total

    def record(self, kind: str, latency_s: float, usage: Usage, error: BaseException | None) -> AttemptLog:
        entry = AttemptLog(
            article_id=self.article_id,
            attempt=len(self.logs) + 1,
            kind=kind,
            model=self.model,
            usage=usage,
            latency_s=round(latency_s, 3),
            error=describe_error(error, secret=self.secret, url=self.url) if error is not None else None,
        )
        self.logs.append(entry)
        return entry


_current_run: contextvars.ContextVar[_ArticleRun] = contextvars.ContextVar("triangulate_article_run")


class _ReaskBudget(stop_base):
    """tenacity stop: no further re-ask once tokens spent plus the next re-ask's likely cost
    would pass the budget. A re-ask resends everything so far, so it costs about the last
    request's prompt and completion plus the error text and a new completion."""

    def __init__(self, run: _ArticleRun, budget: int) -> None:
        self.run, self.budget = run, budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        logs = self.run.logs
        if not logs:
            return False
        spent = sum(entry.usage.total_tokens for entry in logs)
        last = logs[-1].usage
        next_cost = last.prompt_tokens + 2 * last.completion_tokens + 200
        return spent + next_cost > self.budget


# --- the extractor --------------------------------------------------------------------------

Sleep = Callable[[float], Awaitable[None]]


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _conversation_after_system(messages: Sequence[Any]) -> str:
    """The user turn, and on a re-ask the turns instructor appended, as one readable text."""
    parts: list[str] = []
    rest = [m for m in messages if isinstance(m, dict) and m.get("role") != "system"]
    for message in rest:
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        parts.append(text if len(rest) == 1 else f"--- {message.get('role')} ---\n{text}")
    return "\n".join(parts)


class _Captured(Exception):  # noqa: N818 - a signal, not an error
    """Raised from the request hook in capture mode: carries the body that would have been sent."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("request captured")
        self.body = body


def _find_captured(error: BaseException) -> _Captured | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, _Captured):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# Keyword arguments of openai's create() that are transport options, not part of the JSON body.
_NOT_BODY = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


def request_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON body openai's ``chat.completions.create(**kwargs)`` sends: its body arguments with
    ``extra_body`` merged in, as the client does."""
    body = {name: value for name, value in kwargs.items() if name not in _NOT_BODY}
    body.update(kwargs.get("extra_body") or {})
    return body


@dataclass
class _ChunkOutcome:
    facts: IncidentFacts | None = None
    failure_reason: str | None = None
    detail: str = ""
    last_error: str | None = None


class Extractor:
    """Turns articles into sentence-cited incident records through one OpenAI-compatible endpoint.

    Safe to share between concurrent tasks: per-article state lives in a context
    variable, and every call builds its own messages list (instructor appends
    re-asks to the list it is given).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        settings: ExtractionSettings | None = None,
        *,
        http_client: Any = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings or ExtractionSettings()
        if self.settings.plan not in PLANS:
            known = ", ".join(sorted(PLANS))
            raise ValueError(f"unknown extraction plan {self.settings.plan!r}; known plans: {known}")
        self.plan = PLANS[self.settings.plan]
        self._sleep = sleep
        self._system_prompt = system_prompt(self.plan)
        self._system_hash = _text_hash(self._system_prompt)
        self._user_template = Template(prompts.load(USER_TEMPLATE))
        self._schema_json = json.dumps(ArticleReading.model_json_schema(), sort_keys=True)
        self._prompt_hash = prompts.prompt_hash(self._system_prompt, self._user_template.template)
        self._extra_body: dict[str, Any] = (
            {"extra_body": dict(endpoint.extra_body)} if endpoint.extra_body else {}
        )
        client_options: dict[str, Any] = {
            "base_url": endpoint.base_url,
            "api_key": endpoint.api_key,
            "max_retries": 0,
            "timeout": self.settings.timeout_s,
        }
        if http_client is not None:
            client_options["http_client"] = http_client
        self._openai = openai.AsyncOpenAI(**client_options)
        # ``with_raw_response`` (openai's public API for headers and body) wraps the original create,
        # taken before it is replaced below. It changes no byte of the request body.
        self._raw_create = self._openai.chat.completions.with_raw_response.create
        # instructor calls whatever sits at chat.completions.create of the client it is given; our own
        # client instance gets the transport retry there, so each HTTP request has its own retry loop,
        # log entry and stored exchange. Nothing in instructor or openai is patched.
        self._openai.chat.completions.create = self._request  # type: ignore[method-assign,assignment]
        self._client = instructor.from_openai(self._openai, mode=instructor.Mode.JSON_SCHEMA)

    # -- identity --

    @property
    def prompt_hash(self) -> str:
        return self._prompt_hash

    @property
    def max_article_chars(self) -> int:
        if self.settings.max_article_chars is not None:
            return self.settings.max_article_chars
        context = self.endpoint.context_tokens
        if context is None:
            return DEFAULT_MAX_ARTICLE_CHARS
        room = context - self.settings.max_tokens - PROMPT_OVERHEAD_TOKENS
        return max(1000, room * CHARS_PER_TOKEN)

    @property
    def cache_key_parts(self) -> dict[str, str]:
        """Everything that changes the answer for a given article text."""
        settings = self.settings
        return {
            "model": self.endpoint.model,
            "plan": f"{CONTRACT_NAME}/{self.plan.name}",
            "evidence": EVIDENCE_VERSION,
            "prompt_hash": self._prompt_hash,
            "schema_version": SCHEMA_VERSION,
            "schema_hash": hashlib.sha256(self._schema_json.encode()).hexdigest()[:16],
            "temperature": repr(settings.temperature),
            "max_tokens": str(settings.max_tokens),
            "max_reasks": str(settings.max_reasks),
            "token_budget": str(settings.token_budget),
            "max_article_chars": str(self.max_article_chars),
            "extra_body": json.dumps(dict(self.endpoint.extra_body), sort_keys=True),
            "endpoint": endpoint_identity(self.endpoint),
        }

    # -- prompts --

    def build_messages(self, sentences: Sequence[Sentence], part: int, parts: int) -> list[dict[str, str]]:
        """A fresh messages list for one request (instructor appends re-asks to it).

        The user message holds only the numbered sentences: no outlet, headline or
        publication date. Given a date, small models copied it (or a weekday list)
        instead of the article's own date words, which ``pipeline.evidence.cite`` resolves.
        """
        part_note = (
            f"This is part {part} of {parts} of a long article; report what this part says.\n"
            if parts > 1
            else ""
        )
        user = self._user_template.substitute(part_note=part_note, sentences=number_sentences(sentences))
        return [
            {"role": "system", "content": self._system_prompt},
            {"role": "user", "content": user},
        ]

    # -- requests --

    async def _request(self, *args: Any, **kwargs: Any) -> ChatCompletion:
        """One logical request from instructor: transport retries happen here, invisibly to it."""
        run = _current_run.get()
        if run.capture:
            raise _Captured(request_body(kwargs))
        run.chunk_requests += 1
        kind = "ask" if run.chunk_requests == 1 else "reask"
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_transport_retries + 1),
            retry=retry_if_exception_type(TRANSPORT_ERRORS),
            wait=transport_wait,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                started = time.monotonic()
                try:
                    response = await self._attempt(*args, **kwargs)
                except Exception as error:
                    entry = run.record(kind, time.monotonic() - started, Usage(), error)
                    self._keep_exchange(run, entry, kwargs, None)
                    kind = "transport-retry"
                    raise
                entry = run.record(kind, time.monotonic() - started, _usage_of(response), None)
                self._keep_exchange(run, entry, kwargs, response)
                return response
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _attempt(self, *args: Any, **kwargs: Any) -> ChatCompletion:
        """One HTTP request: a chat completion within the deadline, or an exception."""
        replies = _current_run.get().replies
        if replies is not None:
            return _replayed(replies)
        seconds = self.settings.timeout_s
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                raw = await self._raw_create(*args, **kwargs)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise ReplyTimeout(seconds) from None
        problem = not_a_chat_completion(raw.http_response)
        if problem is not None:
            raise EndpointReplyError(problem)
        response: ChatCompletion = raw.parse()
        return response

    def _keep_exchange(
        self, run: _ArticleRun, entry: AttemptLog, request: dict[str, Any], response: Any
    ) -> None:
        messages = request.get("messages") or []
        user_prompt = _conversation_after_system(messages)
        choices = getattr(response, "choices", None) or []
        reply = choices[0].message.content if choices else None
        run.exchanges.append(
            ModelExchange(
                article_id=run.article_id,
                attempt=entry.attempt,
                chunk=run.chunk,
                system_hash=self._system_hash,
                user_hash=_text_hash(user_prompt),
                system_prompt=self._system_prompt,
                user_prompt=user_prompt,
                reply=reply,
                finish_reason=choices[0].finish_reason if choices else None,
            )
        )

    def _reask_retrying(self, run: _ArticleRun) -> AsyncRetrying:
        # A reply from a provider batch is answered once: a re-ask would need a new request.
        reasks = 0 if run.replies is not None else self.settings.max_reasks
        stop: stop_base = stop_after_attempt(reasks + 1)
        if self.settings.token_budget is not None:
            stop = stop | _ReaskBudget(run, self.settings.token_budget)
        return AsyncRetrying(stop=stop, retry=retry_if_exception_type(REASKABLE_ERRORS), reraise=True)

    def _on_parse_error(self, run: _ArticleRun) -> Callable[..., None]:
        def note(error: Exception, **_: Any) -> None:
            # The request itself succeeded; its reply is what failed validation.
            if run.logs and run.logs[-1].error is None:
                run.logs[-1].error = describe_error(error, secret=run.secret)

        return note

    async def _ask(
        self, run: _ArticleRun, sentences: Sequence[Sentence], part: int, parts: int, hooks: Hooks
    ) -> ArticleReading:
        """The one instructor call for a chunk, shared by live asks, captured bodies and replays."""
        settings = self.settings
        reading: ArticleReading = await self._client.chat.completions.create(
            model=self.endpoint.model,
            response_model=RESPONSE_MODEL,
            messages=self.build_messages(sentences, part, parts),  # type: ignore[arg-type]
            max_retries=self._reask_retrying(run),
            hooks=hooks,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            **self._extra_body,
        )
        return reading

    async def _extract_chunk(
        self,
        run: _ArticleRun,
        article: Article,
        sentences: Sequence[Sentence],
        part: int,
        parts: int,
        sentence_offset: int = 0,
    ) -> _ChunkOutcome:
        run.chunk_requests = 0
        run.chunk = part
        hooks = Hooks()
        hooks.on("parse:error", self._on_parse_error(run))
        settings = self.settings
        try:
            reading = await self._ask(run, sentences, part, parts, hooks)
        except IncompleteOutputException as error:
            return _ChunkOutcome(
                failure_reason="validation",
                detail=f"the model's reply was cut off at max_tokens ({settings.max_tokens}) before the "
                "JSON was complete; raise --max-tokens or use a stronger model",
                last_error=describe_error(error, secret=run.secret),
            )
        except Exception as error:
            root = _root_cause(error)
            described = describe_error(root, secret=run.secret, url=run.url)
            if isinstance(root, CONFIG_ERRORS):
                raise ExtractorConfigError(described) from None
            if isinstance(root, TRANSPORT_ERRORS):
                return _ChunkOutcome(
                    failure_reason="transport",
                    detail=f"gave up after {settings.max_transport_retries} transport retries",
                    last_error=described,
                )
            if isinstance(root, EndpointReplyError):
                return _ChunkOutcome(
                    failure_reason="endpoint",
                    detail=redact(str(root), [run.secret]) or "",
                    last_error=described,
                )
            if isinstance(root, openai.APIStatusError):
                return _ChunkOutcome(
                    failure_reason="request",
                    detail=f"the endpoint rejected the request (HTTP {root.status_code})",
                    last_error=described,
                )
            return _ChunkOutcome(
                failure_reason="validation",
                detail=f"no schema-valid reply after {run.chunk_requests} request(s)",
                last_error=describe_error(_last_validation_error(error), secret=run.secret),
            )
        facts = cite_reading(
            reading,
            text=article.text,
            sentences=sentences,
            published=article.published,
            sentence_offset=sentence_offset,
        )
        return _ChunkOutcome(facts=facts)

    async def request_bodies(self, article: Article) -> list[dict[str, Any]]:
        """The JSON bodies :meth:`extract` would send first for ``article``, one per chunk, in order
        (none for an article without text). Built by the same instructor call as a live ask, so a
        provider batch sends byte for byte what a live run sends."""
        if not article.text.strip():
            return []
        run = self._new_run(article)
        run.capture = True
        token = _current_run.set(run)
        bodies: list[dict[str, Any]] = []
        try:
            chunks = chunk_sentences(split_sentences(article.text), self.max_article_chars)
            for index, chunk in enumerate(chunks, start=1):
                try:
                    await self._ask(run, chunk, index, len(chunks), Hooks())
                except Exception as error:
                    captured = _find_captured(error)
                    if captured is None:
                        raise
                    bodies.append(captured.body)
                else:
                    raise AssertionError("unreachable: capture mode sends no request")
        finally:
            _current_run.reset(token)
        return bodies

    async def extract_from_replies(
        self, article: Article, replies: Sequence[dict[str, Any]]
    ) -> ExtractionResult:
        """What :meth:`extract` makes of ``article`` when the endpoint answers its requests with
        ``replies`` (chat-completion JSON bodies, one per chunk, as a provider batch returns them):
        the same validation, citation and grounding, with no re-ask (a reply that fails validation
        is a ``validation`` failure; the caller may ask again live)."""
        run = self._new_run(article)
        run.replies = list(replies)
        token = _current_run.set(run)
        try:
            return await self._extract(run, article)
        finally:
            _current_run.reset(token)

    def _new_run(self, article: Article) -> _ArticleRun:
        return _ArticleRun(
            article_id=article.id,
            model=self.endpoint.model,
            secret=self.endpoint.api_key,
            url=self.endpoint.base_url,
        )

    async def extract(self, article: Article) -> ExtractionResult:
        run = self._new_run(article)
        token = _current_run.set(run)
        try:
            return await self._extract(run, article)
        finally:
            _current_run.reset(token)

    async def _extract(self, run: _ArticleRun, article: Article) -> ExtractionResult:
        if not article.text.strip():
            return self._failure(run, article, "empty", "the article has no text", None)
        chunks = chunk_sentences(split_sentences(article.text), self.max_article_chars)
        parts: list[IncidentFacts] = []
        offset = 0
        for index, chunk in enumerate(chunks, start=1):
            outcome = await self._extract_chunk(run, article, chunk, index, len(chunks), offset)
            offset += len(chunk)
            if outcome.facts is None:
                detail = outcome.detail
                if len(chunks) > 1:
                    detail = f"chunk {index} of {len(chunks)}: {detail}"
                return self._failure(
                    run, article, outcome.failure_reason or "validation", detail, outcome.last_error
                )
            parts.append(outcome.facts)
        facts = parts[0] if len(parts) == 1 else merge_facts(parts)
        record = IncidentRecord(
            **facts.model_dump(),
            article_id=article.id,
            source_path=article.source_path,
            provenance=Provenance(
                article_id=article.id,
                source_path=article.source_path,
                outlet=article.outlet,
                url=article.url,
                published=article.published,
                model=self.endpoint.model,
                provider=self.endpoint.provider,
                prompt_hash=self._prompt_hash,
                schema_version=SCHEMA_VERSION,
                attempts=len(run.logs),
                usage=run.usage,
                chunks=len(chunks),
                plan=f"{CONTRACT_NAME}/{self.plan.name}",
            ),
        )
        from pipeline.evidence.ground import ground_record

        record = ground_record(record, article)
        return ExtractionResult(
            article_id=article.id,
            record=record,
            attempts=list(run.logs),
            usage=run.usage,
            exchanges=list(run.exchanges),
        )

    def _failure(
        self, run: _ArticleRun, article: Article, reason: str, detail: str, last_error: str | None
    ) -> ExtractionResult:
        failure = FailureRow(
            article_id=article.id,
            source_path=article.source_path,
            reason=reason,
            detail=detail,
            attempts=len(run.logs),
            last_error=last_error,
            usage=run.usage,
        )
        return ExtractionResult(
            article_id=article.id,
            failure=failure,
            attempts=list(run.logs),
            usage=run.usage,
            exchanges=list(run.exchanges),
        )

    async def aclose(self) -> None:
        await self._openai.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _replayed(replies: list[Any]) -> ChatCompletion:
    """The next stored reply as a chat completion, judged as :func:`not_a_chat_completion` judges
    a live one."""
    from openai.types.chat import ChatCompletion

    if not replies:
        raise EndpointReplyError("no stored reply for this request")
    body = replies.pop(0)
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        raise EndpointReplyError("the stored reply is JSON without choices, not a chat completion")
    return ChatCompletion.model_validate(body)


def _last_validation_error(error: BaseException) -> BaseException:
    failed = getattr(error, "failed_attempts", None)
    if failed:
        return failed[-1].exception  # type: ignore[no-any-return]
    return error.__cause__ or error
