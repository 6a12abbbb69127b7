"""The web console (/console) in headless Chromium, driven by Playwright, against the real
bridge and server: sign in with a virtual key, the caller's jobs listed, an image edit
submitted from the page runs to completion and its thumbnail loads, and a running job's row
and detail follow its Server-Sent Events. Each browser test writes a screenshot to its tmp dir.

The browser is Debian's `chromium` (Playwright's own downloads are not used). Without it the
browser tests are skipped on a developer's machine and fail under CI."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, Request, async_playwright, expect

from grpc_server.config import DispatcherSettings
from tests.conftest import KEY_A, KEY_B, Stack, StackFactory
from tests.images import subject_on_background
from tests.rest import edit_form, submit, wait_terminal
from tests.unavailable import unavailable

JOBS = "/v1/async/jobs"


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable(
            "chromium is not installed (apt-get install chromium): the console is not tested", "Chromium"
        )
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        # Debian's build, not one of Playwright's downloads.
        version = subprocess.run([executable, "--version"], capture_output=True, text=True, check=True)
        assert launched.version in version.stdout, (launched.version, version.stdout)
        yield launched
        await launched.close()


class Requests:
    """Every request the page makes, to check how it authenticates."""

    def __init__(self, page: Page) -> None:
        self.seen: list[Request] = []
        page.on("request", lambda request: self.seen.append(request))

    async def api_headers(self) -> list[tuple[str, dict[str, str]]]:
        return [
            (r.url, await r.all_headers()) for r in self.seen if "/v1/" in r.url and "/files/" not in r.url
        ]


async def signed_in(browser: Browser, stack: Stack, key: str, init_script: str = "") -> tuple[Page, Requests]:
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    if init_script:
        await page.add_init_script(init_script)
    requests = Requests(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{stack.base_url}/console")
    await expect(page.locator("#sign-in-panel")).to_be_visible()
    await page.fill("#key", key)
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("#console")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('asyncgate.virtual-key')") == key
    assert not errors, errors
    return page, requests


def row(page: Page, job_id: str) -> Locator:
    return page.locator(f'#jobs tbody tr[data-id="{job_id}"]')


async def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    print(f"console screenshot: {path}")


async def test_the_console_is_served_with_nothing_from_elsewhere(stack: Stack) -> None:
    async with stack.http.get("/console") as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'self'
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        page = await response.text()
    assert '<script src="/console/console.js"' in page
    for path, content_type in (
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ):
        async with stack.http.get(path) as response:
            assert response.status == 200 and response.content_type == content_type
            page += await response.text()
    # No external script, stylesheet, font or image; no inline script (the CSP forbids it).
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)
    assert not re.search(r"@import|url\(|https?://", page)
    assert not re.search(r"<script>", page)


async def test_sign_in_list_jobs_submit_an_edit_and_see_its_thumbnail(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    vk_a, vk_b = {"x-bf-vk": KEY_A.value}, {"x-bf-vk": KEY_B.value}
    _, earlier = await submit(stack.http, edit_form(), vk_a)
    assert (await wait_terminal(stack.http, earlier["id"], vk_a))["status"] == "completed"
    _, other = await submit(stack.http, edit_form(), vk_b)  # another key's job: never shown

    page, requests = await signed_in(browser, stack, KEY_A.value)
    earlier_row = row(page, earlier["id"])
    await expect(earlier_row).to_contain_text("image_edit")
    await expect(earlier_row.locator(".status")).to_have_text("completed")
    await expect(row(page, other["id"])).to_have_count(0)

    upload = tmp_path / "photo.png"
    upload.write_bytes(subject_on_background())
    await page.set_input_files("#edit-image", str(upload))
    assert await page.input_value("#edit-type") == "background_removal"
    assert await page.input_value("#edit-model") == "local/pillow"
    await page.click("#edit-submit")

    await expect(page.locator("#message")).to_contain_text("Submitted job ")
    submitted_id = (await page.text_content("#message") or "").removeprefix("Submitted job ").rstrip(".")
    await expect(page.locator("#jobs tbody tr").first).to_have_attribute(
        "data-id", submitted_id
    )  # newest first
    await expect(page.locator("#jobs tbody tr")).to_have_count(2)
    detail = page.locator(f'#detail[data-id="{submitted_id}"]')
    await expect(detail).to_have_attribute("data-status", "completed")
    await expect(row(page, submitted_id).locator(".status")).to_have_text("completed")
    await expect(detail.locator("#detail-summary")).to_contain_text("local/pillow")
    thumb = detail.locator("img.thumb")
    await expect(thumb).to_have_count(1)
    await thumb.evaluate("img => img.decode()")
    assert await thumb.evaluate("img => img.naturalWidth") == 64
    link = detail.locator("figcaption a")
    assert (await link.get_attribute("href") or "").startswith(
        f"{stack.base_url}/v1/async/files/{submitted_id}/0?"
    )
    assert await link.get_attribute("download") == f"{submitted_id}-0.png"
    await screenshot(page, tmp_path, "console.png")

    # The key went in x-bf-vk on every API call and never into a URL.
    calls = await requests.api_headers()
    assert calls and all(headers.get("x-bf-vk") == KEY_A.value for _, headers in calls)
    assert not [r.url for r in requests.seen if KEY_A.value in r.url]


WITHOUT_STREAMING = "delete window.TextDecoderStream;"
"""A browser that cannot read a response as a stream of text: the console falls back to polls."""


@pytest.mark.parametrize("follow", ["events", "held polls"])
async def test_a_running_job_is_followed_to_the_end_and_shows_its_error(
    make_stack: StackFactory, browser: Browser, tmp_path: Path, follow: str
) -> None:
    stack = await make_stack(dispatcher=DispatcherSettings(concurrency=0, poll_interval_seconds=0.2))
    script = WITHOUT_STREAMING if follow == "held polls" else ""
    page, requests = await signed_in(browser, stack, KEY_A.value, script)
    await expect(page.locator("#jobs-empty")).to_be_visible()
    upload = tmp_path / "photo.png"
    upload.write_bytes(subject_on_background())
    await page.set_input_files("#edit-image", str(upload))
    await page.fill("#edit-prompt", "")
    await page.click("#edit-submit")
    await expect(page.locator("#message")).to_contain_text("Submitted job ")
    job_id = (await page.text_content("#message") or "").removeprefix("Submitted job ").rstrip(".")
    await expect(row(page, job_id).locator(".status")).to_have_text("pending")
    detail = page.locator(f'#detail[data-id="{job_id}"]')
    await expect(detail).to_have_attribute("data-status", "pending")
    await expect(detail.locator("#detail-summary")).to_contain_text("Queue position")

    # Changed by someone else: only following the job can tell the page.
    vk_a = {"x-bf-vk": KEY_A.value}
    async with stack.http.post(f"{JOBS}/{job_id}/cancel", headers=vk_a) as response:
        assert response.status == 200
    await expect(row(page, job_id).locator(".status")).to_have_text("cancelled")
    await expect(detail).to_have_attribute("data-status", "cancelled")
    await expect(detail.locator("#detail-error pre")).to_contain_text('"code": "cancelled"')
    await expect(detail.locator("#detail-summary")).not_to_contain_text("Queue position")
    await screenshot(page, tmp_path, "console-cancelled.png")

    calls = await requests.api_headers()
    assert all(headers.get("x-bf-vk") == KEY_A.value for _, headers in calls)
    streams = [url for url, _ in calls if url.endswith("/events")]
    held = [url for url, headers in calls if headers.get("prefer") == "wait=20"]
    if follow == "events":
        assert streams and all(url.endswith(f"{JOBS}/{job_id}/events") for url in streams)
        assert not held
    else:
        assert held and all(url.endswith(f"{JOBS}/{job_id}") for url in held)
        assert not streams


async def test_pages_of_jobs_labels_and_an_embeddings_summary(stack: Stack, browser: Browser) -> None:
    vk_a = {"x-bf-vk": KEY_A.value}
    ids = []
    for number in range(21):  # one more than a page
        labels = {"x-asyncgate-labels": "team=search"} if number == 0 else {}
        body = {"model": "local/hashing", "input": ["a cat", f"job {number}"]}
        headers = {**vk_a, **labels, "Prefer": "wait=30"}
        async with stack.http.post("/v1/async/embeddings", json=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            ids.append((await response.json())["id"])

    page, _ = await signed_in(browser, stack, KEY_A.value)
    rows = page.locator("#jobs tbody tr")
    await expect(rows).to_have_count(20)
    assert [await r.get_attribute("data-id") for r in await rows.all()] == ids[:0:-1]  # newest first
    await expect(page.locator("#newer")).to_be_disabled()
    await page.click("#older")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", ids[0])
    await expect(page.locator("#older")).to_be_disabled()
    await expect(page.locator("#page-number")).to_have_text("page 2")

    await rows.first.click()
    detail = page.locator(f'#detail[data-id="{ids[0]}"]')
    await expect(detail.locator("#detail-summary")).to_contain_text("team=search")
    await expect(detail.locator("#detail-summary")).to_contain_text("embedding")
    await expect(detail.locator("#detail-embeddings p")).to_contain_text("2 vector(s), ")
    await expect(detail.locator("#detail-embeddings p")).to_contain_text("model hashing")
    await expect(detail.locator("#detail-images")).to_be_hidden()

    await page.click("#newer")
    await expect(rows).to_have_count(20)
    await expect(page.locator("#page-number")).to_have_text("page 1")


async def test_a_refused_key_is_forgotten(stack: Stack, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(f"{stack.base_url}/console")
    await page.fill("#key", "sk-bf-not-a-key")
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("#message")).to_contain_text("The key was refused")
    await expect(page.locator("#sign-in-panel")).to_be_visible()
    await expect(page.locator("#console")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('asyncgate.virtual-key')") is None
