"""Debian's Chromium (/usr/bin/chromium; never a downloaded browser) and the flags
it runs with here, for the browser tests and the browser benchmarks alike.
Framework-free: importing it needs neither Django nor Playwright."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium floods the closed network with
# refused connections (PITFALLS.md, Browsers).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def launch(playwright):
    """A headless Chromium browser from a started Playwright (sync API)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
