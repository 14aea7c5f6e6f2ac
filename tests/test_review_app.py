"""``triangulate serve``: the review app, spoken to over HTTP as a browser would.

Each test starts the real app under uvicorn on a free loopback port (in a thread) and talks to
it with ``urllib``: the index and its search and filters, the incident view with evidence in
context, decisions recorded through the JSON API (and what it refuses), and the guards that keep
other web pages from recording decisions. The browser itself is in ``test_review_browser.py``.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from export_fixtures import (
    REPO,
    c,
    hand_record,
    hand_records,
    load_articles,
    tempe_run,
    two_incident_run,
    write_run,
)

from pipeline.cli.main import main as cli_main
from pipeline.evidence.locate import split_sentences
from pipeline.review import server as review_server
from pipeline.review.app import TOKEN_HEADER, create_app
from pipeline.review.server import bind, serve, url_of, uvicorn_server
from pipeline.review.views import excerpt, field_kind, typed_like
from pipeline.store.desk import Desk
from pipeline.store.runfolder import RunFolder
from pipeline.store.runstore import RunStore
from schemas import Article, Incident, IncidentRecord

GOLD = REPO / "examples" / "tempe-traffic-stop" / "gold_records.jsonl"
PLACE_OF_DEATH = "subjects[0].place_of_death"
TEMPE_TITLE = "2026-03-13 · Tempe, Arizona · Rafael Quintero-Alvarez"


# --------------------------------------------------------------------------- serving and asking


@dataclass(frozen=True)
class Served:
    url: str
    folder: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return ask(urllib.request.Request(self.url + path.lstrip("/"), headers=headers or {}))

    def page(self, path: str) -> str:
        reply = self.get(path)
        assert reply.status == 200, (reply.status, reply.body[:500])
        return reply.body

    def token(self) -> str:
        """The token, read from a page as the page's own script reads it."""
        found = re.search(r'<meta name="triangulate-token" content="([^"]+)">', self.page("/"))
        assert found
        return found.group(1)

    def post(self, path: str, body: bytes | Any, *, token: str | None) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers[TOKEN_HEADER] = token
        return ask(
            urllib.request.Request(self.url + path.lstrip("/"), data=data, headers=headers, method="POST")
        )

    def decide(self, **payload: Any) -> Reply:
        return self.post("/api/decisions", payload, token=self.token())


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def ask(request: urllib.request.Request) -> Reply:
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read().decode())


@contextlib.contextmanager
def serving(folder: Path, *, reviewer: str = "tester") -> Iterator[Served]:
    """The app for ``folder`` under uvicorn on a free loopback port, for the length of the block."""
    app = create_app(folder, reviewer=reviewer)
    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(url_of(sock), folder)
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def incidents(folder: Path) -> list[Incident]:
    return list(RunFolder(folder).read_incidents())


def row_ids(index_html: str) -> list[str]:
    return re.findall(r'<tr class="incident-row[^"]*" data-id="([^"]+)"', index_html)


def field_section(page: str, path: str) -> str:
    """The markup of one flagged field's section on an incident page."""
    start = page.index(f'data-path="{path}"')
    end = page.find('<section class="field', start)
    return page[start : end if end != -1 else len(page)]


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, list[Incident]]]:
    """Tempe (six articles, contradictions) and a lone Harlow article: read-only tests share it."""
    folder = two_incident_run(tmp_path_factory.mktemp("two"))
    with serving(folder) as served:
        yield served, incidents(folder)


