"""Pydantic data classes: the contract with the LLM and with downstream users.

Everything that flows between pipeline stages is defined here, so that the
stages depend on the schema and never on each other's internals.
"""

from schemas.article import Article
from schemas.contract import ArticleReading
from schemas.incident import (
    Conflict,
    ConflictValue,
    FieldVerdict,
    Incident,
    JoinReason,
    ReconcileResult,
    SourceCitation,
    ValueSupport,
    Verdict,
)
from schemas.record import (
    SCHEMA_VERSION,
    Agency,
    Cited,
    Grounding,
    GroundingStatus,
    IncidentFacts,
    IncidentRecord,
    Officers,
    Provenance,
    Statement,
    Subject,
    Usage,
    What,
    When,
    Where,
)
from schemas.run import AttemptLog, ExtractionResult, FailureRow, ModelExchange

__all__ = [
    "Conflict",
    "ConflictValue",
    "FieldVerdict",
    "Incident",
    "JoinReason",
    "ReconcileResult",
    "SourceCitation",
    "ValueSupport",
    "Verdict",
    "SCHEMA_VERSION",
    "Agency",
    "Article",
    "ArticleReading",
    "ModelExchange",
    "AttemptLog",
    "Cited",
    "ExtractionResult",
    "FailureRow",
    "Grounding",
    "GroundingStatus",
    "IncidentFacts",
    "IncidentRecord",
    "Officers",
    "Provenance",
    "Statement",
    "Subject",
    "Usage",
    "What",
    "When",
    "Where",
]
