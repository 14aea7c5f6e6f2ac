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
* Publication date without metadata: read from a dateline, byline or
  "Published ..." line at the top of the text (``pipeline.ingest.dateline``),
  never from a sentence; ``published_from`` says which ("metadata",
  "dateline" or "none"). It does not change the article id.
* Size. One article's input, a file or one JSONL line, may hold at most
  ``max_bytes`` bytes (``--max-article-bytes``, default 2 MiB); a larger one is
  a ``too-large`` failure, because a book-length input would cost dozens of
  requests. A file's size is checked before it is opened and no more than
  ``max_bytes + 1`` bytes are ever read from it or from one JSONL line, so no
  input can exhaust memory. A JSONL file itself may be any size: it is
  streamed line by line.
* Walking folders. Folders are walked recursively in sorted order (a folder's
  files, then its subfolders). Symbolic links to files and folders are
  followed; a link that leads back to a folder enclosing it, or that resolves
  to itself, is a ``link-loop`` failure and is not followed (enclosing folders
  are recognised by device and inode). Only regular files are opened, and
  never in a way that can block: a FIFO, socket or device (say a link to
  /dev/zero) is ``not-a-file``. A file or folder the OS will not let us read
  or list is ``unreadable``; a broken symbolic link is ``missing``.
* Skipped by rule inside folders: hidden files and folders (names starting
  with "."), metadata sidecars, README/LICENSE/CHANGELOG/NOTES files, data
  files (.json, .yaml, .yml, .csv, .tsv, .parquet, SQLite databases with
  their -wal/-shm/-journal files), and JSONL files whose first line is an
  object without ``text`` (records, gold files; with a logged warning): a
  folder may hold ``gold.json``, notes or outputs next to its articles. Any
  other file of a type we do not read (PDF, Word, images, no extension, ...)
  is an ``unsupported-type`` failure naming the types we do read. A path
  named on the command line is never skipped by these rules.
* Paths as stored. A file name that is not valid UTF-8 reaches Python with
  its undecodable bytes as lone surrogates, which SQLite, JSON and terminals
  refuse; ``source_path`` and failure details show such bytes (and control
  characters) as ``\\xNN`` escapes, so ``caf<0xE9>.txt`` is ``caf\\xe9.txt``.
  The article id is still the hash of the text.
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import io
import json
import logging
import os
import re
import stat
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field

from pipeline.ingest.dateline import read_dateline
from schemas.article import Article, PublishedFrom, content_hash
from schemas.options import DEFAULT_MAX_ARTICLE_BYTES
from schemas.run import FailureRow

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
JSONL_SUFFIXES = frozenset({".jsonl"})
log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSONL_SUFFIXES
SIDECAR_SUFFIXES = (".meta.yaml", ".meta.yml", ".meta.json")

MAX_ARTICLE_BYTES_FLAG = "--max-article-bytes"

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
# Data that accompanies a collection (gold files, lists of URLs, run stores): skipped in folders.
_DATA_SUFFIXES = frozenset(
    {".json", ".yaml", ".yml", ".csv", ".tsv", ".parquet", ".sqlite", ".sqlite3", ".db"}
)
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_WHITESPACE = re.compile(r"\s+")
# Share of non-whitespace control characters above which a file is treated as binary.
_BINARY_CONTROL_SHARE = 0.10
# O_NONBLOCK: opening a FIFO that slipped past the type check returns at once instead of
# waiting for a writer. O_NOCTTY: a terminal device never becomes our controlling terminal.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Bytes per read while skipping the rest of a JSONL line that is over the size cap.
_SKIP_CHUNK = 64 * 1024
# What a stored or printed path or detail must not carry raw: C0 controls, DEL, and lone
# surrogates (Python's spelling of a file-name byte that is not valid UTF-8).
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


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


