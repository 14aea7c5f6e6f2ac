"""One input article: one account of an incident."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Where `published` came from: the input's metadata (front matter, sidecar, HTML meta tag,
# JSONL field), a date line printed at the top of the text, or nowhere (no date).
PublishedFrom = Literal["metadata", "dateline", "none"]


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
    published_from: PublishedFrom = Field(
        default="none",
        description=(
            "Where `published` came from: 'metadata', 'dateline' (read from the text's head) or "
            "'none' (no date). Left out, it is 'metadata' when there is a date and 'none' when not."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _default_published_from(cls, data: Any) -> Any:
        # A date handed in without saying where it came from is metadata: every caller that
        # existed before datelines were read passed only dates it was given.
        if isinstance(data, dict) and data.get("published_from") is None:
            return {**data, "published_from": "none" if data.get("published") is None else "metadata"}
        return data

    @model_validator(mode="after")
    def _published_from_matches_published(self) -> Article:
        if (self.published is None) != (self.published_from == "none"):
            raise ValueError(
                f"published_from {self.published_from!r} does not fit published {self.published!r}: "
                "'none' exactly when there is no date"
            )
        return self

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
        published_from: PublishedFrom | None = None,
    ) -> Article:
        return cls(
            id=content_hash(text),
            text=text,
            source_path=source_path,
            outlet=outlet,
            url=url,
            published=published,
            title=title,
            published_from=published_from,
        )
