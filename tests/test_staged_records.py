"""Reading a records file for `triangulate reconcile` without holding its records: each line is
validated once, bad lines are reported by number, records that lack grounding are grounded, and
a folder that is not a run grows by article."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli.main import main as cli_main
from pipeline.reconcile.folder import NotUtf8, staged_records
from schemas import IncidentRecord
from schemas.fields import iter_cited

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tempe-traffic-stop"


def gold() -> list[dict[str, object]]:
    lines = (EXAMPLE / "gold_records.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def article_ids(path: Path) -> list[str]:
    return [json.loads(line)["article_id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_invalid_lines_are_noted_by_number_and_the_valid_records_staged(tmp_path: Path) -> None:
    records = [json.dumps(r) for r in gold()]
    source = write(tmp_path / "in.jsonl", [records[0], "{not json", "", records[1], '{"article_id": 3}'])
    out = tmp_path / "out"
    with staged_records(source, out, article_dirs=[EXAMPLE]) as staged:
        got = list(staged.lines)
        assert [error.line for error in staged.errors] == [2, 5]
        assert [r.article_id for r in got] == [gold()[0]["article_id"], gold()[1]["article_id"]]
        # Hand-written records were grounded against the example's articles.
        assert staged.grounding is not None and staged.grounding.grounded == 2
        assert all(cited.grounding is not None for r in got for _, cited in iter_cited(r))
    assert staged.wrote_records
    assert article_ids(out / "records.jsonl") == [r.article_id for r in got]
    # Nothing but the folder's records file is left of the staging.
    assert [p.name for p in out.iterdir()] == ["records.jsonl"]


def test_a_folder_grows_by_article_and_an_article_read_again_replaces_its_record(tmp_path: Path) -> None:
    first, second, third = gold()[:3]
    out = tmp_path / "out"
    with staged_records(write(tmp_path / "a.jsonl", [json.dumps(first), json.dumps(second)]), out) as staged:
        assert staged.earlier is None and staged.added == 2
    changed = {**second, "source_path": "read-again.md"}
    source = write(tmp_path / "b.jsonl", [json.dumps(changed), json.dumps(third)])
    with staged_records(source, out) as staged:
        assert (staged.earlier, staged.added) == (2, 1)
        records = {r.article_id: r for r in staged.lines}
    assert list(records) == [first["article_id"], second["article_id"], third["article_id"]]
    assert records[str(second["article_id"])].source_path == "read-again.md"
    assert len(article_ids(out / "records.jsonl")) == 3


def test_a_file_that_is_not_utf8_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "records.jsonl").write_text(json.dumps(gold()[0]) + "\n", encoding="utf-8")
    before = (out / "records.jsonl").read_bytes()
    source = tmp_path / "latin1.jsonl"
    source.write_bytes(json.dumps(gold()[1]).encode("utf-8") + b"\n" + b'{"summary": "caf\xe9"}\n')
    with pytest.raises(NotUtf8) as raised, staged_records(source, out):
        pass
    assert raised.value.line == 2
    assert (out / "records.jsonl").read_bytes() == before
    assert [p.name for p in out.iterdir()] == ["records.jsonl"]


def test_records_are_read_from_a_file_not_held(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", [json.dumps(r) for r in gold()])
    with staged_records(source, tmp_path / "out") as staged:
        # The lines come from the folder's records file, read once as the reconcile goes.
        first = next(iter(staged.lines))
        assert isinstance(first, IncidentRecord)
        assert not isinstance(staged.lines.lines, list)


def test_the_reconcile_command_refuses_a_file_that_is_not_utf8_and_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "latin1.jsonl"
    source.write_bytes(json.dumps(gold()[0]).encode("utf-8") + b"\n" + b'{"summary": "caf\xe9"}\n')
    code = cli_main(["reconcile", str(source), "--out", str(tmp_path / "out")])
    assert code == 2
    assert f"error: {source}: not UTF-8 text (invalid continuation byte at line 2)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "incidents.jsonl").exists()


def test_the_reconcile_command_reports_bad_lines_and_reconciles_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [json.dumps(r) for r in gold()]
    source = write(tmp_path / "in.jsonl", [*lines[:2], '{"article_id": "x"}', *lines[2:]])
    code = cli_main(["reconcile", str(source), "--out", str(tmp_path / "out"), "--articles", str(EXAMPLE)])
    captured = capsys.readouterr()
    assert code == 1
    assert f"error: {source}:3: invalid record:" in captured.err
    assert f"reconciled {len(lines)} record(s) into 1 incident(s)" in captured.out
    assert len(article_ids(tmp_path / "out" / "records.jsonl")) == len(lines)
