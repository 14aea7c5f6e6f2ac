"""Who speaks: the one authority for speaker and outlet ids, and for what each id counts as.

Reconciliation counts independent sources, not articles: five outlets repeating one
DHS statement are one source, and so are ICE and DHS, because ICE is a component of
DHS and speaks through the same press operation. Everything that turns an attribution
("DHS spokesperson Jane Roe", "a witness", "CBS News reported") into an id goes
through :func:`identify` here, so an id never depends on which stage computed it:
:func:`canonical_speaker` (grounding) and :func:`fallback_speaker` (reconciling a
record that was never grounded) are the same function.

Ids (docs/grounding.md, "Speakers", has the full table):

* ``outlet:<slug>``: the article's own voice, or another outlet it relays;
* ``agency:<slug>``, ``gov:<slug>``: an agency or government body, its statement or
  someone speaking for it; agencies form a part-of hierarchy (``agencies.yaml``);
* ``anonymous:<agency id>``: an anonymous official of a known agency;
* ``witness:<name>``, ``family:<name>``, ``person:<name>``: named people;
* ``social:@<handle>``: a social media post embedded in the article;
* ``...@<scope>``: an unnamed source (``witness:unnamed@harlow-herald``,
  ``anonymous:officials@harlow-herald``), scoped to its outlet, because one outlet's
  "a witness" is not known to be another's.

:func:`independent_source` maps an id to the source it counts under,
:func:`display_speaker` shows both ("ICE (DHS)"), and :func:`attribution_kind` reads
an id's :data:`~schemas.speakers.AttributionKind`.

The tables are ``pipeline/data/agencies.yaml`` and ``pipeline/data/speakers.yaml``,
extended by YAML files named in ``$TRIANGULATE_SPEAKERS``. This module lives with
the foundations (:mod:`pipeline.kinds`) so that every stage, normalisation included,
can ask it.
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

from schemas.speakers import AttributionKind

SPEAKERS_ENV = "TRIANGULATE_SPEAKERS"
CURATED_TABLES = ("data/agencies.yaml", "data/speakers.yaml")
ENTRY_KEYS = ("name", "aliases", "members", "part_of")

# --------------------------------------------------------------------------- words


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


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
        "newsroom",
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
        "n a",
    }
)

_WITNESS_WORDS = _words(
    """witness witnesses eyewitness eyewitnesses bystander bystanders neighbor neighbors neighbour
    neighbours passerby passersby passer onlooker onlookers resident residents"""
)

# Relatives, and those who speak for a family ("a lawyer for the family"): one voice.
# "parent" alone is left out: "ICE's parent agency" is not a relative.
_FAMILY_WORDS = _words(
    """family families relatives relative mother father mom dad sister brother sisters brothers wife
    husband son daughter sons daughters cousin cousins aunt uncle niece nephew grandmother grandfather
    grandson granddaughter parents siblings sibling stepfather stepmother stepson stepdaughter fiancee
    fiance widow widower"""
)

# Words that describe a role rather than name someone; they are skipped when
# pulling a person's name out of an attribution.
_ROLE_WORDS = (
    _words(
        """a an the of for and with who said says according to in at on by statement spokesperson
        spokesman spokeswoman spokespeople official officials press secretary assistant deputy chief
        director sergeant sgt lieutenant lt captain capt detective det officer agent commissioner
        sheriff mayor governor gov senator sen rep representative attorney lawyer friend police
        department mr mrs ms dr senior acting interim special supervisory public information
        affairs his her their its he she they"""
    )
    | _WITNESS_WORDS
    | _FAMILY_WORDS
)

# Words an unnamed authority is made of ("federal immigration officials", "a police
# spokesperson", "the department"): such a voice cannot be tied to one agency.
_AUTHORITY_WORDS = _words(
    """officials official authorities authority police investigators investigator prosecutors
    prosecutor agents agent officers officer deputies deputy troopers trooper law enforcement
    government department agency administration statement spokesperson spokesman spokeswoman
    spokespeople federal state local county city immigration senior coroner medical examiner
    sheriff detectives detective"""
)
_FILLER_WORDS = _words("a an the one some several other said says according to")

_ANONYMOUS_WORDS = _words("source sources anonymous anonymously anonymity")
_ANONYMOUS_PHRASES = (
    "not authorized to",
    "not authorised to",
    "not be named",
    "not to be named",
    "not be identified",
    "not to be identified",
    "on background",
    "without being named",
    "familiar with",
)

# --------------------------------------------------------------------------- folding


_ACRONYM_DOT = re.compile(r"(?<=\w)\.(?=\w)")
_NOT_WORD = re.compile(r"[^\w]+")


# Every rule folds the same few words many times over, and a run sees each
# attribution in many records: memoised, bounded.
@lru_cache(maxsize=1 << 16)
def fold(text: str) -> str:
    """Lowercase, strip accents, turn punctuation into spaces and collapse whitespace."""
    no_marks = text.casefold()
    if not no_marks.isascii():
        decomposed = unicodedata.normalize("NFKD", no_marks)
        no_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    # Dots inside acronyms ("U.S.") vanish rather than split the word.
    no_marks = _ACRONYM_DOT.sub("", no_marks)
    return " ".join(_NOT_WORD.sub(" ", no_marks).split())


def slugify(text: str) -> str:
    return fold(text).replace(" ", "-").replace("_", "-") or "unknown"


def _alias_key(text: str) -> str:
    key = fold(text)
    # "the", "U.S." and "United States" prefixes never distinguish agencies.
    for prefix in ("the ", "us ", "united states "):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _outlet_key(text: str) -> str:
    # Unlike agencies, "U.S." may be part of an outlet's name ("U.S. News Daily").
    return fold(text).removeprefix("the ")


# --------------------------------------------------------------------------- names

_NAME_TOKEN = re.compile(r"[A-ZÀ-ÖØ-Þ][\w'’.-]*")
_POSSESSIVE = re.compile(r"(?:['’]s|s['’])$")
_NAME_PARTICLES = frozenset({"de", "del", "la", "da", "van", "von", "der", "bin", "al", "y", "di", "le"})


def _name_runs(text: str) -> list[str]:
    """Runs of capitalised words that are not role words, in order."""
    runs: list[str] = []
    run: list[str] = []

    def close() -> None:
        while run and fold(run[-1]) in _NAME_PARTICLES:
            run.pop()
        if run:
            runs.append(" ".join(run))
        run.clear()

    for token in re.split(r"[\s,;:()]+", text):
        if _POSSESSIVE.search(token) and _NAME_TOKEN.match(token):
            # A possessor ("Aldo Brenn's sister") is whom the speaker is related to.
            run.clear()
            continue
        bare = token.strip(".'’\"")
        is_name = bool(_NAME_TOKEN.fullmatch(bare)) and fold(bare) not in _ROLE_WORDS
        if is_name or (run and fold(bare) in _NAME_PARTICLES):
            run.append(bare)
        else:
            close()
    close()
    return runs


def _longest(runs: Iterable[str]) -> str | None:
    best: str | None = None
    for run in runs:
        if best is None or len(run.split()) > len(best.split()):
            best = run
    return best


def person_name(text: str) -> str | None:
    """The longest run of capitalised words that are not role words, e.g. 'Maria Lopez'.

    A possessor is not the person: "Aldo Brenn's sister" names nobody."""
    return _longest(_name_runs(text))


# --------------------------------------------------------------------------- outlets by rule

# A masthead word closes most outlet names ("The Arizona Republic", "U.S. News Daily").
_MASTHEAD_WORDS = _words(
    """news times post journal herald tribune gazette daily chronicle courier ledger observer examiner
    register inquirer dispatch sentinel bulletin monitor bee star globe telegraph guardian republic
    press radio television tv magazine newsroom newswire"""
)
_NAME_CONNECTORS = _words("of the and de la del el y &")
_NETWORKS = r"(?:NBC|CBS|ABC|FOX|Fox|CW|PBS|Telemundo|Univision)"
_PLACE_WORD = r"[A-Z][\w.'’-]*"
# A network's local station: "NBC Chicago", "Fox 10 Phoenix", "ABC15", "CBS News Texas".
_AFFILIATE = re.compile(
    rf"{_NETWORKS}(?:\s?\d{{1,2}}(?:\s+{_PLACE_WORD}){{0,3}}|(?:\s+News)?(?:\s+{_PLACE_WORD}){{1,3}})"
)
# A broadcast call sign ("KTAR News", "KPNX 12", "WBEZ"), a channel ("12News", "Channel 9"), or a
# station branded by its channel number ("Mile High 11", "River Valley 7 News"): a speaker whose
# capitalised name ends in a channel number is a station, since people's names carry no numbers.
_STATION = re.compile(
    r"[KW][A-Z]{2,3}(?:-(?:TV|FM|AM|DT|CD))?(?:\s?\d{1,2})?(?:\s+News(?:\s?\d{1,2})?)?"
    r"|\d{1,2}\s?News|Channel\s+\d{1,2}(?:\s+" + _PLACE_WORD + r"){0,3}"
    r"|(?:" + _PLACE_WORD + r"\s+){1,3}\d{1,2}(?:\s+News)?"
)
# Wording that relays another outlet's report, taken off before the name is read.
_RELAY_LEAD = re.compile(
    r"^(?:according\s+to|as\s+(?:first\s+)?reported\s+(?:by|in|on)|(?:first\s+)?reported\s+(?:by|in|on)"
    r"|per|via|citing)\s+",
    re.IGNORECASE,
)
_REPORT_BY = re.compile(
    r"^(?:an?|the)\s+(?:\w+\s+){0,2}?(?:report|reporting|story|broadcast|investigation|article)"
    r"\s+(?:by|from|in|on)\s+",
    re.IGNORECASE,
)
_REPORT_OF = re.compile(
    r"^(?:an?|the)\s+(?P<name>.+?)\s+(?:report|story|broadcast|investigation|article)$", re.IGNORECASE
)
_RELAY_TAIL = re.compile(
    r"\s+(?:first\s+|also\s+|previously\s+|later\s+|earlier\s+)?(?:reported|reports|reporting|said|says"
    r"|wrote|writes|published|aired|broadcast)\b.*$",
    re.IGNORECASE,
)


def relayed_name(text: str) -> str:
    """``text`` without the wording that relays a report: "a report by CBS News" -> "CBS News"."""
    bare = text.strip().strip(".,;:\"'“”")
    bare = _RELAY_LEAD.sub("", bare)
    bare = _REPORT_BY.sub("", bare)
    bare = _RELAY_TAIL.sub("", bare)
    of = _REPORT_OF.match(bare)
    if of:
        bare = of["name"]
    return re.sub(r"^the\s+", "", bare.strip(), flags=re.IGNORECASE).strip(" ,.")


def _masthead(name: str) -> bool:
    tokens = name.split()
    if not 1 <= len(tokens) <= 6 or fold(tokens[-1]) not in _MASTHEAD_WORDS:
        return False
    return all(
        token[:1].isupper() or token[:1].isdigit() or token.casefold() in _NAME_CONNECTORS for token in tokens
    )


# --------------------------------------------------------------------------- local bodies

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
_LOCAL_KIND_LABEL = {
    "police": "police",
    "sheriff": "sheriff",
    "fire": "fire department",
    "dps": "Department of Public Safety",
    "highway-patrol": "Highway Patrol",
    "state-patrol": "State Patrol",
}
# A sheriff's office belongs to a county (or parish, borough) and is named after it.
_COUNTY_WORDS = frozenset({"county", "parish", "borough", "city"})
_LOCAL_ID = re.compile(
    r"^agency:(?P<place>[a-z0-9-]+?)-(?P<kind>police|sheriff|fire|dps|highway-patrol|state-patrol)$"
)
_GOV_BODY = re.compile(
    rf"\b(?i:city|town|village)\s+of\s+(?P<place>{_PLACE_WORD}(?:\s+{_PLACE_WORD}){{0,2}})"
)


@dataclass(frozen=True)
class _AgencyMatch:
    speaker_id: str
    words: frozenset[str]  # the folded words that named it, not part of any person's name


def _local_agency(text: str) -> _AgencyMatch | None:
    """'Tempe police' -> agency:tempe-police, 'Harlow County Sheriff's Office' ->
    agency:harlow-county-sheriff, 'City of Tempe' -> gov:tempe."""
    for match in _LOCAL_AGENCY.finditer(text):
        place = fold(match.group("place"))
        # Drop role words that precede the place ("Spokesperson Tempe police").
        place_words = [w for w in place.split() if w not in _ROLE_WORDS]
        if not place_words:
            continue
        kind = _LOCAL_KIND_SLUG.get(fold(match.group("kind")).split()[0], "police")
        if kind == "sheriff" and place_words[-1] not in _COUNTY_WORDS:
            # "Maricopa sheriff" and "Maricopa County Sheriff's Office" are one office.
            place_words.append("county")
        return _AgencyMatch(f"agency:{'-'.join(place_words)}-{kind}", frozenset(fold(match.group(0)).split()))
    body = _GOV_BODY.search(text)
    if body:
        return _AgencyMatch(f"gov:{slugify(body['place'])}", frozenset(fold(body.group(0)).split()))
    return None


def _local_parent(speaker_id: str) -> str | None:
    """The government a local body belongs to, read off its id: agency:tempe-police -> gov:tempe."""
    match = _LOCAL_ID.match(speaker_id)
    if match is None:
        return None
    place = match["place"]
    if match["kind"] == "police" and (place == "state" or place.endswith("-state")):
        # State police belong to the state: agency:michigan-state-police -> gov:michigan.
        place = place.removesuffix("state").rstrip("-")
    return f"gov:{place}" if place else None


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Speaker:
    """What an attribution resolves to: its id, what kind of voice it is, and the
    independent source it counts under."""

    id: str
    kind: AttributionKind
    source: str


@dataclass
class SpeakerTable:
    """Names -> ids, and the part-of hierarchy, built from one or more YAML tables."""

    aliases: dict[str, str] = field(default_factory=dict)  # alias key -> agency (or other non-outlet) id
    outlets: dict[str, str] = field(default_factory=dict)  # outlet name key -> outlet id
    members: dict[str, str] = field(default_factory=dict)  # folded person name -> id they speak for
    parents: dict[str, str | None] = field(default_factory=dict)  # id -> part_of (None: a root)
    names: dict[str, str] = field(default_factory=dict)  # id -> how a reviewer sees it
    _memo: dict[tuple[str, str | None, str | None], Speaker] = field(
        default_factory=dict, repr=False, compare=False
    )

    def add(self, table: Mapping[str, Any], *, source: str) -> None:
        """Add one table's entries (later entries win); refuse malformed ones and part-of cycles."""
        self._memo.clear()
        placed: list[str] = []
        for speaker_id, raw in table.items():
            if not isinstance(speaker_id, str) or ":" not in speaker_id:
                raise ValueError(f"{source}: speaker id {speaker_id!r} must look like 'agency:dhs'")
            entry: Any = {} if raw is None else raw
            if not isinstance(entry, Mapping):
                raise ValueError(f"{source}: entry for {speaker_id} must be a mapping")
            unknown = sorted(str(key) for key in entry if key not in ENTRY_KEYS)
            if unknown:
                raise ValueError(
                    f"{source}: {speaker_id} has unknown key(s) {', '.join(unknown)}; "
                    f"expected {', '.join(ENTRY_KEYS)}"
                )
            aliases = _as_strings(entry.get("aliases", []), source, speaker_id)
            is_outlet = speaker_id.startswith("outlet:")
            for alias in aliases:
                if is_outlet:
                    self.outlets[_outlet_key(alias)] = speaker_id
                else:
                    self.aliases[_alias_key(alias)] = speaker_id
            for person in _as_strings(entry.get("members", []), source, speaker_id):
                self.members[fold(person)] = speaker_id
            name = entry.get("name")
            if name is not None and not isinstance(name, str):
                raise ValueError(f"{source}: name of {speaker_id} must be a string")
            if name:
                self.names[speaker_id] = name
            elif aliases:
                self.names.setdefault(speaker_id, aliases[0])
            if "part_of" in entry:
                parent = entry["part_of"]
                if parent is not None and (not isinstance(parent, str) or ":" not in parent):
                    raise ValueError(f"{source}: part_of of {speaker_id} must be an id like 'agency:dhs'")
                self.parents[speaker_id] = parent
                placed.append(speaker_id)
        self._refuse_cycles(placed, source)

    def parent(self, speaker_id: str) -> str | None:
        if speaker_id in self.parents:
            return self.parents[speaker_id]
        return _local_parent(speaker_id)

    def root(self, speaker_id: str) -> str:
        """The top of ``speaker_id``'s part-of chain (itself when it is part of nothing)."""
        seen = {speaker_id}
        current = speaker_id
        while (parent := self.parent(current)) is not None and parent not in seen:
            seen.add(parent)
            current = parent
        return current

    def _refuse_cycles(self, placed: Iterable[str], source: str) -> None:
        # A new cycle runs through an entry this source placed, so it is reported from there.
        for start in placed:
            chain = [start]
            current = self.parent(start)
            while current is not None:
                if current in chain:
                    loop = [*chain[chain.index(current) :], current]
                    raise ValueError(f"{source}: part_of forms a cycle: {' -> '.join(loop)}")
                chain.append(current)
                current = self.parent(current)

    def _agency_match(self, text: str) -> _AgencyMatch | None:
        folded = f" {fold(text)} "
        best: tuple[int, str, str] | None = None
        for alias, speaker_id in self.aliases.items():
            if alias and f" {alias} " in folded and (best is None or len(alias) > best[0]):
                best = (len(alias), alias, speaker_id)
        if best is None:
            return None
        return _AgencyMatch(best[2], frozenset(best[1].split()) | {"us", "united", "states", "the"})

    def agency_in(self, text: str) -> str | None:
        """The id of the longest alias that occurs as whole words in ``text``."""
        match = self._agency_match(text)
        return match.speaker_id if match else None

    def member_in(self, text: str) -> str | None:
        folded = f" {fold(text)} "
        for person, speaker_id in self.members.items():
            if person and f" {person} " in folded:
                return speaker_id
        return None

    def outlet_named(self, name: str) -> str | None:
        """The outlet ``name`` is, by the table or by rule (docs/grounding.md, "Outlets"), or None."""
        key = _outlet_key(name)
        if not key:
            return None
        if key in self.outlets:
            return self.outlets[key]
        bare = re.sub(r"^the\s+", "", name.strip(), flags=re.IGNORECASE)
        by_rule = _AFFILIATE.fullmatch(bare) or _STATION.fullmatch(bare)
        if by_rule or (_masthead(bare) and self.agency_in(bare) is None):
            return f"outlet:{slugify(bare)}"
        return None

    def outlet_id(self, outlet: str | None) -> str:
        """The id of an article's own outlet: its listed id when the table knows it."""
        if not outlet or not outlet.strip():
            return "outlet:unknown"
        return self.outlets.get(_outlet_key(outlet)) or f"outlet:{slugify(outlet)}"

    def canonical(self, attribution: str, *, outlet: str | None) -> str:
        return identify(attribution, outlet=outlet, table=self).id


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


