"""``triangulate serve DIR``: run the review app under uvicorn and say where it is.

The socket is bound here, before uvicorn starts, so that ``--port 0`` (any free port) can print
the address actually taken, and so that a port already in use is one plain error line.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import webbrowser
from pathlib import Path
from typing import TextIO

import uvicorn
from starlette.applications import Starlette

from pipeline.outputs.rundata import ExportError
from pipeline.review.app import LOOPBACK_NAMES, create_app
from pipeline.store.runfolder import RunFolder

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_USAGE = 2


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port). Raises OSError."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening before uvicorn runs: a browser opened right away queues instead of being refused.
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def uvicorn_server(app: Starlette) -> uvicorn.Server:
    """A uvicorn server for ``app``, quiet but for warnings (the app prints its own lines)."""
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(
    out_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    reviewer: str,
    open_browser: bool = True,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Serve the review app for ``out_dir`` until interrupted. 0 when stopped, 1 the folder cannot
    be read as a reconciled run, 2 no run folder or the address cannot be used."""
    out = out or sys.stdout
    err = err or sys.stderr
    folder = RunFolder(out_dir)
    if folder.kind == "none":
        print(f"error: {folder.describe()}", file=err)
        return EXIT_USAGE
    loopback = is_loopback(host)

    def log(line: str) -> None:
        print(line, file=err, flush=True)

    app = create_app(out_dir, reviewer=reviewer, trusted_hosts=LOOPBACK_NAMES if loopback else ["*"], log=log)
    try:
        # Read once now: a folder that is not reconciled fails here, naming the command to run.
        view = app.state.review.runs.current()
    except ExportError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_UNREADABLE
    for warning in view.data.warnings:
        print(f"warning: {warning}", file=err)
    try:
        sock = bind(host, port)
    except OSError as exc:
        print(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=err)
        return EXIT_USAGE
    if not loopback:
        print(
            f"warning: listening on {host}, not loopback: anyone who can reach this address can read the "
            f"run and record decisions as {reviewer}",
            file=err,
        )
    url = url_of(sock)
    print(
        f"serving {out_dir} ({len(view.incidents)} incident(s)) at {url}  (Ctrl-C to stop)",
        file=out,
        flush=True,
    )
    server = uvicorn_server(app)
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return EXIT_OK
