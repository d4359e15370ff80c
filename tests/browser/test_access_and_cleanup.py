"""Login keeps users apart; a closed tab's sandbox is stopped (not removed) after a grace period."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import start_app
from tests.browser.test_chat_in_browser import open_app, send, wait_idle, wait_ready

pytestmark = [pytest.mark.docker, pytest.mark.browser]


@pytest.fixture(scope="module")
def login_app(docker_client, app_label, tmp_path_factory):
    served = start_app(
        f"{app_label}-login",
        tmp_path_factory.mktemp("login-data"),
        auth="alice:wonderland,bob:builder",
    )
    yield served.url, served.service
    served.close()
    served.service.executor.cleanup_all(remove_volumes=True)


def log_in(browser, url, user, password):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    wait_ready(page)
    return context, page


def test_each_user_sees_only_their_own_chats_and_files(browser, login_app):
    url, _ = login_app
    alice_context, alice = log_in(browser, url, "alice", "wonderland")
    send(alice, "$ echo alice-secret > secret.txt; echo alice-wrote")
    expect(alice.locator("#chatbot")).to_contain_text("alice-wrote")
    wait_idle(alice)
    alice_session = alice.evaluate("() => localStorage.getItem('mce_identity')")
    alice_context.close()

    bob_context, bob = log_in(browser, url, "bob", "builder")
    expect(bob.locator("#chats")).not_to_contain_text("alice-secret")
    # Bob's browser claims Alice's chat id: he gets a fresh chat of his own instead.
    bob.evaluate(f"() => localStorage.setItem('mce_identity', {alice_session!r})")
    bob.reload(wait_until="domcontentloaded")
    wait_ready(bob)
    expect(bob.locator("#chatbot")).not_to_contain_text("alice-wrote")
    expect(bob.locator("#files")).not_to_contain_text("secret.txt")
    bob_context.close()


def test_wrong_password_is_refused(browser, login_app):
    url, _ = login_app
    context = browser.new_context()
    page = context.new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_label("User").fill("alice")
    page.get_by_label("Password").fill("nope")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user or password.")
    context.close()


def test_closed_tab_container_is_stopped_not_removed(browser, app, docker_client):
    url, service = app  # tab_close_grace_s=1 in this app
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    open_app(page, url)
    send(page, "$ echo kept > kept.txt; echo closing")
    expect(page.locator("#chatbot")).to_contain_text("closing")
    wait_idle(page)
    label = f"mcp-code-executor.app={service.executor.settings.app_label}"
    running_before = {c.name for c in docker_client.containers.list(filters={"label": label})}
    page.close()
    context.close()
    deadline = time.monotonic() + 60
    stopped: set[str] = set()
    while time.monotonic() < deadline and not stopped:
        running = {c.name for c in docker_client.containers.list(filters={"label": label})}
        stopped = running_before - running
        time.sleep(1)
    assert stopped, "no container was stopped after its tab closed"
    for name in stopped:
        assert docker_client.containers.get(name).status == "exited"  # stopped, not removed
