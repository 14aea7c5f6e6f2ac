"""Publication dates printed at the top of an article: read when the input has no date of its own.

Every article here is invented for these tests. Each case is one short story whose head (a
dateline, a byline, a "Published" stamp) does or does not say when it came out.
"""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.evidence.cite import cite_reading
from pipeline.evidence.locate import split_sentences
from pipeline.ingest.dateline import HEAD_CHARS, read_dateline
from pipeline.ingest.sources import iter_sources
from pipeline.kinds.words import MONTHS
from pipeline.outputs.show import show_article
from pipeline.store.runstore import RunStore
from schemas import Article, ArticleReading, FailureRow
from schemas.article import content_hash

HEADLINE = "Driver shot by agent during Mesa traffic stop"
STORY = (
    "A Border Patrol agent shot a driver during a traffic stop in Mesa on Friday, "
    "the Department of Homeland Security said in a statement on Saturday.\n\n"
    "The driver, whose name was not released, was taken to a hospital in critical condition."
)
SEPT_13 = date(2025, 9, 13)  # a Saturday


def read(path: Path) -> Article:
    [item] = list(iter_sources([path]))
    assert isinstance(item, Article), item
    return item


def article_file(tmp_path: Path, text: str, name: str = "story.txt") -> Article:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read(path)


# ---------------------------------------------------------------- the forms a head prints


@pytest.mark.parametrize(
    "head",
    [
        pytest.param("date 2025-09-13 (Jane Roe, Valley Ledger)", id="date label with a credit"),
        pytest.param("By Jane Roe, Valley Ledger\nSept. 13, 2025", id="byline then abbreviated month"),
        pytest.param("By Jane Roe, Valley Ledger | Sept. 13, 2025", id="byline and date on one line"),
        pytest.param("September 13, 2025", id="month day year"),
        pytest.param("13 September 2025", id="day month year"),
        pytest.param("SEPT. 13, 2025", id="upper case"),
        pytest.param("Saturday, September 13, 2025", id="with the weekday"),
        pytest.param("Updated 9:14 PM EDT, Sat September 13, 2025", id="update stamp with time and zone"),
        pytest.param("Published Sept. 13, 2025 at 6:02 p.m.", id="publication stamp with time"),
        pytest.param("2025-09-13", id="ISO"),
        pytest.param("Posted: 2025-09-13T21:14:00-04:00", id="ISO datetime"),
        pytest.param("9/13/2025", id="US numeric"),
        pytest.param(
            "By Ana de la Cruz and Luis Ortega, Valley Ledger staff writers\nPublished Sept. 13, 2025",
            id="two authors and a title",
        ),
    ],
)
def test_a_date_line_in_the_head_gives_the_publication_date(tmp_path: Path, head: str) -> None:
    story = article_file(tmp_path, f"{HEADLINE}\n\n{head}\n\n{STORY}\n")
    assert story.published == SEPT_13
    assert story.published_from == "dateline"


def test_a_wire_dateline_opening_the_first_paragraph_is_read_up_to_where_the_story_starts() -> None:
    text = (
        "MESA, Ariz., Sept. 13, 2025 — A Border Patrol agent shot a driver during a traffic stop "
        "on Friday, officials said."
    )
    assert read_dateline(text) == SEPT_13


def test_a_wire_dateline_may_carry_the_outlet_and_set_the_date_off_with_dashes() -> None:
    text = "MESA, Ariz. (Valley Ledger) — Sept. 13, 2025 — A Border Patrol agent shot a driver on Friday."
    assert read_dateline(text) == SEPT_13


def test_when_both_are_printed_the_publication_date_wins_over_the_update() -> None:
    one_line = "By Jane Roe | Published Sept. 13, 2025 at 6:02 p.m. | Updated Sept. 15, 2025 at 8:40 a.m."
    two_lines = "Updated 8:40 AM EDT, Mon September 15, 2025\nPublished 6:02 PM EDT, Sat September 13, 2025"
    for head in (one_line, two_lines):
        assert read_dateline(f"{HEADLINE}\n{head}\n\n{STORY}") == SEPT_13, head


