"""The login layer in front of a real Gradio app under uvicorn, driven over HTTP with httpx.

No Docker: a tiny Blocks whose button echoes `request.username`. The layer's clock is fake, so
idle expiry and lock-outs are reached by moving it, not by sleeping.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from settings import LOCAL_USER
from tests.support.login_app import serve

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = serve(
        tmp_path_factory.mktemp("login"),
        users={"alice": "correct horse", "bob": "battery staple"},
        max_failures=3,
        idle_timeout_s=3600,
    )
    yield server
    server.stop()


@pytest.fixture
def client(server):
    server.clock.advance(3 * 86400)  # a fresh start: old lock-outs and sessions are over
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def login(client, user="alice", password="correct horse", **headers):
    return client.post(
        "/login", data={"username": user, "password": password, "next": "/"}, headers=headers
    )


def whoami(client) -> str:
    event = client.post("/gradio_api/call/whoami", json={"data": []})
    assert event.status_code == 200, event.text
    stream = client.get(f"/gradio_api/call/whoami/{event.json()['event_id']}")
    match = re.search(r"event: complete\ndata: (.*)\n", stream.text)
    assert match, stream.text
    return json.loads(match.group(1))[0]


def test_a_browser_is_sent_to_the_login_page_and_api_calls_get_401(client):
    page = client.get("/?view=1", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2F%3Fview%3D1"
    form = client.get(page.headers["location"])
    assert form.status_code == 200
    assert 'name="password"' in form.text
    assert 'value="/?view=1"' in form.text
    assert client.get("/config").status_code == 401
    assert client.post("/gradio_api/call/whoami", json={"data": []}).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/gradio_api/cancel"),  # Gradio does not ask auth_dependency on these
        ("GET", "/gradio_api/heartbeat/abc"),
        ("GET", "/gradio_api/startup-events"),
        ("POST", "/gradio_api/upload"),
        ("GET", "/theme.css"),
    ],
)
def test_every_gradio_route_is_closed_without_login(client, method, path):
    with client.stream(method, path) as response:  # the heartbeat would stream forever
        assert response.status_code == 401


def test_the_mcp_prefix_is_left_to_its_own_tokens(client):
    assert client.get("/mcp/ping").status_code == 200


def test_right_password_logs_in_and_handlers_see_the_user(client, server):
    response = login(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert client.get("/", headers=HTML).status_code == 200
    assert whoami(client) == "alice"
    assert client.get("/gradio_api/user").json() == "alice"
    assert json.loads(server.audit_lines()[-1])["operation"] == "login"


def test_the_cookie_is_secure_behind_an_https_proxy(client):
    response = login(client, **{"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_proxy_client_address_is_throttled_and_audited(client, server):
    for _ in range(3):
        response = login(client, password="wrong", **{"x-forwarded-for": "203.0.113.77"})
    assert "Too many attempts" in response.text
    last = [json.loads(line) for line in server.audit_lines()][-1]
    assert last["operation"] == "login_locked"
    assert last["target"] == "203.0.113.77"
    # Another user from the same address waits too; the same user from elsewhere too.
    other_user = login(client, "bob", "battery staple", **{"x-forwarded-for": "203.0.113.77"})
    assert other_user.status_code == 429
    assert login(client, **{"x-forwarded-for": "198.51.100.1"}).status_code == 429


def test_wrong_password_then_lock_out_then_the_wait(client, server):
    wrong = login(client, password="wrong horse")
    assert wrong.status_code == 401
    assert "Wrong user or password." in wrong.text
    assert "Too many attempts" not in wrong.text
    assert login(client, "nobody", "x").status_code == 401
    third = login(client, password="wrong again")
    assert "Too many attempts, try again in 1 s." in third.text
    locked = login(client)  # the right password, during the lock-out
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "1"
    assert "Too many attempts, try again in 1 s." in locked.text
    server.clock.advance(1)
    assert login(client).status_code == 303
    assert whoami(client) == "alice"


def test_next_is_followed_only_to_local_paths(client):
    data = {"username": "alice", "password": "correct horse", "next": "//evil.example/x"}
    assert client.post("/login", data=data).headers["location"] == "/"
    data["next"] = "/?tab=files"
    assert client.post("/login", data=data).headers["location"] == "/?tab=files"


def test_a_login_form_from_another_site_is_refused(client):
    response = login(client, origin="https://evil.example")
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_logout_ends_the_session_even_for_a_copied_cookie(client, server):
    login(client)
    copied = dict(client.cookies)
    response = client.get("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert client.get("/", headers=HTML).headers["location"].startswith("/login")
    with httpx.Client(base_url=server.url, cookies=copied) as thief:
        assert thief.get("/config").status_code == 401


def test_idle_sessions_end_and_activity_keeps_them_alive(client, server):
    login(client)
    server.clock.advance(3000)
    refreshed = client.get("/config")
    assert refreshed.status_code == 200
    assert "set-cookie" in refreshed.headers  # the idle clock starts again
    server.clock.advance(3000)  # 6000 s since login, 3000 s since the last request
    assert client.get("/config").status_code == 200
    server.clock.advance(3600)
    expired = client.get("/", headers=HTML)
    assert expired.status_code == 303
    assert expired.headers["location"] == "/login?next=%2F&expired=1"
    assert "session has ended" in client.get(expired.headers["location"]).text
    assert client.get("/config").json()["detail"] == "session ended; log in again"


def test_a_password_change_or_removal_ends_that_users_sessions(client, server):
    login(client, "bob", "battery staple")
    assert whoami(client) == "bob"
    server.store.set_password("bob", "new password!")
    assert client.get("/config").status_code == 401
    login(client, "bob", "new password!")
    assert whoami(client) == "bob"
    server.store.remove("bob")
    assert client.get("/config").status_code == 401
    server.store.add("bob", "battery staple")


def test_sessions_survive_a_restart(client, server, tmp_path_factory):
    login(client)
    again = serve(server.layer.revoked.path.parent, users={}, max_failures=3)
    try:
        again.clock.now = server.clock.now
        with httpx.Client(base_url=again.url, cookies=dict(client.cookies)) as browser:
            assert browser.get("/gradio_api/user").json() == "alice"
    finally:
        again.stop()


def test_without_users_everyone_is_the_local_user(tmp_path):
    open_server = serve(tmp_path, users={})
    try:
        with httpx.Client(base_url=open_server.url) as client:
            assert client.get("/", headers=HTML).status_code == 200
            assert whoami(client) == LOCAL_USER
            assert client.get("/login").headers["location"] == "/"
        assert not (tmp_path / "session-secret").exists()
    finally:
        open_server.stop()


def test_removing_the_last_user_locks_everyone_out_instead_of_opening_the_app(tmp_path):
    server = serve(tmp_path, users={"alice": "correct horse"})
    try:
        server.store.remove("alice")
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/config").status_code == 401
            assert login(client).status_code == 401
    finally:
        server.stop()


def test_a_client_that_is_not_a_trusted_proxy_cannot_pick_its_address_or_scheme(tmp_path):
    server = serve(tmp_path, users={"alice": "correct horse"}, trusted_proxies="192.0.2.1")
    try:
        with httpx.Client(base_url=server.url) as client:
            spoof = {"x-forwarded-for": "203.0.113.5", "x-forwarded-proto": "https"}
            login(client, password="wrong", **spoof)
            response = login(client, **spoof)
        assert "Secure" not in response.headers["set-cookie"]
        assert {json.loads(line)["target"] for line in server.audit_lines()} == {"127.0.0.1"}
    finally:
        server.stop()
