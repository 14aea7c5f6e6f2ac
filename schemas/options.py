"""What a caller chooses for a run: the typed form of ``triangulate run``'s flags.

The command line builds one of these; a notebook builds it directly, e.g.
``RunOptions(out=Path("runs/tempe"), paths=(Path("articles"),), model="gpt-4o-mini")``.
``None`` means "the default": the embedded model's recommendation where it has one,
else the pipeline's fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_ARTICLE_BYTES = 2 * 1024 * 1024
ENGINES = ("local", "ray")


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    out: Path
    """The run folder (holds the run store)."""
    paths: tuple[Path, ...] = ()
    """Inputs: files, folders (read recursively) and JSONL feeds. Empty for ``retry-failed``."""
    command: str = "run"
    """``run`` or ``retry-failed``; recorded in the runs table."""

    model: str | None = None
    """A model at an OpenAI-compatible endpoint (OPENAI_BASE_URL / OPENAI_API_KEY)."""
    gguf: Path | None = None
    """A GGUF file to run in the embedded engine."""
    embedded: str | None = None
    """One of the registered embedded models (``pipeline.extract.providers.EMBEDDED_MODELS``)."""
    plan: str | None = None
    max_reasks: int | None = None
    max_tokens: int | None = None
    temperature: float = 0.0
    max_transport_retries: int = 5
    timeout: float = 300.0
    """Seconds per request."""

    concurrency: int | None = None
    """Requests in flight (default 4; 1 for the embedded model)."""
    rpm: float | None = None
    tpm: float | None = None
    stop_after_connection_failures: int | None = None
    """Stop after this many articles in a row fail to connect; 0 never stops (default 5)."""

    refresh: bool = False
    """Ignore cached extractions and ask again."""
    reconcile: bool = True
    db: str | None = None
    """Also write the dashboard tables to this database URL."""
    quiet: bool = False
    batch: bool = False
    """Send the requests through the provider's Batch API instead of live (``run``, and
    ``retry-failed`` for the failed articles)."""
    batch_reasks: str = "live"
    """With ``batch``: where the articles whose batch reply failed validation are asked again,
    ``live`` or ``batch`` (a second round of batches)."""
    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES
    engine: str = "local"
    """Who runs the extraction: ``local`` (this process, ``concurrency`` requests in flight) or
    ``ray`` (a Ray Data actor pool, ``concurrency`` requests in flight per actor; needs the
    ``ray`` extra and an HTTP endpoint, since Ray workers cannot share an in-process model)."""
    ray_address: str | None = None
    """With ``engine="ray"``: the cluster to join (``auto``, ``ray://host:10001``); None starts
    a local Ray instance for the run. Ignored by the local engine, so an exported
    ``TRIANGULATE_RAY_ADDRESS`` does not get in the way of a local run."""

    def problems(self) -> list[str]:
        """What is wrong with these options, in words that name each option; empty when usable."""
        found = []
        if self.concurrency is not None and self.concurrency < 1:
            found.append("concurrency must be at least 1")
        if self.stop_after_connection_failures is not None and self.stop_after_connection_failures < 0:
            found.append("stop_after_connection_failures must be 0 (never stop) or more")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                found.append(f"{name} must be positive")
        if self.batch_reasks not in ("live", "batch"):
            found.append("batch_reasks must be 'live' or 'batch'")
        if self.max_article_bytes < 1:
            found.append("max_article_bytes must be at least 1")
        if self.engine not in ENGINES:
            found.append(f"engine must be one of {', '.join(ENGINES)}")
        if self.engine == "ray":
            # A provider batch is one JSONL file the provider runs; there is nothing for Ray to spread.
            if self.batch:
                found.append("engine ray cannot be combined with --batch (the provider runs a batch itself)")
            if self.gguf is not None or self.embedded:
                found.append(
                    "engine ray needs an HTTP endpoint (--model with OPENAI_BASE_URL): Ray workers "
                    "cannot share the embedded in-process model"
                )
        return found