def _curated(name: str) -> Mapping[str, Any]:
    data = yaml.safe_load(resources.files("pipeline").joinpath(name).read_text(encoding="utf-8"))
    assert isinstance(data, Mapping), name
    return data


def user_table_paths(env_value: str | None = None) -> list[Path]:
    raw = os.environ.get(SPEAKERS_ENV, "") if env_value is None else env_value
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def load_speaker_table(extra: Iterable[Path] = ()) -> SpeakerTable:
    """The curated tables, then each extra file in order (later entries win)."""
    table = SpeakerTable()
    for name in CURATED_TABLES:
        table.add(_curated(name), source=f"pipeline/{name}")
    for path in extra:
        table.add(_read_yaml(path), source=str(path))
    return table


@lru_cache(maxsize=8)
def _cached_table(paths: tuple[Path, ...], mtimes: tuple[float, ...]) -> SpeakerTable:
    del mtimes  # part of the cache key only: an edited file is re-read
    return load_speaker_table(paths)


def default_table() -> SpeakerTable:
    """Curated tables plus the files in ``$TRIANGULATE_SPEAKERS`` (re-read when they change)."""
    paths = tuple(user_table_paths())
    mtimes = tuple(p.stat().st_mtime if p.exists() else -1.0 for p in paths)
    missing = [str(p) for p, m in zip(paths, mtimes, strict=True) if m < 0]
    if missing:
        raise FileNotFoundError(f"{SPEAKERS_ENV} names missing file(s): {', '.join(missing)}")
    return _cached_table(paths, mtimes)


