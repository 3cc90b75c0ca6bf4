"""ASGI middleware in front of the whole server (UI and JSON API).

* DNS rebinding: a web page on ``evil.example`` can rebind its name to
  127.0.0.1 and then talk to this server from the user's own browser, sending
  ``Host: evil.example``. Only host names the server is reached by are
  answered (421 otherwise).
* Cross-site requests: a browser attaches ``Origin`` to every POST; a
  state-changing request whose Origin is another site is refused (403).
  Requests without ``Origin`` (curl, scripts) are not from a web page.
* Stalled bodies: a client announcing more bytes than it sends would hold a
  connection open for ever; a body that stops arriving for ``body_timeout_s``
  is answered 408 and the connection closed.

:class:`ImagesOnly` narrows what Gradio's file routes serve from the workbench's
own folders: Gradio serves every file under an allowed folder, and ``data/`` and
the cache also hold the person's bookkeeping (``scores.csv``, comparisons, label
sources, hashes, the trash, feature matrices, model exports). The pages need only
the images and thumbnails there.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def split_host(value: str) -> tuple[str, int | None]:
    """``("localhost", 7860)`` from ``localhost:7860``; ``("::1", None)`` from ``[::1]``; ("", None) if malformed."""
    try:
        parts = urlsplit(f"//{value}")
        return (parts.hostname or "").lower(), parts.port
    except ValueError:  # a port that is not a number
        return "", None


class HostGuard:
    def __init__(self, app: ASGIApp, hosts: Iterable[str], body_timeout_s: float) -> None:
        self.app = app
        self.hosts = {h.strip("[]").lower() for h in (*LOOPBACK_HOSTS, *hosts) if h}
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host, port = split_host(headers.get("host", ""))
        if host not in self.hosts:
            return await _refuse(scope, send, 421, f"Host {headers.get('host', '')!r} is not this server; "
                                                   "open it as http://127.0.0.1 or http://localhost.")
        origin = headers.get("origin")
        # A cross-site websocket is never blocked by the browser itself, so it counts as state-changing.
        changes_state = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
        if origin is not None and changes_state:
            if not self._same_server(origin, port):
                return await _refuse(scope, send, 403, f"requests from the page {origin!r} are not accepted; "
                                                       "use the workbench's own page.")
        if scope["type"] == "http" and scope.get("method") not in SAFE_METHODS:
            receive, send = self._with_body_timeout(receive, send)
        await self.app(scope, receive, send)

    def _same_server(self, origin: str, port: int | None) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" (a sandboxed frame, a file: page)
        origin_port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname.lower() in self.hosts and origin_port == (port or 80)

    def _with_body_timeout(self, receive, send):
        state = {"body_done": False, "timed_out": False, "started": False}

        async def guarded_receive() -> Message:
            if state["body_done"]:
                return await receive()  # after the body: waiting for a disconnect is normal (streams)
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except asyncio.TimeoutError:
                state["timed_out"] = True
                if not state["started"]:
                    await _send_json(send, 408, f"the request body stopped arriving for {self.body_timeout_s:g} s",
                                     close=True)
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def guarded_send(message: Message) -> None:
            if state["timed_out"]:
                return  # the 408 is the answer; the app's reaction to the disconnect goes nowhere
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        return guarded_receive, guarded_send


# Gradio 6's routes that answer with a file named in the URL (the last one is its deprecated spelling)
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/", "/file=")


class ImagesOnly:
    """From ``folders``, Gradio's file routes serve image files only (by suffix), never a hidden one."""

    def __init__(self, app: ASGIApp, folders: Iterable[str | Path], suffixes: Iterable[str]) -> None:
        self.app = app
        self.folders = [Path(os.path.abspath(f)) for f in folders]
        self.folders += [Path(os.path.realpath(f)) for f in folders]
        self.suffixes = {s.lower() for s in suffixes}

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("method") in SAFE_METHODS:
            path = scope.get("path", "")
            route = next((r for r in FILE_ROUTES if path.startswith(r)), None)
            if route is not None and not self.may_serve(path[len(route):]):
                return await _send_json(send, 404, "not found: from the workbench's folders only images are served")
        await self.app(scope, receive, send)

    def may_serve(self, target: str) -> bool:
        if "://" in target:
            return True  # a URL: Gradio's own rules for remote files apply
        for candidate in {Path(os.path.abspath(target)), Path(os.path.realpath(target))}:
            for folder in self.folders:
                if candidate == folder or folder in candidate.parents:
                    inner = candidate.relative_to(folder).parts
                    if any(part.startswith(".") for part in inner) or candidate.suffix.lower() not in self.suffixes:
                        return False
        return True


async def _refuse(scope: Scope, send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await _send_json(send, status, message)


async def _send_json(send, status: int, message: str, close: bool = False) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
