"""The LLM contract: what a model returns for one article.

Small local models fill a flat object of plain values far better than a nested
tree of ``{value, quote, attribution}`` leaves (measured on the example set:
29 % field accuracy nested, about 80 % flat, with a quarter of the completion
tokens). So the model returns values only, each beside the number of the
sentence that states it (``<field>_sent``), and the pipeline locates the
evidence itself (``pipeline.evidence.locate``) and builds the stored
:class:`~schemas.record.IncidentRecord`.

Every key is required and no other key is allowed, so a schema-constrained
decoder (llama.cpp, OpenAI structured outputs) writes every key once, in this
order. Unknown is ``null``. Closed fields are enums so a decoder cannot drift
into prose. Null-like strings ("unknown", "not specified", ...) are cleaned to
``null`` because a grammar's null branch does not stop a model from spelling
"unknown" out.

``READING_FIELDS`` maps each value key to the record path it fills and to its
sentence key; ``pipeline.extract.extractor`` builds the record from it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# Versioned with the prompt files: a change here changes the cache key (schema hash).
CONTRACT_NAME = "flat-sentences"

SentenceNumber = Annotated[int, Field(ge=1)]
MAX_AGENCIES = 6
MAX_SPEAKERS = 6

EventType = Literal[
    "shooting", "use of force", "arrest", "raid", "vehicle pursuit", "death in custody", "other"
]
Gender = Literal["male", "female"]
ArmedWith = Literal["gun", "knife", "vehicle", "other weapon", "unarmed"]
Outcome = Literal["killed", "injured", "arrested", "uninjured"]
PlaceOfDeath = Literal["at the scene", "at the hospital", "in custody"]
Count = Literal["1", "2", "3", "4", "5", "plural"]

# Strings a model writes when it means null.
NULL_LIKE = frozenset(
    {
        "",
        "unknown",
        "none",
        "null",
        "n/a",
        "na",
        "not specified",
        "not stated",
        "not mentioned",
        "not reported",
        "not given",
        "not available",
        "unspecified",
        "unnamed",
        "no",
        "-",
    }
)


# "U. S. Border Patrol": tokenisers split initialisms, and a small model writes the pieces back
# with spaces that no article has.
_SPACED_INITIALS = re.compile(r"\b([A-Z])\. (?=[A-Z]\.)")


def clean_null_like(value: Any) -> Any:
    """``None`` for a string that only says "unknown" (any case, surrounding punctuation ignored);
    other strings come back trimmed, with spaced initials closed up ("U. S." -> "U.S.")."""
    if not isinstance(value, str):
        return value
    if value.strip(" .\"'").casefold() in NULL_LIKE:
        return None
    return _SPACED_INITIALS.sub(r"\1.", value.strip())


_SCHEMA_CACHE: dict[type[BaseModel], dict[str, Any]] = {}


class ArticleReading(BaseModel):
    """The facts of one incident as one article reports them: values with sentence numbers."""

    model_config = ConfigDict(extra="forbid", title="ArticleReading")

    date_words: str | None = Field(
        description="The words that say when it happened, as written ('Friday morning', 'March 3')."
    )
    date_sent: SentenceNumber | None
    time_of_day: str | None = Field(description="Clock time or part of day ('7:30 a.m.', 'morning').")
    time_sent: SentenceNumber | None
    place: str | None = Field(description="Street, intersection or landmark; not a city.")
    place_sent: SentenceNumber | None
    city: str | None = Field(description="City, town or suburb where it happened.")
    city_sent: SentenceNumber | None
    county: str | None
    county_sent: SentenceNumber | None
    state: str | None = Field(description="Only if the article names it.")
    state_sent: SentenceNumber | None
    event_type: EventType | None
    event_sent: SentenceNumber | None
    summary: str | None = Field(description="What happened, in under 12 words.")
    summary_sent: SentenceNumber | None
    operation: str | None = Field(description="A named operation, if any.")
    operation_sent: SentenceNumber | None
    name: str | None = Field(description="Full name of the person the incident happened to.")
    name_sent: SentenceNumber | None
    age: Annotated[int, Field(ge=0, le=120)] | None
    age_sent: SentenceNumber | None
    gender: Gender | None
    gender_sent: SentenceNumber | None
    nationality: str | None
    nationality_sent: SentenceNumber | None
    status: str | None = Field(description="Legal status, only as the article states it.")
    status_sent: SentenceNumber | None
    armed_with: ArmedWith | None
    armed_sent: SentenceNumber | None
    outcome: Outcome | None
    outcome_sent: SentenceNumber | None
    place_of_death: PlaceOfDeath | None
    death_sent: SentenceNumber | None
    officers_involved: Count | None
    involved_sent: SentenceNumber | None
    officers_fired: Count | None
    fired_sent: SentenceNumber | None
    officer_injuries: str | None = Field(description="Injuries to officers, as worded.")
    injuries_sent: SentenceNumber | None
    officer_condition: str | None = Field(description="Officers' condition, as worded.")
    condition_sent: SentenceNumber | None
    agencies: list[str] = Field(max_length=MAX_AGENCIES, description="Every agency involved, as written.")
    agency_sents: list[SentenceNumber | None] = Field(max_length=MAX_AGENCIES)
    speakers: list[str] = Field(max_length=MAX_SPEAKERS, description="People quoted word for word.")
    speaker_sents: list[SentenceNumber | None] = Field(max_length=MAX_SPEAKERS)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The schema, built once per class: instructor asks for it on every request, and
        generating it costs milliseconds of CPU that a batch of thousands pays per article."""
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        cached = _SCHEMA_CACHE.get(cls)
        if cached is None:
            cached = _SCHEMA_CACHE[cls] = super().model_json_schema()
        return copy.deepcopy(cached)

    @field_validator("*", mode="before")
    @classmethod
    def _null_like_is_null(cls, value: Any, info: ValidationInfo) -> Any:
        """Free-text values and list items saying "unknown" are null (and dropped from lists).
        Enums are left alone, so a null-like word there stays a validation error."""
        annotation = cls.model_fields[str(info.field_name)].annotation
        if annotation == str | None:
            return clean_null_like(value)
        if annotation == list[str] and isinstance(value, list):
            return [cleaned for cleaned in map(clean_null_like, value) if cleaned is not None]
        return value


