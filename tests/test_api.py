"""The Python API (``import triangulate``): each stage as one typed function, usable from a notebook.

Extraction talks HTTP to the loopback stub of tests/fault_server.py (no model); the rest works on
hand-made records and on the Tempe example articles.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from export_fixtures import hand_records, load_articles
from fault_server import FaultMix, FaultServer, closed_base_url

import pipeline
import pipeline.api
import triangulate
from pipeline.reconcile.merge import reconcile_to_dir
from schemas import Article, ExtractionResult, FailureRow, IncidentRecord

REPO = Path(__file__).resolve().parent.parent
STUB_MODEL = "fault-stub"
STUB_KEY = "sk-test-api-key-000000"
HEAVY = ("openai", "instructor", "xllamacpp")


def story(number: int) -> str:
    return (
        f"Story {number} from the county desk. A deputy shot a man during a traffic stop in Mesa on "
        f"Tuesday, the sheriff's office said. The man, {30 + number}, was taken to a hospital."
    )


# --------------------------------------------------------------------------- the module itself


def test_import_triangulate_loads_no_model_client_until_something_is_extracted() -> None:
    probe = f"""
import json, sys
heavy = {HEAVY!r}
loaded = lambda: sorted(m for m in heavy if m in sys.modules)
import triangulate
seen = {{"import": loaded()}}
triangulate.reconcile([])
triangulate.read_articles([])
seen["reconcile and read"] = loaded()
print(json.dumps(seen))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == {"import": [], "reconcile and read": []}


def test_triangulate_offers_exactly_the_names_of_pipeline_api() -> None:
    api_names = set(pipeline.api.__all__)
    assert set(triangulate.__all__) - {"__version__"} == api_names
    for name in api_names:
        assert getattr(triangulate, name) is getattr(pipeline.api, name)


@pytest.mark.parametrize(
    "name", ["read_articles", "extract", "reconcile", "run", "load_run", "report", "export"]
)
def test_every_function_documents_itself_with_an_example(name: str) -> None:
    doc = inspect.getdoc(getattr(triangulate, name)) or ""
    example = doc.split("::", 1)[1] if "::" in doc else ""
    assert f"triangulate.{name}(" in example


# --------------------------------------------------------------------------- read_articles


def test_read_articles_gives_articles_and_a_failure_row_for_each_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "01.md").write_text(f"---\noutlet: Mesa Courier\n---\n{story(1)}\n", encoding="utf-8")
    (tmp_path / "02.txt").write_text(story(2), encoding="utf-8")
    (tmp_path / "03.txt").write_bytes(b"\x00\x01\x02 not text \xff\xfe")

    items = triangulate.read_articles(tmp_path)

    first, second, bad = items
    assert isinstance(first, Article) and first.outlet == "Mesa Courier"
    assert (
        isinstance(second, Article)
        and second.text == story(2)
        and second.id == Article.from_text(story(2)).id
    )
    assert isinstance(bad, FailureRow) and bad.article_id is None
    assert bad.source_path == str(tmp_path / "03.txt") and bad.reason == "binary"
    (again,) = triangulate.read_articles([str(tmp_path / "02.txt")])
    assert isinstance(again, Article) and again.id == second.id


# --------------------------------------------------------------------------- extract (loopback stub)


@pytest.fixture
def stub() -> Any:
    with FaultServer(FaultMix(required_api_key=STUB_KEY)) as server:
        yield server