# --------------------------------------------------------------------------- identify

_HANDLE = re.compile(r"(?<![\w@.])@(?P<handle>[A-Za-z0-9_]{1,30})\b")
_MEMO_LIMIT = 1 << 16


def identify(
    attribution: str,
    *,
    outlet: str | None,
    article_id: str | None = None,
    table: SpeakerTable | None = None,
) -> Speaker:
    """The speaker an attribution names, as an article (or an extractor) words it.

    ``outlet`` is the article's own outlet; ``article_id`` scopes unnamed sources
    when the outlet is not known. The rules, first that applies, are listed in
    docs/grounding.md ("Speakers").
    """
    table = table or default_table()
    key = (attribution or "", outlet, article_id)
    found = table._memo.get(key)
    if found is None:
        speaker_id, kind = _identify(table, attribution or "", outlet, article_id)
        found = Speaker(speaker_id, kind, independent_source(speaker_id, table=table))
        if len(table._memo) >= _MEMO_LIMIT:
            table._memo.clear()
        table._memo[key] = found
    return found


def canonical_speaker(
    attribution: str, *, outlet: str | None, table: SpeakerTable | None = None, article_id: str | None = None
) -> str:
    """The canonical speaker id for an attribution (see :func:`identify`)."""
    return identify(attribution, outlet=outlet, article_id=article_id, table=table).id


