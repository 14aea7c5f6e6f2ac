"""The incident record: what the LLM fills for one article, and what we store.

Two audiences read these classes:

* the LLM, which sees ``IncidentFacts.model_json_schema()``: every factual
  leaf is a ``Cited`` value with a verbatim quote and an attribution, and
  fields the pipeline derives itself (grounding, canonical speaker) are left
  out so a model is never asked to invent them;
* downstream users, who read ``IncidentRecord``: the same facts plus the
  grounding the pipeline computed and the provenance of the extraction.

Unknown is ``null``. A field the article does not report must stay null
rather than be guessed.
"""

from __future__ import annotations

import copy
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.kinds import Kind

# 2.0.0: the model no longer copies quotes; it names sentences and the pipeline locates the
# evidence (GroundingStatus sentence-match / model-cited, Grounding.sentence and value span).
SCHEMA_VERSION = "2.0.0"

T = TypeVar("T")

# Marks a field that the pipeline fills after extraction. Such fields are
# stripped from the schema the LLM sees (see IncidentFacts.model_json_schema).
DERIVED: dict[str, Any] = {"x-derived": True}


class GroundingStatus(StrEnum):
    """How a value's evidence was located in its article.

    ``sentence-match`` and ``model-cited`` come from sentence-cited extraction
    (the pipeline searched the article's sentences for the value; the model only
    named sentence numbers). ``exact``, ``normalized`` and ``fuzzy`` come from
    locating a verbatim quote (imported or hand-written records, statements).
    """

    sentence_match = "sentence-match"
    """A sentence of the article supports the value (the model's number was used only as a hint)."""
    model_cited = "model-cited"
    """No sentence was found to support the value; the evidence is the sentence the model named."""
    exact = "exact"
    normalized = "normalized"
    fuzzy = "fuzzy"
    unfound = "unfound"


class Grounding(BaseModel):
    """Where a quote sits in the article text, as found by ``pipeline.evidence.ground``.

    ``start``/``end`` are character offsets into ``Article.text`` such that
    ``text[start:end]`` is the matched span; they are null when unfound.
    """

    status: GroundingStatus
    start: int | None = None
    end: int | None = None
    score: float = Field(default=0.0, description="Match score 0-100 (100 for exact).")
    supported: bool | None = Field(
        default=None,
        description="Whether the value is supported by its own quote (names, numbers, "
        "dates in the value appear in the quote). Null when not checked.",
    )
    note: str | None = None
    sentence: int | None = Field(
        default=None, description="1-based number of the article sentence holding the evidence."
    )
    value_start: int | None = Field(
        default=None, description="Offset of the value's own words inside the article, when found."
    )
    value_end: int | None = None

    @property
    def is_evidence(self) -> bool:
        """Only located quotes that support their value count as evidence."""
        return self.status != GroundingStatus.unfound and self.supported is not False


class Cited(BaseModel, Generic[T]):
    """A fact with its evidence: the value, a verbatim quote, and who asserts it."""

    value: T | None = Field(description="The fact, normalised as the field describes; null if unknown.")
    quote: str = Field(
        description="Verbatim sentence or phrase copied exactly from the article that states the value."
    )
    attribution: str = Field(
        description="Who asserts this according to the article: an agency (e.g. 'ICE'), a named "
        "official, a witness, a family member, or 'outlet' when the article states it in its own voice."
    )
    speaker: str | None = Field(
        default=None,
        description="Canonical speaker id for the attribution (filled by the pipeline).",
        json_schema_extra=DERIVED,
    )
    grounding: Grounding | None = Field(
        default=None,
        description="Where the quote was found in the article (filled by the pipeline).",
        json_schema_extra=DERIVED,
    )


DatePrecision = Literal["day", "week", "month", "year", "unknown"]
PlacePrecision = Literal["address", "neighborhood", "city", "county", "metro", "state", "country", "unknown"]


class When(BaseModel):
    date: Annotated[Cited[str] | None, Kind("date")] = Field(
        default=None,
        description="Date of the incident as YYYY-MM-DD. Resolve weekdays like 'Friday' against "
        "the publication date. Null if the article gives no date.",
    )
    time_of_day: Annotated[Cited[str] | None, Kind("time")] = Field(
        default=None, description="Time or part of day, e.g. '7:30 a.m.' or 'morning'."
    )
    raw_phrase: Annotated[Cited[str] | None, Kind("date_phrase")] = Field(
        default=None, description="The date wording exactly as written, e.g. 'Friday morning'."
    )
    precision: Annotated[DatePrecision, Kind("precision")] = "unknown"


class Where(BaseModel):
    place: Annotated[Cited[str] | None, Kind("place_text")] = Field(
        default=None, description="Most specific place named: street, intersection or landmark."
    )
    city: Annotated[Cited[str] | None, Kind("city")] = Field(
        default=None, description="City, town or suburb."
    )
    county: Annotated[Cited[str] | None, Kind("county")] = None
    state: Annotated[Cited[str] | None, Kind("state")] = Field(default=None, description="State or province.")
    country: Annotated[Cited[str] | None, Kind("country")] = None
    precision: Annotated[PlacePrecision, Kind("precision")] = "unknown"


class What(BaseModel):
    event_type: Annotated[Cited[str] | None, Kind("category")] = Field(
        default=None, description="Kind of incident, e.g. 'shooting', 'vehicle pursuit', 'arrest'."
    )
    circumstances: Annotated[Cited[str] | None, Kind("summary")] = Field(
        default=None, description="One-line summary of what happened, e.g. 'shot during a vehicle stop'."
    )
    operation_name: Annotated[Cited[str] | None, Kind("label")] = Field(
        default=None, description="Named operation or program, if any."
    )


