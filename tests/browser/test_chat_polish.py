"""Chat polish in Debian's Chromium: chats are renamed, searched and deleted (with their
container and workspace), browsers without login see only their own chats, the examples have
titles, and the file table says when files changed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_in_browser import open_app, send, wait_idle

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def label_filter(app) -> dict:
    _, service = app
    return {"label": f"mcp-code-executor.app={service.executor.settings.app_label}"}


def test_a_chat_is_renamed_then_deleted_with_its_container_and_workspace(page, app, docker_client):
    open_app(page, app[0])
    send(page, "$ echo doomed > doomed.txt; hostname")
    expect(page.locator("#chatbot")).to_contain_text("Ran")
    wait_idle(page)
    hostname = page.locator("#chatbot .step-ok").first  # ran: the container exists
    expect(hostname).to_be_visible()
    page.locator("#chat-admin").get_by_text("Rename or delete this chat").click()
    # The accordion mounts its children lazily: the box shows the first turn's title once
    # mounted, and only then does typing into it stick.
    title_box = page.locator("#chat-title textarea")
    expect(title_box).to_have_value("echo doomed > doomed.txt; hostname")
    title_box.fill("Doomed chat")
    expect(title_box).to_have_value("Doomed chat")
    page.locator("#rename-chat").click()
    expect(page.locator("#chats")).to_contain_text("Doomed chat")
    page.locator("#mcp-panel").get_by_text("Connect an MCP client").click()
    sandbox_box = page.locator("#sandbox-id textarea")
    expect(sandbox_box).to_have_value(re.compile(r"\S"))  # mounted, with the chat's id
    session = sandbox_box.input_value()
    containers = docker_client.containers.list(all=True, filters=label_filter(app))
    mine = [
        c
        for c in containers
        if c.labels.get("mcp-code-executor.user", "").endswith(f'"{session}"]')
    ]
    assert len(mine) == 1
    volume = next(m["Name"] for m in mine[0].attrs["Mounts"] if m["Destination"] == "/workspace")
    page.locator("#delete-chat").click()
    page.locator("#cancel-delete").click()  # changed their mind: nothing happens
    expect(page.locator("#chats")).to_contain_text("Doomed chat")
    page.locator("#delete-chat").click()
    page.locator("#really-delete").click()
    expect(page.locator("#chats")).not_to_contain_text("Doomed chat")
    expect(page.locator("#chatbot")).not_to_contain_text("doomed")
    assert docker_client.containers.list(all=True, filters={"id": mine[0].id}) == []
    assert docker_client.volumes.list(filters={"name": volume}) == []


def test_two_browsers_without_login_each_see_only_their_own_chats(browser, app):
    url, _ = app
    pages = []
    for marker in ("first-browser-secret", "second-browser-secret"):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(30_000)
        open_app(page, url)
        send(page, f"$ echo {marker}")
        expect(page.locator("#chatbot")).to_contain_text(marker)
        wait_idle(page)
        pages.append((context, page))
    (first_context, first), (second_context, second) = pages
    expect(first.locator("#chats")).to_contain_text("first-browser-secret")
    expect(first.locator("#chats")).not_to_contain_text("second-browser-secret")
    second.reload(wait_until="domcontentloaded")
    expect(second.locator("#chats")).to_contain_text("second-browser-secret")
    expect(second.locator("#chats")).not_to_contain_text("first-browser-secret")
    first_context.close()
    second_context.close()


def test_many_chats_get_a_search_box_that_filters_them(page, app):
    open_app(page, app[0])
    send(page, "$ echo needle-chat")
    expect(page.locator("#chatbot")).to_contain_text("needle-chat")
    wait_idle(page)
    expect(page.locator("#chat-search")).to_be_hidden()
    for count in range(2, 13):
        page.locator("#new-chat").click()
        expect(page.locator("#chats label")).to_have_count(count)
    expect(page.locator("#chat-search")).to_be_visible()
    page.locator("#chat-search textarea").fill("needle")
    expect(page.locator("#chats label")).to_have_count(1)
    expect(page.locator("#chats")).to_contain_text("needle-chat")


def test_examples_have_short_titles_and_show_their_code_on_hover(page, app):
    open_app(page, app[0])
    examples = page.locator("button.gallery-item")
    expect(examples).to_have_count(6)  # with the demo MCP servers, a code-mode step
    expect(examples.nth(0)).to_have_text("Run a command")
    expect(examples.nth(2)).to_have_text("Plot it")
    hover = re.compile(r"^```python.*plt\.show\(\).*```$", re.S)
    expect(examples.nth(2)).to_have_attribute("title", hover)  # the code, on hover


def test_the_file_table_says_when_each_file_changed(page, app):
    open_app(page, app[0])
    send(page, "$ echo hi > fresh.txt")
    wait_idle(page)
    row = page.locator("#files tr", has_text="fresh.txt")
    expect(row).to_contain_text("just now")
    expect(row).to_contain_text("3 B")
