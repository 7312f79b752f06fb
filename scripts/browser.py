"""ComfyUI's real frontend in headless Chromium (Debian's package, driven by Playwright).

Every request that is not to the local ComfyUI server is blocked, so nothing leaves the machine.
Used by scripts/build_workflows.py (to save workflows exactly as the frontend does) and by the
browser tests.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    path = os.environ.get("RECAPTURE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Debian's chromium is not installed: run `bash scripts/setup.sh` as root, or "
                           "`apt-get install chromium`, or set RECAPTURE_CHROMIUM")
    return path


def skip_first_run_dialogs(server_url: str) -> None:
    """Tell the server's user settings that the tutorial is done: a first run otherwise opens the templates
    browser over the canvas, where it takes the mouse events a test sends to the graph."""
    import urllib.request

    request = urllib.request.Request(server_url + "/settings/Comfy.TutorialCompleted", data=b"true", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30):
        pass


@contextmanager
def frontend(server_url: str, timeout_s: float = 120.0):
    """A page with ComfyUI's frontend loaded from ``server_url`` and ``window.app`` ready."""
    from playwright.sync_api import sync_playwright

    skip_first_run_dialogs(server_url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server_url)
                       else route.abort())
            errors, console = [], []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.goto(server_url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
            # Ready once the frontend has opened its first workflow tab: a graph loaded before that is
            # replaced by the blank "Unsaved Workflow" the frontend sets up a moment after start.
            page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph "
                                   "&& Object.keys(LiteGraph.registered_node_types).length > 100 "
                                   "&& window.app.extensionManager?.workflow?.activeWorkflow",
                                   timeout=timeout_s * 1000)
            page.page_errors = errors
            page.console_messages = console  # from the first page load on (extensions log while they load)
            yield page
        finally:
            browser.close()
