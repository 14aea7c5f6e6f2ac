"""Group records (one per article) into incidents.

Two records describe one incident when nothing vetoes it and enough agrees:

* vetoes: dates more than ``DATE_WINDOW_DAYS`` apart; places in different
  states, or different cities that are not one metro ("Tempe" and "Phoenix"
  are compatible, "Tempe" and "Mesa" are not); named subjects whose names
  do not match at all;
* links: a matching subject name (up to spelling, token order and partial
  surnames) together with a compatible date, place or a second full name; or,
  without names, a date within the window and the same city or metro.

Pairs are only compared within blocks (place x 4-day bucket, subject name
token x 4-day bucket, state for records without a city), never all pairs, and
linked pairs are merged with union-find. Records are sorted first, so the
clusters, their ids and the join reasons do not depend on input order.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import multiprocessing.context
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, overload

from pipeline.kinds.gazetteer import City, get_gazetteer
from pipeline.kinds.normalize import NAME_MATCH, DateSpan, name_similarity, name_tokens, resolve_date, soundex
from schemas.incident import JoinReason
from schemas.record import Cited, IncidentRecord

DATE_WINDOW_DAYS = 3
# Dates are bucketed in spans longer than the window, so a pair within the
# window always lies in the same or adjacent buckets.
BUCKET_DAYS = DATE_WINDOW_DAYS + 1
# A block this large says nothing (a common surname, a big city in a busy
# week); comparing all of it would be quadratic, so it is compared only
# through the other keys of its records.
MAX_BLOCK = 400
NAME_VETO = 60.0
# name_similarity memoises up to CACHE_SIZE (2M) pairs of names. Millions of candidate pairs
# would fill it with pairs that never come back (0.6 GB at 300k records), so linking clears it
# whenever it holds more than this many.
NAME_CACHE_LIMIT = 1 << 17


@dataclass(frozen=True)
class RecordFeatures:
    """What clustering compares, computed once per record."""

    date: DateSpan | None
    state: str | None
    city: City | None
    city_text: str | None  # a city the gazetteer does not know, folded
    metro_id: int | None
    names: tuple[str, ...]


class RecordRows(Protocol):
    """Where records wait between the passes of a spilled reconcile (``pipeline.reconcile.spill``)."""

    def load(self, rows: Sequence[int]) -> list[IncidentRecord]: ...


class StoredRecords(Sequence[IncidentRecord]):
    """A cluster's records still in a spill store: read back each time they are iterated, so
    only the incident being judged is in memory. The article ids are kept, because ids are
    settled (``pipeline.reconcile.stable``) for all incidents before any is judged."""

    __slots__ = ("article_ids", "rows", "source")

    def __init__(self, source: RecordRows, rows: Sequence[int], article_ids: Sequence[str]) -> None:
        self.source = source
        self.rows = tuple(rows)
        self.article_ids = tuple(article_ids)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> IncidentRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[IncidentRecord]: ...
    def __getitem__(self, index: int | slice) -> IncidentRecord | Sequence[IncidentRecord]:
        if isinstance(index, slice):
            return self.source.load(self.rows[index])
        return self.source.load([self.rows[index]])[0]

    def __iter__(self) -> Iterator[IncidentRecord]:
        return iter(self.source.load(self.rows))


# A join reason as plain values: article id, linked to, score, matched. A JoinReason model
# takes about 800 bytes; at a million records the plan keeps these instead (see JoinRows).
JoinRow = tuple[str, str | None, float | None, dict[str, float] | None]


def join_reason(row: JoinRow) -> JoinReason:
    article_id, linked_to, score, matched = row
    if linked_to is None:
        return JoinReason(article_id=article_id, linked_to=None)
    assert matched is not None
    return JoinReason(
        article_id=article_id, linked_to=linked_to, score=score, matched=dict(sorted(matched.items()))
    )


class JoinRows(Sequence[JoinReason]):
    """A spilled cluster's join reasons, made into models only when its incident is judged."""

    __slots__ = ("rows",)

    def __init__(self, rows: Sequence[JoinRow]) -> None:
        self.rows = tuple(rows)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> JoinReason: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[JoinReason]: ...
    def __getitem__(self, index: int | slice) -> JoinReason | Sequence[JoinReason]:
        if isinstance(index, slice):
            return [join_reason(row) for row in self.rows[index]]
        return join_reason(self.rows[index])

    def __iter__(self) -> Iterator[JoinReason]:
        return (join_reason(row) for row in self.rows)