class Agency(BaseModel):
    name: Annotated[Cited[str], Kind("agency")] = Field(
        description="Agency involved, e.g. 'U.S. Immigration and Customs Enforcement'."
    )
    role: Annotated[Cited[str] | None, Kind("summary")] = Field(
        default=None, description="Its role: e.g. 'conducted the stop', 'investigating'."
    )


class Subject(BaseModel):
    """A person the incident happened to (not the officers)."""

    name: Annotated[Cited[str] | None, Kind("person")] = None
    age: Annotated[Cited[int] | None, Kind("age")] = None
    gender: Annotated[Cited[str] | None, Kind("category")] = None
    nationality: Annotated[Cited[str] | None, Kind("category")] = None
    status_claimed: Annotated[Cited[str] | None, Kind("summary")] = Field(
        default=None,
        description="Legal or other status as someone claims it, e.g. 'in the country illegally'.",
    )
    armed_with: Annotated[Cited[str] | None, Kind("category")] = Field(
        default=None, description="Weapon, 'vehicle', or 'unarmed'; null if not reported."
    )
    outcome: Annotated[Cited[str] | None, Kind("category")] = Field(
        default=None, description="'killed', 'injured', 'arrested', 'uninjured'..."
    )
    place_of_death: Annotated[Cited[str] | None, Kind("place_category")] = Field(
        default=None, description="Where the subject died, e.g. 'at the scene', 'at the hospital'."
    )


class Officers(BaseModel):
    count_involved: Annotated[Cited[str] | None, Kind("count")] = Field(
        default=None,
        description="How many officers or agents were involved, as a number or as worded ('agents').",
    )
    count_fired: Annotated[Cited[str] | None, Kind("count")] = Field(
        default=None,
        description="How many fired their weapon, as a number or as worded ('the officer', 'agents').",
    )
    injuries: Annotated[Cited[str] | None, Kind("severity")] = Field(
        default=None, description="Injuries to officers, e.g. 'severe injuries'."
    )
    condition: Annotated[Cited[str] | None, Kind("severity")] = Field(
        default=None, description="Officers' reported condition, e.g. 'stable condition'."
    )


class Statement(BaseModel):
    """Something a named speaker said, as quoted in the article."""

    speaker: Annotated[str, Kind("speaker")] = Field(description="Who said it, as named in the article.")
    affiliation: Annotated[str | None, Kind("affiliation")] = Field(
        default=None, description="Agency or role of the speaker."
    )
    quote: Annotated[str, Kind("quote")] = Field(
        description="The statement, copied verbatim from the article."
    )
    speaker_id: str | None = Field(
        default=None, description="Canonical speaker id (filled by the pipeline).", json_schema_extra=DERIVED
    )
    grounding: Grounding | None = Field(
        default=None,
        description="Where the quote was found (filled by the pipeline).",
        json_schema_extra=DERIVED,
    )


_LLM_SCHEMA_CACHE: dict[type[BaseModel], dict[str, Any]] = {}


class IncidentFacts(BaseModel):
    """The facts of one incident as one article reports them. This is the LLM contract."""

    when: When = Field(default_factory=When)
    where: Where = Field(default_factory=Where)
    what: What = Field(default_factory=What)
    agencies: list[Agency] = Field(default_factory=list)
    subjects: list[Subject] = Field(default_factory=list)
    officers: Officers = Field(default_factory=Officers)
    statements: list[Statement] = Field(default_factory=list)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The schema the LLM sees: derived fields removed.

        Generating it costs tens of milliseconds and instructor asks for it on
        every request, so the default form is computed once per class.
        """
        if args or kwargs:
            return strip_derived(super().model_json_schema(*args, **kwargs))
        cached = _LLM_SCHEMA_CACHE.get(cls)
        if cached is None:
            cached = _LLM_SCHEMA_CACHE[cls] = strip_derived(super().model_json_schema())
        return copy.deepcopy(cached)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class Provenance(BaseModel):
    """How a record was made, so any value can be traced and any run repeated."""

    article_id: str
    source_path: str | None = None
    outlet: str | None = None
    url: str | None = None
    published: date | None = None
    model: str | None = None
    provider: str | None = None
    prompt_hash: str | None = None
    schema_version: str = SCHEMA_VERSION
    attempts: int = 0
    usage: Usage = Field(default_factory=Usage)
    chunks: int = Field(default=1, description="How many chunks the article was split into.")
    plan: str | None = Field(
        default=None,
        description="The extraction plan (contract and prompt variant) that produced the record.",
    )


class IncidentRecord(IncidentFacts):
    """One article's account, as stored and exported: facts + provenance."""

    model_config = ConfigDict(title="IncidentRecord")

    schema_version: str = SCHEMA_VERSION
    article_id: str
    source_path: str | None = None
    provenance: Provenance

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The full record schema, derived fields included."""
        return BaseModel.model_json_schema.__func__(cls, *args, **kwargs)  # type: ignore[attr-defined,no-any-return]

    def facts(self) -> IncidentFacts:
        return IncidentFacts.model_validate(self.model_dump(include=set(IncidentFacts.model_fields)))


def strip_derived(schema: dict[str, Any]) -> dict[str, Any]:
    """Remove every property marked ``x-derived`` (and its `required` entry)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for name in [n for n, p in props.items() if isinstance(p, dict) and p.get("x-derived")]:
                    del props[name]
                    if name in node.get("required", []):
                        node["required"].remove(name)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    # Grounding is referenced only by derived fields; drop its now-unused definition.
    defs = schema.get("$defs", {})
    for name in ("Grounding", "GroundingStatus"):
        defs.pop(name, None)
    return schema
