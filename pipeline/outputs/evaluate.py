"""``triangulate eval``: score extracted records against gold annotations.

Gold format (see examples/*/gold.json): ``{"articles": {"<file name>": {"<field key>": value}}}``.
Field keys are paths into IncidentRecord: dotted, ``[i]`` for one list item and
``[]`` for the set of values over all items of a list. An absent key is not
graded; a null gold value means the record must hold null there.

Values are compared by the form the reconciler gives them (the field's kind
strategy's ``eval_key``, read in the record's context: its publication date
for "Friday", its state for "Springfield"), so a value is graded right exactly
when reconcile would count it as the same value as the gold one: "DHS" and
"Department of Homeland Security", "one" and "1", "died" and "killed".

Scoring, per (article, field) pair:

* scalar keys: 1 if the compared forms are equal, else 0;
* ``[]`` keys: the Jaccard index of the two sets of forms (both empty
  counts 1), so a record that finds three of four agencies scores 0.75 rather
  than 0; exact set equality is counted too (``exact_sets``);
* a gold article with no record scores 0 on every field it grades.

Grounding rate is the share of non-null cited values whose quote was located
(status != unfound); unsupported rate the share whose value is not supported by
its own quote. Both are reported per graded field and over every cited value in
every record read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.kinds.base import NO_CONTEXT, KindStrategy, ValueContext, record_context
from pipeline.kinds.strategies import STRATEGIES, strategy_for, template_of
from schemas.evaluation import EvalReport, FieldScore, Mismatch
from schemas.record import Cited, GroundingStatus, IncidentRecord

__all__ = [
    "EvalReport",
    "FieldScore",
    "Mismatch",
    "load_gold",
    "comparison_key",
    "load_records",
    "resolve_field",
    "score_records",
]

# --------------------------------------------------------------------------
# Field paths
# --------------------------------------------------------------------------

_SEGMENT = re.compile(r"^(?P<name>\w+)(?:\[(?P<index>\d*)\])?$")


@dataclass(frozen=True)
class _Segment:
    name: str
    index: int | None  # None: no brackets
    every: bool  # "[]": all items


def _parse_key(key: str) -> list[_Segment]:
    segments = []
    for part in key.split("."):
        match = _SEGMENT.match(part)
        if not match:
            raise ValueError(f"bad gold field key {key!r} (segment {part!r})")
        index = match["index"]
        segments.append(
            _Segment(
                name=match["name"],
                index=int(index) if index else None,
                every=index == "",
            )
        )
    return segments


def is_set_key(key: str) -> bool:
    return "[]" in key


def resolve_field(record: BaseModel, key: str) -> list[Any]:
    """The leaves at ``key``: at most one for a scalar key, one per list item for a '[]' key.

    A leaf is a ``Cited`` or a plain value; a path through a missing list item
    or a null parent yields no leaf (the record does not report it).
    """
    nodes: list[Any] = [record]
    for segment in _parse_key(key):
        next_nodes: list[Any] = []
        for node in nodes:
            if node is None:
                continue
            if not isinstance(node, BaseModel) or segment.name not in type(node).model_fields:
                raise ValueError(f"gold field key {key!r}: no field {segment.name!r}")
            child = getattr(node, segment.name)
            if segment.every:
                next_nodes.extend(child or [])
            elif segment.index is not None:
                if isinstance(child, list) and segment.index < len(child):
                    next_nodes.append(child[segment.index])
            else:
                next_nodes.append(child)
        nodes = next_nodes
    return [n for n in nodes if n is not None]


def _leaf_value(leaf: Any) -> Any:
    return leaf.value if isinstance(leaf, Cited) else leaf


def _cited_leaves(leaves: Iterable[Any]) -> Iterator[Cited[Any]]:
    for leaf in leaves:
        if isinstance(leaf, Cited) and leaf.value is not None:
            yield leaf


def _all_cited(node: Any) -> Iterator[Cited[Any]]:
    if isinstance(node, Cited):
        if node.value is not None:
            yield node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _all_cited(getattr(node, name))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _all_cited(item)


@dataclass
class _Tally:
    cited: int = 0
    grounded: int = 0
    unsupported: int = 0
    ungrounded: int = 0

    def add(self, cited: Cited[Any]) -> None:
        self.cited += 1
        if cited.grounding is None:
            # Never grounded: it counts as not located, and is reported separately.
            self.ungrounded += 1
            return
        if cited.grounding.status != GroundingStatus.unfound:
            self.grounded += 1
        if cited.grounding.supported is False:
            self.unsupported += 1


@dataclass
class _FieldAcc:
    graded: int = 0
    score: float = 0.0
    exact_sets: int = 0
    tally: _Tally = field(default_factory=_Tally)


def _rate(part: int | float, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


def _record_keys(record: IncidentRecord) -> list[str]:
    """Names a gold article may be filed under: the file's basename, the full path, the id."""
    keys: list[str] = []
    for path in (record.source_path, record.provenance.source_path):
        if path:
            keys.append(path)
            keys.append(PurePosixPath(path).name)
            keys.append(PureWindowsPath(path).name)
    keys.append(record.article_id)
    keys.append(record.provenance.article_id)
    return list(dict.fromkeys(keys))