def fallback_speaker(attribution: str, outlet: str | None, article_id: str) -> str:
    """The speaker id of a value whose record carries none: the same id grounding gives."""
    return identify(attribution, outlet=outlet, article_id=article_id).id


def outlet_id(outlet: str | None, table: SpeakerTable | None = None) -> str:
    return (table or default_table()).outlet_id(outlet)


def _scope(table: SpeakerTable, outlet: str | None, article_id: str | None) -> str:
    if outlet and outlet.strip():
        return table.outlet_id(outlet).removeprefix("outlet:")
    return slugify(article_id) if article_id else "unknown"


def _own_voice(table: SpeakerTable, outlet: str | None, article_id: str | None) -> str:
    """The id of the article's own voice; without an outlet, the article stands for it."""
    if outlet and outlet.strip():
        return table.outlet_id(outlet)
    return f"outlet:{slugify(article_id)}" if article_id else "outlet:unknown"


def _outlet_voice(table: SpeakerTable, speaker_id: str, outlet: str | None) -> tuple[str, AttributionKind]:
    own = outlet is not None and outlet.strip() != "" and table.outlet_id(outlet) == speaker_id
    return speaker_id, "outlet" if own else "relayed"


def _identify(
    table: SpeakerTable, attribution: str, outlet: str | None, article_id: str | None
) -> tuple[str, AttributionKind]:
    text = attribution.strip()
    folded = fold(text)
    scope = _scope(table, outlet, article_id)
    # 1. The article's own voice.
    if folded in _OUTLET_WORDS or (outlet and folded == fold(outlet)):
        return _own_voice(table, outlet, article_id), "outlet"
    words = set(folded.split())

    # 2. An embedded post: "Jane Roe (@janeroe)". An agency's or outlet's own account is that body.
    handle = _HANDLE.search(text)
    if handle:
        author = text[: handle.start()].strip(" \t—–-()")
        for name in (author, handle["handle"]):
            if name and table.aliases.get(_alias_key(name)):
                return table.aliases[_alias_key(name)], "agency"
            outlet_named = table.outlet_named(name) if name else None
            if outlet_named:
                return _outlet_voice(table, outlet_named, outlet)
        return f"social:@{handle['handle'].casefold()}", "social_post"

    # 3. A listed name, as the whole attribution.
    relayed = relayed_name(text)
    for candidate in dict.fromkeys([text, relayed]):
        exact = table.aliases.get(_alias_key(candidate))
        if exact:
            return exact, "agency"
    # 4. Another outlet's report ("CBS News reported", "according to NBC Chicago").
    outlet_named = table.outlet_named(relayed) if relayed else None
    if outlet_named:
        return _outlet_voice(table, outlet_named, outlet)
    # 5. A listed spokesperson.
    member = table.member_in(text)
    if member:
        return member, "official"
    # 6. Witnesses, named or not; a named one keeps their name across outlets.
    if words & _WITNESS_WORDS:
        name = _person_in(table, text)
        return (f"witness:{slugify(name)}" if name else f"witness:unnamed@{scope}"), "witness"
    agency = table._agency_match(text) or _local_agency(text)
    # 7. Anonymous sources: under their agency when they have one, else scoped to the outlet.
    if words & _ANONYMOUS_WORDS or any(phrase in folded for phrase in _ANONYMOUS_PHRASES):
        if agency is not None:
            return f"anonymous:{agency.speaker_id}", "anonymous_official"
        if words & _AUTHORITY_WORDS:
            return f"anonymous:officials@{scope}", "anonymous_official"
        return f"anonymous:sources@{scope}", "anonymous"
    # 8. Relatives, and those who speak for the family.
    if words & _FAMILY_WORDS:
        name = _person_in(table, text)
        return (f"family:{slugify(name)}" if name else f"family:unnamed@{scope}"), "family"
    # 9. An agency named inside the attribution: the agency, or a named official of it.
    if agency is not None:
        return agency.speaker_id, "official" if _person_in(table, text, agency.words) else "agency"
    # 10. Unnamed authorities ("officials", "the department"): no agency known, so scoped.
    content = words - _FILLER_WORDS
    if content and content <= _AUTHORITY_WORDS:
        return f"anonymous:officials@{scope}", "anonymous_official"
    # 11. A named person.
    name = _person_in(table, text)
    if name:
        return f"person:{slugify(name)}", "person"
    # 12. Someone described but not named ("the driver"): scoped to the outlet.
    described = [w for w in folded.split() if w not in _FILLER_WORDS]
    return f"person:{'-'.join(described) or 'unnamed'}@{scope}", "person"