def test_extract_returns_one_cited_record_per_article_in_input_order(stub: FaultServer) -> None:
    """(loopback stub) The stub answers every article with its first sentence's opening words."""
    articles = [Article.from_text(story(n), source_path=f"/in/{n}.txt") for n in range(5)]
    unreadable = FailureRow(article_id=None, source_path="/in/bad.bin", reason="binary", detail="binary")
    environment = dict(os.environ)

    results = triangulate.extract(
        [articles[0], unreadable, *articles[1:]],
        model=STUB_MODEL,
        base_url=stub.base_url,
        api_key=STUB_KEY,
        concurrency=3,
    )

    assert [r.article_id for r in results] == [a.id for a in articles]
    for article, result in zip(articles, results, strict=True):
        assert result.failure is None and result.record is not None
        circumstances = result.record.what.circumstances
        assert circumstances is not None and circumstances.grounding is not None
        assert article.text.startswith(str(circumstances.value))
        assert circumstances.grounding.sentence == 1
        assert result.record.provenance.model == STUB_MODEL
    assert {log.body["model"] for log in stub.requests} == {STUB_MODEL}
    assert dict(os.environ) == environment  # base_url and api_key go to this call only


def test_extract_works_from_inside_a_running_event_loop_as_in_a_notebook(stub: FaultServer) -> None:
    """(loopback stub) A Jupyter kernel runs an event loop; ``extract`` must not need its own there."""
    article = Article.from_text(story(7))

    async def notebook_cell() -> list[ExtractionResult]:
        return triangulate.extract(article, model=STUB_MODEL, base_url=stub.base_url, api_key=STUB_KEY)

    (result,) = asyncio.run(notebook_cell())
    assert result.article_id == article.id and result.record is not None


def test_extract_of_an_unreachable_endpoint_raises_and_sends_nothing() -> None:
    with pytest.raises(ConnectionError, match=r"cannot reach the model endpoint at http://127\.0\.0\.1:"):
        triangulate.extract([Article.from_text(story(1))], model=STUB_MODEL, base_url=closed_base_url())


# --------------------------------------------------------------------------- reconcile


def record(article: Article, outlet: str, **facts: Any) -> IncidentRecord:
    """A hand-made record of ``article``: ``facts`` are field -> value, each cited in the outlet's voice."""
    cited = {
        section: {name: {"value": value, "quote": f"it was {value}", "attribution": "outlet"}}
        for (section, name), value in ((path.split("__"), value) for path, value in facts.items())
    }
    return IncidentRecord.model_validate(
        {
            **cited,
            "subjects": [{"name": {"value": "Ana Ruiz", "quote": "Ana Ruiz", "attribution": "outlet"}}],
            "article_id": article.id,
            "provenance": {"article_id": article.id, "outlet": outlet, "published": "2026-02-04"},
        }
    )


def mesa_records() -> list[IncidentRecord]:
    """Three outlets on one shooting (they disagree on the man's condition) and one on another."""
    texts = [Article.from_text(story(n)) for n in range(4)]
    return [
        record(
            texts[0],
            "Mesa Courier",
            when__date="2026-02-03",
            where__city="Mesa",
            officers__condition="stable",
        ),
        record(
            texts[1],
            "Valley Wire",
            when__date="2026-02-03",
            where__city="Mesa",
            officers__condition="critical",
        ),
        record(texts[2], "Desert Post", when__date="2026-02-03", where__city="Mesa"),
        record(
            texts[3], "Harlow Courier", when__date="2025-11-20", where__city="Harlow", where__state="Kansas"
        ),
    ]


def test_reconcile_clusters_hand_made_records_and_judges_each_field() -> None:
    records = mesa_records()
    merged = triangulate.reconcile(records)

    by_size = sorted(merged.incidents, key=lambda i: -len(i.article_ids))
    assert [sorted(i.article_ids) for i in by_size] == [
        sorted(r.article_id for r in records[:3]),
        [records[3].article_id],
    ]
    mesa = {f.path: f for f in by_size[0].fields}
    assert (mesa["when.date"].verdict, mesa["when.date"].n_independent_sources) == ("agreed", 3)
    assert mesa["officers.condition"].verdict == "contradiction"
    assert {f.path for f in merged.conflicts if f.incident_id == by_size[0].id} >= {"officers.condition"}
    assert triangulate.reconcile(list(reversed(records))) == merged


