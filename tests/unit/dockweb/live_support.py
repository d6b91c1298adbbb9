"""Helpers of the live consumer tests: a session cookie for a user and a websocket against dockweb.asgi."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client


@pytest.fixture(autouse=True)
def keep_test_transaction(monkeypatch):
    """Stop database_sync_to_async from closing the connection that holds the test's rolled-back transaction."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


def session_cookie(user) -> tuple[Client, str]:
    """Log user in with a test client; return the client (to log out later) and its session key."""
    client = Client()
    client.force_login(user)
    return client, client.cookies["sessionid"].value


async def open_socket(path: str, session: str | None = None, origin: str | None = "http://testserver"):
    """Connect to path through the whole ASGI application; return (communicator, connected)."""
    from dockweb.asgi import application

    headers = [(b"host", b"testserver")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=5)
    return comm, connected


async def close_code(comm, timeout: float = 5.0) -> int | None:
    """Wait for the server to close the socket (skipping data frames); return its close code."""
    while True:
        out = await comm.receive_output(timeout)
        if out["type"] == "websocket.close":
            return out.get("code")
