"""One LLM call per article: a cited, validated, grounded ``IncidentRecord``.

Two retry layers, kept apart so they never multiply:

* **Transport** (429, 5xx, timeouts, dropped connections): every HTTP request
  is wrapped in a tenacity loop with jittered exponential backoff that honours
  ``Retry-After``. The openai client's own retries are off (``max_retries=0``).
* **Re-asks** (the reply is not valid JSON for the schema, or a quote cannot be
  found in the article): instructor appends the error to the conversation and
  asks again. Each re-ask resends the whole conversation, so the loop stops on
  ``max_reasks`` or on the per-article ``token_budget``, whichever comes first.

A quote the model could not copy verbatim is not a reason to lose the record:
when re-asks run out and the only remaining errors are unlocated quotes, the
last reply is kept and grounding marks those quotes ``unfound``.

``Extractor.extract`` never raises for a problem with one article; it returns
an ``ExtractionResult`` holding a record or a ``FailureRow``. It raises
:class:`ExtractorConfigError` only for problems that affect every article
(bad key, unknown model).
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from string import Template
from typing import TYPE_CHECKING, Any, Self

import instructor
import openai
from instructor.core.exceptions import (
    AsyncValidationError,
    IncompleteOutputException,
    ResponseParsingError,
)
from instructor.core.hooks import Hooks
from instructor.v2.core import patch as _instructor_patch
from instructor.v2.core.response_model import prepare_response_model
from instructor.v2.validation import async_validators as _async_validators
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

import prompts
from schemas import (
    SCHEMA_VERSION,
    Article,
    AttemptLog,
    Cited,
    ExtractionResult,
    FailureRow,
    GroundingStatus,
    IncidentFacts,
    IncidentRecord,
    Provenance,
    Statement,
    Usage,
)

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

    from pipeline.providers import Endpoint

# instructor logs every exhausted re-ask at ERROR with the full validation error; the same facts
# land in our AttemptLogs and FailureRows, so on a batch run its log lines are pure noise.
logging.getLogger("instructor.v2.retry").setLevel(logging.CRITICAL)

SYSTEM_TEMPLATE = "extract_system.md"
USER_TEMPLATE = "extract_user.md"

TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
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
PROMPT_OVERHEAD_TOKENS = 1200
DEFAULT_MAX_ARTICLE_CHARS = 100_000

MAX_RETRY_AFTER_S = 120.0
MAX_BACKOFF_S = 60.0
ERROR_TEXT_LIMIT = 2000


class ExtractorConfigError(RuntimeError):
    """The endpoint rejected the request in a way that would repeat for every article."""


@dataclass(frozen=True)
class ExtractionSettings:
    max_reasks: int = 2
    max_transport_retries: int = 5
    timeout_s: float = 300.0
    temperature: float = 0.0
    max_tokens: int = 2048
    token_budget: int | None = None
    """Total tokens per article across the first ask and its re-asks; None for no limit."""
    max_article_chars: int | None = None
    """Longer articles are split into chunks; None derives it from the model's context window."""


# --- quote validation -----------------------------------------------------------------------


def iter_quotes(facts: IncidentFacts) -> Iterator[tuple[str, str]]:
    """Yield ``(field path, quote)`` for every cited value (with a value) and statement."""

    def walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, Cited):
            if node.value is not None:
                yield path, node.quote
        elif isinstance(node, Statement):
            yield path, node.quote
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                yield from walk(getattr(node, name), f"{path}.{name}" if path else name)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                yield from walk(item, f"{path}[{index}]")

    yield from walk(facts, "")


def unlocated_quotes(facts: IncidentFacts, article_text: str) -> list[tuple[str, str]]:
    from pipeline.ground import locate_quote

    return [
        (path, quote)
        for path, quote in iter_quotes(facts)
        if not quote.strip() or locate_quote(quote, article_text).status == GroundingStatus.unfound
    ]


class UnlocatedQuotes(ValueError):
    """Raised inside validation so instructor re-asks with the list of bad quotes."""


# A decoding guard added to the schema sent to the model (validation is unchanged): a cap on
# list lengths. Without it SmolLM2-135M repeated the same subject until max_tokens on a 1.5 kB
# example article (2048 tokens, cut off, no record). Servers that decode under the schema
# (llama.cpp, OpenAI structured outputs) enforce it. Strings are deliberately not capped:
# llama.cpp compiles maxLength into a repetition grammar that slowed generation from ~30 to
# ~0.3 tokens/s here.
MAX_LIST_ITEMS = 6


