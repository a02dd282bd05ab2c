"""Headless Chromium for tests and benchmarks: Debian's ``chromium`` driven through
``chromium-driver`` by selenium, with a fresh profile — never a downloaded browser."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["BrowserMissing", "chromium"]

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run")


class BrowserMissing(Exception):
    """chromium or chromium-driver is not installed."""


@contextlib.contextmanager
def chromium(*, width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A selenium WebDriver for headless Chromium; quit and profile removed on exit."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        raise BrowserMissing("chromium and chromium-driver are not installed "
                             "(scripts/install-components installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