def test_a_bare_date_above_an_update_stamp_is_the_publication_date() -> None:
    assert read_dateline(f"Sept. 13, 2025\nUpdated Sept. 15, 2025\n\n{STORY}") == SEPT_13


def test_an_update_stamp_alone_dates_the_text_as_read() -> None:
    assert read_dateline(f"{HEADLINE}\nUpdated Sept. 15, 2025\n\n{STORY}") == date(2025, 9, 15)


def test_the_same_date_printed_twice_is_one_date() -> None:
    assert read_dateline(f"date 2025-09-13 (Jane Roe, Valley Ledger)\nSept. 13, 2025\n\n{STORY}") == SEPT_13


# ---------------------------------------------------------------- metadata first


def test_a_metadata_date_wins_over_the_dateline(tmp_path: Path) -> None:
    story = article_file(
        tmp_path,
        f"---\noutlet: Valley Ledger\npublished: 2025-09-12\n---\nPublished Sept. 13, 2025\n\n{STORY}\n",
        name="story.md",
    )
    assert (story.published, story.published_from) == (date(2025, 9, 12), "metadata")


def test_a_sidecar_date_wins_over_the_dateline(tmp_path: Path) -> None:
    (tmp_path / "story.meta.yaml").write_text("published: 2025-09-12\n", encoding="utf-8")
    story = article_file(tmp_path, f"Sept. 13, 2025\n\n{STORY}\n")
    assert (story.published, story.published_from) == (date(2025, 9, 12), "metadata")


def test_an_html_meta_date_wins_over_a_dateline_in_the_page(tmp_path: Path) -> None:
    page = (
        '<html><head><meta property="article:published_time" content="2025-09-12T19:00:00-07:00">'
        "</head><body><article><p>By Jane Roe | Sept. 13, 2025</p>"
        f"<p>{STORY.split(chr(10))[0]}</p></article></body></html>"
    )
    story = article_file(tmp_path, page, name="page.html")
    assert (story.published, story.published_from) == (date(2025, 9, 12), "metadata")