@pytest.fixture
def gold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder reconciled from a copy of the gold records (a reconcile folder, no run store)."""
    # The gold records name their articles relative to the repository, as written.
    monkeypatch.chdir(REPO)
    records = tmp_path / "gold_records.jsonl"
    shutil.copy(GOLD, records)
    folder = tmp_path / "gold"
    assert cli_main(["reconcile", str(records), "--out", str(folder)]) == 0
    return folder


def tempe(incidents_: list[Incident]) -> Incident:
    return next(i for i in incidents_ if len(i.article_ids) == 6)


# --------------------------------------------------------------------------- the index


def test_the_index_names_each_incident_by_date_place_and_subject_with_its_counts(
    two: tuple[Served, list[Incident]],
) -> None:
    served, found = two
    page = served.page("/")
    incident = tempe(found)
    assert incident.title == TEMPE_TITLE
    assert f'<a class="title" href="/incident/{incident.id}">{html.escape(TEMPE_TITLE)}</a>' in page
    row = page[page.index(f'data-id="{incident.id}"') :].split("</tr>")[0]
    contradictions = sum(1 for f in incident.fields if f.verdict == "contradiction")
    assert contradictions > 0
    assert re.findall(r'<td class="num[^"]*">(\d+)', row)[:4] == [
        "6",
        str(len(_flagged(incident))),
        str(contradictions),
        "0",
    ]


def _flagged(incident: Incident) -> list[str]:
    from schemas.incident import FLAGGED_VERDICTS

    return [f.path for f in incident.fields if f.verdict in FLAGGED_VERDICTS]


def test_the_index_lists_incidents_with_contradictions_first(two: tuple[Served, list[Incident]]) -> None:
    served, found = two
    lone = next(i for i in found if len(i.article_ids) == 1)
    assert not any(f.verdict == "contradiction" for f in lone.fields)
    assert row_ids(served.page("/")) == [tempe(found).id, lone.id]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("harlow", "lone"),
        ("Valley Ledger", "tempe"),  # an outlet
        ("quintero-alvarez", "tempe"),  # a name
        ("courier harlow", "lone"),  # every word must occur, in any order
        ("courier tempe", "none"),
        ("inc-", "both"),  # an id
        ("nothing-like-this", "none"),
    ],
)
def test_search_finds_incidents_by_title_id_outlet_and_name(
    two: tuple[Served, list[Incident]], query: str, expected: str
) -> None:
    served, found = two
    lone = next(i for i in found if len(i.article_ids) == 1)
    wanted = {"lone": [lone.id], "tempe": [tempe(found).id], "both": [tempe(found).id, lone.id], "none": []}
    page = served.page("/?" + urllib.parse.urlencode({"q": query}))
    assert row_ids(page) == wanted[expected]
    assert ('id="no-match" hidden' in page) == (expected != "none")


def test_search_by_an_article_id_finds_its_incident(two: tuple[Served, list[Incident]]) -> None:
    served, found = two
    lone = next(i for i in found if len(i.article_ids) == 1)
    assert row_ids(served.page("/?q=" + urllib.parse.quote(lone.article_ids[0]))) == [lone.id]


def test_filters_by_verdict_and_field(two: tuple[Served, list[Incident]]) -> None:
    served, found = two
    lone = next(i for i in found if len(i.article_ids) == 1)
    assert row_ids(served.page("/?verdict=contradiction")) == [tempe(found).id]
    assert row_ids(served.page("/?verdict=single-source")) == [tempe(found).id, lone.id]
    kind = urllib.parse.quote("subjects[].place_of_death")
    assert row_ids(served.page(f"/?field={kind}")) == [tempe(found).id]
    # Verdict and field describe the same field: the lone incident's place of death is not flagged.
    assert row_ids(served.page(f"/?field={kind}&verdict=single-source")) == []


def test_the_field_filter_offers_each_flagged_field_without_its_list_positions(
    two: tuple[Served, list[Incident]],
) -> None:
    served, _ = two
    page = served.page("/")
    options = re.findall(r'<option value="([^"]*)"', page.split('id="filter-field"')[1].split("</select>")[0])
    assert "subjects[].place_of_death" in options
    assert not any(re.search(r"\[\d+\]", option) for option in options)
    assert field_kind("agencies[12].role") == "agencies[].role"


def test_an_unknown_verdict_or_review_state_is_a_400_page_that_says_which(
    two: tuple[Served, list[Incident]],
) -> None:
    served, _ = two
    reply = served.get("/?verdict=maybe&state=later")
    assert reply.status == 400
    assert (
        "unknown verdict &#39;maybe&#39;" in reply.body
        and "unknown review state &#39;later&#39;" in reply.body
    )


def test_the_review_state_filter_follows_decisions(tmp_path: Path) -> None:
    folder = two_incident_run(tmp_path / "run")
    incident = tempe(incidents(folder))
    with serving(folder) as served:
        kind = urllib.parse.quote("subjects[].place_of_death")
        assert row_ids(served.page("/?state=decided")) == []
        assert row_ids(served.page(f"/?state=undecided&field={kind}")) == [incident.id]
        reply = served.decide(
            incident_id=incident.id, field_path=PLACE_OF_DEATH, action="accept", value="at the hospital"
        )
        assert reply.status == 201, reply.body
        assert row_ids(served.page("/?state=decided")) == [incident.id]
        assert row_ids(served.page(f"/?state=undecided&field={kind}")) == []
        # Other contradictions of the incident are still undecided.
        assert row_ids(served.page("/?state=undecided&verdict=contradiction")) == [incident.id]
        assert row_ids(served.page("/?state=stale")) == []


def test_the_index_carries_no_article_text(two: tuple[Served, list[Incident]]) -> None:
    served, _ = two
    page = served.page("/")
    for article in load_articles().all:
        # A sentence from the body of every article: not on the index, however the page is built.
        body_sentence = article.text.strip().splitlines()[-1].strip()
        assert body_sentence and html.escape(body_sentence) not in page


# --------------------------------------------------------------------------- the incident view


def test_flagged_fields_come_first_with_contradictions_first(two: tuple[Served, list[Incident]]) -> None:
    served, found = two
    page = served.page(f"/incident/{tempe(found).id}")
    verdicts = re.findall(r'<section class="field flagged verdict-([a-z-]+)', page)
    assert verdicts and verdicts[0] == "contradiction"
    ranks = {"contradiction": 0, "variant": 1, "more-specific": 2, "partial": 3, "single-source": 4}
    assert [ranks[v] for v in verdicts] == sorted(ranks[v] for v in verdicts)
    assert page.index('class="field flagged') < page.index('class="other-fields"')


def test_each_value_shows_its_evidence_highlighted_in_its_sentence_in_context(
    two: tuple[Served, list[Incident]],
) -> None:
    served, found = two
    section = field_section(served.page(f"/incident/{tempe(found).id}"), PLACE_OF_DEATH)
    assert (
        'data-value="&#34;at the hospital&#34;"' in section
        and 'data-value="&#34;at the scene&#34;"' in section
    )
    # The quote marked inside its sentence, with the sentences around it.
    ledger = load_articles().by_file["01-valley-ledger.md"].text
    quote = "where he was pronounced dead at the hospital"
    marked = re.search(
        r'<span class="sentence">([^<]*)<mark class="evidence">([^<]*' + quote + r"[^<]*)</mark>", section
    )
    assert marked, "the hospital quote is not highlighted inside its sentence"
    start = ledger.index(html.unescape(marked.group(2)))
    assert ledger[start - len(html.unescape(marked.group(1))) : start] == html.unescape(marked.group(1))
    excerpt_html = section[
        section.rfind("<blockquote", 0, marked.start()) : section.index("</blockquote>", marked.end())
    ]
    shown_text = html.unescape(re.sub(r"<[^>]+>", "", excerpt_html)).strip("…")
    assert len(shown_text) > len(marked.group(2)) + 40, "no context around the sentence"
    # The excerpt is a stretch of the article (its blank lines squeezed to line breaks).
    assert " ".join(shown_text.split()) in " ".join(ledger.split())


def test_each_citation_names_its_outlet_speaker_and_the_independent_sources(
    two: tuple[Served, list[Incident]],
) -> None:
    served, found = two
    incident = tempe(found)
    section = field_section(served.page(f"/incident/{incident.id}"), PLACE_OF_DEATH)
    verdict = next(f for f in incident.fields if f.path == PLACE_OF_DEATH)
    for value in verdict.values:
        assert f"{value.n_independent_sources} independent source(s)" in section
        for citation in value.citations:
            assert f'<span class="outlet">{html.escape(citation["outlet"] or "")}</span>' in section
    from pipeline.kinds.identity import display_speaker

    speakers = {display_speaker(c["speaker"]) for v in verdict.values for c in v.citations}
    assert speakers and all(f'<span class="speaker">{html.escape(s)}</span>' in section for s in speakers)


def test_the_model_plan_and_prompt_of_each_record_are_named(tmp_path: Path) -> None:
    articles = load_articles()
    records = hand_records(articles)
    for n, record in enumerate(records):
        record.provenance.model = f"model-{n}"
        record.provenance.plan = "sentences"
        record.provenance.prompt_hash = f"{n:x}" * 16
    folder = write_run(tmp_path / "run", records, articles.all)
    with serving(folder) as served:
        page = served.page(f"/incident/{incidents(folder)[0].id}")
    sources = page.split('id="sources"')[1].split("</table>")[0]
    for n in range(len(records)):
        row = sources.split(f'data-article="{records[n].article_id}"')[1].split("</tr>")[0]
        assert f"model-{n}" in row and "sentences" in row
        assert f'title="{records[n].provenance.prompt_hash}"' in row


def test_an_incident_id_from_before_a_merge_leads_to_the_incident_it_is_part_of(tmp_path: Path) -> None:
    folder = two_incident_run(tmp_path / "run")
    # Reconciled once through the desk, which then knows each article's incident.
    assert cli_main(["reconcile", str(folder / "records.jsonl"), "--out", str(folder)]) == 0
    first, second = sorted(i.id for i in incidents(folder))
    assert (
        cli_main(["decide", str(folder), "--incident", first, "--merge-with", second, "--note", "same"]) == 0
    )
    (merged,) = incidents(folder)
    old = next(i for i in (first, second) if i != merged.id)
    with serving(folder) as served:
        reply = served.get(f"/incident/{old}")
        assert reply.status == 303
        assert reply.headers["location"].endswith(f"/incident/{merged.id}")
        assert served.get("/incident/inc-nothing").status == 404


# --------------------------------------------------------------------------- decisions


def test_a_decision_is_stored_at_once_shown_on_reload_and_kept_by_a_later_reconcile(gold: Path) -> None:
    (incident,) = incidents(gold)
    with serving(gold, reviewer="ak") as served:
        reply = served.decide(
            incident_id=incident.id,
            field_path=PLACE_OF_DEATH,
            action="set",
            value="at the scene",
            note="Medical examiner's report",
        )
        assert reply.status == 201, reply.body
        recorded = reply.json()["decision"]
        assert (recorded["seq"], recorded["by"], recorded["value"]) == (1, "ak", "at the scene")
        assert {e["value"] for e in recorded["evidence"]} == {"at the hospital", "at the scene"}

        with RunStore(gold) as store:
            assert [(d.seq, d.action, d.note) for d in Desk(store).decisions()] == [
                (1, "set", "Medical examiner's report")
            ]

        def shows_the_decision() -> bool:
            section = field_section(served.page(f"/incident/{incident.id}"), PLACE_OF_DEATH)
            return (
                '<p class="decision">' in section
                and '<q class="decided-value">at the scene</q>' in section
                and "Medical examiner&#39;s report" in section
                and '<span class="decision-by">ak</span>' in section
            )

        assert shows_the_decision()
        assert cli_main(["reconcile", str(gold / "records.jsonl"), "--out", str(gold)]) == 0
        assert shows_the_decision()
        assert "set <q>at the scene</q>" in served.page(f"/incident/{incident.id}").split('id="history"')[1]


def test_a_decision_made_elsewhere_shows_on_the_next_page(gold: Path) -> None:
    (incident,) = incidents(gold)
    with serving(gold) as served:
        assert '<p class="decision">' not in field_section(
            served.page(f"/incident/{incident.id}"), PLACE_OF_DEATH
        )
        argv = [
            "decide",
            str(gold),
            "--incident",
            incident.id,
            "--field",
            PLACE_OF_DEATH,
            "--accept",
            "at the scene",
        ]
        assert cli_main(argv) == 0
        assert '<p class="decision">' in field_section(
            served.page(f"/incident/{incident.id}"), PLACE_OF_DEATH
        )


def test_a_decision_that_no_longer_applies_is_listed_with_its_reason_and_found_as_stale(gold: Path) -> None:
    (incident,) = incidents(gold)
    with serving(gold) as served:
        reply = served.decide(
            incident_id=incident.id, field_path="where.city", action="accept", value="Phoenix"
        )
        assert reply.status == 201, reply.body
        assert row_ids(served.page("/?state=stale")) == []
        # The only articles that said Phoenix are withdrawn, and the folder is reconciled again.
        records = RunFolder(gold).records
        said = [IncidentRecord.model_validate_json(line) for line in records.read_text().splitlines()]
        kept = [r.model_dump_json() for r in said if r.where.city is None or r.where.city.value != "Phoenix"]
        assert len(kept) < 6
        records.write_text("\n".join(kept) + "\n")
        assert cli_main(["reconcile", str(records), "--out", str(gold)]) == 0
        assert row_ids(served.page("/?state=stale")) == [incident.id]
        stale = served.page(f"/incident/{incident.id}").split('id="stale"')[1].split("</section>")[0]
    assert "where.city" in stale and "Phoenix" in stale
    assert "the accepted value is no longer among the sources&#39; values" in stale


def test_accept_and_resolve_are_recorded_as_such(tmp_path: Path) -> None:
    folder = tempe_run(tmp_path / "run")
    (incident,) = incidents(folder)
    with serving(folder) as served:
        assert (
            served.decide(
                incident_id=incident.id, field_path=PLACE_OF_DEATH, action="accept", value="at the scene"
            ).status
            == 201
        )
        assert (
            served.decide(
                incident_id=incident.id, field_path="when.raw_phrase", action="resolved", note="fine"
            ).status
            == 201
        )
    (after,) = incidents(folder)
    decisions = {f.path: f.decision for f in after.fields if f.decision is not None}
    assert decisions[PLACE_OF_DEATH] is not None and decisions[PLACE_OF_DEATH].value == "at the scene"
    assert decisions["when.raw_phrase"] is not None and decisions["when.raw_phrase"].action == "resolved"


def test_a_post_without_the_pages_token_is_refused_and_records_nothing(tmp_path: Path) -> None:
    folder = tempe_run(tmp_path / "run")
    (incident,) = incidents(folder)
    payload = {
        "incident_id": incident.id,
        "field_path": PLACE_OF_DEATH,
        "action": "accept",
        "value": "at the scene",
    }
    with serving(folder) as served:
        for token in (None, "", "guessed"):
            reply = served.post("/api/decisions", payload, token=token)
            assert reply.status == 403 and TOKEN_HEADER in reply.json()["error"]
        # A form another web page could post: no header, not JSON.
        form = urllib.parse.urlencode(payload).encode()
        assert served.post("/api/decisions", form, token=None).status == 403
    with RunStore(folder) as store:
        assert Desk(store).decisions() == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"not json", 400, "not JSON"),
        (b"[" * 100_000, 413, "larger than"),
        (b"[" * 10_000, 400, "not JSON"),
        (b'["a list"]', 400, "JSON object"),
        ({"field_path": PLACE_OF_DEATH, "action": "accept"}, 400, "incident_id"),
        ({"incident_id": "INCIDENT", "action": "accept"}, 400, "field_path"),
        ({"incident_id": "INCIDENT", "field_path": PLACE_OF_DEATH, "action": "merge"}, 400, "action must be"),
        (
            {"incident_id": "INCIDENT", "field_path": PLACE_OF_DEATH, "action": "set", "value": "x"},
            400,
            "note",
        ),
        (
            {"incident_id": "INCIDENT", "field_path": PLACE_OF_DEATH, "action": "set", "note": "why"},
            400,
            "value",
        ),
        (
            {"incident_id": "INCIDENT", "field_path": PLACE_OF_DEATH, "action": "accept", "value": {"a": 1}},
            400,
            "value must",
        ),
        (
            {
                "incident_id": "INCIDENT",
                "field_path": PLACE_OF_DEATH,
                "action": "accept",
                "value": "in space",
            },
            400,
            "not one of",
        ),
        (
            {
                "incident_id": "INCIDENT",
                "field_path": PLACE_OF_DEATH,
                "action": "accept",
                "value": "at the scene",
                "by": "x",
            },
            400,
            "unknown key",
        ),
        (
            {"incident_id": "inc-nothing", "field_path": PLACE_OF_DEATH, "action": "resolved"},
            404,
            "no incident",
        ),
        (
            {"incident_id": "INCIDENT", "field_path": "subjects[9].name", "action": "resolved"},
            404,
            "no field",
        ),
    ],
)
def test_bad_decisions_get_a_json_error_saying_what_is_wrong_never_a_500(
    tmp_path: Path, body: bytes | dict[str, Any], status: int, says: str
) -> None:
    folder = tempe_run(tmp_path / "run")
    (incident,) = incidents(folder)
    if isinstance(body, dict):
        body = {k: (incident.id if v == "INCIDENT" else v) for k, v in body.items()}
    with serving(folder) as served:
        reply = served.post("/api/decisions", body, token=served.token())
    assert reply.status == status
    assert says in reply.json()["error"]
    with RunStore(folder) as store:
        assert Desk(store).decisions() == []


# --------------------------------------------------------------------------- safety


HOSTILE_TEXT = (
    "Deputies shot <script>window.__pwned=1</script> Bobby <img src=x onerror=alert(1)> Tables "
    "in Harlow on Tuesday, the sheriff said.\n"
)


def test_hostile_titles_quotes_and_outlets_are_shown_as_text(tmp_path: Path) -> None:
    article = Article.from_text(
        HOSTILE_TEXT,
        source_path="hostile.txt",
        outlet='<b onmouseover="x()">Outlet</b>',
        url="javascript:alert(1)",
    )
    name = "Bobby <img src=x onerror=alert(1)> Tables"
    record = hand_record(
        article,
        {
            "when": {"date": c("2026-05-05", "on Tuesday, the sheriff said")},
            "where": {"city": c("Harlow", "in Harlow on Tuesday")},
            "subjects": [{"name": c(name, name, "<script>window.__pwned=2</script>")}],
        },
    )
    folder = write_run(tmp_path / "run", [record], [article])
    (incident,) = incidents(folder)
    assert name in incident.title
    with serving(folder) as served:
        pages = [served.page("/"), served.page(f"/incident/{incident.id}")]
    for page in pages:
        assert "<img" not in page and "<script>window" not in page and 'onmouseover="x()"' not in page
        assert html.escape(name, quote=False) in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in pages[1]  # the quote in context, as text
    assert 'href="javascript' not in pages[1] and "javascript:alert(1)" in pages[1]


def test_pages_run_only_the_apps_own_script_and_load_nothing_from_elsewhere(
    two: tuple[Served, list[Incident]],
) -> None:
    served, found = two
    for path in ("/", f"/incident/{tempe(found).id}"):
        reply = served.get(path)
        policy = reply.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert re.findall(r'<script[^>]*src="([^"]+)"', reply.body) == ["/static/review.js"]
        assert re.findall(r'<link[^>]*href="([^"]+)"', reply.body) == ["/static/review.css"]
        assert "<script>" not in reply.body
    for asset in ("/static/review.js", "/static/review.css"):
        assert served.get(asset).status == 200


def test_a_request_naming_another_host_is_refused(two: tuple[Served, list[Incident]]) -> None:
    # A page whose own name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name as Host.
    served, _ = two
    assert served.get("/", headers={"Host": "attacker.example"}).status == 400
    assert served.get("/", headers={"Host": "localhost"}).status == 200


# --------------------------------------------------------------------------- the whole article


def test_the_whole_article_comes_cut_at_the_quote(two: tuple[Served, list[Incident]]) -> None:
    served, _ = two
    article = load_articles().by_file["01-valley-ledger.md"]
    start = article.text.index("where he was pronounced dead")
    end = start + len("where he was pronounced dead")
    query = urllib.parse.urlencode({"id": article.id, "start": start, "end": end})
    cut = served.get(f"/api/article?{query}").json()
    assert cut["quote"] == "where he was pronounced dead"
    assert cut["before"] + cut["quote"] + cut["after"] == article.text


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"id": "ARTICLE", "start": "1", "end": "x"}, 400),
        ({"id": "ARTICLE", "start": "5", "end": "2"}, 400),
        ({"id": "ARTICLE", "start": "0", "end": "99999999"}, 400),
        ({"id": "sha256:nothing", "start": "0", "end": "1"}, 404),
    ],
)
def test_a_bad_article_request_is_a_json_error(
    two: tuple[Served, list[Incident]], query: dict[str, str], status: int
) -> None:
    served, _ = two
    article = load_articles().by_file["01-valley-ledger.md"]
    query = {k: (article.id if v == "ARTICLE" else v) for k, v in query.items()}
    reply = served.get("/api/article?" + urllib.parse.urlencode(query))
    assert reply.status == status and reply.json()["error"]


# --------------------------------------------------------------------------- view helpers


def test_an_excerpt_is_the_sentence_holding_the_quote_and_one_sentence_either_side() -> None:
    text = "First one. Second one. The quote sits here 😀 today. Fourth one. Fifth one."
    start = text.index("quote sits")
    end = start + len("quote sits")
    cut = excerpt(text, split_sentences(text), start, end)
    assert (cut.lead, cut.head, cut.quote, cut.tail, cut.trail) == (
        "Second one. ",
        "The ",
        "quote sits",
        " here 😀 today.",
        " Fourth one.",
    )
    assert cut.clipped_lead and cut.clipped_trail


def test_an_excerpt_cuts_long_neighbours_at_a_word() -> None:
    long = "Then " + " ".join(["word"] * 400) + "."
    text = f"{long} The quote. {long}"
    start = text.index("The quote")
    cut = excerpt(text, split_sentences(text), start, start + len("The quote."))
    assert cut.quote == "The quote."
    assert 0 < len(cut.lead) <= 400 and cut.lead.startswith("word ") and cut.clipped_lead
    assert 0 < len(cut.trail) <= 400 and cut.trail.startswith(" Then") and cut.trail.endswith(" word")
    assert cut.clipped_trail


@pytest.mark.parametrize(
    ("typed", "values", "expected"),
    [
        ("2", [1, 3], 2),
        ("true", [False], True),
        ("2", ["1", "plural"], "2"),
        ("at home", ["at the scene"], "at home"),
        ("two", [1], "two"),
    ],
)
def test_a_value_set_by_hand_takes_the_type_of_the_fields_values(
    typed: str, values: list[Any], expected: Any
) -> None:
    assert typed_like(typed, values) == expected
    assert type(typed_like(typed, values)) is type(expected)


# --------------------------------------------------------------------------- triangulate serve


class _StoppedServer:
    """Stands in for uvicorn: notes the app and the address it was given and returns at once, so
    serve() can be watched from start to end."""

    def __init__(self) -> None:
        self.app: Any = None
        self.addresses: list[tuple[str, int]] = []

    def __call__(self, app: Any) -> _StoppedServer:
        self.app = app
        return self

    def run(self, sockets: list[Any]) -> None:
        self.addresses = [sock.getsockname()[:2] for sock in sockets]


@pytest.fixture
def no_uvicorn(monkeypatch: pytest.MonkeyPatch) -> _StoppedServer:
    stand_in = _StoppedServer()
    monkeypatch.setattr(review_server, "uvicorn_server", stand_in)
    return stand_in


def test_serve_listens_on_loopback_prints_the_address_and_records_as_the_reviewer(
    tmp_path: Path,
    no_uvicorn: _StoppedServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIANGULATE_REVIEWER", "Night Editor")
    folder = tempe_run(tmp_path / "run")
    assert cli_main(["serve", str(folder), "--port", "0", "--no-browser"]) == 0
    out, err = capsys.readouterr()
    ((host, port),) = no_uvicorn.addresses
    assert host == "127.0.0.1" and port > 0
    assert f"at http://127.0.0.1:{port}/" in out and "1 incident(s)" in out
    assert "warning" not in err
    assert no_uvicorn.app.state.review.reviewer == "Night Editor"


def test_serve_on_another_address_warns_that_anyone_can_record_decisions(
    tmp_path: Path, no_uvicorn: _StoppedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tempe_run(tmp_path / "run")
    assert serve(folder, host="0.0.0.0", port=0, reviewer="ak", open_browser=False) == 0
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0, not loopback" in err and "record decisions" in err


def test_serve_refuses_a_folder_without_a_run_or_not_reconciled(
    tmp_path: Path, no_uvicorn: _StoppedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["serve", str(tmp_path / "nothing"), "--no-browser"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    folder = tempe_run(tmp_path / "run")
    RunFolder(folder).incidents.unlink()
    assert cli_main(["serve", str(folder), "--no-browser"]) == 1
    assert "triangulate reconcile" in capsys.readouterr().err
    assert no_uvicorn.addresses == []


def test_serve_says_when_the_port_is_taken(
    tmp_path: Path, no_uvicorn: _StoppedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tempe_run(tmp_path / "run")
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert cli_main(["serve", str(folder), "--port", str(port), "--no-browser"]) == 2
    finally:
        taken.close()
    assert capsys.readouterr().err.startswith(f"error: cannot listen on 127.0.0.1:{port}")


# --------------------------------------------------------------------------- a large folder


def _synthetic_run(out: Path, copies: int) -> Path:
    """``copies`` copies of the Tempe example (six articles each), one incident per copy: the
    generator the export benchmark times, loaded from ``benchmarks/bench_export.py``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_export", REPO / "benchmarks" / "bench_export.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.synthetic_run(out, copies)
    return out


@pytest.mark.slow  # builds and reconciles 2,004 records
def test_a_folder_of_two_thousand_records_answers_at_once_once_read(tmp_path: Path) -> None:
    folder = _synthetic_run(tmp_path / "big", 334)
    with serving(folder) as served:
        started = time.perf_counter()
        first = served.page("/")
        read_s = time.perf_counter() - started
        timings = {}
        for path in ("/", "/?q=valley", "/?verdict=contradiction&state=undecided"):
            started = time.perf_counter()
            page = served.page(path)
            timings[path] = time.perf_counter() - started
            assert len(row_ids(page)) == 334
        incident = row_ids(first)[0]
        started = time.perf_counter()
        served.page(f"/incident/{incident}")
        timings["incident"] = time.perf_counter() - started
    assert read_s < 30, f"reading the folder took {read_s:.1f} s"
    assert all(seconds < 1.0 for seconds in timings.values()), timings
    # The index carries titles and counts, not articles: no copy's text is on it.
    assert "[copy 0]" not in first and "pronounced dead" not in first
    assert len(first) < 2_000_000