def _person_in(table: SpeakerTable, text: str, exclude: frozenset[str] = frozenset()) -> str | None:
    """The longest person's name in ``text``: not an agency, an outlet or the words in ``exclude``."""
    runs = [
        run
        for run in _name_runs(text)
        if not set(fold(run).split()) <= exclude
        and table.agency_in(run) is None
        and _local_agency(run) is None
        and table.outlet_named(run) is None
    ]
    return _longest(runs)


# --------------------------------------------------------------------------- what an id counts as


def _parts(speaker_id: str) -> tuple[str, str, str | None]:
    """'witness:unnamed@harlow-herald' -> ('witness', 'unnamed', 'harlow-herald')."""
    prefix, _, rest = speaker_id.partition(":")
    if "@" in rest and not rest.startswith("@"):
        name, _, scope = rest.rpartition("@")
        return prefix, name, scope
    return prefix, rest, None


def independent_source(speaker_id: str, *, table: SpeakerTable | None = None) -> str:
    """The source ``speaker_id`` counts under when independent sources are counted.

    An agency counts under the root of its part-of chain (agency:ice -> agency:dhs,
    agency:tempe-police -> gov:tempe), and so does an anonymous official of it; a named
    witness or relative counts as the person (witness:dolores-ybarra ->
    person:dolores-ybarra), whatever role an article gave them; anything else,
    unnamed sources included, counts as itself.
    """
    prefix, name, scope = _parts(speaker_id)
    if prefix in {"witness", "family"} and scope is None and name != "unnamed":
        return f"person:{name}"
    if prefix in {"person", "social", "witness", "family"} or scope is not None:
        return speaker_id
    table = table or default_table()
    if prefix == "anonymous":
        return table.root(name)
    return table.root(speaker_id)


