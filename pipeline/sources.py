"""Read input articles: text, Markdown and HTML files, folders, and JSONL.

``iter_sources`` streams: it never holds more than one file (or one JSONL
line) in memory, so a folder of a million articles costs no more memory than
one. Every input either becomes an ``Article`` or a ``FailureRow`` saying why
it could not be read, so nothing a user pointed at is silently dropped.

Decisions worth knowing (also in docs/batch.md):

* Text encoding. ``.txt``/``.md``/``.jsonl`` must be UTF-8 (a UTF-8 or UTF-16
  byte-order mark is honoured). HTML follows the browser order: byte-order
  mark, then a charset declared in ``<meta charset>`` /
  ``<meta http-equiv="Content-Type">``, then UTF-8. Anything else is reported
  as ``decode`` with the offset of the first bad byte; we never guess an
  encoding, because a wrong guess silently corrupts names and quotes.
* The article text is the body as written (front matter removed, CRLF turned
  into LF, outer whitespace stripped). Its content hash is the article id, so
  the same story read from two paths is one article.
* Metadata precedence: sidecar file > front matter > HTML ``<meta>`` tags.
  A sidecar is the curator's explicit word about a file, written after it.
* Inside folders, files with other extensions, hidden files, sidecars,
  README/LICENSE/CHANGELOG/NOTES files, and JSONL files whose first line is an
  object without ``text`` (records, gold files) are skipped, the last with a
  logged warning: a folder may hold ``gold.json``, images, notes or outputs
  next to its articles. A file named explicitly
  on the command line with an unsupported extension is a ``unsupported``
  failure instead, because the user asked for it.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field

from schemas.article import Article, content_hash
from schemas.run import FailureRow

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
JSONL_SUFFIXES = frozenset({".jsonl"})
log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES
SIDECAR_SUFFIXES = (".meta.yaml", ".meta.yml", ".meta.json")

# Elements that are page furniture, never article prose.
_DROPPED_TAGS = frozenset(
    {
        "script",
        "style",
        "nav",
        "header",
        "footer",
        "aside",
        "form",
        "noscript",
        "template",
        "svg",
        "iframe",
        "button",
        "select",
        "head",
    }
)
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "blockquote",
        "pre",
        "table",
        "tr",
        "figure",
        "figcaption",
        "hr",
        "address",
        "details",
        "summary",
        "body",
    }
)
_HTML_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_FOLDER_NOTES = frozenset({"README", "LICENSE", "CHANGELOG", "NOTES"})
_WHITESPACE = re.compile(r"\s+")
# Share of non-whitespace control characters above which a file is treated as binary.
_BINARY_CONTROL_SHARE = 0.10


class SourcedArticle(Article):
    """An ``Article`` that also carries the id the user gave it (JSONL ``id``).

    Identity stays the content hash; ``external_id`` is kept so records can be
    joined back to the user's own rows (the run store keeps it per source).
    """

    model_config = ConfigDict(frozen=True)

    external_id: str | None = Field(default=None, description="The input's own id (JSONL 'id' field).")


class _BadInput(Exception):
    """An input that cannot become an article; carries the FailureRow reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class _Metadata:
    outlet: str | None = None
    url: str | None = None
    published: date | None = None
    title: str | None = None
    external_id: str | None = None

    def overlay(self, other: _Metadata) -> _Metadata:
        """Values from ``other`` win where it has them."""
        return _Metadata(
            outlet=other.outlet or self.outlet,
            url=other.url or self.url,
            published=other.published or self.published,
            title=other.title or self.title,
            external_id=other.external_id or self.external_id,
        )


def iter_sources(paths: Sequence[Path]) -> Iterator[Article | FailureRow]:
    """Yield one ``Article`` or ``FailureRow`` per input, in a deterministic order.

    Folders are walked recursively in sorted order. The same text read from two
    paths yields two ``Article``s with the same id (and different
    ``source_path``); the run store keeps both paths and extracts once.
    """
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from _iter_folder(path)
        elif path.exists():
            yield from _iter_file(path, explicit=True)
        else:
            yield _failure(path, "missing", f"{path}: no such file or folder")