@dataclass(frozen=True)
class Cluster:
    id: str
    records: Sequence[IncidentRecord]
    joins: Sequence[JoinReason]

    @property
    def article_ids(self) -> list[str]:
        if isinstance(self.records, StoredRecords):
            return list(self.records.article_ids)
        return [r.article_id for r in self.records]


@dataclass
class _UnionFind:
    parent: list[int] = field(default_factory=list)

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller index wins, so roots are stable regardless of pair order.
            self.parent[max(ra, rb)] = min(ra, rb)


def _value(cited: Cited[Any] | None) -> str | None:
    """A value clustering may use: like a verdict, a link or veto rests only on evidence."""
    if cited is None or (cited.grounding is not None and not cited.grounding.is_evidence):
        return None
    value = cited.value
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def record_features(record: IncidentRecord) -> RecordFeatures:
    published: date | None = record.provenance.published
    span = None
    for raw in (_value(record.when.date), _value(record.when.raw_phrase)):
        if raw is not None:
            span = resolve_date(raw, published)
            if span is not None:
                break
    gazetteer = get_gazetteer()
    state = gazetteer.state_code(_value(record.where.state))
    country = gazetteer.country_code(_value(record.where.country))
    city = None
    city_text = None
    city_raw = _value(record.where.city)
    if city_raw is not None:
        place = gazetteer.place_name(city_raw, state, country)
        city = place.city
        # "Aurora" with no state could be Colorado or Illinois: guessing the
        # larger one would veto its true matches, so it stays unresolved
        # (neither linking by metro nor vetoing by state).
        if city is not None and state is None and gazetteer.is_ambiguous(place.folded, None, country):
            city = None
        city_text = None if city is not None else place.folded
        if city is not None and state is None and city.country == "US":
            state = city.admin1
    metro_id = gazetteer.metro_core(city).geonameid if city is not None else None
    names = tuple(_value(s.name) or "" for s in record.subjects if _value(s.name))
    return RecordFeatures(span, state, city, city_text, metro_id, tuple(n for n in names if name_tokens(n)))


def _place_score(a: RecordFeatures, b: RecordFeatures) -> float | None:
    """0-100 place agreement; None is a veto (incompatible places)."""
    if a.state and b.state and a.state != b.state:
        return None
    if a.city is not None and b.city is not None:
        if a.city.geonameid == b.city.geonameid:
            return 100.0
        if a.metro_id == b.metro_id:
            # Suburb vs metro name, or two suburbs of one metro: only the
            # former is compatible.
            if a.metro_id in (a.city.geonameid, b.city.geonameid):
                return 90.0
            return None
        return None
    if a.city_text is not None and b.city_text is not None:
        from rapidfuzz import fuzz

        return 95.0 if fuzz.ratio(a.city_text, b.city_text) >= 90 else None
    if a.state and b.state:
        return 50.0
    return 0.0


def _subject_score(a: RecordFeatures, b: RecordFeatures) -> float | None:
    """Best name similarity between the two records' subjects; None is a veto."""
    if not a.names or not b.names:
        return 0.0
    best = max(name_similarity(x, y) for x in a.names for y in b.names)
    return None if best < NAME_VETO else best


def compare(a: RecordFeatures, b: RecordFeatures) -> dict[str, float] | None:
    """Field -> score when the two records describe one incident; None otherwise."""
    gap = None
    if a.date is not None and b.date is not None:
        gap = a.date.distance_days(b.date)
        if gap > DATE_WINDOW_DAYS:
            return None
    place = _place_score(a, b)
    if place is None:
        return None
    subject = _subject_score(a, b)
    if subject is None:
        return None
    links = False
    if subject >= NAME_MATCH:
        links = (
            gap is not None
            or place >= 50.0
            or any(
                len(name_tokens(x)) >= 2 and len(name_tokens(y)) >= 2 and name_similarity(x, y) >= NAME_MATCH
                for x in a.names
                for y in b.names
            )
        )
    if not links and not (gap is not None and place >= 90.0):
        return None
    matched: dict[str, float] = {}
    if gap is not None:
        matched["date"] = 100.0 - 25.0 * gap
    if place > 0:
        matched["place"] = place
    if subject > 0:
        matched["subject"] = round(subject, 1)
    return matched