def test_jsonl_reads_the_field_first_and_the_dateline_only_without_it(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    text = f"Published Sept. 13, 2025\n\n{STORY}"
    rows = [{"text": text, "published": "2025-09-12"}, {"text": text}]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    with_field, without = (item for item in iter_sources([path]) if isinstance(item, Article))
    assert (with_field.published, with_field.published_from) == (date(2025, 9, 12), "metadata")
    assert (without.published, without.published_from) == (SEPT_13, "dateline")
    assert with_field.id == without.id == content_hash(text), "where the date came from is not identity"


def test_an_article_built_in_code_with_a_date_says_metadata_and_without_one_none() -> None:
    assert Article.from_text(STORY, published=SEPT_13).published_from == "metadata"
    assert Article.from_text(STORY).published_from == "none"
    with pytest.raises(ValueError, match="published_from"):
        Article.from_text(STORY, published_from="dateline")


# ---------------------------------------------------------------- never guessed


def test_a_date_in_a_sentence_of_the_body_is_an_event_date_not_a_publication_date(tmp_path: Path) -> None:
    text = (
        f"{HEADLINE}\n\n{STORY}\n\n"
        "On Friday, Sept. 12, 2025, police said the driver had been stopped twice before.\n\n"
        "Sept. 12, 2025\n\nThe agent was placed on leave."
    )
    story = article_file(tmp_path, text)
    assert (story.published, story.published_from) == (None, "none")


@pytest.mark.parametrize(
    "head",
    [
        pytest.param("Police said Friday, Sept. 12, 2025, that the driver was hurt.", id="a lead sentence"),
        pytest.param(
            "By Friday, Sept. 12, 2025, police had arrested two men.", id="a sentence opening with By"
        ),
        pytest.param("AGENT SHOOTS DRIVER SEPT. 12, 2025", id="an all-caps headline"),
        pytest.param(
            "MESA, Ariz. — On Sept. 12, 2025, an agent shot a driver.", id="a date after the dateline"
        ),
        pytest.param("See https://valleyledger.example/news/2025-09-13/mesa-stop", id="a date in a link"),
        pytest.param(
            "Sept. 12, 2025 — the night an agent fired — is now under review.", id="a dash without a place"
        ),
    ],
)
def test_a_date_in_a_sentence_near_the_top_is_not_read(head: str) -> None:
    assert read_dateline(f"{head}\n\n{STORY}") is None


def test_a_date_line_below_the_first_paragraph_of_prose_is_not_read() -> None:
    long_lead = STORY.split("\n")[0]
    assert read_dateline(f"{HEADLINE}\n\n{long_lead}\n\nSept. 13, 2025") is None


def test_a_date_line_past_the_head_is_not_read() -> None:
    filler = "\n".join(["Mesa"] * (HEAD_CHARS // 5 + 1))  # short lines that are not prose
    assert read_dateline(f"{filler}\nSept. 13, 2025\n\n{STORY}") is None
    assert read_dateline(f"Sept. 13, 2025\n{filler}\n\n{STORY}") == SEPT_13


@pytest.mark.parametrize(
    "head",
    [
        pytest.param("Feb. 30, 2025", id="no such day"),
        pytest.param("2025-13-01", id="no such month"),
        pytest.param("Published Feb. 30, 2025 | Updated March 2, 2025", id="not replaced by the update"),
        pytest.param("Sept. 13", id="no year"),
        pytest.param("9/13/25", id="two-digit year"),
        pytest.param("Published Sept. 13, 25", id="two-digit year written out"),
        pytest.param("13/9/2025", id="day first"),
    ],
)
def test_a_date_that_cannot_be_read_for_sure_is_null(tmp_path: Path, head: str) -> None:
    story = article_file(tmp_path, f"{HEADLINE}\n{head}\n\n{STORY}\n")
    assert (story.published, story.published_from) == (None, "none")


@pytest.mark.parametrize(
    "head",
    [
        pytest.param("Sept. 12, 2025 - Sept. 13, 2025", id="two dates on a line"),
        pytest.param("Sept. 12, 2025\nBy Jane Roe, Valley Ledger\n13 September 2025", id="two date lines"),
        pytest.param("Published Sept. 12, 2025 | Published Sept. 13, 2025", id="two publication dates"),
    ],
)
def test_two_different_dates_of_the_same_kind_are_null(head: str) -> None:
    assert read_dateline(f"{HEADLINE}\n{head}\n\n{STORY}") is None


# ---------------------------------------------------------------- properties

_PROSE = ["police", "said", "the", "driver", "was", "shot", "near", "a", "stop", "agent", "hospital"]


def _written(day: date, form: int) -> str:
    month = MONTHS[day.month - 1]
    return [
        day.isoformat(),
        f"{day.month}/{day.day}/{day.year}",
        f"{month.title()} {day.day}, {day.year}",
        f"{month[:3].title()}. {day.day}, {day.year}",
        f"{day.day} {month.title()} {day.year}",
    ][form]


_DAYS = st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31))
_FORMS = st.integers(min_value=0, max_value=4)


@settings(max_examples=200, deadline=None)
@given(day=_DAYS, form=_FORMS, label=st.sampled_from(["", "Published ", "Updated ", "date ", "Posted: "]))
def test_any_written_date_on_a_date_line_is_read_back(day: date, form: int, label: str) -> None:
    assert read_dateline(f"{HEADLINE}\n{label}{_written(day, form)}\n\n{STORY}") == day


@st.composite
def _sentence(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(_PROSE), min_size=1, max_size=8))
    dates = draw(st.lists(st.builds(_written, _DAYS, _FORMS), max_size=2))
    opening = draw(st.sampled_from(["", "By ", "Published ", "MESA, Ariz. — ", "Friday, "]))
    parts: list[str] = draw(st.permutations(words + dates))
    return opening + " ".join(parts)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_sentence(), min_size=1, max_size=6))
def test_a_text_whose_lines_all_hold_a_word_of_prose_never_yields_a_date(lines: list[str]) -> None:
    assert read_dateline("\n".join(lines)) is None


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_gives_a_date_or_none_and_never_fails(text: str) -> None:
    found = read_dateline(text)
    assert found is None or isinstance(found, date)


