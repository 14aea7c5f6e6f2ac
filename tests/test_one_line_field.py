"""Adding a fact field is one line in the schema.

A copy of the project gets exactly one new line, ``race: Cited[str] | None = None`` in
``Subject``, and nothing else. In a fresh interpreter on that copy the new field must be
reconciled (a verdict and a merged value), get columns in the wide incidents table, be
graded by eval, and have its evidence checked by grounding: every stage reads its field
list from the schema, and a kind (here the default one for a bare string) from the
registry of kind strategies.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NEW_LINE = "    race: Cited[str] | None = None\n"

# Runs inside the copy; prints one JSON object of what each stage made of the new field.
PROBE = r"""
import json
import sys
from pathlib import Path

import pipeline
import schemas
from pipeline.evidence.ground import FIELD_KINDS as SUPPORT_OF
from pipeline.outputs.evaluate import score_records
from pipeline.outputs.tables import INCIDENTS, WIDE_FIELDS
from pipeline.reconcile.merge import reconcile
from schemas.fields import field_kinds
from schemas.record import IncidentFacts, IncidentRecord

copy = Path(sys.argv[1]).resolve()
loaded_from = [str(Path(m.__file__).resolve()) for m in (pipeline, schemas)]


def cited(value):
    return {"value": value, "quote": f"described as {value}", "attribution": "outlet"}


def record(article_id, race):
    # Three outlets on one incident: same date, city and subject; only the race differs.
    return IncidentRecord.model_validate({
        "article_id": article_id,
        "provenance": {"article_id": article_id, "outlet": f"Outlet {article_id}", "published": "2026-03-14"},
        "when": {"date": cited("2026-03-13")},
        "where": {"city": cited("Tempe"), "state": cited("Arizona")},
        "subjects": [{"name": cited("Rafael Quintero-Alvarez"), "race": cited(race)}],
    })


records = [record("a", "Hispanic"), record("b", "hispanic"), record("c", "white")]
result = reconcile(records)
incident = result.incidents[0]
race = [f.model_dump(mode="json") for f in incident.fields if "race" in f.path]
merged = incident.merged.subjects[0].race
gold = {"articles": {"a": {"subjects[0].race": "Hispanic"}, "c": {"subjects[0].race": "Hispanic"}}}
report = score_records(records, gold)
print(json.dumps({
    "loaded_from": loaded_from,
    "kind": field_kinds().get("subjects[].race"),
    "in_llm_schema": "race" in IncidentFacts.model_json_schema()["$defs"]["Subject"]["properties"],
    "support_check": SUPPORT_OF.get("subjects.race"),
    "incidents": len(result.incidents),
    "race_verdicts": race,
    "merged_race": None if merged is None else merged.value,
    "wide_fields": [[leaf.path, leaf.column] for leaf in WIDE_FIELDS if "race" in leaf.path],
    "incident_columns": [c.name for c in INCIDENTS.columns if "race" in c.name],
    "eval": {f.field: [f.graded, f.accuracy] for f in report.fields},
}))
"""


def _copy_project(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("schemas", "pipeline", "prompts"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)


def _add_the_line(record_py: Path) -> None:
    lines = record_py.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("class Subject(BaseModel):\n")
    first_field = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("    name: "))
    changed = [*lines[:first_field], NEW_LINE, *lines[first_field:]]
    record_py.write_text("".join(changed), encoding="utf-8")
    diff = [d for d in difflib.ndiff(lines, changed) if d[:1] in "+-"]
    assert diff == ["+ " + NEW_LINE], "exactly one line is added to the schema"


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    copy = tmp_path_factory.mktemp("one-line-field")
    _copy_project(copy)
    _add_the_line(copy / "schemas" / "record.py")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(copy)],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert all(path.startswith(str(copy.resolve())) for path in result["loaded_from"]), result["loaded_from"]
    return result


def test_the_new_field_gets_the_default_kind_and_reaches_the_models_contract(probe: dict[str, Any]) -> None:
    assert probe["kind"] == "category"
    assert probe["in_llm_schema"] is True
    assert probe["support_check"] == "summary"  # a category's evidence may paraphrase it


def test_reconcile_gives_the_new_field_a_verdict_and_a_merged_value(probe: dict[str, Any]) -> None:
    assert probe["incidents"] == 1
    (verdict,) = probe["race_verdicts"]
    assert verdict["path"] == "subjects[0].race"
    # Two outlets say Hispanic (in two spellings of one form), one says white.
    assert verdict["verdict"] == "contradiction"
    assert verdict["consensus"] in ("Hispanic", "hispanic")
    assert probe["merged_race"] == verdict["consensus"]


def test_the_incidents_table_has_columns_for_the_new_field(probe: dict[str, Any]) -> None:
    assert ["subjects[0].race", "subjects_0_race"] in probe["wide_fields"]
    assert {"subjects_0_race", "subjects_0_race_verdict"} <= set(probe["incident_columns"])


def test_eval_grades_the_new_field(probe: dict[str, Any]) -> None:
    # Article a says Hispanic (right), article c says white (wrong).
    assert probe["eval"]["subjects[0].race"] == [2, 0.5]
