"""The review app (``triangulate serve DIR``): a Starlette application over one run folder.

Pages: ``/`` (the incident index, with ``?q=``, ``verdict``, ``field`` and ``state`` filters) and
``/incident/ID`` (one incident's flagged fields, each value with its evidence in context). The
page's script posts decisions as JSON to ``/api/decisions`` and fetches a whole article from
``/api/article``; ``/static`` serves the script and the stylesheet from this package, so the app
needs no network.

Decisions go to the run store at once (:func:`pipeline.review.desk.record_decision`, under the
folder's lock), and the folder is reconciled again, so its files, a reload and any later
``triangulate reconcile`` all show them. The app reads the folder through
:func:`pipeline.outputs.rundata.load_run` and keeps that reading until one of the folder's files
changes (a decision, or another command writing there).

The app listens on loopback by default, yet any web page the reviewer has open could still send
requests to it. So a decision needs a token that only the app's own pages carry (a header a
cross-origin page cannot set without the app's consent, which it never gives), and a request
whose Host is not a loopback name is refused, so a page that rebinds its own name to 127.0.0.1
cannot read the token either.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pipeline import __version__
from pipeline.outputs.rundata import ExportError, load_run
from pipeline.review.desk import NothingToReconcile, record_decision
from pipeline.review.views import (
    IndexQuery,
    RunView,
    evidence_of,
    flagged_paths,
    same_value,
    shown,
    typed_like,
    verdict_of,
)
from pipeline.store.desk import now
from pipeline.store.runfolder import RunFolder, RunFolderError
from pipeline.store.runlock import RunFolderBusy, run_folder_lock
from schemas.desk import FIELD_ACTIONS, Decision, DecisionAction
from schemas.incident import Scalar

TOKEN_HEADER = "X-Triangulate-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# How long a decision waits for a command that holds the folder (a reconcile of a large folder
# takes seconds); a `run` holds it far longer, and the reviewer is told so instead.
LOCK_WAIT_S = 20.0
MAX_BODY_BYTES = 64 * 1024
MAX_NOTE_CHARS = 4000
MAX_VALUE_CHARS = 2000

# The pages load nothing but their own script and stylesheet; no inline script or style runs, so
# markup that slipped past escaping could still not execute.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Decisions change what a page shows: going back or reloading must ask again.
    "Cache-Control": "no-store",
}


class BadRequest(Exception):
    """Input the app refuses; becomes a JSON error with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def environment() -> jinja2.Environment:
    """The templates of ``pipeline/review/templates``: autoescape on for every file (they are all
    HTML), and ``StrictUndefined`` so a misspelt name fails instead of rendering as nothing."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.review", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shown"] = shown
    return env


class RunCache:
    """The folder as last read, read again when one of its files has changed since."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._lock = threading.Lock()
        self._key: tuple[tuple[int, int], ...] | None = None
        self._view: RunView | None = None

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        folder = RunFolder(self.out_dir)
        paths = [folder.incidents, folder.conflicts, folder.records, folder.store]
        paths.append(folder.store.with_name(folder.store.name + "-wal"))
        stamps = []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                stamps.append((0, 0))
            else:
                stamps.append((stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def current(self) -> RunView:
        """The run as its files are now. Raises ExportError when the folder cannot be read as a run."""
        with self._lock:
            # Stamped before reading: a file that changes during the read is read again next time.
            stamp = self._stamp()
            if self._view is None or stamp != self._key:
                try:
                    self._view = RunView(load_run(self.out_dir))
                except RunFolderError as exc:
                    raise ExportError(str(exc)) from exc
                self._key = stamp
            return self._view

    def invalidate(self) -> None:
        with self._lock:
            self._view = None


@dataclass(frozen=True)
class DecisionRequest:
    incident_id: str
    field_path: str
    action: DecisionAction
    value: Scalar
    note: str


def parse_decision(body: bytes) -> DecisionRequest:
    """The JSON a page posts for a decision, checked; raises BadRequest saying what is wrong."""
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(payload) - {"incident_id", "field_path", "action", "value", "note"})
    if unknown:
        raise BadRequest(f"unknown key(s): {', '.join(unknown)}")
    incident_id, field_path = payload.get("incident_id"), payload.get("field_path")
    action, value, note = payload.get("action"), payload.get("value"), payload.get("note", "")
    if not isinstance(incident_id, str) or not incident_id:
        raise BadRequest("incident_id must be a non-empty string")
    if not isinstance(field_path, str) or not field_path:
        raise BadRequest("field_path must be a non-empty string")
    if action not in FIELD_ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(FIELD_ACTIONS)}")
    if value is not None and not isinstance(value, str | int | float | bool):
        raise BadRequest("value must be a string, a number, true, false or null")
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        raise BadRequest(f"value is longer than {MAX_VALUE_CHARS} characters")
    if not isinstance(note, str):
        raise BadRequest("note must be a string")
    if len(note) > MAX_NOTE_CHARS:
        raise BadRequest(f"note is longer than {MAX_NOTE_CHARS} characters")
    if action == "set":
        if not isinstance(value, str) or not value.strip():
            raise BadRequest("a set decision needs the value, as text")
        if not note.strip():
            raise BadRequest("a set decision needs a note saying why")
    return DecisionRequest(incident_id, field_path, cast(DecisionAction, action), value, note.strip())