def _bucket(span: DateSpan | None) -> int | None:
    if span is None:
        return None
    return span.start.toordinal() // BUCKET_DAYS


def _blocking_keys(f: RecordFeatures) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    if f.metro_id is not None:
        keys.append(("metro", str(f.metro_id)))
    elif f.city_text is not None:
        keys.append(("city", f"{f.state or ''}:{f.city_text}"))
    seen: set[str] = set()
    for name in f.names:
        tokens = name_tokens(name)
        # A leading given name ("Rafael", "Ana") is shared by thousands of
        # people and makes blocks that grow with the square of the input; the
        # surnames are what a partial name keeps ("Quintero"). "Surname, Given"
        # keeps every token. Surnames are keyed by Soundex so that spelling
        # variants ("Alvarez"/"Alvares", "Ruiz"/"Ruis") share a block.
        if len(name.split()) > 1 and "," not in name:
            tokens = tokens[1:]
        for token in tokens:
            code = soundex(token) if len(token) >= 3 else ""
            if code and code not in seen:
                seen.add(code)
                keys.append(("name", code))
    if f.state is not None:
        keys.append(("state", f.state))
    return keys


class _Vetoes:
    """The vetoes of ``compare()`` that plain ints can check before any pair is compared: dates
    more than the window apart, different states, two known cities that are neither the same
    place nor a suburb and its metro's core (``_place_score``)."""

    def __init__(self, features: Sequence[RecordFeatures]) -> None:
        self.starts = [f.date.start.toordinal() if f.date is not None else None for f in features]
        # (An undated record's end is never read: its start is None.)
        self.ends = [f.date.end.toordinal() if f.date is not None else 0 for f in features]
        self.states = [f.state for f in features]
        self.cities = [f.city.geonameid if f.city is not None else None for f in features]
        self.metros = [f.metro_id for f in features]

    def allow(self, i: int, j: int) -> bool:
        start, other_start = self.starts[i], self.starts[j]
        # Both dated: the same test as DateSpan.distance_days > DATE_WINDOW_DAYS.
        if (
            start is not None
            and other_start is not None
            and (other_start - self.ends[i] > DATE_WINDOW_DAYS or start - self.ends[j] > DATE_WINDOW_DAYS)
        ):
            return False
        state, other_state = self.states[i], self.states[j]
        if state and other_state and other_state != state:
            return False
        city, other_city, metro = self.cities[i], self.cities[j], self.metros[i]
        return (
            city is None
            or other_city is None
            or other_city == city
            or (metro == self.metros[j] and metro in (city, other_city))
        )


