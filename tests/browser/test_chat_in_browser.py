"""The real app in Debian's Chromium: chat, tool steps, files, reload, sessions, stop, preview."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.browser.conftest import artifact, demo_servers_file, start_app

expect.set_options(timeout=30_000)

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def open_app(page, url):
    page.goto(url, wait_until="domcontentloaded")
    wait_ready(page)


def wait_ready(page):
    try:
        page.locator("#chatbox textarea").wait_for()
    except PlaywrightTimeoutError as timeout:
        raise AssertionError(f"the chat never rendered: {page_report(page)}") from timeout
    expect(page.locator("#chats")).to_contain_text("New chat")  # on_load finished


def page_report(page) -> str:
    """What the page showed instead (URL, title, text, resources that loaded), for a failure
    message CI prints: a screenshot on the CI machine is out of reach."""
    page.screenshot(path=artifact("not-ready.png"), full_page=True)
    text = page.locator("body").inner_text(timeout=5_000)[:1500]
    loaded = page.evaluate(
        "(() => { const all = performance.getEntriesByType('resource');"
        " const slowest = [...all].sort((a, b) => b.duration - a.duration).slice(0, 8)"
        ".map(e => `${Math.round(e.duration)} ms ${e.name}`);"
        " return {count: all.length, slowest}; })()"
    )
    return (
        f"url={page.url!r} title={page.title()!r}\ntext={text!r}\n"
        f"{loaded['count']} resources, the slowest: {loaded['slowest']}"
    )


def send(page, text: str, files: list[str] | None = None):
    if files:
        page.locator("#chatbox input[type=file]").set_input_files(files)
        expect(page.locator("#chatbox").get_by_role("listitem")).to_have_count(len(files))
    box = page.locator("#chatbox textarea")
    box.fill(text)
    box.press("Enter")


def wait_idle(page):
    expect(page.locator("#chatbox textarea")).to_be_editable(timeout=60_000)


def test_bash_block_output_shows_in_a_tool_step(page, app):
    url, _ = app
    open_app(page, url)
    expect(page.locator("#model-banner")).to_contain_text("Offline model")
    send(page, "```bash\necho tool-step-$((6*7))\n```")
    step = page.locator("#chatbot").get_by_text("Ran  echo tool-step-$((6*7))")
    expect(step.first).to_be_visible()
    expect(page.locator("#chatbot .step-ok").first).to_have_text("ok")  # the step's verdict
    wait_idle(page)
    step.first.click()  # expand the collapsed step
    expect(page.locator("#chatbot")).to_contain_text("tool-step-42")


def test_upload_shows_in_panel_and_downloads_byte_exact(page, app, tmp_path):
    url, _ = app
    open_app(page, url)
    original = tmp_path / "data.bin"
    original.write_bytes(bytes(range(256)) * 64)
    send(page, "$ ls -l /workspace", [str(original)])
    expect(page.locator("#chatbot")).to_contain_text("data.bin")
    wait_idle(page)
    expect(page.locator("#files")).to_contain_text("data.bin")
    page.locator("#file-picker input").click()
    page.get_by_role("option", name="data.bin").click()
    link = page.locator("#download a[href$='/data.bin']").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == original.read_bytes()


def test_upload_over_the_limit_is_refused_with_a_clear_message(page, app, tmp_path):
    """APP_UPLOAD_LIMIT_BYTES (100 kB in this app) is Gradio's upload limit: the browser is told
    before anything is sent, and nothing reaches the sandbox."""
    url, _ = app
    open_app(page, url)
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * 150_000)
    page.locator("#chatbox input[type=file]").set_input_files(str(big))
    expect(page.get_by_text("exceed the maximum allowed size").first).to_be_visible()
    expect(page.get_by_text("big.csv").first).to_be_visible()
    expect(page.locator("#chatbox").get_by_role("listitem")).to_have_count(0)
    send(page, "$ ls /workspace; echo listed")
    expect(page.locator("#chatbot")).to_contain_text("listed")
    wait_idle(page)
    expect(page.locator("#chatbot")).not_to_contain_text("big.csv")
    expect(page.locator("#files")).not_to_contain_text("big.csv")


def test_reload_resumes_the_chat_with_its_history_and_files(page, app):
    url, _ = app
    open_app(page, url)
    send(page, "$ echo remember-me > note.txt && echo saved")
    expect(page.locator("#chatbot")).to_contain_text("saved")
    wait_idle(page)
    expect(page.locator("#files")).to_contain_text("note.txt")
    page.reload(wait_until="domcontentloaded")
    expect(page.locator("#chatbot")).to_contain_text("echo remember-me")
    expect(page.locator("#files")).to_contain_text("note.txt")


def test_new_chat_starts_fresh_and_the_old_one_can_be_reopened(page, app):
    url, _ = app
    open_app(page, url)
    send(page, "$ echo first-chat-marker | tee first-chat.txt")
    expect(page.locator("#chatbot")).to_contain_text("first-chat-marker")
    wait_idle(page)
    expect(page.locator("#files")).to_contain_text("first-chat.txt")
    page.locator("#new-chat").click()
    expect(page.locator("#chatbot")).not_to_contain_text("first-chat-marker")
    expect(page.locator("#files")).not_to_contain_text("first-chat.txt")  # its own workspace
    page.locator("#chats").get_by_text("echo first-chat-marker").first.click()
    expect(page.locator("#chatbot")).to_contain_text("first-chat-marker")
    expect(page.locator("#files")).to_contain_text("first-chat.txt")


def test_stop_ends_a_running_turn(page, app):
    url, _ = app
    open_app(page, url)
    send(page, "$ sleep 60")
    expect(page.locator("#chatbot").get_by_text("Ran  sleep 60")).to_be_visible()
    started = time.monotonic()
    page.locator("#stop").click()
    expect(page.locator("#chatbot")).to_contain_text("Stopped.", timeout=15_000)
    expect(page.locator("#chatbot .step-stopped").first).to_have_text("stopped")
    assert time.monotonic() - started < 15
    wait_idle(page)


def test_two_browser_contexts_get_two_containers(browser, app, docker_client):
    url, service = app
    label = f"mcp-code-executor.app={service.executor.settings.app_label}"

    def sessions() -> set[str]:
        found = docker_client.containers.list(all=True, filters={"label": label})
        return {c.labels["mcp-code-executor.session"] for c in found}

    before = sessions()
    for marker in ("ctx-one", "ctx-two"):
        context = browser.new_context()
        page = context.new_page()
        open_app(page, url)
        send(page, f"$ echo {marker} > mine.txt; ls")
        expect(page.locator("#files")).to_contain_text("mine.txt")
        context.close()
    assert len(sessions() - before) == 2


def test_demo_walkthrough_from_the_example_buttons(page, app):
    """The README's walkthrough: run a command, summarise the sample CSV, chart it, reload."""
    url, _ = app
    walk_through(page, url, screenshot=True)