class ReviewApp:
    """The routes' state: the folder, who reviews, the page token and the templates."""

    def __init__(self, out_dir: Path, reviewer: str, log: Callable[[str], None] | None) -> None:
        self.out_dir = Path(out_dir)
        self.reviewer = reviewer
        self.token = secrets.token_urlsafe(32)
        self.runs = RunCache(self.out_dir)
        self.templates = environment()
        self.log = log or (lambda line: None)

    # -- responses --

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            reviewer=self.reviewer,
            token=self.token,
            folder=str(self.out_dir),
            version=__version__,
            **{"warnings": [], **context},
        )
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def error_page(self, status: int, title: str, message: str) -> HTMLResponse:
        return self.page("error.j2", status=status, title=title, message=message)

    @staticmethod
    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})

    # -- pages --

    async def index(self, request: Request) -> Response:
        params = request.query_params
        query = IndexQuery(
            q=params.get("q", ""),
            verdict=params.get("verdict", ""),
            field=params.get("field", ""),
            state=params.get("state", ""),
        )
        problems = query.problems()
        if problems:
            return self.error_page(400, "Unknown filter", "; ".join(problems))
        try:
            view = await run_in_threadpool(self.runs.current)
        except ExportError as exc:
            return self.error_page(503, "Cannot read the run", str(exc))
        page = view.index(query)
        return await run_in_threadpool(self.page, "index.j2", index=page, warnings=view.data.warnings)

    async def incident(self, request: Request) -> Response:
        wanted = str(request.path_params["incident_id"])
        try:
            view = await run_in_threadpool(self.runs.current)
        except ExportError as exc:
            return self.error_page(503, "Cannot read the run", str(exc))
        incident = view.find(wanted)
        if incident is None:
            return self.error_page(404, "No such incident", f"no incident {wanted} in {self.out_dir}")
        if incident.id != wanted:  # an id from before a merge: the incident it is part of now
            return RedirectResponse(request.url_for("incident", incident_id=incident.id), status_code=303)
        page = await run_in_threadpool(view.incident, incident)
        return await run_in_threadpool(self.page, "incident.j2", incident=page, warnings=view.data.warnings)

    # -- the API --

    async def article(self, request: Request) -> Response:
        params = request.query_params
        article_id = params.get("id", "")
        try:
            start, end = int(params.get("start", "")), int(params.get("end", ""))
        except ValueError:
            return self.error(400, "start and end must be whole numbers")
        try:
            view = await run_in_threadpool(self.runs.current)
        except ExportError as exc:
            return self.error(503, str(exc))
        try:
            span = view.article_span(article_id, start, end)
        except ValueError as exc:
            return self.error(400, str(exc))
        if span is None:
            return self.error(404, f"no text of article {article_id} in this run")
        return JSONResponse(
            {"id": span.article_id, "outlet": span.outlet, "before": span.before, "quote": span.quote,
             "after": span.after},
            headers={"Cache-Control": "no-store"},
        )  # fmt: skip

    async def decide(self, request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token):
            return self.error(
                403, f"missing or wrong {TOKEN_HEADER}: decisions come from the app's own pages"
            )
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return self.error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            wanted = parse_decision(body)
            return await run_in_threadpool(self._record, wanted)
        except BadRequest as bad:
            return self.error(bad.status, str(bad))

    def _record(self, wanted: DecisionRequest) -> Response:
        try:
            view = self.runs.current()
        except ExportError as exc:
            return self.error(503, str(exc))
        incident = view.find(wanted.incident_id)
        if incident is None:
            raise BadRequest(f"no incident {wanted.incident_id} in {self.out_dir}", 404)
        verdict = verdict_of(incident, wanted.field_path)
        if verdict is None:
            flagged = ", ".join(flagged_paths(incident)) or "none"
            raise BadRequest(
                f"incident {incident.id} has no field {wanted.field_path}; flagged: {flagged}", 404
            )
        value: Scalar = None
        if wanted.action == "accept":
            if not any(same_value(wanted.value, v.value) for v in verdict.values):
                given = ", ".join(shown(v.value) for v in verdict.values) or "none"
                raise BadRequest(f"{shown(wanted.value)} is not one of the sources' values ({given})")
            value = wanted.value
        elif wanted.action == "set":
            value = typed_like(str(wanted.value), (v.value for v in verdict.values))
        decision = Decision(
            at=now(),
            by=self.reviewer,
            incident_id=incident.id,
            action=wanted.action,
            field_path=verdict.path,
            value=value,
            note=wanted.note,
            evidence=evidence_of(verdict),
        )
        try:
            with run_folder_lock(self.out_dir, command="serve", wait=LOCK_WAIT_S):
                recorded, outcome = record_decision(self.out_dir, decision)
        except RunFolderBusy as busy:
            return self.error(409, f"{busy}; the decision was not recorded, try again when it is done")
        except NothingToReconcile as nothing:
            return self.error(409, str(nothing))
        finally:
            self.runs.invalidate()
        self.log(
            f"decision {recorded.seq} recorded: {recorded.action} {recorded.field_path} "
            f"on {recorded.incident_id} by {recorded.by}"
        )
        return JSONResponse(
            {
                "decision": recorded.model_dump(mode="json"),
                "incident_id": incident.id,
                "summary": outcome.summary(),
            },
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )


def create_app(
    out_dir: Path,
    *,
    reviewer: str,
    trusted_hosts: Sequence[str] = LOOPBACK_NAMES,
    log: Callable[[str], None] | None = None,
) -> Starlette:
    """The review app for the run folder ``out_dir``; decisions are recorded as made by ``reviewer``.

    ``trusted_hosts``: the Host names requests may use (loopback names; ``["*"]`` when the app is
    served on another address). ``log`` receives one line per recorded decision.
    """
    review = ReviewApp(out_dir, reviewer, log)
    routes = [
        Route("/", review.index, name="index"),
        Route("/incident/{incident_id}", review.incident, name="incident"),
        Route("/api/article", review.article, name="article"),
        Route("/api/decisions", review.decide, methods=["POST"], name="decide"),
        Mount("/static", StaticFiles(packages=[("pipeline.review", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(trusted_hosts))]
    )
    app.state.review = review
    return app
