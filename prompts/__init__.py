"""Prompt templates, kept as files so their hash can be recorded and cached on."""

from __future__ import annotations

import hashlib
from importlib.resources import files


def load(name: str) -> str:
    """Return the text of the template ``name`` (e.g. 'extract_incident.md')."""
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def prompt_hash(*texts: str) -> str:
    """A short stable hash of the template texts; it goes into provenance and cache keys."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]
