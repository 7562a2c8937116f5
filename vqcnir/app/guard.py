"""Only requests addressed to this server: the ``Host`` check (DNS rebinding) and no cross-origin requests.

A web page on the internet can make the browser of someone running ``vqcnir-app`` send requests to it:
after DNS rebinding, ``http://attacker.example:PORT`` resolves to 127.0.0.1 and the browser treats the
page's answers as the attacker's own origin. Such requests carry ``Host: attacker.example:PORT``, so
:class:`RequestGuard` refuses every request (HTTP or WebSocket) whose ``Host`` is not one of the names the
server was started on, and every request that carries an ``Origin`` other than the server's own (the
page itself sends its own origin). Refused requests get 403 before any route, with no CORS header.
Pure ASGI: importing it needs no Gradio.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_names(bind: str) -> set[str]:
    """The host names a request to a server bound to ``bind`` may carry in ``Host``.

    Loopback names always (this machine's own browser); for a specific address, that address; for a
    wildcard (``0.0.0.0``, ``::``), this machine's host name and its addresses.
    """
    names = set(LOOPBACK_NAMES)
    if bind not in WILDCARDS:
        names.add(bind.strip("[]").lower())
        return names
    host = socket.gethostname()
    names.update({host.lower(), socket.getfqdn().lower()})
    try:
        names.update(info[4][0] for info in socket.getaddrinfo(host, None))
    except OSError:  # no resolvable host name: loopback only, and the bound address through --host
        pass
    return names


def _split_host(value: str, default_port: int) -> tuple[str, int] | None:
    """``(name, port)`` of a ``Host`` value (``name``, ``name:port``, ``[v6]:port``), None when malformed."""
    parts = urlsplit(f"//{value}")
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), default_port if port is None else port


class RequestGuard:
    """ASGI middleware refusing requests with a foreign ``Host`` or any cross-origin ``Origin`` (see module)."""

    def __init__(self, app: ASGIApp, names: Iterable[str], port: int) -> None:
        self.app = app
        self.names = {name.lower() for name in names}
        self.port = port

    def allowed_host(self, value: str | None, default_port: int = 80) -> bool:
        """True when ``value`` (a ``Host`` header, or the ``host:port`` of an origin) names this server."""
        if not value:
            return False
        split = _split_host(value, default_port)
        return split is not None and split[0] in self.names and split[1] == self.port

    def allowed_origin(self, origin: str | None) -> bool:
        """True without an ``Origin`` (same-origin navigation) or with this server's own ``http`` origin."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        return parts.scheme == "http" and parts.path in ("", "/") and self.allowed_host(parts.netloc)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if self.allowed_host(headers.get("host")) and self.allowed_origin(headers.get("origin")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b"refused: this server answers only requests addressed to it from its own pages\n"
        await send({
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})
