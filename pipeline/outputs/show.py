"""``triangulate show``: one article's audit trail, from prompt to stored record.

For one article of a run directory this prints what the model was asked (the
numbered sentences of the user prompt; the shared system prompt by hash, or in
full with ``--prompt``), what it answered (the raw reply, pretty-printed when
it is JSON), and what the pipeline made of it: every cited value with its
grounding, or the failure row. ``--json`` prints the same content as one
JSON object.

Everything comes from the run store; nothing is recomputed, so the output is
what the run saw and decided.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from pipeline.store.runstore import ArticleOutcome, RunStore, StoredExchange
from schemas import Article, Grounding, IncidentRecord
from schemas.fields import iter_cited

QUOTE_CHARS = 160
"""Evidence quotes longer than this are cut in the text output (``--json`` keeps them whole)."""
VALUE_CHARS = 60
MAX_CANDIDATES = 20
"""How many matches an ambiguous reference lists."""


def show_article(
    store: RunStore,
    ref: str,
    *,
    prompt: bool = False,
    as_json: bool = False,
    all_runs: bool = False,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """Print the article ``ref`` names (see ``RunStore.find_article``) with its exchanges and outcome.

    ``prompt`` includes the system prompt text; ``all_runs`` shows every stored exchange of the
    article instead of those behind its current outcome. Returns 0, or 2 after a message on
    ``err`` (default stderr) when ``ref`` matches no article or more than one.
    """
    err = err if err is not None else sys.stderr
    run_dir = store.db_path.parent
    matches = store.find_article(ref)
    if not matches:
        print(f"error: no article matches '{ref}' in {run_dir}; try an id prefix or a file name", file=err)
        return 2
    if len(matches) > 1:
        print(f"error: '{ref}' is ambiguous in {run_dir}: it matches {len(matches)} articles", file=err)
        for candidate in matches[:MAX_CANDIDATES]:
            paths = store.source_paths(candidate.id) or [candidate.source_path or "(no path)"]
            print(f"  {candidate.id}  {', '.join(paths)}", file=err)
        if len(matches) > MAX_CANDIDATES:
            print(f"  ... and {len(matches) - MAX_CANDIDATES} more", file=err)
        return 2
    view = article_view(store, matches[0], prompt=prompt, all_runs=all_runs)
    if as_json:
        out.write(json.dumps(view, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render_text(view))
    return 0


# -- the content, as plain JSON-ready data --


def article_view(store: RunStore, article: Article, *, prompt: bool, all_runs: bool) -> dict[str, Any]:
    """Everything ``show`` prints about ``article``, as one JSON-ready dict.

    Keys: ``article``, ``outcome``, ``exchanges_scope`` ('current' or 'all'), ``exchanges``,
    ``record`` (the stored record, or null), ``values`` (one row per cited value and statement)
    and ``failure`` (the failure row, or null).
    """
    outcome = store.outcome(article.id) or ArticleOutcome(status="pending")
    record = outcome.record
    return {
        "article": {
            "id": article.id,
            "source_paths": store.source_paths(article.id) or [p for p in [article.source_path] if p],
            "outlet": article.outlet,
            "published": article.published.isoformat() if article.published else None,
            "published_from": article.published_from,
            "url": article.url,
            "title": article.title,
            "n_chars": len(article.text),
        },
        "outcome": {"status": outcome.status, "cache_key": outcome.cache_key, "run_id": outcome.run_id},
        "exchanges_scope": "all" if all_runs else "current",
        "exchanges": [
            _exchange_view(stored, prompt=prompt)
            for stored in store.exchange_log(article.id, all_runs=all_runs)
        ],
        "record": record.model_dump(mode="json") if record is not None else None,
        "values": _value_rows(record) if record is not None else [],
        "failure": outcome.failure.model_dump(mode="json") if outcome.failure is not None else None,
    }


def _exchange_view(stored: StoredExchange, *, prompt: bool) -> dict[str, Any]:
    exchange, log = stored.exchange, stored.attempt_log
    return {
        "run_id": stored.run_id,
        "cache_key": stored.cache_key,
        "saved_at": stored.created_at,
        "attempt": exchange.attempt,
        "chunk": exchange.chunk,
        "kind": log.kind if log else None,
        "model": log.model if log else None,
        "usage": log.usage.model_dump() if log else None,
        "latency_s": log.latency_s if log else None,
        "error": log.error if log else None,
        "system_hash": exchange.system_hash,
        "system_chars": len(exchange.system_prompt),
        "system_prompt": exchange.system_prompt if prompt else None,
        "user_hash": exchange.user_hash,
        "user_prompt": exchange.user_prompt,
        "reply": exchange.reply,
        "finish_reason": exchange.finish_reason,
    }


def _grounding_view(grounding: Grounding | None) -> dict[str, Any]:
    if grounding is None:
        return {"status": None, "sentence": None, "supported": None}
    return {"status": str(grounding.status), "sentence": grounding.sentence, "supported": grounding.supported}


def _value_rows(record: IncidentRecord) -> list[dict[str, Any]]:
    rows = [
        {
            "path": path,
            "value": cited.value,
            **_grounding_view(cited.grounding),
            "quote": cited.quote,
            "attribution": cited.attribution,
        }
        for path, cited in iter_cited(record)
    ]
    for index, statement in enumerate(record.statements):
        speaker = statement.speaker + (f" ({statement.affiliation})" if statement.affiliation else "")
        rows.append(
            {
                "path": f"statements[{index}]",
                "value": speaker,
                **_grounding_view(statement.grounding),
                "quote": statement.quote,
                "attribution": statement.speaker,
            }
        )
    return rows


# -- the terminal form --


def render_text(view: dict[str, Any]) -> str:
    """The terminal form of ``article_view``'s content."""
    lines: list[str] = []
    article, outcome = view["article"], view["outcome"]
    lines.append(f"Article {article['id']}")
    details: list[tuple[str, Any]] = [("title", article["title"])]
    details += [("source", path) for path in article["source_paths"]]
    details += [
        ("outlet", article["outlet"]),
        ("published", article["published"] and f"{article['published']} (from {article['published_from']})"),
        ("url", article["url"]),
        ("length", f"{article['n_chars']:,} chars"),
        ("outcome", _outcome_line(outcome)),
    ]
    lines += [f"  {label:<10} {value}" for label, value in details if value is not None]

    exchanges = view["exchanges"]
    lines.append("")
    if not exchanges:
        scope = "for this article" if view["exchanges_scope"] == "all" else "with its current outcome"
        lines.append(f"No model exchanges stored {scope}.")
        if view["exchanges_scope"] != "all":
            lines.append("  (--all-runs shows those of earlier outcomes, if any)")
        lines.append("")
    shown: dict[str, int] = {}  # prompt hash -> the request that printed its text
    saved_with: tuple[Any, ...] | None = None
    for number, exchange in enumerate(exchanges, start=1):
        outcome_of = (exchange["run_id"], exchange["cache_key"], exchange["saved_at"])
        if outcome_of != saved_with:
            saved_with = outcome_of
            run_id, key, saved_at = outcome_of
            lines += [f"Model exchanges saved {saved_at} by run {run_id} (cache key {key})", ""]
        lines += _exchange_lines(number, len(exchanges), exchange, shown)
        lines.append("")

    if view["record"] is not None:
        lines += _record_lines(view["values"])
    elif view["failure"] is not None:
        failure = view["failure"]
        lines.append(f"Failure: {failure['reason']}")
        lines.append(f"  detail      {failure['detail']}")
        lines.append(f"  attempts    {failure['attempts']}")
        if failure["last_error"]:
            lines.append(f"  last error  {failure['last_error']}")
    else:
        lines.append("No outcome yet: the latest run that read this article did not finish it.")
    return "\n".join(lines) + "\n"


