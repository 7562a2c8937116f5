"""The page's request guard (issue 19, failure 1): foreign Host and cross-origin requests refused before any route."""

from __future__ import annotations

import asyncio

import pytest

from vqcnir.app.guard import RequestGuard, server_names

PORT = 7860


def _call(guard: RequestGuard, headers: dict[str, str], kind: str = "http") -> list[dict]:
    sent: list[dict] = []
    reached: list[bool] = []

    async def app(scope, receive, send):
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": kind, "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(RequestGuard(app, guard.names, guard.port)(scope, receive, send))
    return sent if not reached else [{"type": "reached"}]


@pytest.fixture
def guard():
    return RequestGuard(None, server_names("127.0.0.1"), PORT)


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": f"127.0.0.1:{PORT}"},
        {"Host": f"localhost:{PORT}"},
        {"Host": f"[::1]:{PORT}"},
        {"Host": f"127.0.0.1:{PORT}", "Origin": f"http://127.0.0.1:{PORT}"},
        {"Host": f"localhost:{PORT}", "Origin": f"http://localhost:{PORT}"},
    ],
)
def test_requests_addressed_to_the_server_pass(guard, headers):
    assert _call(guard, headers) == [{"type": "reached"}]


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": f"attacker.example:{PORT}", "Origin": f"http://attacker.example:{PORT}"},  # DNS rebinding
        {"Host": f"attacker.example:{PORT}"},
        {"Host": f"127.0.0.1:{PORT}", "Origin": "http://attacker.example"},  # cross-origin
        {"Host": f"127.0.0.1:{PORT}", "Origin": "null"},
        {"Host": f"127.0.0.1:{PORT}", "Origin": f"https://127.0.0.1:{PORT}"},
        {"Host": f"127.0.0.1:{PORT + 1}"},
        {"Host": "127.0.0.1"},
        {"Host": f"127.0.0.1:{PORT}:{PORT}"},
        {},
    ],
)
def test_foreign_and_cross_origin_requests_are_refused_without_a_cors_grant(guard, headers):
    start, body = _call(guard, headers)
    assert start["status"] == 403 and b"refused" in body["body"]
    assert not any(name.startswith(b"access-control") for name, _ in start["headers"])


def test_a_foreign_websocket_is_closed(guard):
    closed = _call(guard, {"Host": f"attacker.example:{PORT}"}, "websocket")
    assert closed == [{"type": "websocket.close", "code": 1008}]


def test_a_specific_address_and_loopback_names_are_the_server_names():
    assert server_names("192.168.1.5") == {"192.168.1.5", "localhost", "127.0.0.1", "::1"}
    assert {"localhost", "127.0.0.1"} <= server_names("0.0.0.0")
