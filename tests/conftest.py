"""Shared fixtures: paths, the example articles, and the cassette (vcrpy) configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from schemas import Article

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples" / "tempe-traffic-stop"
CASSETTES_DIR = REPO_ROOT / "cassettes"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES_DIR


def example_article_paths() -> list[Path]:
    """The example articles (not the gold file or README), in file-name order."""
    return sorted(p for p in EXAMPLES_DIR.glob("0*") if p.suffix in {".md", ".html", ".txt"})


@pytest.fixture(scope="session")
def example_articles() -> dict[str, Article]:
    """Example articles read through the real source reader, keyed by file name."""
    from pipeline.ingest.sources import iter_sources

    articles: dict[str, Article] = {}
    for item in iter_sources(example_article_paths()):
        assert isinstance(item, Article), f"example article failed to load: {item}"
        articles[Path(item.source_path or "").name] = item
    return articles


# --- cassettes (pytest-recording / vcrpy) ----------------------------------------------------------


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    """Cassettes live in the top-level ``cassettes/`` folder, one subfolder per recording kind."""
    return str(CASSETTES_DIR / "extract")


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    return {
        # Not host/port: the embedded server listens on a random loopback port. The body is
        # matched so that a changed prompt, schema or article can never replay an old answer.
        "match_on": ["method", "path", "body"],
        "filter_headers": ["authorization", "openai-organization", "openai-project"],
        "decode_compressed_response": True,
    }