def _outcome_line(outcome: dict[str, Any]) -> str:
    if outcome["status"] == "pending":
        return "pending"
    return f"{outcome['status']} (cache key {outcome['cache_key']}, saved by run {outcome['run_id']})"


def _exchange_lines(number: int, total: int, exchange: dict[str, Any], shown: dict[str, int]) -> list[str]:
    """One request. A prompt text already printed for an earlier request is named, not repeated."""
    facts = [f"attempt {exchange['attempt']}", f"chunk {exchange['chunk']}"]
    if exchange["kind"]:
        facts.append(exchange["kind"])
    if exchange["model"]:
        facts.append(f"model {exchange['model']}")
    usage = exchange["usage"]
    if usage and usage["total_tokens"]:
        facts.append(f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens")
    if exchange["latency_s"]:
        facts.append(f"{exchange['latency_s']:.2f} s")
    lines = [f"Request {number} of {total}: {', '.join(facts)}"]
    if exchange["error"]:
        lines.append(f"  error: {exchange['error']}")
    system_hash, user_hash = exchange["system_hash"], exchange["user_hash"]
    if exchange["system_prompt"] is None:
        size = f"{exchange['system_chars']:,} chars"
        lines.append(f"  system prompt {system_hash} ({size}; --prompt prints it)")
    elif system_hash in shown:
        lines.append(f"  system prompt {system_hash} (as in request {shown[system_hash]})")
    else:
        shown[system_hash] = number
        lines.append(f"  system prompt {system_hash}:")
        lines += _block(exchange["system_prompt"])
    if user_hash in shown:
        lines.append(f"  user prompt {user_hash} (as in request {shown[user_hash]})")
    else:
        shown[user_hash] = number
        lines.append(f"  user prompt {user_hash}:")
        lines += _block(exchange["user_prompt"] or "(prompt text not stored)")
    finish = f" (finish_reason {exchange['finish_reason']})" if exchange["finish_reason"] else ""
    if exchange["reply"] is None:
        lines.append(f"  reply: none came back{finish}")
    else:
        lines.append(f"  reply{finish}:")
        lines += _block(pretty_reply(exchange["reply"]))
    return lines


def _record_lines(values: list[dict[str, Any]]) -> list[str]:
    n_statements = sum(1 for row in values if row["path"].startswith("statements["))
    n_cited = len(values) - n_statements
    lines = [f"Record: {_plural(n_cited, 'cited value')}, {_plural(n_statements, 'statement')}"]
    columns = [
        (
            row["path"],
            _cut(json.dumps(row["value"], ensure_ascii=False), VALUE_CHARS),
            row["status"] or "ungrounded",
            f"s{row['sentence']}" if row["sentence"] is not None else "s-",
            {True: "supported", False: "unsupported", None: "unchecked"}[row["supported"]],
            json.dumps(_cut(row["quote"], QUOTE_CHARS), ensure_ascii=False),
        )
        for row in values
    ]
    widths = [max((len(column[i]) for column in columns), default=0) for i in range(5)]
    for column in columns:
        cells = [cell.ljust(width) for cell, width in zip(column[:5], widths, strict=True)]
        lines.append("  " + "  ".join([*cells, column[5]]))
    return lines


def pretty_reply(reply: str) -> str:
    """The reply indented as JSON when the whole of it is a JSON object or array; verbatim otherwise."""
    try:
        parsed = json.loads(reply)
    except ValueError:
        return reply
    if not isinstance(parsed, dict | list):
        return reply
    return json.dumps(parsed, indent=2, ensure_ascii=False)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _block(text: str) -> list[str]:
    return ["    " + line if line else "" for line in text.splitlines()] or ["    (empty)"]


def _cut(text: str, limit: int) -> str:
    """``text`` on one line, shortened to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