def _iter_folder(folder: Path) -> Iterator[Article | FailureRow]:
    for dirpath, dirnames, filenames in os.walk(folder):
        # Sorting in place makes os.walk descend in sorted order too.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(SIDECAR_SUFFIXES) or _is_folder_notes(name):
                continue
            file_path = Path(dirpath) / name
            if file_path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            if file_path.suffix.lower() in JSONL_SUFFIXES and not _looks_like_article_feed(file_path):
                log.warning(
                    "skipping %s: its first line has no 'text' field, so it is not an article feed "
                    "(records, gold files); name it explicitly to read it anyway",
                    file_path,
                )
                continue
            yield from _iter_file(file_path, explicit=False)


def _looks_like_article_feed(path: Path) -> bool:
    """False for JSONL whose first line is a JSON object without ``text`` (our own records.jsonl,
    gold records): a folder often holds those next to the articles. Anything doubtful is read,
    so a broken feed is reported line by line rather than skipped."""
    try:
        with path.open("rb") as handle:
            first = next((line for line in handle if line.strip()), b"")
        values = json.loads(first.decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True
    return not isinstance(values, dict) or "text" in values


def _is_folder_notes(name: str) -> bool:
    """README/LICENSE/CHANGELOG files describe a collection; they are not articles in it."""
    return name.split(".", 1)[0].upper() in _FOLDER_NOTES


def _iter_file(path: Path, *, explicit: bool) -> Iterator[Article | FailureRow]:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        yield from _iter_jsonl(path)
        return
    if suffix not in TEXT_SUFFIXES and suffix not in HTML_SUFFIXES:
        if explicit:
            supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
            yield _failure(
                path, "unsupported", f"{path}: extension {suffix or '(none)'!r} is not one of {supported}"
            )
        return
    try:
        yield _read_document(path, is_html=suffix in HTML_SUFFIXES)
    except _BadInput as bad:
        yield _failure(path, bad.reason, f"{path}: {bad.detail}")


def _read_document(path: Path, *, is_html: bool) -> Article:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _BadInput("unreadable", f"cannot read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise _BadInput("empty", "the file is empty")
    text = _decode_html(data) if is_html else _decode_text(data)
    sidecar = _read_sidecar(path)
    if is_html:
        meta, body = _parse_html(text)
        if not body:
            raise _BadInput("no-text", "no readable article text in the HTML (only markup or page furniture)")
    else:
        meta, body = _split_front_matter(text)
        if not body:
            raise _BadInput("empty", "no article text after the front matter")
    meta = meta.overlay(sidecar)
    return SourcedArticle(
        id=content_hash(body),
        text=body,
        source_path=str(path),
        outlet=meta.outlet,
        url=meta.url,
        published=meta.published,
        title=meta.title or (None if is_html else _markdown_title(body)),
        external_id=meta.external_id,
    )


# ---------------------------------------------------------------- decoding


def _strip_bom(data: bytes) -> tuple[bytes, str | None]:
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :], encoding
    return data, None


def _check_binary(data: bytes) -> None:
    nul_at = data.find(b"\x00")
    if nul_at >= 0:
        raise _BadInput("binary", f"binary data (NUL byte at offset {nul_at})")
    sample = data[:8192]
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    if sample and controls / len(sample) > _BINARY_CONTROL_SHARE:
        raise _BadInput("binary", f"binary data ({controls} control bytes in the first {len(sample)})")


def _decode_with(data: bytes, encoding: str, origin: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _BadInput(
            "decode",
            f"not valid {origin} (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert the file to UTF-8",
        ) from exc
    except LookupError as exc:
        raise _BadInput("decode", f"unknown character set {encoding!r} declared in the file") from exc
    return _normalise_newlines(text)


def _decode_text(data: bytes) -> str:
    data, bom_encoding = _strip_bom(data)
    if bom_encoding is not None and bom_encoding.startswith("utf-16"):
        return _decode_with(data, bom_encoding, bom_encoding.upper())
    _check_binary(data)
    return _decode_with(data, "utf-8", "UTF-8")


def _decode_html(data: bytes) -> str:
    data, bom_encoding = _strip_bom(data)
    if bom_encoding is not None:
        return _decode_with(data, bom_encoding, bom_encoding.upper())
    _check_binary(data)
    declared = _HTML_CHARSET.search(data[:4096])
    if declared:
        encoding = declared.group(1).decode("ascii").lower()
        return _decode_with(data, encoding, f"{encoding} (the charset the page declares)")
    return _decode_with(data, "utf-8", "UTF-8 (the page declares no charset)")


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------- metadata


def _to_date(value: Any, field_name: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            # The date as written at the outlet's own offset, not converted to UTC:
            # "Friday" in the article means Friday where it was published.
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    raise ValueError(f"{field_name}: {value!r} is not a date (use YYYY-MM-DD or an ISO datetime)")


def _to_text(value: Any, field_name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    raise ValueError(f"{field_name}: expected text, got {type(value).__name__}")


def _metadata_from_mapping(values: Mapping[str, Any]) -> _Metadata:
    """Raises ValueError on a field of the wrong type."""
    return _Metadata(
        outlet=_to_text(values.get("outlet"), "outlet"),
        url=_to_text(values.get("url"), "url"),
        published=_to_date(values.get("published"), "published"),
        title=_to_text(values.get("title"), "title"),
        external_id=_to_text(values.get("id"), "id"),
    )


def _split_front_matter(text: str) -> tuple[_Metadata, str]:
    if not text.startswith("---\n") and text.strip() != "---":
        return _Metadata(), text.strip()
    lines = text.split("\n")
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        raise _BadInput("bad-front-matter", "front matter opened with '---' is never closed")
    block = "\n".join(lines[1:end])
    body = "\n".join(lines[end + 1 :]).strip()
    try:
        values = yaml.safe_load(block) if block.strip() else {}
    except yaml.YAMLError as exc:
        raise _BadInput("bad-front-matter", f"front matter is not valid YAML: {_one_line(exc)}") from exc
    if not isinstance(values, dict):
        raise _BadInput("bad-front-matter", "front matter must be a mapping of field: value")
    try:
        return _metadata_from_mapping(values), body
    except ValueError as exc:
        raise _BadInput("bad-front-matter", f"front matter field {exc}") from exc


def _sidecar_candidates(path: Path) -> list[Path]:
    stems = [path.with_suffix(""), path]  # NAME.meta.yaml next to NAME.txt, or NAME.txt.meta.yaml
    return [Path(f"{stem}{suffix}") for stem in stems for suffix in SIDECAR_SUFFIXES]


def _read_sidecar(path: Path) -> _Metadata:
    for candidate in _sidecar_candidates(path):
        if not candidate.is_file():
            continue
        try:
            raw = candidate.read_text(encoding="utf-8")
            values = json.loads(raw) if candidate.suffix == ".json" else yaml.safe_load(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
            raise _BadInput(
                "bad-sidecar", f"sidecar {candidate.name} is unreadable: {_one_line(exc)}"
            ) from exc
        if values is None:
            return _Metadata()
        if not isinstance(values, dict):
            raise _BadInput("bad-sidecar", f"sidecar {candidate.name} must be a mapping of field: value")
        try:
            return _metadata_from_mapping(values)
        except ValueError as exc:
            raise _BadInput("bad-sidecar", f"sidecar {candidate.name} field {exc}") from exc
    return _Metadata()


def _markdown_title(body: str) -> str | None:
    first_line = body.split("\n", 1)[0].strip()
    if first_line.startswith("# "):
        return first_line[2:].strip() or None
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# ---------------------------------------------------------------- HTML


def _parse_html(text: str) -> tuple[_Metadata, str]:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)

    def meta_content(selector: str) -> str | None:
        node = tree.css_first(selector)
        if node is None:
            return None
        value = node.attributes.get("content") or node.attributes.get("href")
        return value.strip() if value and value.strip() else None

    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else None
    published_raw = meta_content('meta[property="article:published_time"]') or meta_content(
        'meta[name="article:published_time"]'
    )
    try:
        published = _to_date(published_raw, "article:published_time")
    except ValueError:
        # A malformed meta tag in someone else's page is not worth losing the article over.
        published = None
    meta = _Metadata(
        outlet=meta_content('meta[property="og:site_name"]'),
        url=meta_content('link[rel="canonical"]') or meta_content('meta[property="og:url"]'),
        published=published,
        title=title or meta_content('meta[property="og:title"]'),
    )
    return meta, _readable_text(tree)


def _readable_text(tree: Any) -> str:
    body = tree.body
    if body is None:
        return ""
    whole = _block_text(body)
    candidates = tree.css("article") or tree.css("main") or tree.css('[role="main"]')
    if candidates:
        best = max((_block_text(node) for node in candidates), key=len)
        # A CMS sometimes wraps only a teaser in <article>; then the page body is the article.
        if len(best) >= 0.25 * len(whole):
            return best
    return whole


def _block_text(root: Any) -> str:
    """Text of ``root`` with one blank line between blocks and <br> kept as a line break."""
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        raw = "".join(current)
        current.clear()
        lines = (" ".join(segment.split()) for segment in raw.split("\n"))
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            paragraphs.append(paragraph)

    # Explicit stack instead of recursion: deeply nested pages exist.
    stack: list[tuple[Any, bool]] = [(root, True)]
    while stack:
        node, entering = stack.pop()
        if not entering:
            flush()
            continue
        if node.is_text_node:
            current.append(_WHITESPACE.sub(" ", node.text_content or ""))
            continue
        if not node.is_element_node:
            continue
        tag = node.tag
        if tag in _DROPPED_TAGS:
            continue
        if tag == "br":
            current.append("\n")
            continue
        if tag in ("td", "th"):
            current.append(" ")
        if tag in _BLOCK_TAGS:
            flush()
            stack.append((node, False))
        children = list(node.iter(include_text=True))
        stack.extend((child, True) for child in reversed(children))
    flush()
    return "\n\n".join(paragraphs)


# ---------------------------------------------------------------- JSONL


def _iter_jsonl(path: Path) -> Iterator[Article | FailureRow]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield _failure(path, "unreadable", f"{path}: cannot read: {exc.strerror or exc}")
        return
    any_line = False
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw, _ = _strip_bom(raw)
            if not raw.strip():
                continue
            any_line = True
            where = f"{path}:{number}"
            try:
                yield _jsonl_article(raw, where)
            except _BadInput as bad:
                yield FailureRow(
                    article_id=None, source_path=where, reason=bad.reason, detail=f"{where}: {bad.detail}"
                )
    if not any_line:
        yield _failure(path, "empty", f"{path}: the file is empty")


def _jsonl_article(raw: bytes, where: str) -> Article:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadInput(
            "decode", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        ) from exc
    try:
        values = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadInput("bad-jsonl", f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(values, dict):
        raise _BadInput("bad-jsonl", f"expected a JSON object, got {type(values).__name__}")
    text = values.get("text")
    if not isinstance(text, str):
        raise _BadInput("bad-jsonl", "missing 'text' (a string with the article body)")
    body = _normalise_newlines(text).strip()
    if not body:
        raise _BadInput("empty", "'text' is empty")
    try:
        meta = _metadata_from_mapping(values)
    except ValueError as exc:
        raise _BadInput("bad-jsonl", f"field {exc}") from exc
    return SourcedArticle(
        id=content_hash(body),
        text=body,
        source_path=where,
        outlet=meta.outlet,
        url=meta.url,
        published=meta.published,
        title=meta.title,
        external_id=meta.external_id,
    )


def _failure(path: Path, reason: str, detail: str) -> FailureRow:
    return FailureRow(article_id=None, source_path=str(path), reason=reason, detail=detail)
