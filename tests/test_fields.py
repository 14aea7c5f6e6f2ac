"""The field registry is derived from the schema, and every stage reads its field lists from it."""

from __future__ import annotations

import typing
from typing import Annotated

import pytest
from pydantic import BaseModel

from pipeline.evidence import ground
from pipeline.kinds import normalize
from pipeline.kinds.strategies import ALL_STRATEGIES, STRATEGIES, strategy_for
from pipeline.reconcile import merge as reconcile
from schemas.fields import UndeclaredKind, _walk, cited_fields_of, field_kinds, record_fields
from schemas.kinds import Kind, KindName
from schemas.record import Cited, Subject


def test_every_fact_field_of_the_record_has_a_kind_with_a_strategy() -> None:
    specs = record_fields()  # raises UndeclaredKind for a leaf without one
    assert specs, "the walk found the record's fields"
    assert {spec.section for spec in specs} == {
        "when",
        "where",
        "what",
        "agencies",
        "subjects",
        "officers",
        "statements",
    }
    assert "subjects[].place_of_death" in field_kinds()
    assert [spec.path for spec in specs if spec.kind not in STRATEGIES] == []


def test_a_field_the_registry_cannot_classify_is_refused_with_the_fix_in_the_message() -> None:
    class Undeclared(BaseModel):
        named: Annotated[Cited[str] | None, Kind("person")] = None
        forgotten: Cited[int] | None = None  # a number of what? no default says

    with pytest.raises(UndeclaredKind, match=r"Undeclared\.forgotten .*declare one"):
        list(_walk(Undeclared, "", "", False))


def test_a_plain_field_without_a_kind_is_refused() -> None:
    class Plain(BaseModel):
        said: str

    with pytest.raises(UndeclaredKind, match=r"Plain\.said"):
        list(_walk(Plain, "", "", False))


def test_a_bare_cited_string_is_a_category_and_a_bare_cited_flag_a_boolean() -> None:
    class Added(BaseModel):
        race: Cited[str] | None = None
        body_camera: Cited[bool] | None = None

    specs = {spec.name: spec for spec in _walk(Added, "", "", False)}
    assert (specs["race"].kind, specs["race"].declared) == ("category", False)
    assert (specs["body_camera"].kind, specs["body_camera"].declared) == ("boolean", False)


def test_reconcile_merges_every_cited_field_of_a_subject_in_schema_order() -> None:
    cited = [name for name, info in Subject.model_fields.items() if "Cited" in str(info.annotation)]
    assert list(reconcile.SUBJECT_FIELDS) == cited
    assert reconcile.SCALAR_SECTIONS["where"] == cited_fields_of("where")


def test_grounding_and_normalising_read_the_same_registry() -> None:
    cited_paths = {spec.plain_path for spec in record_fields() if spec.cited}
    assert set(ground.FIELD_KINDS) == cited_paths
    assert field_kinds() == normalize.FIELD_KINDS
    for spec in record_fields():
        if spec.cited:
            assert ground.FIELD_KINDS[spec.plain_path] == STRATEGIES[spec.kind].support, spec.path


# --------------------------------------------------------------------------- strategies


def test_every_kind_has_exactly_one_strategy() -> None:
    # A kind added to KindName without behaviour, or a kind given two, fails here.
    assert sorted(s.name for s in ALL_STRATEGIES) == sorted(typing.get_args(KindName))


def test_every_field_finds_its_kinds_strategy_however_its_path_is_written() -> None:
    for spec in record_fields():
        assert strategy_for(spec.path) is STRATEGIES[spec.kind], spec.path
        assert strategy_for(spec.plain_path) is STRATEGIES[spec.kind], spec.path
    assert strategy_for("subjects[2].name") is STRATEGIES["person"]
    with pytest.raises(KeyError):
        strategy_for("subjects[0].nmae")