def attribution_kind(
    speaker_id: str,
    *,
    outlet: str | None = None,
    article_id: str | None = None,
    table: SpeakerTable | None = None,
) -> AttributionKind:
    """The kind of voice an id is, read off the id alone.

    An outlet id is ``outlet`` when it is the own voice of the article ``outlet`` and
    ``article_id`` describe (as :func:`identify` would give it), else ``relayed``. An
    agency id is ``agency``: a named official speaks under the agency's id, so only
    :func:`identify` tells ``official`` apart.
    """
    prefix, name, scope = _parts(speaker_id)
    if prefix == "outlet":
        own = _own_voice(table or default_table(), outlet, article_id)
        return "outlet" if speaker_id == own else "relayed"
    if prefix == "anonymous":
        return "anonymous_official" if ":" in name or name == "officials" else "anonymous"
    simple: dict[str, AttributionKind] = {
        "witness": "witness",
        "family": "family",
        "social": "social_post",
        "person": "person",
    }
    return simple.get(prefix, "agency")


# Slug words of an outlet that are written in capitals: networks, call signs, acronyms.
_NETWORK_WORD = re.compile(r"(?:nbc|cbs|abc|cw|pbs)\d*")
_CALL_SIGN_WORD = re.compile(r"[kw][a-z]{2,3}")
_ABBREVIATIONS = frozenset({"st", "mt", "ft"})