def _gold_articles(gold: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    articles = gold.get("articles", gold)
    if not isinstance(articles, Mapping):
        raise ValueError("gold: 'articles' must map article names to field values")
    for name, fields in articles.items():
        if not isinstance(fields, Mapping):
            raise ValueError(f"gold: article {name!r} must map field keys to values")
    return articles


def _strategy_of_key(key: str) -> KindStrategy:
    try:
        return strategy_for(key)
    except KeyError:
        # A key outside the record's facts (``provenance.outlet``): compared as plain text.
        return STRATEGIES["summary"]


def comparison_key(key: str, value: Any, ctx: ValueContext = NO_CONTEXT) -> str | None:
    """The form eval compares for ``value`` under gold key ``key``; None for no value."""
    return _strategy_of_key(key).eval_key(value, ctx, template_of(key))


def _score_pair(gold_value: Any, leaves: list[Any], key: str, ctx: ValueContext) -> tuple[float, bool, str]:
    """(score, exact, reason) for one graded field of one article."""
    if is_set_key(key):
        gold_items = (
            gold_value if isinstance(gold_value, list) else [] if gold_value is None else [gold_value]
        )
        gold_set = {v for v in (comparison_key(key, g, ctx) for g in gold_items) if v is not None}
        got_set = {
            v for v in (comparison_key(key, _leaf_value(leaf), ctx) for leaf in leaves) if v is not None
        }
        union = gold_set | got_set
        jaccard = len(gold_set & got_set) / len(union) if union else 1.0
        exact = gold_set == got_set
        return jaccard, exact, "" if exact else ("partial-set" if jaccard > 0 else "wrong")
    got = comparison_key(key, _leaf_value(leaves[0]), ctx) if leaves else None
    expected = comparison_key(key, gold_value, ctx)
    if expected == got:
        return 1.0, True, ""
    return 0.0, False, "should-be-null" if expected is None else "wrong"


def _display(leaves: list[Any], key: str) -> Any:
    values = [_leaf_value(leaf) for leaf in leaves]
    if is_set_key(key):
        return values
    return values[0] if values else None


def score_records(
    records: Sequence[IncidentRecord],
    gold: Mapping[str, Any],
    *,
    unreadable_lines: Sequence[str] = (),
) -> EvalReport:
    """Score ``records`` against ``gold`` (the parsed gold.json)."""
    articles = _gold_articles(gold)
    by_name: dict[str, IncidentRecord] = {}
    duplicates: list[str] = []
    unmatched: list[str] = []
    for record in records:
        names = [k for k in _record_keys(record) if k in articles]
        if not names:
            unmatched.append(record.source_path or record.article_id)
            continue
        name = names[0]
        if name in by_name:
            duplicates.append(name)
            continue
        by_name[name] = record

    accs: dict[str, _FieldAcc] = {}
    mismatches: list[Mismatch] = []
    for article_name, gold_fields in articles.items():
        matched = by_name.get(article_name)
        for key, gold_value in gold_fields.items():
            acc = accs.setdefault(key, _FieldAcc())
            acc.graded += 1
            if matched is None:
                mismatches.append(
                    Mismatch(article=article_name, field=key, gold=gold_value, reason="missing-record")
                )
                continue
            leaves = resolve_field(matched, key)
            for cited in _cited_leaves(leaves):
                acc.tally.add(cited)
            score, exact, reason = _score_pair(gold_value, leaves, key, record_context(matched))
            acc.score += score
            acc.exact_sets += int(exact)
            if not exact:
                mismatches.append(
                    Mismatch(
                        article=article_name,
                        field=key,
                        gold=gold_value,
                        got=_display(leaves, key),
                        score=round(score, 4),
                        reason=reason,
                    )
                )

    overall = _Tally()
    for record in records:
        for cited in _all_cited(record):
            overall.add(cited)

    field_scores = [
        FieldScore(
            field=key,
            graded=acc.graded,
            score=round(acc.score, 4),
            accuracy=_rate(acc.score, acc.graded),
            exact_sets=acc.exact_sets if is_set_key(key) else None,
            cited_values=acc.tally.cited,
            grounded=acc.tally.grounded,
            unsupported=acc.tally.unsupported,
            grounding_rate=_rate(acc.tally.grounded, acc.tally.cited),
            unsupported_rate=_rate(acc.tally.unsupported, acc.tally.cited),
        )
        for key, acc in accs.items()
    ]
    graded = sum(a.graded for a in accs.values())
    total = sum(a.score for a in accs.values())
    return EvalReport(
        records_read=len(records),
        unreadable_lines=list(unreadable_lines),
        gold_articles=len(articles),
        matched_articles=len(by_name),
        missing_records=[name for name in articles if name not in by_name],
        unmatched_records=unmatched,
        duplicate_records=duplicates,
        fields=field_scores,
        graded=graded,
        score=round(total, 4),
        accuracy=_rate(total, graded),
        cited_values=overall.cited,
        grounded=overall.grounded,
        unsupported=overall.unsupported,
        not_grounded_yet=overall.ungrounded,
        grounding_rate=_rate(overall.grounded, overall.cited),
        unsupported_rate=_rate(overall.unsupported, overall.cited),
        mismatches=mismatches,
    )


# --------------------------------------------------------------------------
# Files and the command
# --------------------------------------------------------------------------


def load_records(path: Path) -> tuple[list[IncidentRecord], list[str]]:
    """Records from a JSONL file, and 'LINE: error' for each line that is not a record.

    A line holding an extraction result (``{"record": {...}}``) is read as its record.
    """
    records: list[IncidentRecord] = []
    bad: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if isinstance(data, dict) and "record" in data and "article_id" not in data:
                    data = data["record"]
                    if data is None:
                        bad.append(f"{number}: extraction result without a record")
                        continue
                records.append(IncidentRecord.model_validate(data))
            except (json.JSONDecodeError, ValidationError) as exc:
                first = str(exc).splitlines()[0]
                bad.append(f"{number}: {type(exc).__name__}: {first}")
    return records, bad


def load_gold(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: gold must be a JSON object")
    _gold_articles(data)
    return data


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def format_report(report: EvalReport) -> str:
    """The aligned text table ``triangulate eval`` prints."""
    header = ("field", "graded", "accuracy", "cited", "grounded", "unsupported")
    rows = [
        (
            f.field,
            str(f.graded),
            _fmt_rate(f.accuracy) + (f" ({f.exact_sets} exact)" if f.exact_sets is not None else ""),
            str(f.cited_values),
            _fmt_rate(f.grounding_rate),
            _fmt_rate(f.unsupported_rate),
        )
        for f in report.fields
    ]
    rows.append(
        (
            "OVERALL",
            str(report.graded),
            _fmt_rate(report.accuracy),
            str(report.cited_values),
            _fmt_rate(report.grounding_rate),
            _fmt_rate(report.unsupported_rate),
        )
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows[:-1]]
    out += [line(["-" * w for w in widths]), line(rows[-1])]
    out.append("")
    out.append(
        f"records read: {report.records_read}; gold articles: {report.gold_articles}; "
        f"matched: {report.matched_articles}"
    )
    if report.missing_records:
        out.append(f"gold articles with no record (scored 0): {', '.join(report.missing_records)}")
    if report.unmatched_records:
        out.append(f"records with no gold article (not graded): {', '.join(report.unmatched_records)}")
    if report.duplicate_records:
        out.append(
            f"gold articles with several records (first scored): {', '.join(report.duplicate_records)}"
        )
    if report.unreadable_lines:
        out.append(f"unreadable lines: {len(report.unreadable_lines)} ({report.unreadable_lines[0]} ...)")
    if report.not_grounded_yet:
        out.append(f"cited values never grounded (counted as not located): {report.not_grounded_yet}")
    return "\n".join(out)
