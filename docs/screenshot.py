"""Take the README's screenshot from the real app: the demo walkthrough in a fresh chat.

.venv/bin/python docs/screenshot.py     # needs Docker, the image and /usr/bin/chromium
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, start_app

OUT = Path(__file__).resolve().parent / "demo.png"


def main() -> None:
    expect.set_options(timeout=60_000)
    served = start_app(f"mce-shot-{uuid.uuid4().hex[:6]}", Path(tempfile.mkdtemp()))
    url, service = served.url, served.service
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1050})
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#chatbox textarea").wait_for(timeout=60_000)
            expect(page.locator("#chats")).to_contain_text("New chat")  # the page has loaded
            examples = page.locator("button.gallery-item")
            for index, expected in ((1, "North"), (2, "figure-1.png"), (3, "chart saved")):
                examples.nth(index).click()
                page.locator("#chatbox textarea").press("Enter")
                expect(page.locator("#chatbot")).to_contain_text(expected)
                expect(page.locator("#chatbox textarea")).to_be_editable()
            page.locator("#file-picker input").click()
            page.get_by_role("option", name="sales_chart.png").click()
            expect(page.locator("#preview img")).to_be_visible()
            # The plot inline in the chat (scrolled into view), the skill's chart in the preview.
            page.locator("#chatbot img[src*='figure-1.png']").scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT))
            browser.close()
    finally:
        served.close()
        service.executor.cleanup_all(remove_volumes=True)


if __name__ == "__main__":
    main()
