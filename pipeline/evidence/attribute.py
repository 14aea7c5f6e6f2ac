"""Map free-text attributions ("DHS spokesperson Jane Roe", "a witness") to canonical speakers.

Canonical ids let reconciliation count voices rather than articles: five outlets
repeating one DHS statement are one speaker, ``agency:dhs``. Ids look like
``agency:dhs``, ``agency:tempe-police``, ``outlet:valley-ledger``,
``person:jane-roe``, ``witness:maria-lopez``.

Agencies and their spokespeople come from the curated table
``pipeline/data/speakers.yaml``, extended by YAML files named in the
``TRIANGULATE_SPEAKERS`` environment variable (see docs/grounding.md).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

SPEAKERS_ENV = "TRIANGULATE_SPEAKERS"

# The article's own voice. A bare empty attribution is the outlet too: an
# extractor that names nobody is saying the article states it.
_OUTLET_WORDS = frozenset(
    {
        "",
        "outlet",
        "the outlet",
        "article",
        "the article",
        "reporter",
        "the reporter",
        "reporters",
        "staff",
        "narrator",
        "newspaper",
        "the newspaper",
        "news outlet",
        "the news outlet",
        "author",
        "the author",
        "editorial",
        "none",
        "unknown",
        "n/a",
    }
)

_WITNESS_WORDS = frozenset(
    {
        "witness",
        "witnesses",
        "eyewitness",
        "eyewitnesses",
        "bystander",
        "bystanders",
        "neighbor",
        "neighbors",
        "neighbour",
        "neighbours",
        "passerby",
        "passer-by",
        "onlooker",
        "resident",
        "residents",
    }
)

# Words that describe a role rather than name someone; they are skipped when
# pulling a person's name out of an attribution.
_ROLE_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "of",
        "for",
        "and",
        "with",
        "who",
        "said",
        "says",
        "according",
        "to",
        "in",
        "at",
        "on",
        "by",
        "statement",
        "spokesperson",
        "spokesman",
        "spokeswoman",
        "spokespeople",
        "official",
        "officials",
        "press",
        "secretary",
        "assistant",
        "deputy",
        "chief",
        "director",
        "sergeant",
        "sgt",
        "lieutenant",
        "lt",
        "captain",
        "capt",
        "detective",
        "det",
        "officer",
        "agent",
        "commissioner",
        "sheriff",
        "mayor",
        "governor",
        "gov",
        "senator",
        "sen",
        "rep",
        "representative",
        "attorney",
        "lawyer",
        "family",
        "relative",
        "mother",
        "father",
        "sister",
        "brother",
        "wife",
        "husband",
        "son",
        "daughter",
        "cousin",
        "friend",
        "police",
        "department",
        "mr",
        "mrs",
        "ms",
        "dr",
    }
    | _WITNESS_WORDS
)

# Unnamed authorities: a claim by "officials" is still a claim, but it cannot be
# tied to one agency.
_UNSPECIFIED_AUTHORITY = frozenset(
    {
        "authorities",
        "officials",
        "law enforcement",
        "law enforcement officials",
        "federal officials",
        "federal authorities",
        "police",
        "the police",
        "police officials",
        "investigators",
        "the government",
        "government",
        "officers",
        "agents",
        "federal agents",
        "the department",
        "department",
        "the agency",
        "agency",
        "the statement",
        "a statement",
        "statement",
        "a spokesperson",
        "spokesperson",
        "a spokesman",
        "a spokeswoman",
        "a police spokesperson",
    }
)

_ANONYMOUS_WORDS = frozenset({"source", "sources", "anonymous", "anonymously"})

_LOCAL_AGENCY = re.compile(
    r"""(?P<place>(?-i:(?:[A-Z][\w'’.-]*\s+){0,3}?))           # place name: up to three capitalised words
        (?P<kind>police(?:\s+department)?|pd|sheriff'?s?(?:\s+office|\s+department)?|
                 fire\s+department|department\s+of\s+public\s+safety|highway\s+patrol|state\s+patrol)\b""",
    re.IGNORECASE | re.VERBOSE,
)

_LOCAL_KIND_SLUG = {
    "police": "police",
    "pd": "police",
    "sheriff": "sheriff",
    "fire": "fire",
    "department": "dps",
    "highway": "highway-patrol",
    "state": "state-patrol",
}


def fold(text: str) -> str:
    """Lowercase, strip accents, turn punctuation into spaces and collapse whitespace."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    no_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    # Dots inside acronyms ("U.S.") vanish rather than split the word.
    no_marks = re.sub(r"(?<=\w)\.(?=\w)", "", no_marks)
    spaced = re.sub(r"[^\w]+", " ", no_marks)
    return " ".join(spaced.split())


def slugify(text: str) -> str:
    return fold(text).replace(" ", "-").replace("_", "-") or "unknown"


def _alias_key(text: str) -> str:
    key = fold(text)
    # "the", "U.S." and "United States" prefixes never distinguish agencies.
    for prefix in ("the ", "us ", "united states "):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


@dataclass
class SpeakerTable:
    """Alias -> canonical id lookups, built from one or more YAML tables."""

    aliases: dict[str, str] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)

    def add(self, table: Mapping[str, Any], *, source: str) -> None:
        for speaker_id, entry in table.items():
            if not isinstance(speaker_id, str) or ":" not in speaker_id:
                raise ValueError(f"{source}: speaker id {speaker_id!r} must look like 'agency:dhs'")
            if entry is None:
                entry = {}
            if not isinstance(entry, Mapping):
                raise ValueError(f"{source}: entry for {speaker_id} must be a mapping")
            for alias in _as_strings(entry.get("aliases", []), source, speaker_id):
                self.aliases[_alias_key(alias)] = speaker_id
            for person in _as_strings(entry.get("members", []), source, speaker_id):
                self.members[fold(person)] = speaker_id

    def agency_in(self, text: str) -> str | None:
        """The id of the longest alias that occurs as whole words in ``text``."""
        folded = f" {fold(text)} "
        best: tuple[int, str] | None = None
        for alias, speaker_id in self.aliases.items():
            if alias and f" {alias} " in folded and (best is None or len(alias) > best[0]):
                best = (len(alias), speaker_id)
        return best[1] if best else None

    def member_in(self, text: str) -> str | None:
        folded = f" {fold(text)} "
        for person, speaker_id in self.members.items():
            if person and f" {person} " in folded:
                return speaker_id
        return None

    def canonical(self, attribution: str, *, outlet: str | None) -> str:
        return _canonical(self, attribution, outlet=outlet)


def _as_strings(value: Any, source: str, speaker_id: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{source}: aliases/members of {speaker_id} must be a list of strings")
    return list(value)


def _read_yaml(path: Path) -> Mapping[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a speaker table must be a mapping of id -> entry")
    return data


def _curated_table() -> Mapping[str, Any]:
    text = resources.files("pipeline").joinpath("data/speakers.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, Mapping)
    return data


def user_table_paths(env_value: str | None = None) -> list[Path]:
    raw = os.environ.get(SPEAKERS_ENV, "") if env_value is None else env_value
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def load_speaker_table(extra: Iterable[Path] = ()) -> SpeakerTable:
    """The curated table, then each extra file in order (later entries win)."""
    table = SpeakerTable()
    table.add(_curated_table(), source="pipeline/data/speakers.yaml")
    for path in extra:
        table.add(_read_yaml(path), source=str(path))
    return table


@lru_cache(maxsize=8)
def _cached_table(paths: tuple[Path, ...], mtimes: tuple[float, ...]) -> SpeakerTable:
    del mtimes  # part of the cache key only: an edited file is re-read
    return load_speaker_table(paths)


def default_table() -> SpeakerTable:
    """Curated table plus the files in ``$TRIANGULATE_SPEAKERS`` (re-read when they change)."""
    paths = tuple(user_table_paths())
    mtimes = tuple(p.stat().st_mtime if p.exists() else -1.0 for p in paths)
    missing = [str(p) for p, m in zip(paths, mtimes, strict=True) if m < 0]
    if missing:
        raise FileNotFoundError(f"{SPEAKERS_ENV} names missing file(s): {', '.join(missing)}")
    return _cached_table(paths, mtimes)


def canonical_speaker(attribution: str, *, outlet: str | None, table: SpeakerTable | None = None) -> str:
    """The canonical speaker id for an attribution as an article (or an extractor) words it."""
    return _canonical(table or default_table(), attribution, outlet=outlet)


def outlet_id(outlet: str | None) -> str:
    return f"outlet:{slugify(outlet)}" if outlet and outlet.strip() else "outlet:unknown"


def _canonical(table: SpeakerTable, attribution: str, *, outlet: str | None) -> str:
    text = (attribution or "").strip()
    folded = fold(text)
    if folded in _OUTLET_WORDS or (outlet and folded == fold(outlet)):
        return outlet_id(outlet)
    words = set(folded.split())

    exact = table.aliases.get(_alias_key(text))
    if exact:
        return exact
    member = table.member_in(text)
    if member:
        return member
    if words & _WITNESS_WORDS:
        return f"witness:{slugify(person_name(text) or 'unnamed')}"
    agency = table.agency_in(text)
    if agency:
        return agency
    local = _local_agency(text)
    if local:
        return local
    if _alias_key(text) in _UNSPECIFIED_AUTHORITY:
        return "agency:unspecified"
    name = person_name(text)
    if name:
        return f"person:{slugify(name)}"
    if words & _ANONYMOUS_WORDS:
        # Unnamed sources cannot be told apart, so they share one id; reconcile
        # should not count two of them as independent.
        return "person:anonymous-source"
    described = [w for w in folded.split() if w not in {"a", "an", "the", "one", "said", "says"}]
    return f"person:{'-'.join(described) or 'unnamed'}"


def _local_agency(text: str) -> str | None:
    """'Tempe police', 'Maricopa County Sheriff's Office' -> agency:<place>-<kind>."""
    for match in _LOCAL_AGENCY.finditer(text):
        place = fold(match.group("place"))
        # Drop role words that precede the place ("Spokesperson Tempe police").
        place_words = [w for w in place.split() if w not in _ROLE_WORDS]
        if not place_words:
            continue
        kind_word = fold(match.group("kind")).split()[0]
        return f"agency:{'-'.join(place_words)}-{_LOCAL_KIND_SLUG.get(kind_word, kind_word)}"
    return None


_NAME_TOKEN = re.compile(r"[A-ZÀ-ÖØ-Þ][\w'’.-]*")
_NAME_PARTICLES = frozenset({"de", "del", "la", "da", "van", "von", "der", "bin", "al", "y", "di", "le"})


def person_name(text: str) -> str | None:
    """The longest run of capitalised words that are not role words, e.g. 'Maria Lopez'."""
    best: list[str] = []
    run: list[str] = []
    for token in re.split(r"[\s,;:()]+", text):
        bare = token.strip(".'’\"")
        is_name = bool(_NAME_TOKEN.fullmatch(bare)) and fold(bare) not in _ROLE_WORDS
        if is_name or (run and fold(bare) in _NAME_PARTICLES):
            run.append(bare)
            continue
        if len(run) > len(best):
            best = run
        run = []
    if len(run) > len(best):
        best = run
    while best and fold(best[-1]) in _NAME_PARTICLES:
        best.pop()
    return " ".join(best) if best else None
