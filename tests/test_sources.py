"""Reading inputs: every file becomes an Article or a FailureRow with a reason, never nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pipeline.ingest import sources
from pipeline.ingest.sources import SourcedArticle, iter_sources
from pipeline.store.runstore import RunStore
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
    assert result.published_from == "metadata"
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
    assert result.published_from == "none"


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
    assert result.published == date(2026, 2, 3) and result.published_from == "metadata"
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
    assert first.published_from == second.published_from == "metadata"
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
    items = read_all(tmp_path)
    texts = [item.text for item in items if isinstance(item, Article)]
    assert texts == ["Story feed.", "Story top.", "Story az.", "Story b1.", "Story b2."]
    # An image is not a companion file (notes, data, sidecars): it is reported, not skipped.
    assert [(row.source_path, row.reason) for row in items if isinstance(row, FailureRow)] == [
        (str(tmp_path / "photo.jpg"), "unsupported-type")
    ]
    assert items == read_all(tmp_path)  # deterministic


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
    assert unsupported.reason == "unsupported-type" and ".pdf" in unsupported.detail
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


# ---------------------------------------------------------------- entries the walk cannot or will not read


def outcomes(items: list[Article | FailureRow]) -> list[tuple[str | None, str]]:
    """(source path, failure reason or "article") per item, in walk order."""
    return [(item.source_path, item.reason if isinstance(item, FailureRow) else "article") for item in items]


def read_within(seconds: float, *paths: Path, **options: Any) -> list[Article | FailureRow]:
    """``read_all`` that fails the test instead of hanging when reading blocks."""
    items: list[Article | FailureRow] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            items.extend(iter_sources(list(paths), **options))
        except BaseException as error:  # handed to the test thread
            errors.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    if reader.is_alive():
        pytest.fail(f"reading {[str(path) for path in paths]} was still blocked after {seconds} s")
    if errors:
        raise errors[0]
    return items


@pytest.fixture
def fifos() -> Iterator[list[Path]]:
    """FIFOs made by a test; a reader left blocked on one is released (opening the write end) afterwards."""
    made: list[Path] = []
    yield made
    for fifo in made:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@contextlib.contextmanager
def memory_ceiling(extra_bytes: int) -> Iterator[None]:
    """Cap this process's address space at its current size plus ``extra_bytes`` for the block.

    A reader that slurps /dev/zero or a huge file then fails fast with MemoryError
    instead of exhausting the machine.
    """
    status = Path("/proc/self/status").read_text()
    in_use_kib = int(next(line for line in status.splitlines() if line.startswith("VmSize:")).split()[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = in_use_kib * 1024 + extra_bytes
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def make_file_named(folder: Path, name: bytes, content: bytes) -> None:
    """Create a file whose name is raw bytes (which may not be valid UTF-8)."""
    descriptor = os.open(os.fsencode(folder) + b"/" + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(descriptor, content)
    finally:
        os.close(descriptor)


def test_a_file_name_that_is_not_utf8_gets_an_escaped_path_that_the_store_accepts(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_file_named(folder, b"caf\xe9.txt", BODY.encode())
    result = article(only(read_all(folder)))
    assert result.source_path == f"{folder}/caf\\xe9.txt"
    assert result.id == content_hash(BODY)  # identity is still the text
    with RunStore(tmp_path / "out") as store:
        run = store.start_run("run")
        assert store.register_article(result, run_id=run, seq=1, key="k").first_in_run
        assert store.source_paths(result.id) == [f"{folder}/caf\\xe9.txt"]


def test_a_failure_row_about_a_file_whose_name_is_not_utf8_can_be_stored(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_file_named(folder, b"\xff\xfe-blank.txt", b"")
    row = failure(only(read_all(folder)))
    shown = f"{folder}/\\xff\\xfe-blank.txt"
    assert (row.reason, row.source_path) == ("empty", shown)
    assert row.detail.startswith(f"{shown}: ")
    with RunStore(tmp_path / "out") as store:
        run = store.start_run("run")
        store.record_input_failure(row, run_id=run, seq=1)
        assert [(stored.source_path, stored.reason) for stored in store.iter_failures(run)] == [
            (shown, "empty")
        ]


def test_control_characters_in_a_file_name_are_escaped_in_its_path(tmp_path: Path) -> None:
    (tmp_path / "two\nlines.txt").write_text(BODY)
    assert article(only(read_all(tmp_path))).source_path == f"{tmp_path}/two\\x0alines.txt"


def test_a_fifo_named_like_an_article_is_not_a_file_and_is_never_opened(
    tmp_path: Path, fifos: list[Path]
) -> None:
    fifo = tmp_path / "x.txt"
    os.mkfifo(fifo)
    fifos.append(fifo)
    (tmp_path / "y.txt").write_text(BODY)
    assert outcomes(read_within(10, tmp_path)) == [
        (str(fifo), "not-a-file"),
        (str(tmp_path / "y.txt"), "article"),
    ]
    row = failure(only(read_within(10, fifo)))  # named on the command line: the same answer
    assert row.reason == "not-a-file"
    assert "FIFO" in row.detail


def test_a_link_to_dev_zero_is_not_a_file_and_is_never_read(tmp_path: Path) -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero on this system")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    with memory_ceiling(512 * 1024 * 1024):
        items = read_within(30, tmp_path)
    row = failure(only(items))
    assert (row.source_path, row.reason) == (str(tmp_path / "zero.txt"), "not-a-file")
    assert "character device" in row.detail


def test_symlinked_folders_and_files_are_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "story.txt").write_text(BODY)
    (tmp_path / "other.txt").write_text("Second story.")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (folder / "alias.txt").symlink_to(tmp_path / "other.txt")
    items = read_all(folder)
    assert [(article(item).source_path, article(item).text) for item in items] == [
        (str(folder / "alias.txt"), "Second story."),
        (str(folder / "linked" / "story.txt"), BODY),
    ]


def test_a_link_back_to_an_enclosing_folder_and_a_link_to_itself_are_link_loops(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(BODY)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "back").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "self.txt").symlink_to(tmp_path / "self.txt")
    items = read_within(30, tmp_path)
    assert outcomes(items) == [
        (str(tmp_path / "a.txt"), "article"),
        (str(tmp_path / "self.txt"), "link-loop"),
        (str(tmp_path / "sub" / "back"), "link-loop"),
    ]
    assert f"{tmp_path}," in failure(items[2]).detail  # names the folder it leads back to


def test_a_broken_symlink_is_a_missing_row_naming_its_target(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").symlink_to(tmp_path / "deleted.txt")
    row = failure(only(read_all(tmp_path)))
    assert row.reason == "missing"
    assert "broken symbolic link" in row.detail and "deleted.txt" in row.detail


def test_documents_and_images_in_a_folder_are_unsupported_type_rows_while_companion_files_are_skipped(
    tmp_path: Path,
) -> None:
    for name in ("story.pdf", "story.docx", "photo.png"):
        (tmp_path / name).write_bytes(b"%PDF-1.7\n")
    companions = {
        "README.md": "About this collection.",
        "NOTES.txt": "Sources to chase.",
        "gold.json": "{}",
        "urls.csv": "url\n",
        "config.yaml": "a: 1\n",
        "story.meta.yaml": "outlet: Mesa Courier\n",
        ".DS_Store": "\x00",
        "triangulate.sqlite": "",
        "triangulate.sqlite-wal": "",
        "records.jsonl": '{"article_id": "sha256:0"}\n',
    }
    for name, content in companions.items():
        (tmp_path / name).write_text(content)
    rows = [failure(item) for item in read_all(tmp_path)]
    assert [(row.source_path, row.reason) for row in rows] == [
        (str(tmp_path / "photo.png"), "unsupported-type"),
        (str(tmp_path / "story.docx"), "unsupported-type"),
        (str(tmp_path / "story.pdf"), "unsupported-type"),
    ]
    for row in rows:
        assert all(suffix in row.detail for suffix in (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl"))


def test_a_file_over_the_size_cap_is_too_large_and_names_its_size_and_the_flag(tmp_path: Path) -> None:
    (tmp_path / "a-exact.txt").write_text("x" * 1000)
    (tmp_path / "b-over.txt").write_text("y" * 1001)
    exact, over = iter_sources([tmp_path], max_bytes=1000)
    assert article(exact).text == "x" * 1000
    row = failure(over)
    assert row.reason == "too-large"
    assert "1,001 bytes" in row.detail and "1,000" in row.detail and "--max-article-bytes" in row.detail


def test_by_default_a_file_over_2_mib_is_too_large_and_is_never_read_whole(tmp_path: Path) -> None:
    just_over = tmp_path / "just-over.txt"
    just_over.write_text("A deputy shot a man. " * (2 * 1024 * 1024 // 21 + 1))
    assert just_over.stat().st_size > 2 * 1024 * 1024
    huge = tmp_path / "huge.txt"
    huge.touch()
    os.truncate(huge, 3 * 1024 * 1024 * 1024)  # sparse: costs no disk, but reading it whole costs 3 GiB
    with memory_ceiling(256 * 1024 * 1024):
        items = read_all(huge, just_over)
    assert [(row.source_path, row.reason) for row in map(failure, items)] == [
        (str(huge), "too-large"),
        (str(just_over), "too-large"),
    ]
    assert "3,221,225,472 bytes" in failure(items[0]).detail
    assert sources.DEFAULT_MAX_ARTICLE_BYTES == 2 * 1024 * 1024


def test_a_size_cap_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        list(iter_sources([], max_bytes=0))


def test_the_size_cap_applies_to_each_jsonl_line_not_to_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    lines = [
        json.dumps({"text": "a" * 500}),
        json.dumps({"text": "b" * 2000}),
        json.dumps({"text": "c" * 500}),
    ]
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 1000
    items = list(iter_sources([path], max_bytes=1000))
    assert outcomes(items) == [(f"{path}:1", "article"), (f"{path}:2", "too-large"), (f"{path}:3", "article")]
    assert f"{len(lines[1]):,} bytes" in failure(items[1]).detail
    assert "--max-article-bytes" in failure(items[1]).detail


def test_a_jsonl_line_longer_than_the_cap_is_never_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text(json.dumps({"text": BODY}) + "\n")
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size + 256 * 1024 * 1024)  # a second "line" of 256 MiB of NULs
    with memory_ceiling(64 * 1024 * 1024):
        items = read_all(path)
    assert outcomes(items) == [(f"{path}:1", "article"), (f"{path}:2", "too-large")]


def test_jsonl_text_with_an_unpaired_surrogate_escape_is_a_decode_failure(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text('{"text": "Half an emoji \\ud83d here."}\n{"text": "A whole one \\ud83d\\ude00 here."}\n')
    first, second = read_all(path)
    row = failure(first)
    assert row.reason == "decode" and "\\ud83d" in row.detail
    assert article(second).text == "A whole one \U0001f600 here."


def test_aiter_sources_reads_in_a_worker_thread_so_a_slow_read_never_stalls_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text(BODY)
    real_iter_sources = sources.iter_sources
    gate = threading.Event()

    def slow_disk(paths: list[Path], *, max_bytes: int) -> Iterator[Article | FailureRow]:
        # Released only by a task on the event loop: if reading ran on the loop, the loop could not run it.
        if not gate.wait(10):
            raise AssertionError("the event loop stalled while an input was being read")
        yield from real_iter_sources(paths, max_bytes=max_bytes)

    monkeypatch.setattr(sources, "iter_sources", slow_disk)

    async def read() -> list[Article | FailureRow]:
        async def open_gate() -> None:
            await asyncio.sleep(0.01)
            gate.set()

        opener = asyncio.create_task(open_gate())
        items = [item async for item in sources.aiter_sources([tmp_path])]
        await opener
        return items

    assert [article(item).text for item in asyncio.run(read())] == [BODY]
