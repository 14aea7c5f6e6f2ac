"""Who said it: the speaker names the evidence stage uses, kept under their old import path.

Speaker and outlet ids have one authority, :mod:`pipeline.kinds.identity` (it sits with
the foundations so normalisation and reconciliation can ask it too). Grounding,
locating and eval import these names from here; they are the same objects.
"""

from __future__ import annotations

from pipeline.kinds.identity import (
    SPEAKERS_ENV,
    Speaker,
    SpeakerTable,
    attribution_kind,
    canonical_speaker,
    default_table,
    display_speaker,
    fallback_speaker,
    fold,
    identify,
    independent_source,
    load_speaker_table,
    outlet_id,
    person_name,
    relayed_name,
    slugify,
    user_table_paths,
)

__all__ = [
    "SPEAKERS_ENV",
    "Speaker",
    "SpeakerTable",
    "attribution_kind",
    "canonical_speaker",
    "default_table",
    "display_speaker",
    "fallback_speaker",
    "fold",
    "identify",
    "independent_source",
    "load_speaker_table",
    "outlet_id",
    "person_name",
    "relayed_name",
    "slugify",
    "user_table_paths",
]