def iter_sources(
    paths: Sequence[Path], *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES
) -> Iterator[Article | FailureRow]:
    """Yield one ``Article`` or ``FailureRow`` per input, in a deterministic order.

    Folders are walked recursively in sorted order. The same text read from two
    paths yields two ``Article``s with the same id (and different
    ``source_path``); the run store keeps both paths and extracts once.
    ``max_bytes`` caps one article's input (a file, or one JSONL line).
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    for path in paths:
        path = Path(path)
        try:
            info = os.stat(path)
        except OSError as error:
            yield _failure(path, *_os_failure(path, error))
            continue
        if stat.S_ISDIR(info.st_mode):
            yield from _iter_folder(path, info, max_bytes)
        else:
            yield from _iter_file(path, info, max_bytes, explicit=True)


async def aiter_sources(
    paths: Sequence[Path], *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES
) -> AsyncIterator[Article | FailureRow]:
    """``iter_sources`` for async code: each item is read in a worker thread.

    Reading is blocking file I/O (a slow disk, a network mount, a 2 MiB page to
    parse); off the event loop it never holds up the requests in flight.
    """
    items = iter_sources(paths, max_bytes=max_bytes)
    while True:
        item = await asyncio.to_thread(_next_or_none, items)
        if item is None:
            return
        yield item


def _next_or_none(items: Iterator[Article | FailureRow]) -> Article | FailureRow | None:
    return next(items, None)


_Enclosing = tuple[tuple[tuple[int, int], Path], ...]


def _iter_folder(root: Path, root_info: os.stat_result, max_bytes: int) -> Iterator[Article | FailureRow]:
    # Depth first with an explicit stack, so a deep tree cannot hit the recursion limit. Each
    # folder carries the (device, inode) of the folders enclosing it: a symbolic link that leads
    # back to one of them would otherwise be walked forever.
    stack: list[tuple[Path, os.stat_result, _Enclosing]] = [(root, root_info, ())]
    while stack:
        folder, info, enclosing = stack.pop()
        key = (info.st_dev, info.st_ino)
        loop_to = next((path for seen, path in enclosing if seen == key), None)
        if loop_to is not None:
            yield _failure(
                folder, "link-loop", f"leads back to {loop_to}, a folder that encloses it; not followed"
            )
            continue
        enclosing = (*enclosing, (key, folder))
        try:
            names = sorted(os.listdir(folder))
        except OSError as error:
            yield _failure(folder, "unreadable", f"cannot list the folder: {_os_message(error)}")
            continue
        subfolders: list[tuple[Path, os.stat_result, _Enclosing]] = []
        for name in names:
            if name.startswith("."):
                continue  # hidden files and folders: skipped by rule (see the module docstring)
            path = folder / name
            try:
                entry = os.stat(path)  # follows symbolic links
            except OSError as error:
                yield _failure(path, *_os_failure(path, error))
                continue
            if stat.S_ISDIR(entry.st_mode):
                subfolders.append((path, entry, enclosing))
            else:
                yield from _iter_file(path, entry, max_bytes, explicit=False)
        stack.extend(reversed(subfolders))


def _os_failure(path: Path, error: OSError) -> tuple[str, str]:
    """The failure reason and detail for an OS error on ``path``."""
    if error.errno == errno.ELOOP:
        return "link-loop", "symbolic link loop (the link leads back to itself); not followed"
    if isinstance(error, FileNotFoundError | NotADirectoryError):
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return "missing", f"broken symbolic link to {target}: the target does not exist"
        return "missing", "no such file or folder"
    return "unreadable", f"cannot read: {_os_message(error)}"


def _os_message(error: OSError) -> str:
    return error.strerror or str(error)


def _looks_like_article_feed(path: Path, max_bytes: int) -> bool:
    """False for JSONL whose first line is a JSON object without ``text`` (our own records.jsonl,
    gold records): a folder often holds those next to the articles. Anything doubtful is read,
    so a broken feed is reported line by line rather than skipped."""
    first = b""
    try:
        with _open_input(path) as handle:
            for _number, line, _length in _lines(handle, max_bytes):
                if line is None:
                    return True  # too long to judge; reading it reports the line
                if line.strip():
                    first = line
                    break
        values = json.loads(first.decode("utf-8-sig"))
    except (_BadInput, OSError, UnicodeDecodeError, json.JSONDecodeError):
        return True
    return not isinstance(values, dict) or "text" in values


def _is_folder_notes(name: str) -> bool:
    """README/LICENSE/CHANGELOG files describe a collection; they are not articles in it."""
    return name.split(".", 1)[0].upper() in _FOLDER_NOTES


def _is_companion(name: str) -> bool:
    """Sidecars, notes and data files accompany a collection; a folder walk skips them."""
    lowered = name.lower()
    if lowered.endswith(SIDECAR_SUFFIXES) or _is_folder_notes(name):
        return True
    for side_file in _SQLITE_SIDE_FILES:
        if lowered.endswith(side_file):
            lowered = lowered[: -len(side_file)]
            break
    return os.path.splitext(lowered)[1] in _DATA_SUFFIXES


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def _too_large(size: str, max_bytes: int) -> str:
    return (
        f"{size}, over the limit of {max_bytes:,} bytes per article; if it really is one article, "
        f"raise the limit with {MAX_ARTICLE_BYTES_FLAG}"
    )


def _iter_file(
    path: Path, info: os.stat_result, max_bytes: int, *, explicit: bool
) -> Iterator[Article | FailureRow]:
    if not explicit and _is_companion(path.name):
        return
    if not stat.S_ISREG(info.st_mode):
        kind = _file_kind(info.st_mode)
        yield _failure(path, "not-a-file", f"{kind}, not a regular file; only regular files are read")
        return
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        what = f"a {suffix!r} file" if suffix else "a file without an extension"
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        yield _failure(
            path,
            "unsupported-type",
            f"{what} is not read; supported types are {supported} "
            "(convert PDF, Word and other documents to text or HTML first)",
        )
        return
    if suffix in JSONL_SUFFIXES:
        if not explicit and not _looks_like_article_feed(path, max_bytes):
            log.warning(
                "skipping %s: its first line has no 'text' field, so it is not an article feed "
                "(records, gold files); name it explicitly to read it anyway",
                _printable(str(path)),
            )
            return
        yield from _iter_jsonl(path, max_bytes)
        return
    if info.st_size > max_bytes:
        yield _failure(path, "too-large", _too_large(f"{info.st_size:,} bytes", max_bytes))
        return
    try:
        yield _read_document(path, is_html=suffix in HTML_SUFFIXES, max_bytes=max_bytes)
    except _BadInput as bad:
        yield _failure(path, bad.reason, bad.detail)


def _open_input(path: Path) -> io.BufferedReader:
    """Open a regular file for reading, without ever blocking; raises ``_BadInput``."""
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        raise _BadInput(*_os_failure(path, error)) from error
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):  # replaced since it was listed
            kind = _file_kind(info.st_mode)
            raise _BadInput("not-a-file", f"{kind}, not a regular file; only regular files are read")
        return open(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _read_limited(path: Path, max_bytes: int) -> bytes:
    """The whole file, which must be at most ``max_bytes``; never reads more than one byte past that."""
    try:
        with _open_input(path) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise _BadInput("unreadable", f"cannot read: {_os_message(error)}") from error
    if len(data) > max_bytes:
        raise _BadInput("too-large", _too_large(f"more than {max_bytes:,} bytes", max_bytes))
    return data


def _read_document(path: Path, *, is_html: bool, max_bytes: int) -> Article:
    data = _read_limited(path, max_bytes)
    if not data.strip():
        raise _BadInput("empty", "the file is empty")
    text = _decode_html(data) if is_html else _decode_text(data)
    sidecar = _read_sidecar(path, max_bytes)
    if is_html:
        meta, body = _parse_html(text)
        if not body:
            raise _BadInput("no-text", "no readable article text in the HTML (only markup or page furniture)")
    else:
        meta, body = _split_front_matter(text)
        if not body:
            raise _BadInput("empty", "no article text after the front matter")
    meta = meta.overlay(sidecar)
    return _article(body, str(path), meta, title=meta.title or (None if is_html else _markdown_title(body)))


def _article(body: str, where: str, meta: _Metadata, *, title: str | None) -> Article:
    """The article, once every text in it is storable (a JSON or YAML ``\\ud83d`` escape is not)."""
    fields = {
        "text": body,
        "outlet": meta.outlet,
        "url": meta.url,
        "title": title,
        "id": meta.external_id,
    }
    for name, value in fields.items():
        unpaired = _SURROGATES.search(value) if value else None
        if unpaired:
            raise _BadInput(
                "decode",
                f"{name!r} holds an unpaired UTF-16 surrogate \\u{ord(unpaired.group()):04x} "
                f"(at character {unpaired.start()}), which is half of a character; fix the escape",
            )
    # The input's own date wins: it is what the curator or the outlet's markup says, while a
    # date line is read from the text by rule. Only without one is the text's head read.
    published = meta.published
    published_from: PublishedFrom = "metadata"
    if published is None:
        published = read_dateline(body)
        published_from = "none" if published is None else "dateline"
    return SourcedArticle(
        id=content_hash(body),
        text=body,
        source_path=_printable(where),
        outlet=meta.outlet,
        url=meta.url,
        published=published,
        published_from=published_from,
        title=title,
        external_id=meta.external_id,
    )


def _printable(text: str) -> str:
    """``text`` with undecodable file-name bytes and control characters as backslash escapes."""
    return _UNSAFE_CHARS.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if code >= 0xD800:
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"


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


def _read_sidecar(path: Path, max_bytes: int) -> _Metadata:
    for candidate in _sidecar_candidates(path):
        if not candidate.is_file():
            continue
        try:
            raw = _read_limited(candidate, max_bytes).decode("utf-8")
            values = json.loads(raw) if candidate.suffix == ".json" else yaml.safe_load(raw)
        except _BadInput as bad:
            raise _BadInput("bad-sidecar", f"sidecar {candidate.name} is unreadable: {bad.detail}") from bad
        except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
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


def _lines(handle: io.BufferedReader, limit: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, the line without its newline, its length in bytes) for each line.

    A line longer than ``limit`` comes as None and is skipped in small reads, so
    no line, however long, is ever held in memory whole.
    """
    number = 0
    while True:
        chunk = handle.readline(limit + 1)
        if not chunk:
            return
        number += 1
        if chunk.endswith(b"\n"):
            yield number, chunk[:-1], len(chunk) - 1
            continue
        if len(chunk) <= limit:  # the last line, without a newline
            yield number, chunk, len(chunk)
            continue
        length = len(chunk)
        while True:
            more = handle.readline(_SKIP_CHUNK)
            if more.endswith(b"\n"):
                length += len(more) - 1
                break
            if not more:
                break
            length += len(more)
        yield number, None, length