def _title(slug: str, *, outlet: bool = False) -> str:
    """A readable name from a slug, for ids no table names: "harlow-county" -> "Harlow County"."""
    words = [w for w in slug.split("-") if w]
    shown = []
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else None
        call_sign = (
            index == 0
            and _CALL_SIGN_WORD.fullmatch(word) is not None
            and (following is None or following.isdigit() or following in {"news", "tv", "fm", "am"})
        )
        acronym = not re.search(r"[aeiouy]", word) and word not in _ABBREVIATIONS
        if word in _NAME_CONNECTORS:
            shown.append(word)
        elif outlet and word == "us":
            shown.append("U.S.")
        elif outlet and (_NETWORK_WORD.fullmatch(word) or call_sign or acronym):
            shown.append(word.upper())
        else:
            shown.append(word[:1].upper() + word[1:])
    return " ".join(shown)


def _label(table: SpeakerTable, speaker_id: str) -> str:
    """How a reviewer sees one id, without what it counts under."""
    if speaker_id in table.names:
        return table.names[speaker_id]
    prefix, name, scope = _parts(speaker_id)
    where = f" (in {_label(table, f'outlet:{scope}')})" if scope is not None else ""
    if prefix == "anonymous":
        if ":" in name:
            return f"anonymous {_label(table, name)} source"
        return f"{'unnamed officials' if name == 'officials' else 'anonymous sources'}{where}"
    if prefix in {"witness", "family"}:
        role = "witness" if prefix == "witness" else "relative"
        return f"unnamed {role}{where}" if name == "unnamed" else f"{_title(name)} ({prefix})"
    if prefix == "social":
        return f"{name} (social post)"
    if prefix == "person":
        return f"{name.replace('-', ' ')}{where}" if scope is not None else _title(name)
    local = _LOCAL_ID.match(speaker_id)
    if local:
        return f"{_title(local['place'])} {_LOCAL_KIND_LABEL[local['kind']]}"
    return _title(name, outlet=prefix == "outlet")


def display_speaker(speaker_id: str, *, table: SpeakerTable | None = None) -> str:
    """The speaker and, when it differs, the source it counts under: "ICE (DHS)"."""
    table = table or default_table()
    label = _label(table, speaker_id)
    source = independent_source(speaker_id, table=table)
    prefix, name, _ = _parts(speaker_id)
    # The label already names the source when it is the speaker itself, the agency an
    # anonymous official belongs to, or the person a named witness or relative is.
    named = {speaker_id, name} if prefix == "anonymous" else {speaker_id}
    if source in named or prefix in {"witness", "family"}:
        return label
    return f"{label} ({_label(table, source)})"
