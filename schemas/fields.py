"""The field registry: every field of the incident record with its declared kind.

Derived from the schema (``schemas/record.py`` declares a :class:`~schemas.kinds.Kind`
on each field, or the field gets the default kind for its value type,
:data:`~schemas.kinds.DEFAULT_KINDS`), never written out by hand. Grounding, evidence, reconcile, eval
and the tables all read their field lists from here.

Paths are templates: ``"where.city"``, ``"subjects[].name"`` (``[]`` stands for
any item of a list).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

from schemas.kinds import DEFAULT_KINDS, Kind, KindName
from schemas.record import Cited, IncidentFacts


class UndeclaredKind(TypeError):
    """A field of the record has no Kind in its ``Annotated`` metadata."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of the record."""

    path: str
    """Template path, e.g. ``"subjects[].name"``."""
    kind: KindName
    section: str
    """The top-level part it belongs to: ``"when"``, ``"subjects"``, ``"statements"``..."""
    name: str
    """Its own name inside its section (``"name"``)."""
    cited: bool
    """A ``Cited`` value (value, quote, attribution); False for a statement's plain fields."""
    in_list: bool
    """Part of a list section (agencies, subjects, statements)."""
    declared: bool = True
    """Its kind is declared on the schema; False when it is the default for its value type."""

    @property
    def plain_path(self) -> str:
        """The path without list markers: ``"subjects.name"``."""
        return self.path.replace("[]", "")


def unwrap_optional(annotation: Any) -> Any:
    """``X`` for ``X | None``; any other annotation unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def is_cited(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Cited)


def _walk(model: type[BaseModel], prefix: str, section: str, in_list: bool) -> Iterator[FieldSpec]:
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("x-derived"):
            continue  # filled by the pipeline (speaker ids, grounding), not a fact
        annotation = unwrap_optional(info.annotation)
        path = f"{prefix}.{name}" if prefix else name
        top = section or name
        origin = typing.get_origin(annotation)
        if origin is list:
            item = typing.get_args(annotation)[0]
            yield from _walk(item, f"{path}[]", top, True)
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not is_cited(annotation):
            yield from _walk(annotation, path, top, in_list)
            continue
        kinds = [meta.name for meta in info.metadata if isinstance(meta, Kind)]
        kind = kinds[0] if kinds else _default_kind(annotation)
        if kind is None:
            raise UndeclaredKind(
                f"{model.__name__}.{name} ({path}) has no Kind and no default one for its type: "
                'declare one in schemas/record.py, e.g. Annotated[Cited[str] | None, Kind("summary")]'
            )
        yield FieldSpec(path, kind, top, name, is_cited(annotation), in_list, declared=bool(kinds))


def _default_kind(annotation: Any) -> KindName | None:
    """The kind a field without one gets: only a ``Cited`` value of a type in DEFAULT_KINDS has one."""
    if not is_cited(annotation):
        return None
    value_type = unwrap_optional(annotation.model_fields["value"].annotation)
    return DEFAULT_KINDS.get(value_type) if isinstance(value_type, type) else None


@cache
def record_fields() -> tuple[FieldSpec, ...]:
    """Every fact field of ``IncidentFacts``, in schema order."""
    return tuple(_walk(IncidentFacts, "", "", False))


def field_kinds() -> dict[str, KindName]:
    """Template path -> kind, for every field."""
    return {spec.path: spec.kind for spec in record_fields()}


def cited_fields_of(section: str) -> tuple[str, ...]:
    """The names of the Cited fields of one section, in schema order (``"subjects"`` -> name, age...)."""
    return tuple(spec.name for spec in record_fields() if spec.section == section and spec.cited)


def paths_of_kind(kind: KindName) -> frozenset[str]:
    """Plain paths (no list markers) of the fields of one kind."""
    return frozenset(spec.plain_path for spec in record_fields() if spec.kind == kind)


def iter_cited(record: IncidentFacts) -> Iterator[tuple[str, Cited[Any]]]:
    """Every Cited value present in a record, with its concrete field path.

    Unlike WIDE_FIELDS this has no slot cap: the long table holds everything.
    """

    def walk(node: BaseModel, prefix: str, names: Iterable[str]) -> Iterator[tuple[str, Cited[Any]]]:
        for name in names:
            value = getattr(node, name)
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(value, Cited):
                yield path, value
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, BaseModel):
                        yield from walk(item, f"{path}[{index}]", type(item).model_fields)
            elif isinstance(value, BaseModel):
                yield from walk(value, path, type(value).model_fields)

    # Only the IncidentFacts part of a record (not provenance). Statements are quotes with a
    # speaker rather than Cited facts; export.py puts them in field_values as "statements[i]".
    yield from walk(record, "", [n for n in IncidentFacts.model_fields if n != "statements"])
