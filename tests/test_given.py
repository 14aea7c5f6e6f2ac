"""Grounding what we are given: records imported or written by hand are grounded against their
articles before reconcile and eval use them, and values whose text is found nowhere are shown as
"not checked", never as "not found"."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline.cli.main import main as cli_main
from pipeline.outputs.report import render_report
from pipeline.outputs.rundata import load_run
from pipeline.reconcile.given import find_articles, ground_given, needs_grounding
from pipeline.store.runfolder import RunFolder
from schemas import Incident, IncidentRecord

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tempe-traffic-stop"


def hand_written(folder: Path, *, relative_sources: bool = True) -> Path:
    """The example's hand-written records in ``folder``, their articles in ``folder/articles``,
    each record's source_path naming its article relative to ``folder`` (or a path that does
    not exist)."""
    articles = folder / "articles"
    articles.mkdir(parents=True)
    lines = []
    for line in (EXAMPLE / "gold_records.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        name = Path(record["source_path"]).name
        shutil.copy(EXAMPLE / name, articles / name)
        source = f"articles/{name}" if relative_sources else f"/nowhere/{name}"
        record["source_path"] = record["provenance"]["source_path"] = source
        lines.append(json.dumps(record))
    path = folder / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_records(path: Path) -> list[IncidentRecord]:
    return [IncidentRecord.model_validate_json(line) for line in path.read_text().splitlines()]


def citation_statuses(folder: Path) -> set[str | None]:
    statuses: set[str | None] = set()
    for line in RunFolder(folder).incidents.read_text().splitlines():
        incident = Incident.model_validate_json(line)
        for field in incident.fields:
            for value in field.values:
                statuses |= {citation["grounding"] for citation in value.citations}
    return statuses


def test_hand_written_records_carry_no_grounding() -> None:
    records = read_records(EXAMPLE / "gold_records.jsonl")
    assert all(needs_grounding(record) for record in records)


def test_reconcile_grounds_records_against_articles_named_relative_to_the_records_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = hand_written(tmp_path / "given")
    out = tmp_path / "out"
    assert cli_main(["reconcile", str(records), "--out", str(out)]) == 0
    assert "grounded 6 record(s) against their articles" in capsys.readouterr().err
    statuses = citation_statuses(out)
    assert None not in statuses
    assert "exact" in statuses
    # The folder's records.jsonl holds the grounded records, so the page can highlight them.
    assert not any(needs_grounding(record) for record in read_records(RunFolder(out).records))


def test_reconcile_finds_the_texts_in_an_articles_folder_given_with_a_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = hand_written(tmp_path / "given", relative_sources=False)
    out = tmp_path / "out"
    assert cli_main(["reconcile", str(records), "--out", str(out)]) == 0
    assert "6 article text(s) not found" in capsys.readouterr().err
    assert citation_statuses(out) == {None}

    out2 = tmp_path / "out2"
    args = ["reconcile", str(records), "--out", str(out2), "--articles", str(tmp_path / "given" / "articles")]
    assert cli_main(args) == 0
    assert "grounded 6 record(s)" in capsys.readouterr().err
    assert None not in citation_statuses(out2)


def test_articles_are_matched_by_the_hash_of_their_text_never_by_file_name(tmp_path: Path) -> None:
    records_path = hand_written(tmp_path / "given")
    changed = next((tmp_path / "given" / "articles").glob("01-*"))
    changed.write_text(changed.read_text() + "\nA correction was added later.\n")
    records = read_records(records_path)
    found = find_articles(records, records_path=records_path)
    assert len(found) == 5
    grounded, outcome = ground_given(records, found)
    assert (outcome.grounded, len(outcome.not_found)) == (5, 1)
    assert [r.article_id for r in grounded] == [r.article_id for r in records]


def test_records_that_are_already_grounded_are_left_as_they_are(tmp_path: Path) -> None:
    records_path = hand_written(tmp_path / "given")
    records = read_records(records_path)
    once, _ = ground_given(records, find_articles(records, records_path=records_path))
    twice, outcome = ground_given(once, {})
    assert (outcome.grounded, outcome.already_grounded, outcome.not_found) == (0, 6, [])
    assert twice == once


def test_values_whose_text_was_found_nowhere_read_not_checked_on_the_page_never_not_found(
    tmp_path: Path,
) -> None:
    records = hand_written(tmp_path / "given", relative_sources=False)
    out = tmp_path / "out"
    assert cli_main(["reconcile", str(records), "--out", str(out)]) == 0
    page = render_report(load_run(out))
    markup = re.sub(r"<script.*?</script>", "", page, flags=re.DOTALL)  # the page's own code
    assert "not checked" in markup
    assert "not found in article" not in markup


def test_eval_grounds_the_records_it_scores_when_their_articles_are_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = hand_written(tmp_path / "given", relative_sources=False)
    report_without, report_with = tmp_path / "without.json", tmp_path / "with.json"
    gold = str(EXAMPLE / "gold.json")
    assert cli_main(["eval", str(records), gold, "--json", str(report_without)]) == 0
    articles = str(tmp_path / "given" / "articles")
    assert cli_main(["eval", str(records), gold, "--json", str(report_with), "--articles", articles]) == 0
    without = json.loads(report_without.read_text())
    with_texts = json.loads(report_with.read_text())
    assert without["not_grounded_yet"] > 0
    assert with_texts["not_grounded_yet"] == 0
    assert with_texts["grounding_rate"] > 0.9
    assert with_texts["accuracy"] == without["accuracy"]
