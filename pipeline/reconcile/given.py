"""Grounding what we are given: records imported or written by hand carry quotes but no grounding.

Reconciled as they are, every value of such a record would decide verdicts unchecked, and a
page or a table could only say that its quote was never located. So before ``reconcile`` and
``eval`` use them, records without grounding are grounded against their article's text wherever
that text can be found, in this order:

1. a run store: the one of the folder the records file lies in, or of the output folder;
2. the record's ``source_path``, as written or relative to the records file's folder
   (``file.jsonl:LINE`` sources read that line);
3. folders of articles named by the caller (``--articles DIR``).

An article is matched by its id, the hash of its text, so a file that changed since the record
was made is never mistaken for its source. A record whose text is found nowhere stays as it is;
its values are *not checked*, which the page and the tables say in those words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.evidence.ground import ground_record
from pipeline.ingest.sources import iter_sources
from pipeline.store.runfolder import RunFolder
from schemas import Article, IncidentRecord
from schemas.fields import iter_cited

_JSONL_LINE = re.compile(r"\.jsonl:\d+$")


@dataclass
class GivenGrounding:
    """What grounding the given records did: how many were grounded now, how many already carried
    grounding, and the articles whose text was found nowhere (their values stay unchecked)."""

    grounded: int = 0
    already_grounded: int = 0
    not_found: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"grounded {self.grounded} record(s) against their articles"]
        if self.already_grounded:
            parts.append(f"{self.already_grounded} already grounded")
        if self.not_found:
            parts.append(
                f"{len(self.not_found)} article text(s) not found, so their values are not checked "
                "(give the folder of articles with --articles DIR)"
            )
        return "; ".join(parts)


def needs_grounding(record: IncidentRecord) -> bool:
    """Whether some value or statement of ``record`` was never located in its article."""
    return any(cited.grounding is None for _, cited in iter_cited(record)) or any(
        statement.grounding is None for statement in record.statements
    )


def find_articles(
    records: Sequence[IncidentRecord],
    *,
    records_path: Path | None = None,
    out_dir: Path | None = None,
    article_dirs: Sequence[Path] = (),
) -> dict[str, Article]:
    """The texts of the articles ``records`` cite, by article id, from wherever they can be found
    (see the module docstring for the order)."""
    wanted = {record.article_id for record in records}
    found: dict[str, Article] = {}
    folders = [path for path in (records_path.parent if records_path else None, out_dir) if path is not None]
    for folder in dict.fromkeys(folders):
        run_folder = RunFolder(folder)
        if not run_folder.has_store() or not (wanted - found.keys()):
            continue
        from pipeline.store.runstore import RunStore

        with RunStore(folder) as store:
            for article_id in sorted(wanted - found.keys()):
                article = store.article(article_id)
                if article is not None:
                    found[article_id] = article
    base = records_path.parent if records_path else None
    files: dict[Path, None] = {}
    for record in records:
        if record.article_id in found:
            continue
        source = record.source_path or record.provenance.source_path
        if not source:
            continue
        path = Path(_JSONL_LINE.sub(".jsonl", source))
        for candidate in (path, base / path if base is not None and not path.is_absolute() else None):
            if candidate is not None and candidate.is_file():
                files[candidate] = None
                break
    _collect(found, wanted, list(files))
    if wanted - found.keys():
        _collect(found, wanted, [folder for folder in article_dirs if folder.exists()])
    return found


def _collect(found: dict[str, Article], wanted: set[str], paths: Sequence[Path]) -> None:
    if not paths:
        return
    for item in iter_sources(paths):
        if isinstance(item, Article) and item.id in wanted:
            found.setdefault(item.id, item)


def ground_given(
    records: Sequence[IncidentRecord], articles: dict[str, Article]
) -> tuple[list[IncidentRecord], GivenGrounding]:
    """``records`` with every record that lacks grounding grounded against its article, where
    ``articles`` has its text; the others unchanged, in the same order."""
    outcome = GivenGrounding()
    grounded: list[IncidentRecord] = []
    for record in records:
        if not needs_grounding(record):
            outcome.already_grounded += 1
            grounded.append(record)
            continue
        article = articles.get(record.article_id)
        if article is None:
            outcome.not_found.append(record.article_id)
            grounded.append(record)
            continue
        grounded.append(ground_record(record, article))
        outcome.grounded += 1
    return grounded, outcome
