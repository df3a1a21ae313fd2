"""Who may ask and what may be served: the token, same-origin writes, and paths inside the project."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tomoforge.errors import UserError

TOKEN_COOKIE = "tomoforge_token"
TOKEN_HEADER = "x-tomoforge-token"
WRITE_HEADER = "x-tomoforge"  # a custom header: a cross-site form cannot send it without a CORS preflight
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class OutsideProjectError(UserError):
    """A path that is not a file of the open project."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def needs_token(host: str) -> bool:
    """Any address other than the loopback one is reachable by others: a token is then required."""
    return host not in LOCAL_HOSTS


def project_file(root: Path, relative: str) -> Path:
    """``relative`` as a file of the project at ``root``: resolved (symlinks followed) and refused unless it
    stays inside the project."""
    root = root.resolve()
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        raise OutsideProjectError(f"{relative!r}: not a path inside the project")
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise OutsideProjectError(f"{relative!r}: outside the project {root}")
    if not path.is_file():
        raise FileNotFoundError(f"{relative!r}: no such file in the project")
    return path


def host_name(host: str) -> str:
    """The name in a Host header: ``localhost:8000`` -> ``localhost``, ``[::1]:8000`` -> ``::1``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _given_token(request: Request) -> str:
    header = request.headers.get(TOKEN_HEADER, "")
    if not header and request.headers.get("authorization", "").lower().startswith("bearer "):
        header = request.headers["authorization"][7:]
    return header or request.cookies.get(TOKEN_COOKIE, "") or request.query_params.get("token", "")


def guard(token: str | None) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """The middleware: every request carries the token (when one is set), every write the custom header."""

    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if token is None and host_name(request.headers.get("host", "")) not in LOCAL_HOSTS:
            # without a token the server is for this machine only: a page whose name was pointed at 127.0.0.1
            # (DNS rebinding) reaches it under another name, and is refused
            return PlainTextResponse("this tomoforge server answers to 127.0.0.1 or localhost only", 403)
        if token is not None and not hmac.compare_digest(_given_token(request).encode(), token.encode()):
            return PlainTextResponse("this tomoforge server needs its token: open the link it printed", 401)
        if request.method not in ("GET", "HEAD") and request.headers.get(WRITE_HEADER) != "1":
            return JSONResponse({"message": f"a change needs the header {WRITE_HEADER}: 1"}, 403)
        response = await call_next(request)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'"
        )
        return response

    return check
