"""Login in Debian's Chromium: login page, wrong password, lock-out, the app as the user, logout,
idle expiry. The app is a tiny Gradio Blocks behind the real login layer (no Docker)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.login_app import serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = serve(
        tmp_path_factory.mktemp("login-browser"),
        users={"alice": "correct horse"},
        max_failures=3,
        idle_timeout_s=3600,
    )
    yield server
    server.stop()


@pytest.fixture
def tab(browser, server):
    server.clock.advance(3 * 86400)  # old lock-outs and sessions are over
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def log_in(page, user: str, password: str) -> None:
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():  # the next fill must not land on the page being left
        page.get_by_role("button", name="Log in").click()


def test_the_app_asks_for_login_first(tab, server):
    tab.goto(server.url + "/")
    expect(tab).to_have_url(re.compile(r"/login\?next=%2F$"))
    expect(tab.get_by_role("heading", name="mcp-code-executor")).to_be_visible()
    expect(tab.get_by_label("Password")).to_have_attribute("type", "password")


def test_wrong_password_shows_a_message(tab, server):
    tab.goto(server.url + "/")
    log_in(tab, "alice", "wrong horse")
    expect(tab.get_by_role("alert")).to_have_text("Wrong user or password.")
    expect(tab.get_by_label("User")).to_have_value("alice")


def test_repeated_failures_lock_out_even_the_right_password(tab, server):
    tab.goto(server.url + "/")
    for attempt in range(3):
        log_in(tab, "alice", f"guess {attempt}")
    expect(tab.get_by_role("alert")).to_contain_text("Too many attempts, try again in 1 s.")
    log_in(tab, "alice", "correct horse")
    expect(tab.get_by_role("alert")).to_have_text("Too many attempts, try again in 1 s.")
    server.clock.advance(1)
    log_in(tab, "alice", "correct horse")
    expect(tab.get_by_label("Logged in as")).to_be_visible()


def test_login_shows_the_app_as_that_user_and_logout_returns_to_login(tab, server):
    tab.goto(server.url + "/")
    log_in(tab, "alice", "correct horse")
    expect(tab).to_have_url(server.url + "/")
    tab.get_by_role("button", name="Who am I?").click()
    expect(tab.get_by_label("Logged in as")).to_have_value("alice")
    tab.get_by_role("link", name="Log out").click()  # gr.Button(link=...) is a link
    expect(tab).to_have_url(re.compile(r"/login$"))
    tab.goto(server.url + "/")
    expect(tab).to_have_url(re.compile(r"/login\?next="))


def test_an_idle_session_is_sent_back_to_login(tab, server):
    tab.goto(server.url + "/")
    log_in(tab, "alice", "correct horse")
    expect(tab.get_by_role("button", name="Who am I?")).to_be_visible()
    server.clock.advance(3601)
    tab.reload()
    expect(tab).to_have_url(re.compile(r"/login\?next=%2F&expired=1$"))
    expect(tab.get_by_role("status")).to_have_text("Your session has ended; please log in again.")
    log_in(tab, "alice", "correct horse")
    tab.get_by_role("button", name="Who am I?").click()
    expect(tab.get_by_label("Logged in as")).to_have_value("alice")