def _iter_jsonl(path: Path, max_bytes: int) -> Iterator[Article | FailureRow]:
    try:
        handle = _open_input(path)
    except _BadInput as bad:
        yield _failure(path, bad.reason, bad.detail)
        return
    any_line = False
    number = 0
    with handle:
        try:
            for number, raw, length in _lines(handle, max_bytes):
                where = f"{path}:{number}"
                if raw is None:
                    any_line = True
                    yield _failure(where, "too-large", _too_large(f"the line is {length:,} bytes", max_bytes))
                    continue
                line = _strip_bom(raw)[0] if number == 1 else raw
                if not line.strip():
                    continue
                any_line = True
                try:
                    yield _jsonl_article(line, where)
                except _BadInput as bad:
                    yield _failure(where, bad.reason, bad.detail)
        except OSError as error:
            yield _failure(path, "unreadable", f"reading stopped after line {number}: {_os_message(error)}")
            return
    if not any_line:
        yield _failure(path, "empty", "the file is empty")


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
    return _article(body, where, meta, title=meta.title)


def _failure(where: Path | str, reason: str, detail: str) -> FailureRow:
    """A row for an input that is no article; path and detail are made storable and printable."""
    shown = _printable(str(where))
    return FailureRow(
        article_id=None, source_path=shown, reason=reason, detail=f"{shown}: {_printable(detail)}"
    )
