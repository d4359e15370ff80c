"""The web side of login: our own /login page, /logout, and a gate in front of everything else.

Hand `current_user` to Gradio and install the layer on the parent FastAPI app (before or after
the mount: its routes go to the front of the router either way):

    layer = LoginLayer.from_settings(settings, audit=audit, public_prefixes=("/mcp",))
    gr.mount_gradio_app(app, blocks, path="/", auth_dependency=layer.current_user)
    layer.install(app)

Why a gate and not only Gradio's `auth_dependency`: Gradio 6.31 consults it on the page, config,
queue and upload routes, but not on others (`/gradio_api/cancel`, `/heartbeat/*`, `/stream/*`,
`/startup-events`, run history). The gate answers every request that is not public: a browser
asking for a page is sent to `/login?next=...`, anything else gets 401. Gradio's own `POST /login`
and `GET /logout` (it registers both on its sub-app) are shadowed: ours come first in the router.

With no users configured (`required=False`) there is no login and everyone is `LOCAL_USER`.

The client address used for throttling and the audit log, and the scheme that decides the
cookie's `Secure` flag, come from the ASGI scope, i.e. after uvicorn's proxy-headers handling
(`proxy_headers=True, forwarded_allow_ips=settings.trusted_proxies`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from secrets import token_bytes
from urllib.parse import parse_qs, quote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from executor.audit import AuditLog
from executor.keys import chat_key
from settings import LOCAL_USER, Settings

from . import _login_page
from .sessions import RevokedSessions, Session, SessionCodec, load_secret
from .throttle import LoginThrottle
from .users import Authenticator

logger = logging.getLogger(__name__)

SCOPE_USER = "mcp_code_executor.user"
_MAX_FORM_BYTES = 16 * 1024
_PUBLIC_PATHS = frozenset({"/login", "/login/", "/logout", "/logout/"})


def _root(scope: Scope) -> str:
    return scope.get("root_path", "").rstrip("/")


def _route_path(scope: Scope) -> str:
    """The path inside this app (without the root path a proxy may put in front)."""
    path, root = scope["path"], _root(scope)
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


def safe_next(value: str | None, root: str = "") -> str:
    """`value` if it is a path on this site (not //host, not a URL, not the login pages)."""
    default = root + "/"
    if not value or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    inner = parts.path[len(root) :] if root and parts.path.startswith(root) else parts.path
    if inner.rstrip("/") in {"/login", "/logout"}:
        return default
    return value


def uvicorn_proxy_options(settings: Settings) -> dict[str, object]:
    """uvicorn options so client address and scheme come from trusted proxies only."""
    return {"proxy_headers": True, "forwarded_allow_ips": settings.trusted_proxies}


def cookie_header(name: str, value: str, *, max_age: int, secure: bool, path: str = "/") -> str:
    """A Set-Cookie value: HttpOnly, SameSite=Lax, Secure when the request came over HTTPS."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


@dataclass(frozen=True)
class Attempt:
    """What became of a login attempt."""

    session: Session | None  # set when the password was right
    wait_s: float  # seconds until the next attempt may be checked (0 = now)
    checked: bool  # False: refused by a lock-out before the password was looked at


class LoginLayer:
    """Login page, logout, the gate middleware, and Gradio's `auth_dependency`."""

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        codec: SessionCodec,
        revoked: RevokedSessions,
        throttle: LoginThrottle,
        required: bool,
        audit: AuditLog | None = None,
        public_prefixes: Sequence[str] = (),
    ) -> None:
        self.authenticator = authenticator
        self.codec = codec
        self.revoked = revoked
        self.throttle = throttle
        self.required = required
        self.audit = audit
        self.public_prefixes = tuple(p.rstrip("/") for p in public_prefixes)
        # Each argon2 check takes ~0.1-0.2 s of CPU and 64 MiB: a burst of logins must not
        # take every worker thread or the memory from the chats.
        self._checks = asyncio.Semaphore(2)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        authenticator: Authenticator | None = None,
        audit: AuditLog | None = None,
        public_prefixes: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> LoginLayer:
        """Login is required when any user is configured at start; it stays so until restart
        (removing the last user locks everyone out rather than opening the app)."""
        authenticator = authenticator or Authenticator.from_settings(settings)
        required = authenticator.enabled
        # Without login no cookie is ever issued: no secret file either.
        secret = load_secret(settings.data_dir / "session-secret") if required else token_bytes(32)
        codec = SessionCodec(
            secret,
            idle_timeout_s=settings.session_idle_timeout_s,
            max_age_s=settings.session_max_age_s,
            clock=clock,
        )
        revoked = RevokedSessions(settings.data_dir / "revoked-sessions.json", clock)
        throttle = LoginThrottle(max_failures=settings.login_max_failures, clock=monotonic)
        return cls(
            authenticator,
            codec=codec,
            revoked=revoked,
            throttle=throttle,
            required=required,
            audit=audit,
            public_prefixes=public_prefixes,
        )

    # -- wiring ---------------------------------------------------------------------------

    def install(self, app: Starlette) -> None:
        """Add /login, /logout (ahead of any mount, so they win over Gradio's) and the gate."""
        routes = [
            Route("/login", self._login_page, methods=["GET", "HEAD"]),
            Route("/login", self._login_submit, methods=["POST"]),
            Route("/logout", self._logout, methods=["GET", "POST"]),
        ]
        app.router.routes[0:0] = routes
        app.add_middleware(_LoginGate, layer=self)

    def current_user(self, request: Request) -> str | None:
        """Gradio's `auth_dependency`: the user id, or None (Gradio then answers 401)."""
        user = request.scope.get(SCOPE_USER)
        if user is None:
            user, _, _ = self.authenticate(request.scope)
        return user

    # -- sessions -------------------------------------------------------------------------

    def _session_of(self, scope: Scope) -> Session | None:
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookie = cookie_parser(value.decode("latin-1")).get(self.codec.cookie_name)
                if cookie:
                    return self.codec.decode(cookie)
        return None

    def authenticate(self, scope: Scope) -> tuple[str | None, Session | None, bool]:
        """(user, session, ended): `ended` is True when a session cookie was valid once but
        has expired, been logged out, or outlived its user's password."""
        if not self.required:
            return LOCAL_USER, None, False
        session = self._session_of(scope)
        if session is None:
            return None, None, False
        if (
            self.codec.expired(session)
            or session.sid in self.revoked
            or not self.codec.matches(session, self.authenticator.fingerprint(session.user))
        ):
            return None, None, True
        return session.user, session, False

    def _cookie(self, scope: Scope, session: Session) -> str:
        return cookie_header(
            self.codec.cookie_name,
            self.codec.encode(session),
            max_age=self.codec.cookie_max_age(session),
            secure=scope.get("scheme") in ("https", "wss"),
            path=_root(scope) or "/",
        )

    def refreshed_cookie(self, scope: Scope, session: Session) -> str | None:
        """A Set-Cookie value moving the idle expiry forward, when one is due."""
        touched = self.codec.touched(session)
        return None if touched is None else self._cookie(scope, touched)

    def is_public(self, scope: Scope) -> bool:
        path = _route_path(scope)
        if path in _PUBLIC_PATHS:
            return True
        return any(path == p or path.startswith(p + "/") for p in self.public_prefixes)

    # -- routes ---------------------------------------------------------------------------

    def _page(
        self, request: Request, *, status: int = 200, message: str = "", note: str = "", **kw
    ) -> HTMLResponse:
        body = _login_page.render(
            action=f"{_root(request.scope)}/login",
            next_url=kw.get("next") or f"{_root(request.scope)}/",
            username=kw.get("username", ""),
            error=message,
            note=note,
        )
        headers = {**_login_page.HEADERS, **kw.get("headers", {})}
        return HTMLResponse(body, status_code=status, headers=headers)

    async def _login_page(self, request: Request) -> Response:
        root = _root(request.scope)
        target = safe_next(request.query_params.get("next"), root)
        user, _, _ = self.authenticate(request.scope)
        if user is not None:
            return RedirectResponse(target, status_code=303)
        note = (
            "Your session has ended; please log in again."
            if "expired" in request.query_params
            else ""
        )
        return self._page(request, note=note, next=target)

    async def _login_submit(self, request: Request) -> Response:
        root = _root(request.scope)
        if not self.required:
            return RedirectResponse(root + "/", status_code=303)
        refusal = _cross_site(request)
        if refusal:
            return JSONResponse({"detail": refusal}, status_code=403)
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > _MAX_FORM_BYTES:
            return JSONResponse({"detail": "login form too large"}, status_code=413)
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            return JSONResponse({"detail": "login form too large"}, status_code=413)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=8)
        user = form.get("username", [""])[0].strip()
        password = form.get("password", [""])[0]
        target = safe_next(form.get("next", [""])[0], root)
        addr = request.client.host if request.client else "unknown"
        result = await self.attempt(user, password, addr)
        if not result.checked:
            seconds = math.ceil(result.wait_s)
            return self._page(
                request,
                status=429,
                message=f"Too many attempts, try again in {seconds} s.",
                next=target,
                username=user,
                headers={"Retry-After": str(seconds)},
            )
        if result.session is None:
            message = "Wrong user or password."
            if result.wait_s > 0:
                message += f" Too many attempts, try again in {math.ceil(result.wait_s)} s."
            return self._page(request, status=401, message=message, next=target, username=user)
        response = RedirectResponse(target, status_code=303)
        response.headers.append("set-cookie", self._cookie(request.scope, result.session))
        return response

    async def attempt(self, user: str, password: str, addr: str) -> Attempt:
        """One login attempt under the throttle, audited; a session when it succeeds."""
        wait = self.throttle.check(user, addr)
        if wait > 0:
            # Not audited one by one: a flood would rotate the evidence out of the audit log.
            logger.info("login for %r from %s refused: locked for %.0f s", user[:64], addr, wait)
            return Attempt(None, wait, checked=False)
        # Counted before verifying, so guesses sent in parallel cannot slip past a lock-out;
        # a success clears it again.
        self.throttle.record_failure(user, addr)
        started = time.monotonic()
        async with self._checks:
            ok = bool(user) and await asyncio.to_thread(self.authenticator.check, user, password)
        elapsed = time.monotonic() - started
        material = self.authenticator.fingerprint(user) if ok else None
        if material is None:
            wait = self.throttle.check(user, addr)
            self._audit(user, "login_failed", addr, elapsed, "wrong user or password")
            if wait > 0:
                self._audit(user, "login_locked", addr, 0.0, f"locked for {math.ceil(wait)} s")
            return Attempt(None, wait, checked=True)
        self.throttle.record_success(user, addr)
        self._audit(user, "login", addr, elapsed, None)
        return Attempt(self.codec.issue(user, material), 0.0, checked=True)

    async def _logout(self, request: Request) -> Response:
        root = _root(request.scope)
        if not self.required:
            return RedirectResponse(root + "/", status_code=303)
        response = RedirectResponse(root + "/login", status_code=303)
        session = self._session_of(request.scope)
        if session is not None:
            self.revoked.add(session.sid, session.issued + self.codec.max_age_s)
            addr = request.client.host if request.client else "unknown"
            self._audit(session.user, "logout", addr, 0.0, None)
        response.headers.append(
            "set-cookie",
            cookie_header(
                self.codec.cookie_name,
                "",
                max_age=0,
                secure=request.url.scheme == "https",
                path=root or "/",
            ),
        )
        return response

    def _audit(
        self, user: str, operation: str, addr: str, duration_s: float, error: str | None
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                chat_key(user[:128], ""), operation, addr, duration_s=duration_s, error=error
            )