def bound_output(schema: dict[str, Any]) -> dict[str, Any]:
    """Add ``maxItems`` to every array in ``schema`` (in place) and return it."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "array":
                node.setdefault("maxItems", MAX_LIST_ITEMS)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    return schema


# ``IncidentFacts`` that also rejects quotes not found in ``context["article_text"]``. It keeps
# the name, title and docstring (the schema description) of ``IncidentFacts``, so the schema sent
# to the model is the contract plus the decoding guard above. (A comment, not a docstring:
# pydantic would publish a docstring as the schema's description.)
class QuoteCheckedFacts(IncidentFacts):
    __doc__ = IncidentFacts.__doc__

    model_config = ConfigDict(title="IncidentFacts")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return bound_output(super().model_json_schema(*args, **kwargs))

    @model_validator(mode="after")
    def _quotes_are_in_the_article(self, info: ValidationInfo) -> Self:
        context = info.context
        if not isinstance(context, dict) or "article_text" not in context:
            return self
        missing = unlocated_quotes(self, str(context["article_text"]))
        if missing:
            listing = "\n".join(f"- {path}.quote: {quote[:200]!r}" for path, quote in missing[:20])
            raise UnlocatedQuotes(
                "these quotes are not in the article text; copy each quote exactly from the article, "
                f"or set the field to null:\n{listing}"
            )
        return self


QuoteCheckedFacts.__name__ = "IncidentFacts"
QuoteCheckedFacts.__qualname__ = "IncidentFacts"

# instructor wraps a plain model in a fresh ResponseSchema subclass on every call,
# which defeats the per-class schema cache in schemas/record.py and costs ~30 ms
# of CPU per request; wrapping once here makes later calls reuse this class.
_RESPONSE_MODEL: type[QuoteCheckedFacts] = prepare_response_model(QuoteCheckedFacts)  # type: ignore[assignment]


def _scan_response_model_once() -> None:
    """Stop instructor re-scanning our (immutable) response model on every call.

    instructor walks the whole model tree looking for async validators five
    times per request (about 3 ms each here), the largest remaining share of
    the pipeline's CPU per article. The scan has already passed for
    ``_RESPONSE_MODEL`` inside ``prepare_response_model`` above, and a class
    cannot grow validators later, so repeats for that one class are skipped;
    every other model still gets the full scan.
    """
    original = _async_validators.reject_async_validators
    if getattr(original, "_triangulate_wrapped", False):
        return

    def reject_async_validators(response_model: Any) -> None:
        if response_model is _RESPONSE_MODEL:
            return
        original(response_model)

    reject_async_validators._triangulate_wrapped = True  # type: ignore[attr-defined]
    _async_validators.reject_async_validators = reject_async_validators
    # patch.py imported the function by name at import time.
    setattr(_instructor_patch, "reject_async_validators", reject_async_validators)  # noqa: B010


_scan_response_model_once()


# --- chunking and merging -------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WHITESPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)]?\s+")


def _pieces(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Split ``text`` after each separator match, keeping the separators so pieces rejoin exactly."""
    pieces: list[str] = []
    start = 0
    for match in pattern.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    pieces.append(text[start:])
    return [piece for piece in pieces if piece]