def test_demo_walkthrough_with_the_agent_reaching_its_tools_over_mcp(
    browser, docker_client, app_label, tmp_path_factory
):
    """APP_AGENT_TOOLS=mcp: the same walkthrough, every step through the app's MCP endpoint."""
    data = tmp_path_factory.mktemp("ui-mcp-data")
    served = start_app(
        f"{app_label}-ui-mcp", data, agent_tools="mcp", mcp_servers_file=demo_servers_file(data)
    )
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        walk_through(page, served.url, screenshot=False)
        audit = served.service.settings.executor.audit_log.read_text().splitlines()
        records = [json.loads(line) for line in audit]
        ran = [r for r in records if r["operation"] in ("execute", "python")]
        assert len(ran) >= 4
        assert all(record.get("via") == "mcp" for record in ran)  # every step went through MCP
    finally:
        context.close()
        served.close()
        served.service.executor.cleanup_all(remove_volumes=True)


def run_example(page, index: int, expected: str) -> None:
    """Send the demo example at `index` and wait for `expected` in the chat. The example fills
    the box through a server round trip: Enter before it lands would send nothing."""
    page.locator("button.gallery-item").nth(index).click()
    expect(page.locator("#chatbox textarea")).not_to_be_empty()
    page.locator("#chatbox textarea").press("Enter")
    expect(page.locator("#chatbot")).to_contain_text(expected, timeout=60_000)
    wait_idle(page)


def walk_through(page, url: str, *, screenshot: bool) -> None:
    open_app(page, url)
    expect(page.locator("button.gallery-item")).to_have_count(6)
    run_example(page, 0, "coderunner")  # run a command
    run_example(page, 1, "North")  # upload sales.csv (attached by the example) and summarise it
    expect(page.locator("#files")).to_contain_text("sales.csv")
    run_example(page, 2, "figure saved: /workspace/figures/figure-1.png")  # df kept from before
    expect(page.locator("#chatbot img[src*='figure-1.png']")).to_be_visible()  # inline
    run_example(page, 3, "chart saved to /workspace/sales_chart.png")  # the skill makes a chart
    expect(page.locator("#files")).to_contain_text("sales_chart.png")
    page.locator("#file-picker input").click()
    page.get_by_role("option", name="sales_chart.png").click()
    expect(page.locator("#preview img")).to_be_visible()
    expect(page.locator("#download a[href$='/sales_chart.png']")).to_be_visible()
    run_example(page, 4, "characters into CRM record acme-001")  # code mode: MCP from code
    step = page.locator("#chatbot").get_by_role(
        "button", name=re.compile(r"Python\s+from tools\.mcp import docs, crm")
    )
    step.first.click()  # expand the collapsed step: it lists the calls the code made
    expect(page.locator("#chatbot")).to_contain_text("MCP calls: docs.list_documents")
    expect(page.locator("#chatbot")).to_contain_text("crm.update_record")
    page.locator("#servers-panel").click()
    expect(page.locator("#mcp-servers")).to_contain_text("tools.mcp.crm")
    if screenshot:
        page.screenshot(path=str(artifact("demo.png")), full_page=True)
    page.reload(wait_until="domcontentloaded")  # everything is still there
    expect(page.locator("#chatbot")).to_contain_text("uname -srm")
    expect(page.locator("#files")).to_contain_text("sales_chart.png")
    expect(page.locator("#chatbot img[src*='figure-1.png']")).to_be_visible()  # from history
    expect(page.locator("#chatbot img[src*='sales_chart.png']")).to_be_visible()