@dataclass(frozen=True)
class ReadingField:
    """One scalar value key of the contract: where it goes in the record and its sentence key."""

    key: str
    sentence_key: str
    record_path: str


# Scalar value keys, in contract order. Lists (agencies, speakers) are handled by name.
READING_FIELDS: tuple[ReadingField, ...] = (
    ReadingField("date_words", "date_sent", "when.raw_phrase"),
    ReadingField("time_of_day", "time_sent", "when.time_of_day"),
    ReadingField("place", "place_sent", "where.place"),
    ReadingField("city", "city_sent", "where.city"),
    ReadingField("county", "county_sent", "where.county"),
    ReadingField("state", "state_sent", "where.state"),
    ReadingField("event_type", "event_sent", "what.event_type"),
    ReadingField("summary", "summary_sent", "what.circumstances"),
    ReadingField("operation", "operation_sent", "what.operation_name"),
    ReadingField("name", "name_sent", "subjects.name"),
    ReadingField("age", "age_sent", "subjects.age"),
    ReadingField("gender", "gender_sent", "subjects.gender"),
    ReadingField("nationality", "nationality_sent", "subjects.nationality"),
    ReadingField("status", "status_sent", "subjects.status_claimed"),
    ReadingField("armed_with", "armed_sent", "subjects.armed_with"),
    ReadingField("outcome", "outcome_sent", "subjects.outcome"),
    ReadingField("place_of_death", "death_sent", "subjects.place_of_death"),
    ReadingField("officers_involved", "involved_sent", "officers.count_involved"),
    ReadingField("officers_fired", "fired_sent", "officers.count_fired"),
    ReadingField("officer_injuries", "injuries_sent", "officers.injuries"),
    ReadingField("officer_condition", "condition_sent", "officers.condition"),
)
