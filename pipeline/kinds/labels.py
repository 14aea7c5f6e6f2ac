"""Labels and wordings: categories from a small vocabulary, injury severity, yes/no, and free
text, with the strategies of the ``category``, ``label``, ``place_category``, ``precision``,
``severity``, ``boolean``, ``summary`` and ``affiliation`` kinds."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.kinds.base import (
    NO_CONTEXT,
    PUNCT,
    KindStrategy,
    Normalized,
    Relation,
    ValueContext,
    clean_text,
    relate_text,
)
from pipeline.kinds.support import ValueKind
from pipeline.kinds.words import ARTICLES, fold

# --------------------------------------------------------------------------- categories

# Canonical classes for categorical fields; the first matching phrase wins.
_CATEGORY_CLASSES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "subjects[].outcome": [
        ("uninjured", ("uninjured", "unhurt", "not injured", "unharmed")),
        ("killed", ("killed", "died", "dead", "deceased", "fatally", "death")),
        ("injured", ("injured", "wounded", "hurt", "hospitalized")),
        ("arrested", ("arrested", "detained", "custody", "apprehended")),
    ],
    "subjects[].place_of_death": [
        ("at the scene", ("scene", "on site", "where he was shot", "where she was shot")),
        ("at the hospital", ("hospital", "medical center", "medical centre", "trauma center", "clinic")),
        ("in custody", ("custody", "jail", "detention")),
    ],
    "subjects[].armed_with": [
        ("unarmed", ("unarmed", "no weapon", "not armed", "empty handed")),
        ("vehicle", ("vehicle", "car", "van", "truck", "suv", "pickup", "sedan")),
        ("firearm", ("gun", "firearm", "handgun", "pistol", "rifle", "shotgun", "revolver")),
        ("knife", ("knife", "blade", "machete")),
    ],
    "subjects[].gender": [
        ("female", ("female", "woman", "girl", "f")),
        ("male", ("male", "man", "boy", "m")),
    ],
    "subjects[].nationality": [],
    "what.event_type": [],
    "what.operation_name": [],
}
_CATEGORY_STOPWORDS = {"national", "citizen", "of", "at", "in", "on", "by", "with", "operation"}


@dataclass(frozen=True)
class Category:
    klass: str | None
    words: tuple[str, ...]


def _parse_category(template: str, text: str) -> Category:
    cleaned = PUNCT.sub(" ", fold(text).replace("-", " "))
    words = tuple(w for w in cleaned.split() if w not in ARTICLES)
    padded = f" {' '.join(words)} "
    for klass, phrases in _CATEGORY_CLASSES.get(template, []):
        if any(f" {p} " in padded for p in phrases):
            return Category(klass, words)
    return Category(None, tuple(w for w in words if w not in _CATEGORY_STOPWORDS) or words)


# --------------------------------------------------------------------------- severity

# Ordered injury levels. Quantity words ("several", "multiple") say nothing
# about severity and so are compatible with every level.
_SEVERITY_LEVELS: list[tuple[int, tuple[str, ...]]] = [
    (1, ("minor", "superficial", "non life threatening", "not life threatening", "slight", "light",
         "treated and released", "scrapes", "bruises")),
    (2, ("serious", "severe", "significant", "major", "grave", "extensive", "moderate")),
    (3, ("critical", "life threatening", "gravely")),
    (4, ("fatal", "died", "dead", "killed", "mortal")),
]  # fmt: skip
_SEVERITY_QUANTITY = ("several", "multiple", "numerous", "various", "many", "some")
_STABLE = ("stable", "good condition", "fair condition", "improving")
_SEVERITY_FILLER = {
    "injury", "injuries", "condition", "in", "was", "is", "were", "listed", "suffered", "sustained",
    "with", "and", "remains", "remained", "reported", "to", "be", "of", "has", "had",
}  # fmt: skip


@dataclass(frozen=True)
class Severity:
    level: int | None
    stable: bool
    quantity: bool
    words: frozenset[str]


def _parse_severity(text: str) -> Severity:
    t = " ".join(PUNCT.sub(" ", fold(text).replace("-", " ")).split())
    padded = f" {t} "
    level = None
    for value, phrases in _SEVERITY_LEVELS:
        if any(f" {p} " in padded for p in phrases):
            level = value if level is None else max(level, value)
    stable = any(f" {p} " in padded for p in _STABLE)
    quantity = any(f" {p} " in padded for p in _SEVERITY_QUANTITY)
    return Severity(level, stable, quantity, frozenset(t.split()) - _SEVERITY_FILLER - ARTICLES)


def _relate_severity(a: Severity, b: Severity) -> Relation:
    if a.level is not None and b.level is not None and a.level != b.level:
        return Relation.CONTRADICTION
    # "stable" against "critical"/"fatal" is opposed, unless a value says both.
    for x, y in ((a, b), (b, a)):
        if x.stable and x.level is None and y.level is not None and y.level >= 3 and not y.stable:
            return Relation.CONTRADICTION
    known = any(x.level is not None or x.stable or x.quantity for x in (a, b))
    if not known and a.words and b.words and not (a.words & b.words):
        return relate_text(" ".join(sorted(a.words)), " ".join(sorted(b.words)))
    return Relation.VARIANT


# --------------------------------------------------------------------------- booleans

_TRUE = {"yes", "true", "y", "1", "confirmed", "was", "did"}
_FALSE = {"no", "false", "n", "0", "not", "none", "never", "wasnt", "didnt", "without"}


def parse_bool(text: str | bool) -> bool | None:
    if isinstance(text, bool):
        return text
    words = set(re.findall(r"[a-z0-9]+", fold(text).replace("'", "")))
    if words & _FALSE:
        return False
    if words & _TRUE:
        return True
    return None


# --------------------------------------------------------------------------- strategies


class CategoryStrategy(KindStrategy):
    """A label from a small vocabulary. Where the field has classes (``_CATEGORY_CLASSES``) the
    form is the class ("died" is "killed"); two classes contradict. Other labels compare by
    their words: more words are more specific, other words contradict.

    ``category``, ``label`` and ``place_category`` share this and differ only in how their
    evidence is checked: a category is often paraphrased, a proper-noun label or a closed
    place label is checked word for word.
    """

    support: ValueKind = "summary"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        category = _parse_category(field, text)
        return Normalized(category.klass or " ".join(category.words), category)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        assert isinstance(a.data, Category) and isinstance(b.data, Category)
        if a.data.klass is not None and b.data.klass is not None:
            return Relation.CONTRADICTION  # different classes: the same class has the same form
        return relate_text(" ".join(a.data.words), " ".join(b.data.words))


class SeverityStrategy(KindStrategy):
    """Injuries or condition as worded: levels (minor < serious < critical < fatal) and
    "stable"; opposed levels contradict, other wordings are variants."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        severity = _parse_severity(text)
        return Normalized(" ".join(sorted(severity.words)) or clean_text(text), severity)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        assert isinstance(a.data, Severity) and isinstance(b.data, Severity)
        return _relate_severity(a.data, b.data)


class BooleanStrategy(KindStrategy):
    """Yes or no, from words ("was not", "confirmed"); the two contradict."""

    support: ValueKind = "summary"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        flag = parse_bool(text)
        return Normalized(str(flag).lower() if flag is not None else clean_text(text), flag)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.CONTRADICTION


class SummaryStrategy(KindStrategy):
    """Free text that may paraphrase. Factual disagreements surface in the structured fields,
    so differing summaries are variants, never contradictions."""

    support: ValueKind = "summary"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        return Normalized(clean_text(text), None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.VARIANT
