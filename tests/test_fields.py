"""The field registry is derived from the schema, and every stage reads its field lists from it."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel

from pipeline.evidence import ground
from pipeline.kinds import normalize
from pipeline.outputs import evaluate
from pipeline.reconcile import merge as reconcile
from schemas.fields import UndeclaredKind, _walk, cited_fields_of, field_kinds, record_fields
from schemas.kinds import Kind
from schemas.record import Cited, Subject


def test_every_fact_field_of_the_record_declares_a_kind() -> None:
    specs = record_fields()
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


def test_a_field_without_a_kind_is_refused_with_the_fix_in_the_message() -> None:
    class Undeclared(BaseModel):
        named: Annotated[Cited[str] | None, Kind("person")] = None
        forgotten: Cited[str] | None = None

    with pytest.raises(UndeclaredKind, match=r"Undeclared\.forgotten .*declare one"):
        list(_walk(Undeclared, "", "", False))


def test_reconcile_merges_every_cited_field_of_a_subject_in_schema_order() -> None:
    cited = [name for name, info in Subject.model_fields.items() if "Cited" in str(info.annotation)]
    assert list(reconcile.SUBJECT_FIELDS) == cited
    assert reconcile.SCALAR_SECTIONS["where"] == cited_fields_of("where")


def test_grounding_normalising_and_eval_read_the_same_registry() -> None:
    cited_paths = {spec.plain_path for spec in record_fields() if spec.cited}
    assert set(ground.FIELD_KINDS) == cited_paths
    assert field_kinds() == normalize.FIELD_KINDS
    assert {"agencies.name"} == evaluate.AGENCY_FIELDS


def test_a_kinds_support_check_is_declared_for_every_kind_a_cited_field_uses() -> None:
    used = {spec.kind for spec in record_fields() if spec.cited}
    assert used <= set(ground.SUPPORT_KIND_OF)
