"""One input article: one account of an incident."""

from __future__ import annotations

import hashlib
from datetime import date

from pydantic import BaseModel, ConfigDict, Field


def content_hash(text: str) -> str:
    """The article id: a stable hash of the text alone, so the same story read
    from two paths (or re-read tomorrow) is recognised as one article."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class Article(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Content hash of `text` (see content_hash).")
    text: str
    source_path: str | None = Field(
        default=None, description="File the article came from; for JSONL, 'file.jsonl:LINE'."
    )
    outlet: str | None = None
    url: str | None = None
    published: date | None = Field(
        default=None, description="Publication date; relative weekdays are resolved against it."
    )
    title: str | None = None

    @classmethod
    def from_text(
        cls,
        text: str,
        *,
        source_path: str | None = None,
        outlet: str | None = None,
        url: str | None = None,
        published: date | None = None,
        title: str | None = None,
    ) -> Article:
        return cls(
            id=content_hash(text),
            text=text,
            source_path=source_path,
            outlet=outlet,
            url=url,
            published=published,
            title=title,
        )
