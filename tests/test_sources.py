"""Reading inputs: every file becomes an Article or a FailureRow with a reason, never nothing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from pipeline.sources import SourcedArticle, iter_sources
from schemas import Article, FailureRow
from schemas.article import content_hash

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tempe-traffic-stop"

BODY = "A county deputy shot a man during a traffic stop on Tuesday, the sheriff's office said."


def read_all(*paths: Path) -> list[Article | FailureRow]:
    return list(iter_sources(list(paths)))


def only(items: list[Article | FailureRow]) -> Article | FailureRow:
    assert len(items) == 1, items
    return items[0]


def article(item: Article | FailureRow) -> Article:
    assert isinstance(item, Article), item
    return item


def failure(item: Article | FailureRow) -> FailureRow:
    assert isinstance(item, FailureRow), item
    return item


# ---------------------------------------------------------------- text and Markdown


def test_front_matter_gives_metadata_and_is_not_part_of_the_text(tmp_path: Path) -> None:
    path = tmp_path / "story.md"
    path.write_text(
        "---\noutlet: Mesa Courier\nurl: https://mesa.example/a\n"
        "published: 2026-02-03\ntitle: Deputy shoots man\n---\n"
        f"{BODY}\n",
        encoding="utf-8",
    )
    result = article(only(read_all(path)))
    assert result.text == BODY
    assert result.id == content_hash(BODY)
    assert (result.outlet, result.url, result.published, result.title) == (
        "Mesa Courier",
        "https://mesa.example/a",
        date(2026, 2, 3),
        "Deputy shoots man",
    )
    assert result.source_path == str(path)


def test_published_datetime_keeps_the_date_at_the_outlets_own_offset(tmp_path: Path) -> None:
    path = tmp_path / "late.md"
    # 23:30 in Arizona is already the next day in UTC; "Friday" in the story means Arizona's Friday.
    path.write_text(f"---\npublished: 2026-03-13T23:30:00-07:00\n---\n{BODY}", encoding="utf-8")
    assert article(only(read_all(path))).published == date(2026, 3, 13)


def test_plain_text_without_front_matter_has_no_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text(f"\n\n{BODY}\n\n", encoding="utf-8")
    result = article(only(read_all(path)))
    assert result.text == BODY
    assert (result.outlet, result.url, result.published) == (None, None, None)


def test_markdown_heading_becomes_the_title_when_front_matter_has_none(tmp_path: Path) -> None:
    path = tmp_path / "h.md"
    path.write_text(f"# Deputy shoots man in Mesa\n\n{BODY}", encoding="utf-8")
    assert article(only(read_all(path))).title == "Deputy shoots man in Mesa"


def test_crlf_and_lf_copies_of_a_story_are_the_same_article(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(f"{BODY}\n\nSecond paragraph.\n".encode())
    (tmp_path / "b.txt").write_bytes(f"{BODY}\r\n\r\nSecond paragraph.\r\n".encode())
    first, second = (article(item) for item in read_all(tmp_path))
    assert first.id == second.id
    assert {first.source_path, second.source_path} == {str(tmp_path / "a.txt"), str(tmp_path / "b.txt")}


@pytest.mark.parametrize("sidecar_name", ["story.meta.yaml", "story.meta.json", "story.txt.meta.yaml"])
def test_sidecar_metadata_is_read_and_wins_over_front_matter(tmp_path: Path, sidecar_name: str) -> None:
    (tmp_path / "story.txt").write_text(f"---\noutlet: Old Name\nurl: https://old.example/\n---\n{BODY}")
    values = {"outlet": "Mesa Courier", "published": "2026-02-03"}
    sidecar = tmp_path / sidecar_name
    sidecar.write_text(
        json.dumps(values)
        if sidecar_name.endswith(".json")
        else "outlet: Mesa Courier\npublished: 2026-02-03\n"
    )
    items = read_all(tmp_path)
    result = article(only(items))  # the sidecar itself is not read as an article
    assert result.outlet == "Mesa Courier"
    assert result.published == date(2026, 2, 3)
    assert result.url == "https://old.example/"  # front matter still fills what the sidecar leaves out


@pytest.mark.parametrize(
    ("front_matter", "expected_detail"),
    [
        ("---\noutlet: [unclosed\n---\n", "not valid YAML"),
        ("---\n- a list\n- not a mapping\n---\n", "must be a mapping"),
        ("---\npublished: last Tuesday\n---\n", "published"),
        ("---\noutlet: Mesa Courier\n", "never closed"),
        ("---\noutlet: {name: nested}\n---\n", "outlet"),
    ],
)
def test_bad_front_matter_is_a_failure_row_saying_what_is_wrong(
    tmp_path: Path, front_matter: str, expected_detail: str
) -> None:
    path = tmp_path / "bad.md"
    path.write_text(front_matter + BODY, encoding="utf-8")
    row = failure(only(read_all(path)))
    assert row.reason == "bad-front-matter"
    assert expected_detail in row.detail
    assert row.source_path == str(path)
    assert row.article_id is None


def test_unreadable_sidecar_is_a_failure_row(tmp_path: Path) -> None:
    (tmp_path / "story.txt").write_text(BODY)
    (tmp_path / "story.meta.json").write_text("{not json")
    row = failure(only(read_all(tmp_path / "story.txt")))
    assert row.reason == "bad-sidecar"
    assert "story.meta.json" in row.detail


# ---------------------------------------------------------------- bad bytes


@pytest.mark.parametrize("content", [b"", b"   \n\n\t  \n"])
def test_empty_or_blank_file_is_an_empty_failure(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blank.txt"
    path.write_bytes(content)
    assert failure(only(read_all(path))).reason == "empty"


def test_front_matter_without_a_body_is_an_empty_failure(tmp_path: Path) -> None:
    path = tmp_path / "only-meta.md"
    path.write_text("---\noutlet: Mesa Courier\n---\n\n")
    assert failure(only(read_all(path))).reason == "empty"


def test_file_with_nul_bytes_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    row = failure(only(read_all(path)))
    assert row.reason == "binary"
    assert "NUL" in row.detail


def test_non_utf8_text_is_reported_with_the_offending_byte_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Jos\u00e9 Mart\u00ednez was shot.".encode("latin-1"))
    row = failure(only(read_all(path)))
    assert row.reason == "decode"
    assert "0xe9" in row.detail and "offset 3" in row.detail


def test_utf16_with_byte_order_mark_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "utf16.txt"
    path.write_bytes("\ufeffJos\u00e9 Mart\u00ednez was shot.".encode("utf-16-le"))
    assert article(only(read_all(path))).text == "Jos\u00e9 Mart\u00ednez was shot."


def test_utf8_byte_order_mark_does_not_change_the_article_id(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + BODY.encode())
    assert article(only(read_all(path))).id == content_hash(BODY)


# ---------------------------------------------------------------- HTML

PAGE = """<!doctype html><html><head>
<meta charset="utf-8"><title>Deputy shoots man | Mesa Courier</title>
<meta property="og:site_name" content="Mesa Courier">
<meta property="article:published_time" content="2026-02-03T08:15:00-07:00">
<link rel="canonical" href="https://mesa.example/news/deputy">
<script>var tracking = "do not read me";</script><style>p { color: red }</style>
</head><body>
<nav><a href="/">Home</a> <a href="/sports">Sports</a></nav>
<header>Subscribe today</header>
<article><h1>Deputy shoots man</h1>
<p>A county deputy shot a man <b>during a traffic stop</b> on Tuesday.</p>
<p>The man was taken to a hospital.<br>He was listed in critical condition.</p>
<form><input name="q"></form><noscript>Enable JavaScript</noscript>
</article>
<aside>Most read: weather</aside><footer>&copy; Mesa Courier</footer>
</body></html>"""


def test_html_keeps_article_paragraphs_and_drops_page_furniture(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(PAGE, encoding="utf-8")
    result = article(only(read_all(path)))
    assert result.text == (
        "Deputy shoots man\n\n"
        "A county deputy shot a man during a traffic stop on Tuesday.\n\n"
        "The man was taken to a hospital.\nHe was listed in critical condition."
    )
    for furniture in ("Home", "Subscribe", "tracking", "color", "Enable JavaScript", "Most read", "\u00a9"):
        assert furniture not in result.text


def test_html_metadata_comes_from_og_article_and_canonical_tags(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    path.write_text(PAGE, encoding="utf-8")
    result = article(only(read_all(path)))
    assert result.outlet == "Mesa Courier"
    assert result.published == date(2026, 2, 3)
    assert result.url == "https://mesa.example/news/deputy"
    assert result.title == "Deputy shoots man | Mesa Courier"


def test_html_in_a_declared_legacy_charset_is_decoded_with_it(tmp_path: Path) -> None:
    path = tmp_path / "legacy.html"
    page = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252"></head>'
    page += "<body><p>Jos\u00e9 Mart\u00ednez was shot \u2014 police said.</p></body></html>"
    path.write_bytes(page.encode("cp1252"))
    assert article(only(read_all(path))).text == "Jos\u00e9 Mart\u00ednez was shot \u2014 police said."


def test_html_without_declared_charset_and_invalid_utf8_is_a_decode_failure(tmp_path: Path) -> None:
    path = tmp_path / "undeclared.html"
    path.write_bytes("<html><body><p>Jos\u00e9</p></body></html>".encode("latin-1"))
    assert failure(only(read_all(path))).reason == "decode"


def test_html_with_only_navigation_and_scripts_is_no_text(tmp_path: Path) -> None:
    path = tmp_path / "shell.html"
    path.write_text(
        "<html><head><script>app()</script></head><body><nav>Home</nav><div id=root></div></body></html>"
    )
    row = failure(only(read_all(path)))
    assert row.reason == "no-text"


def test_example_html_page_reads_as_the_story_with_its_metadata() -> None:
    page = EXAMPLES / "06-ktmp12.html"
    if not page.exists():
        pytest.skip("example set not present")
    result = article(only(read_all(page)))
    assert result.outlet == "KTMP 12"
    assert result.published == date(2026, 3, 13)
    assert result.text.startswith("Tempe man, 34, dies at scene of Border Patrol shooting\n\n")
    for furniture in ("Advertisement", "Trending", "dataLayer", "All rights reserved"):
        assert furniture not in result.text


# ---------------------------------------------------------------- JSONL


def test_jsonl_lines_become_articles_with_line_numbered_source_paths(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    lines = [
        {"text": BODY, "outlet": "Mesa Courier", "url": "https://mesa.example/1", "published": "2026-02-03"},
        {"text": "Second story text.", "title": "Two", "id": "row-2", "published": "2026-02-04T10:00:00Z"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    first, second = (article(item) for item in read_all(path))
    assert first.source_path == f"{path}:1"
    assert (first.outlet, first.url, first.published) == (
        "Mesa Courier",
        "https://mesa.example/1",
        date(2026, 2, 3),
    )
    assert second.source_path == f"{path}:2"
    assert second.title == "Two" and second.published == date(2026, 2, 4)
    assert isinstance(second, SourcedArticle) and second.external_id == "row-2"
    assert second.id == content_hash("Second story text.")  # identity is the text, not the user's id


def test_bad_jsonl_lines_are_reported_one_by_one_and_good_lines_still_read(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b'{"text": "Good one."}\n'
        b"{not json\n"
        b'["a", "list"]\n'
        b'{"title": "no text"}\n'
        b'{"text": "   "}\n'
        b'{"text": "Bad date.", "published": "someday"}\n'
        b'{"text": "Jos\xe9"}\n'
        b'{"text": "Good two."}\n'
    )
    items = read_all(path)
    reasons = [(item.source_path, item.reason if isinstance(item, FailureRow) else "ok") for item in items]
    assert reasons == [
        (f"{path}:1", "ok"),
        (f"{path}:2", "bad-jsonl"),
        (f"{path}:3", "bad-jsonl"),
        (f"{path}:4", "bad-jsonl"),
        (f"{path}:5", "empty"),
        (f"{path}:6", "bad-jsonl"),
        (f"{path}:7", "decode"),
        (f"{path}:8", "ok"),
    ]
    assert "text" in failure(items[3]).detail


def test_empty_jsonl_file_is_an_empty_failure(tmp_path: Path) -> None:
    path = tmp_path / "none.jsonl"
    path.write_text("\n\n")
    assert failure(only(read_all(path))).reason == "empty"


# ---------------------------------------------------------------- folders and paths


def test_folders_are_walked_recursively_in_sorted_order_skipping_non_articles(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "2.txt").write_text("Story b2.")
    (tmp_path / "b" / "1.md").write_text("Story b1.")
    (tmp_path / "a" / "z.html").write_text("<p>Story az.</p>")
    (tmp_path / "top.txt").write_text("Story top.")
    (tmp_path / ".git" / "x.txt").write_text("hidden folder")
    (tmp_path / ".hidden.txt").write_text("hidden file")
    (tmp_path / "gold.json").write_text("{}")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\x00")
    (tmp_path / "README.md").write_text("About this collection.")
    (tmp_path / "top.meta.yaml").write_text("outlet: Top Outlet\n")
    (tmp_path / "records.jsonl").write_text('{"article_id": "sha256:0", "what": {}}\n')
    (tmp_path / "feed.jsonl").write_text('{"text": "Story feed."}\n')
    texts = [article(item).text for item in read_all(tmp_path)]
    assert texts == ["Story feed.", "Story top.", "Story az.", "Story b1.", "Story b2."]
    assert texts == [article(item).text for item in read_all(tmp_path)]  # deterministic


def test_jsonl_without_text_fields_is_skipped_in_folders_but_read_when_named(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text('{"article_id": "sha256:0"}\n')
    assert read_all(tmp_path) == []
    row = failure(only(read_all(records)))
    assert row.reason == "bad-jsonl" and "text" in row.detail


def test_explicitly_named_unsupported_file_and_missing_path_are_failures(tmp_path: Path) -> None:
    pdf = tmp_path / "story.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    unsupported, missing = (failure(item) for item in read_all(pdf, tmp_path / "nope.txt"))
    assert unsupported.reason == "unsupported" and ".pdf" in unsupported.detail
    assert missing.reason == "missing"


def test_the_same_text_under_two_paths_is_yielded_twice_with_one_id(tmp_path: Path) -> None:
    (tmp_path / "wire.txt").write_text(BODY)
    (tmp_path / "reprint.md").write_text(f"---\noutlet: Reprinter\n---\n{BODY}")
    first, second = (article(item) for item in read_all(tmp_path))
    assert first.id == second.id == content_hash(BODY)
    assert first.source_path != second.source_path


def test_example_folder_reads_six_articles_and_no_notes() -> None:
    if not EXAMPLES.exists():
        pytest.skip("example set not present")
    items = read_all(EXAMPLES)
    assert all(isinstance(item, Article) for item in items), items
    assert [Path(str(item.source_path)).name[:2] for item in items] == ["01", "02", "03", "04", "05", "06"]
    assert all(article(item).outlet and article(item).published for item in items)