def split_article(text: str, max_chars: int) -> list[str]:
    """Split on paragraph boundaries into chunks of at most ``max_chars``; nothing is dropped.

    A paragraph longer than the limit is split at sentence ends, and a sentence
    longer than the limit at whitespace (or hard, as a last resort).
    ``"".join(chunks) == text`` always holds.
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    if len(text) <= max_chars:
        return [text]

    def fit(piece: str, level: int) -> list[str]:
        if len(piece) <= max_chars:
            return [piece]
        if level == 0:
            parts = _pieces(piece, _SENTENCE_END)
        elif level == 1:
            parts = _pieces(piece, _WHITESPACE)
        else:
            return [piece[i : i + max_chars] for i in range(0, len(piece), max_chars)]
        if len(parts) <= 1:
            return fit(piece, level + 1)
        return [small for part in parts for small in fit(part, level + 1)]

    units = [small for paragraph in _pieces(text, _PARAGRAPH_BREAK) for small in fit(paragraph, 0)]
    chunks: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + len(unit) > max_chars:
            chunks.append(current)
            current = ""
        current += unit
    if current:
        chunks.append(current)
    return chunks


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

_SECRET_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-]{6,}")


def describe_error(error: BaseException, *, secret: str | None = None) -> str:
    """``Class: message`` with API keys scrubbed and length capped."""
    text = f"{type(error).__name__}: {error}"
    if secret and secret in text:
        text = text.replace(secret, "***")
    text = _SECRET_PATTERN.sub("sk-***", text)
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "..."


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
        if isinstance(current, TRANSPORT_ERRORS + CONFIG_ERRORS + (openai.APIStatusError,)):
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
    logs: list[AttemptLog] = field(default_factory=list)
    chunk_requests: int = 0
    replies: list[Any] = field(default_factory=list)
    """Replies received for the current chunk, oldest first."""

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
            error=describe_error(error, secret=self.secret) if error is not None else None,
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


@dataclass
class _ChunkOutcome:
    facts: IncidentFacts | None = None
    failure_reason: str | None = None
    detail: str = ""
    last_error: str | None = None


class Extractor:
    """Turns articles into cited incident records through one OpenAI-compatible endpoint.

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
        self._sleep = sleep
        self._system_template = prompts.load(SYSTEM_TEMPLATE)
        self._user_template = Template(prompts.load(USER_TEMPLATE))
        self._schema_json = json.dumps(_RESPONSE_MODEL.model_json_schema(), sort_keys=True)
        self._prompt_hash = prompts.prompt_hash(self._system_template, self._user_template.template)
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
        self._raw_create = self._openai.chat.completions.create
        # instructor calls whatever sits at chat.completions.create when it is patched; putting
        # the transport retry there gives each HTTP request its own retry loop and log entry.
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
            "prompt_hash": self._prompt_hash,
            "schema_version": SCHEMA_VERSION,
            "schema_hash": hashlib.sha256(self._schema_json.encode()).hexdigest()[:16],
            "temperature": repr(settings.temperature),
            "max_tokens": str(settings.max_tokens),
            "max_reasks": str(settings.max_reasks),
            "token_budget": str(settings.token_budget),
            "max_article_chars": str(self.max_article_chars),
            "extra_body": json.dumps(dict(self.endpoint.extra_body), sort_keys=True),
        }

    # -- prompts --

    def build_messages(self, article: Article, chunk: str, part: int, parts: int) -> list[dict[str, str]]:
        """A fresh messages list for one request (instructor appends re-asks to it)."""
        fence = _fence_for(article.id, chunk)
        published = _describe_date(article.published)
        part_note = (
            f"This is part {part} of {parts} of the article; extract what this part says."
            if parts > 1
            else ""
        )
        user = self._user_template.substitute(
            outlet=article.outlet or "unknown",
            published=published,
            title=article.title or "unknown",
            part_note=part_note,
            open_marker=f"<<<{fence}>>>",
            close_marker=f"<<<END {fence}>>>",
            article=chunk.strip("\n"),
        )
        return [
            {"role": "system", "content": self._system_template},
            {"role": "user", "content": user},
        ]

    # -- requests --

    async def _request(self, *args: Any, **kwargs: Any) -> ChatCompletion:
        """One logical request from instructor: transport retries happen here, invisibly to it."""
        run = _current_run.get()
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
                    response: ChatCompletion = await self._raw_create(*args, **kwargs)
                except Exception as error:
                    run.record(kind, time.monotonic() - started, Usage(), error)
                    kind = "transport-retry"
                    raise
                run.record(kind, time.monotonic() - started, _usage_of(response), None)
                run.replies.append(response)
                return response
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _reask_retrying(self, run: _ArticleRun) -> AsyncRetrying:
        stop: stop_base = stop_after_attempt(self.settings.max_reasks + 1)
        if self.settings.token_budget is not None:
            stop = stop | _ReaskBudget(run, self.settings.token_budget)
        return AsyncRetrying(stop=stop, retry=retry_if_exception_type(REASKABLE_ERRORS), reraise=True)

    def _on_parse_error(self, run: _ArticleRun) -> Callable[..., None]:
        def note(error: Exception, **_: Any) -> None:
            # The request itself succeeded; its reply is what failed validation.
            if run.logs and run.logs[-1].error is None:
                run.logs[-1].error = describe_error(error, secret=run.secret)

        return note

    async def _extract_chunk(
        self, run: _ArticleRun, article: Article, chunk: str, part: int, parts: int
    ) -> _ChunkOutcome:
        run.chunk_requests = 0
        run.replies = []
        hooks = Hooks()
        hooks.on("parse:error", self._on_parse_error(run))
        settings = self.settings
        try:
            facts = await self._client.chat.completions.create(
                model=self.endpoint.model,
                response_model=_RESPONSE_MODEL,
                messages=self.build_messages(article, chunk, part, parts),  # type: ignore[arg-type]
                max_retries=self._reask_retrying(run),
                context={"article_text": chunk},
                hooks=hooks,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                **self._extra_body,
            )
            return _ChunkOutcome(facts=IncidentFacts.model_validate(facts.model_dump()))
        except IncompleteOutputException as error:
            fallback = self._keep_reply_despite_quotes(run)
            if fallback is not None:
                return _ChunkOutcome(facts=fallback)
            return _ChunkOutcome(
                failure_reason="validation",
                detail=f"the model's reply was cut off at max_tokens ({settings.max_tokens}) before the "
                "JSON was complete; raise --max-tokens or use a stronger model",
                last_error=describe_error(error, secret=run.secret),
            )
        except Exception as error:
            root = _root_cause(error)
            if isinstance(root, CONFIG_ERRORS):
                raise ExtractorConfigError(describe_error(root, secret=run.secret)) from None
            fallback = self._keep_reply_despite_quotes(run)
            if fallback is not None:
                return _ChunkOutcome(facts=fallback)
            if isinstance(root, TRANSPORT_ERRORS):
                return _ChunkOutcome(
                    failure_reason="transport",
                    detail=f"gave up after {settings.max_transport_retries} transport retries",
                    last_error=describe_error(root, secret=run.secret),
                )
            if isinstance(root, openai.APIStatusError):
                return _ChunkOutcome(
                    failure_reason="request",
                    detail=f"the endpoint rejected the request (HTTP {root.status_code})",
                    last_error=describe_error(root, secret=run.secret),
                )
            return _ChunkOutcome(
                failure_reason="validation",
                detail=f"no schema-valid reply after {run.chunk_requests} request(s)",
                last_error=describe_error(_last_validation_error(error), secret=run.secret),
            )

    def _keep_reply_despite_quotes(self, run: _ArticleRun) -> IncidentFacts | None:
        """When re-asks end without success, keep the latest reply whose only fault was unlocated quotes.

        A reply that validates without the quote check can only have failed on its
        quotes, so it is kept (grounding then marks those quotes unfound). This also
        rescues an earlier reply when a later re-ask was cut off at max_tokens, hit a
        transport fault, or was refused (e.g. the grown conversation no longer fits the
        context window). Replies with schema or JSON errors are never kept.
        """
        for reply in reversed(run.replies):
            choices = getattr(reply, "choices", None)
            if not choices or choices[0].finish_reason == "length":
                continue
            try:
                return IncidentFacts.model_validate_json(choices[0].message.content or "", strict=True)
            except ValidationError:
                continue
        return None

    async def extract(self, article: Article) -> ExtractionResult:
        run = _ArticleRun(article_id=article.id, model=self.endpoint.model, secret=self.endpoint.api_key)
        token = _current_run.set(run)
        try:
            return await self._extract(run, article)
        finally:
            _current_run.reset(token)

    async def _extract(self, run: _ArticleRun, article: Article) -> ExtractionResult:
        if not article.text.strip():
            return self._failure(run, article, "empty", "the article has no text", None)
        chunks = split_article(article.text, self.max_article_chars)
        parts: list[IncidentFacts] = []
        for index, chunk in enumerate(chunks, start=1):
            outcome = await self._extract_chunk(run, article, chunk, index, len(chunks))
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
            ),
        )
        from pipeline.ground import ground_record

        record = ground_record(record, article)
        return ExtractionResult(
            article_id=article.id, record=record, attempts=list(run.logs), usage=run.usage
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
            article_id=article.id, failure=failure, attempts=list(run.logs), usage=run.usage
        )

    async def aclose(self) -> None:
        await self._openai.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _last_validation_error(error: BaseException) -> BaseException:
    failed = getattr(error, "failed_attempts", None)
    if failed:
        return failed[-1].exception  # type: ignore[no-any-return]
    return error.__cause__ or error


def _fence_for(article_id: str, text: str) -> str:
    """A delimiter word derived from the article id, so it is stable (cassettes, cache) and cannot
    be closed early by text inside the article."""
    digest = article_id.split(":")[-1]
    length = 8
    fence = f"ARTICLE {digest[:length]}"
    while fence in text and length < len(digest):
        length += 8
        fence = f"ARTICLE {digest[:length]}"
    return fence


def _describe_date(published: date | None) -> str:
    if published is None:
        return "unknown (leave relative weekdays unresolved: date null, raw_phrase as written)"
    return f"{published.isoformat()} ({published.strftime('%A')})"