def test_reconcile_takes_extraction_results_and_leaves_out_the_failures() -> None:
    records = mesa_records()
    failed = ExtractionResult(
        article_id="sha256:failed",
        failure=FailureRow(article_id="sha256:failed", reason="validation", detail="no valid reply"),
    )
    results = [ExtractionResult(article_id=r.article_id, record=r) for r in records]
    assert triangulate.reconcile([*results, failed]) == triangulate.reconcile(records)


# --------------------------------------------------------------------------- a run folder


def test_load_run_and_report_read_a_folder_written_by_reconcile_to_dir(tmp_path: Path) -> None:
    records = hand_records(load_articles())
    (tmp_path / "records.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    reconcile_to_dir(records, tmp_path)

    with pytest.warns(triangulate.RunWarning, match="article texts were re-read"):
        data = triangulate.load_run(tmp_path)
    assert isinstance(data, triangulate.RunData)
    assert data.records == records
    assert {a.id for a in load_articles().all} == set(data.articles)

    with pytest.warns(triangulate.RunWarning, match="re-read"):
        page = triangulate.report(tmp_path)
    assert page == tmp_path / "report.html"
    assert f'<span id="conflict-count">{len(data.incidents.conflicts)}</span>' in page.read_text()
    elsewhere = triangulate.report(data, html=tmp_path / "review" / "page.html")
    assert elsewhere.read_text() == page.read_text()


def test_reconcile_with_out_writes_a_folder_load_run_and_export_accept(tmp_path: Path) -> None:
    records = mesa_records()  # made from texts, not files: the folder cannot show them in context
    merged = triangulate.reconcile(records, out=tmp_path / "merged")

    with pytest.warns(triangulate.RunWarning, match="4 article text"):
        data = triangulate.load_run(tmp_path / "merged")
    assert data.kind == "reconcile" and data.records == records
    assert data.incidents.incidents == merged.incidents

    with pytest.warns(triangulate.RunWarning):
        summary = triangulate.export(tmp_path / "merged", formats=["csv"], to=tmp_path / "tables")
    assert summary.store is None and summary.db is None
    assert summary.files["csv"].rows["incidents"] == len(merged.incidents)
    assert (tmp_path / "tables" / "incidents.csv").is_file()


def test_load_run_of_records_never_reconciled_names_the_command_instead_of_reconciling(
    tmp_path: Path,
) -> None:
    (tmp_path / "records.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in mesa_records()))
    with pytest.raises(
        triangulate_export_error(), match=r"run `triangulate reconcile .*records\.jsonl --out"
    ):
        triangulate.load_run(tmp_path)
    assert not (tmp_path / "incidents.jsonl").exists()


def triangulate_export_error() -> type[Exception]:
    from pipeline.outputs.rundata import ExportError

    return ExportError


# --------------------------------------------------------------------------- run (the batch)


def test_run_builds_run_options_and_runs_the_batch_into_a_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub: FaultServer
) -> None:
    """(loopback stub) The endpoint comes from the environment, as for ``triangulate run``."""
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", STUB_KEY)
    inbox = tmp_path / "in"
    inbox.mkdir()
    for n in range(3):
        (inbox / f"{n}.txt").write_text(story(n), encoding="utf-8")

    assert triangulate.run(inbox, tmp_path / "out", model=STUB_MODEL, quiet=True, concurrency=2) == 0

    data = triangulate.load_run(tmp_path / "out")
    assert data.kind == "run" and len(data.records) == 3
    assert {a for i in data.incidents.incidents for a in i.article_ids} == {
        r.article_id for r in data.records
    }


def test_run_refuses_options_that_are_not_usable_before_touching_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        triangulate.run([tmp_path], tmp_path / "out", concurrency=0)
    with pytest.raises(TypeError, match="'out'"):
        triangulate.run([tmp_path], tmp_path / "out", out=tmp_path)
    with pytest.raises(TypeError, match="no_such_option"):
        triangulate.run([tmp_path], tmp_path / "out", no_such_option=1)
    assert not (tmp_path / "out").exists()