def _candidate_pairs(features: Sequence[RecordFeatures]) -> set[tuple[int, int]]:
    """Pairs sharing a blocking key and a date bucket (or adjacent buckets)."""
    blocks: dict[tuple[str, str], dict[int | None, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, f in enumerate(features):
        bucket = _bucket(f.date)
        for key in _blocking_keys(f):
            blocks[key][bucket].append(index)
    pairs: set[tuple[int, int]] = set()
    has_city = [f.metro_id is not None or f.city_text is not None for f in features]
    # compare() vetoes dates more than the window apart and different states first; checking
    # those here on plain ints keeps the pairs it would veto out of the set. Blocks grow with
    # the input (a surname code in a busy week), so without this the pairs, and the time spent
    # comparing them, grew with its square (1.7M pairs for 250k links at 100k records).
    vetoes = _Vetoes(features)

    def add_pairs(left: list[int], right: list[int], *, only_cityless: bool) -> None:
        if only_cityless:
            # The state block exists only to reach records without a city:
            # pair those with everyone, never two records that both have one.
            cityless_left = [i for i in left if not has_city[i]]
            cityless_right = [j for j in right if not has_city[j]]
            add_pairs(cityless_left, right, only_cityless=False)
            add_pairs(left, cityless_right, only_cityless=False)
            return
        if len(left) * len(right) > MAX_BLOCK * MAX_BLOCK:
            return
        for i in left:
            for j in right:
                if i != j and vetoes.allow(i, j):
                    pairs.add((i, j) if i < j else (j, i))

    for key, by_bucket in blocks.items():
        only_cityless = key[0] == "state"
        undated = by_bucket.get(None, [])
        dated_buckets = sorted(b for b in by_bucket if b is not None)
        for bucket in dated_buckets:
            members = by_bucket[bucket]
            add_pairs(members, members, only_cityless=only_cityless)
            following = by_bucket.get(bucket + 1)
            if following:
                add_pairs(members, following, only_cityless=only_cityless)
            if undated:
                add_pairs(members, undated, only_cityless=only_cityless)
        if undated:
            add_pairs(undated, undated, only_cityless=only_cityless)
    return pairs


def _fits(left: int, right: int) -> bool:
    return left * right <= MAX_BLOCK * MAX_BLOCK


BlockKey = tuple[str, str]


class Block:
    """The records of one blocking key, by date bucket: the unit a distributed engine compares on
    its own (``pipeline.reconcile.ray_engine`` groups records by key and calls ``block_pairs``),
    and the lists ``_iter_candidate_pairs`` reads partners from on one machine. Both go through
    ``partners``, so both compare exactly the pairs of ``_candidate_pairs``.

    Call ``add`` for each member, then ``seal`` once before ``partners``."""

    __slots__ = ("by_bucket", "cityless", "is_state")

    def __init__(self, kind: str) -> None:
        self.is_state = kind == "state"
        self.by_bucket: dict[int | None, list[int]] = defaultdict(list)
        # For a state block, each bucket's members without a city (see ``partners``).
        self.cityless: dict[int | None, list[int]] = {}

    def add(self, index: int, bucket: int | None) -> None:
        self.by_bucket[bucket].append(index)

    def seal(self, has_city: Callable[[int], bool]) -> None:
        if self.is_state:
            for bucket, members in self.by_bucket.items():
                self.cityless[bucket] = [i for i in members if not has_city(i)]

    def partners(self, i: int, bucket: int | None, i_has_city: bool) -> Iterator[list[int]]:
        """The member lists ``_candidate_pairs`` pairs record ``i`` (in ``bucket``) with here:
        the same combinations of buckets, and the same size limits."""
        by_bucket = self.by_bucket
        undated = by_bucket.get(None, _EMPTY)
        if not self.is_state:
            if bucket is None:
                if _fits(len(undated), len(undated)):
                    yield undated
                for other, members in by_bucket.items():
                    if other is not None and _fits(len(members), len(undated)):
                        yield members
                return
            here = by_bucket[bucket]
            for members in (
                here,
                by_bucket.get(bucket + 1, _EMPTY),
                by_bucket.get(bucket - 1, _EMPTY),
                undated,
            ):
                if members and _fits(len(here), len(members)):
                    yield members
            return
        # The state block pairs records without a city with everyone, never two with one:
        # add_pairs(left, right, only_cityless=True) is cityless(left) x right and
        # left x cityless(right), each under its own size limit.
        mine = not i_has_city
        cityless = self.cityless
        u_cl = cityless.get(None, _EMPTY)

        def side(
            left: list[int], left_cl: list[int], right: list[int], right_cl: list[int]
        ) -> Iterator[list[int]]:
            # i is in left: it meets right if it is cityless, and right's cityless ones anyway.
            if mine and _fits(len(left_cl), len(right)):
                yield right
            if _fits(len(left), len(right_cl)):
                yield right_cl

        if bucket is None:
            yield from side(undated, u_cl, undated, u_cl)
            for other, members in by_bucket.items():
                if other is not None:
                    # i is on the right of (members x undated).
                    yield from side(undated, u_cl, members, cityless[other])
            return
        here, here_cl = by_bucket[bucket], cityless[bucket]
        yield from side(here, here_cl, here, here_cl)
        for other in (bucket + 1, bucket - 1):
            if other in by_bucket:
                yield from side(here, here_cl, by_bucket[other], cityless[other])
        if undated:
            yield from side(here, here_cl, undated, u_cl)


_EMPTY: list[int] = []


def has_a_city(f: RecordFeatures) -> bool:
    """Whether a record is placed in a city (known or not): the state block is only for those
    that are not."""
    return f.metro_id is not None or f.city_text is not None


def block_pairs(
    kind: str, members: Sequence[tuple[int | None, bool]], allow: Callable[[int, int], bool]
) -> Iterator[tuple[int, int]]:
    """The candidate pairs of one block, each once: ``members`` are its records in index order,
    each as (date bucket, has a city), and a pair (i, j), i < j, are positions in ``members``.

    Across blocks a pair comes once per key its records share; ``_iter_candidate_pairs`` makes
    each once overall, from the same ``Block.partners``."""
    block = Block(kind)
    for index, (bucket, _) in enumerate(members):
        block.add(index, bucket)
    block.seal(lambda index: members[index][1])
    for i, (bucket, city) in enumerate(members):
        seen: set[int] = set()
        for partners in block.partners(i, bucket, city):
            for j in partners:
                if j <= i or j in seen:
                    continue
                seen.add(j)
                if allow(i, j):
                    yield i, j


@dataclass
class PairPlan:
    """Every record's blocks, built once: what ``pairs`` reads to give a record its partners.
    Forked worker processes inherit it and make the pairs of their own share of the records."""

    features: Sequence[RecordFeatures]
    record_blocks: list[list[tuple[Block, int | None]]]
    has_city: list[bool]
    vetoes: _Vetoes

    @classmethod
    def build(cls, features: Sequence[RecordFeatures]) -> PairPlan:
        blocks: dict[BlockKey, Block] = {}
        record_blocks: list[list[tuple[Block, int | None]]] = []
        for index, f in enumerate(features):
            bucket = _bucket(f.date)
            mine: list[tuple[Block, int | None]] = []
            for key in _blocking_keys(f):
                block = blocks.get(key)
                if block is None:
                    block = blocks[key] = Block(key[0])
                block.add(index, bucket)
                mine.append((block, bucket))
            record_blocks.append(mine)
        has_city = [has_a_city(f) for f in features]
        for block in blocks.values():
            block.seal(has_city.__getitem__)
        return cls(features, record_blocks, has_city, _Vetoes(features))

    def pairs(self, records: Iterable[int]) -> Iterator[tuple[int, int]]:
        """The candidate pairs (i, j), i < j, of each record i of ``records``, each once."""
        for i in records:
            seen: set[int] = set()
            for block, bucket in self.record_blocks[i]:
                for members in block.partners(i, bucket, self.has_city[i]):
                    for j in members:
                        if j <= i or j in seen:
                            continue
                        seen.add(j)
                        if self.vetoes.allow(i, j):
                            yield i, j

    def links(self, records: Iterable[int]) -> Iterator[tuple[int, int, dict[str, float]]]:
        """The candidate pairs of ``records`` that ``compare`` links, with what matched."""
        features = self.features
        for n, (i, j) in enumerate(self.pairs(records)):
            if n % 65536 == 0:
                trim_name_cache()
            matched = compare(features[i], features[j])
            if matched is not None:
                yield i, j, matched


def _iter_candidate_pairs(features: Sequence[RecordFeatures]) -> Iterator[tuple[int, int]]:
    """The pairs of ``_candidate_pairs``, each once, without holding them all.

    At a million records the pairs no longer fit in a set (50M of them at ~100 bytes each on
    the benchmark's records), so they are made record by record: for each record, the partners
    its blocks give it (``Block.partners``: the same combinations of buckets, and the same size
    limits, as ``_candidate_pairs``), those with a larger index, once each.
    """
    return PairPlan.build(features).pairs(range(len(features)))


def incident_id(article_ids: Iterable[str]) -> str:
    """Deterministic id: the same members give the same id in every run."""
    digest = hashlib.sha256("\n".join(sorted(article_ids)).encode("utf-8")).hexdigest()
    return "inc-" + digest[:16]


def record_sort_key(record: IncidentRecord) -> tuple[str, str]:
    """A total order on records that does not depend on where they came from."""
    return (record.article_id, record.model_dump_json())


def sort_records(records: Iterable[IncidentRecord]) -> list[IncidentRecord]:
    """Records by article id; the full JSON only breaks ties between records of one article."""
    ordered = sorted(records, key=lambda r: r.article_id)
    has_ties = any(a.article_id == b.article_id for a, b in zip(ordered, ordered[1:], strict=False))
    return sorted(ordered, key=record_sort_key) if has_ties else ordered


@dataclass(frozen=True)
class Link:
    """A record's best link: the highest-scoring pair it is in (lowest index on ties)."""

    score: float
    other: int
    matched: dict[str, float]


def link_score(matched: dict[str, float]) -> float:
    """A link's score: the mean of its three field scores (a missing one counts 0)."""
    return round(sum(matched.values()) / 3.0, 1)


def join_links(
    count: int, links: Iterable[tuple[int, int, dict[str, float]]]
) -> tuple[list[int], list[Link | None]]:
    """Union-find over linked pairs (i, j, what matched) of ``count`` records: each record's
    component (the smallest index in it) and its best link.

    Link order, and a link given twice, do not matter: union-find and the best-link choice
    (highest score, then lowest index) give the same result in any order."""
    uf = _UnionFind(list(range(count)))
    best: list[Link | None] = [None] * count
    for i, j, matched in links:
        uf.union(i, j)
        score = link_score(matched)
        for here, other in ((i, j), (j, i)):
            current = best[here]
            if current is None or (score, -other) > (current.score, -current.other):
                best[here] = Link(score, other, matched)
    return [uf.find(index) for index in range(count)], best


# Records whose pairs one worker makes at a time, when linking in worker processes.
LINK_CHUNK = 2048
# Below this many records, starting worker processes costs more than it saves.
PARALLEL_MIN_RECORDS = 20_000

# What forked workers link: set just before the pool forks, so they inherit the blocks instead
# of having them pickled; only a range of record indices travels, and its links come back.
_LINKING: PairPlan | None = None


def _links_of(span: tuple[int, int]) -> list[tuple[int, int, dict[str, float]]]:
    assert _LINKING is not None
    return list(_LINKING.links(range(*span)))


def link_components(
    features: Sequence[RecordFeatures], *, workers: int = 1
) -> tuple[list[int], list[Link | None]]:
    """Pass 2: candidate pairs within blocks, compared, joined by union-find.

    Returns each record's component (the smallest index in it) and its best link. Only these
    two small lists outlive the pass: pairs are compared as they come and each record keeps
    just its best link, which is what its join reason shows. With ``workers`` > 1 (and fork),
    forked processes compare the pairs of ranges of records side by side; the parent joins
    their links, and the result does not depend on how the records were shared out.
    """
    global _LINKING
    plan = PairPlan.build(features)
    count = len(features)
    context = fork_context() if workers > 1 and count >= PARALLEL_MIN_RECORDS else None
    if context is None:
        return join_links(count, plan.links(range(count)))
    spans = [(start, min(start + LINK_CHUNK, count)) for start in range(0, count, LINK_CHUNK)]
    _LINKING = plan
    try:
        with context.Pool(workers) as pool:
            linked = (link for links in pool.imap(_links_of, spans) for link in links)
            return join_links(count, linked)
    finally:
        _LINKING = None


def fork_context() -> multiprocessing.context.BaseContext | None:
    """The fork start method (workers inherit what the parent built), or None where there is
    none: the caller then works in this process."""
    try:
        return multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: link in this process
        return None


def trim_name_cache() -> None:
    """Empty the name-similarity memo once it holds more than ``NAME_CACHE_LIMIT`` pairs."""
    if name_similarity.cache_info().currsize > NAME_CACHE_LIMIT:
        name_similarity.cache_clear()


def components(
    article_ids: Sequence[str], roots: Sequence[int], best: Sequence[Link | None]
) -> list[tuple[str, list[int], list[JoinRow]]]:
    """Pass 3's plan: each incident's id, its members (indices into the sorted records) and
    their join reasons, sorted by id. Each can then be judged on its own."""
    members: dict[int, list[int]] = defaultdict(list)
    for index, root in enumerate(roots):
        members[root].append(index)
    planned: list[tuple[str, list[int], list[JoinRow]]] = []
    for indices in members.values():
        joins: list[JoinRow] = []
        for index in indices:
            link = best[index]
            if link is None:
                joins.append((article_ids[index], None, None, None))
            else:
                joins.append((article_ids[index], article_ids[link.other], link.score, link.matched))
        planned.append((incident_id(article_ids[i] for i in indices), indices, joins))
    planned.sort(key=lambda p: p[0])
    return planned


def cluster_records(records: Iterable[IncidentRecord]) -> list[Cluster]:
    """Group records into incidents; clusters sorted by id, members by article id."""
    ordered = sort_records(records)
    article_ids = [r.article_id for r in ordered]
    roots, best = link_components([record_features(r) for r in ordered])
    return [
        Cluster(cid, tuple(ordered[i] for i in indices), tuple(join_reason(row) for row in joins))
        for cid, indices, joins in components(article_ids, roots, best)
    ]