def _cross_site(request: Request) -> str | None:
    """Why a login form post is refused as cross-site (login CSRF), or None."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin.lower() == expected.lower():
        return None
    return (
        f"login refused: the form came from {origin}, not {expected}. Behind a reverse proxy, "
        "pass the Host header and X-Forwarded-Proto, and list the proxy in APP_TRUSTED_PROXIES."
    )


class _LoginGate:
    """ASGI middleware: lets public paths and logged-in requests through, turns others away."""

    def __init__(self, app: ASGIApp, layer: LoginLayer) -> None:
        self.app = app
        self.layer = layer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.layer.is_public(scope):
            await self.app(scope, receive, send)
            return
        user, session, ended = self.layer.authenticate(scope)
        if user is None:
            await self._refuse(scope, receive, send, ended)
            return
        scope[SCOPE_USER] = user
        cookie = None if session is None else self.layer.refreshed_cookie(scope, session)
        if cookie is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, ended: bool) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "not logged in"})
            return
        request = Request(scope)
        wants_page = request.method in ("GET", "HEAD") and "text/html" in request.headers.get(
            "accept", ""
        )
        if wants_page:
            here = scope["path"] + (f"?{request.url.query}" if request.url.query else "")
            location = f"{_root(scope)}/login?next={quote(here, safe='')}"
            if ended:
                location += "&expired=1"
            response: Response = RedirectResponse(location, status_code=303)
        else:
            detail = "session ended; log in again" if ended else "not logged in"
            response = JSONResponse(
                {"detail": detail, "login": f"{_root(scope)}/login"}, status_code=401
            )
        await response(scope, receive, send)
