"""What a batch run produces besides records: attempt logs and failure rows."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.record import IncidentRecord, Usage


class AttemptLog(BaseModel):
    """One HTTP request to the model (a first ask, a re-ask, or a transport retry)."""

    article_id: str
    attempt: int = Field(description="1-based attempt number within the article.")
    kind: str = Field(description="'ask', 'reask' (after a validation error) or 'transport-retry'.")
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    error: str | None = Field(default=None, description="Error class and message; never contains secrets.")


class FailureRow(BaseModel):
    """An article that could not be turned into a record, and why."""

    article_id: str | None = Field(description="Null only when the input could not be read at all.")
    source_path: str | None = None
    reason: str = Field(
        description="Short machine-readable reason, e.g. 'validation', 'transport', 'empty', "
        "'binary', 'decode', 'too-long', 'no-text'."
    )
    detail: str = Field(description="Human-readable explanation.")
    attempts: int = 0
    last_error: str | None = None
    usage: Usage = Field(default_factory=Usage)


class ModelExchange(BaseModel):
    """One request to the model and its raw reply, kept so any record can be audited.

    The prompt texts are stored once per run store under their hashes
    (``system_hash``, ``user_hash``); the reply is stored as the model sent it.
    """

    article_id: str
    attempt: int = Field(description="The AttemptLog this exchange belongs to.")
    chunk: int = 1
    system_hash: str
    user_hash: str
    system_prompt: str
    user_prompt: str
    reply: str | None = Field(default=None, description="The raw reply text; null when none came back.")
    finish_reason: str | None = None


class ExtractionResult(BaseModel):
    """The outcome of extracting one article: exactly one of record or failure."""

    article_id: str
    record: IncidentRecord | None = None
    failure: FailureRow | None = None
    attempts: list[AttemptLog] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    exchanges: list[ModelExchange] = Field(
        default_factory=list, description="What the model was asked and answered, oldest first."
    )