# ---------------------------------------------------------------- through the pipeline


def test_articles_read_from_a_folder_get_their_dateline_dates(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "01-ledger.txt").write_text(f"By Jane Roe, Valley Ledger\nSept. 13, 2025\n\n{STORY}\n")
    (folder / "02-courier.md").write_text(f"---\npublished: 2025-09-14\n---\n{STORY} More.\n")
    (folder / "03-wire.txt").write_text(f"{STORY} Still more.\n")
    items = list(iter_sources([folder]))
    articles = [item for item in items if isinstance(item, Article)]
    assert len(articles) == len(items), [item for item in items if isinstance(item, FailureRow)]
    dated = [(Path(item.source_path or "").name, item.published, item.published_from) for item in articles]
    assert dated == [
        ("01-ledger.txt", SEPT_13, "dateline"),
        ("02-courier.md", date(2025, 9, 14), "metadata"),
        ("03-wire.txt", None, "none"),
    ]


def reading(**values: Any) -> ArticleReading:
    answer: dict[str, Any] = dict.fromkeys(ArticleReading.model_fields)
    answer.update(agencies=[], agency_sents=[], speakers=[], speaker_sents=[])
    answer.update(values)
    return ArticleReading.model_validate(answer)


def friday_in(story: Article) -> str | None:
    """The ISO date the cite step makes of a model's "Friday" (sentence 3: the lead) in ``story``."""
    sentences = split_sentences(story.text)
    assert "on Friday" in sentences[2].text
    facts = cite_reading(
        reading(date_words="Friday", date_sent=3),
        text=story.text,
        sentences=sentences,
        published=story.published,
    )
    return None if facts.when.date is None else str(facts.when.date.value)


def test_friday_in_a_dateline_dated_article_resolves_to_the_friday_before_publication(
    tmp_path: Path,
) -> None:
    dated = article_file(tmp_path, f"{HEADLINE}\nPublished Sept. 13, 2025\n\n{STORY}\n", name="dated.txt")
    undated = article_file(tmp_path, f"{HEADLINE}\nBy Jane Roe\n\n{STORY}\n", name="undated.txt")
    assert friday_in(dated) == "2025-09-12"
    assert friday_in(undated) is None, "without a publication date 'Friday' stays unresolved"


def test_the_store_keeps_where_the_date_came_from_and_show_prints_it(tmp_path: Path) -> None:
    dated = article_file(tmp_path, f"Sept. 13, 2025\n\n{STORY}\n", name="ledger.txt")
    undated = article_file(tmp_path, f"{STORY} More.\n", name="wire.txt")
    with RunStore(tmp_path / "run") as store:
        run_id = store.start_run("run")
        for seq, story in enumerate([dated, undated], start=1):
            store.register_article(story, run_id=run_id, seq=seq, key="k1")
        stored = store.article(dated.id)
        assert stored is not None and (stored.published, stored.published_from) == (SEPT_13, "dateline")
        assert stored == Article.model_validate(dated.model_dump(exclude={"external_id"}))
        stored_undated = store.article(undated.id)
        assert stored_undated is not None and stored_undated.published_from == "none"
        out = io.StringIO()
        assert show_article(store, "ledger.txt", out=out) == 0
        assert "  published  2025-09-13 (from dateline)\n" in out.getvalue()


def test_a_later_run_that_finds_metadata_replaces_the_dateline_date_in_the_store(tmp_path: Path) -> None:
    text = f"Sept. 13, 2025\n\n{STORY}"
    with RunStore(tmp_path / "run") as store:
        first = store.start_run("run")
        store.register_article(article_file(tmp_path, text), run_id=first, seq=1, key="k1")
        (tmp_path / "story.meta.json").write_text('{"published": "2025-09-12"}', encoding="utf-8")
        second = store.start_run("run")
        store.register_article(read(tmp_path / "story.txt"), run_id=second, seq=1, key="k1")
        stored = store.article(content_hash(text))
        assert stored is not None and (stored.published, stored.published_from) == (
            date(2025, 9, 12),
            "metadata",
        )
