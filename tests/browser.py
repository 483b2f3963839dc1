"""A real browser on the Prefect UI, for end-to-end tests: Debian's Chromium, headless, driven by
Selenium through Debian's chromedriver.

- `ensure_chromium()` installs ``chromium`` and ``chromium-driver`` with apt-get when missing.
- `prefect_ui(api_url, root)` serves the Prefect UI (`prefect server start`) for an API that runs
  elsewhere, such as the test harness's, which serves no UI.
- `chromium(profile)` starts the browser, offline and with a fresh profile.
- `answer_resume_form(driver, ui_url, run_id, fields)` answers the form of a run that waits for
  input (paused or suspended: the UI shows the same form for both).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from deployments.sandbox.aws import LOOPBACK, free_port, wait_for_port

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEBIAN_PACKAGES = ("chromium", "chromium-driver")

# No network here: nothing may phone home, and the profile starts empty.
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
    # No WebGL: the run page's timeline graph, drawn in software, slows every page ~10x here.
    "--disable-3d-apis",
)


class BrowserUnavailable(RuntimeError):
    """Chromium or its driver is missing and cannot be installed here."""


def ensure_chromium(timeout: float = 900.0) -> None:
    """Install Debian's ``chromium`` and ``chromium-driver`` when either is missing (as root,
    with apt-get; the package lists are refreshed only when the first try fails)."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise BrowserUnavailable(
            f"{CHROMIUM} or {CHROMEDRIVER} is missing: install Debian's "
            f"{' and '.join(DEBIAN_PACKAGES)} (apt-get install {' '.join(DEBIAN_PACKAGES)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=300"]
    install = [*apt, "install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES]

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    done = run(install)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        updated = run([*apt, "update"])
        done = run(install) if updated.returncode == 0 else updated
    if done.returncode != 0 or not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise BrowserUnavailable(f"`{' '.join(done.args)}` failed ({done.returncode}):\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


@contextmanager
def prefect_ui(api_url: str, root: Path, timeout: float = 90.0) -> Iterator[str]:
    """Serve the Prefect UI for the API at ``api_url`` with `prefect server start` (webserver
    only, home and log under ``root``); yield the UI's URL. The browser talks to ``api_url``
    itself, so what the UI shows and sends is that server's."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(root / "home"),
        "PREFECT_UI_API_URL": api_url,
        # It serves files only: its own API and database stay unused, so none is set up.
        "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
        "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    with open(root / "prefect-ui.log", "ab") as log:
        proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", LOOPBACK, "--port", str(port),
             "--no-services", "--analytics-off"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=root,
            start_new_session=True)
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_for_port(LOOPBACK, port, timeout, proc)
        httpx.get(f"{url}/ui-settings", timeout=timeout).raise_for_status()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium(profile: Path, *, failure_screenshot: Path | None = None) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile in ``profile`` (chromedriver's log beside it).
    When the block raises, the page is saved first: ``failure_screenshot`` and the same name
    with ``.html``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    ensure_chromium()
    profile.mkdir(parents=True, exist_ok=True)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile / 'profile'}")
    # The driver's path is given: Selenium Manager (which would download one) never runs.
    service = Service(executable_path=str(CHROMEDRIVER),
                      log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    except BaseException as exc:
        if failure_screenshot is not None:
            try:
                driver.save_screenshot(str(failure_screenshot))
                failure_screenshot.with_suffix(".html").write_text(driver.page_source)
                exc.add_note(f"the browser's page when it failed: {failure_screenshot}")
            except Exception as shot:  # the browser itself may be what failed
                exc.add_note(f"no screenshot: {shot!r}")
        raise
    finally:
        driver.quit()


def answer_resume_form(driver: WebDriver, ui_url: str, run_id: object,
                       fields: Mapping[str, bool | str], *, timeout: float = 60.0) -> str:
    """Open the run's page, press "Resume", fill the "Resume Flow Run" dialog and submit it.

    ``fields`` maps a field's label as the form shows it (the input model's field title, such
    as ``"Approver"``) to a value: a bool sets a switch, a str is typed into a text box. Returns
    the text the dialog showed above the form (the run's description, rendered from markdown).
    Raises ``LookupError`` for a label the form does not have, and ``AssertionError`` when the
    dialog does not close after Submit (the form refused the answer; its text says why).
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(f"{ui_url}/runs/flow-run/{run_id}")
    wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//button[normalize-space()='Resume']"))).click()
    dialog = wait.until(ec.visibility_of_element_located(
        (By.XPATH, "//div[@role='dialog'][.//*[normalize-space()='Resume Flow Run']]")))
    # The description comes first; the field labels' own descriptions are markdown too.
    described = wait.until(lambda _: dialog.find_elements(
        By.CSS_SELECTOR, ".p-modal__body > article.markdown-renderer"))
    description = described[0].text

    properties = wait.until(lambda _: dialog.find_elements(
        By.CSS_SELECTOR, ".schema-form-property"))
    by_label = {}
    for prop in properties:
        label = prop.find_element(By.CSS_SELECTOR, ".schema-form-property__label").text
        by_label[label.removesuffix("(Optional)").strip()] = prop
    for label, value in fields.items():
        if label not in by_label:
            raise LookupError(f"the form has no field {label!r}; it has {sorted(by_label)}")
        prop = by_label[label]
        if isinstance(value, bool):
            switch = prop.find_element(By.CSS_SELECTOR, "[role='switch']")
            if (switch.get_attribute("aria-checked") == "true") != value:
                switch.click()
            wait.until(lambda _: (switch.get_attribute("aria-checked") == "true") == value)
        else:
            box = prop.find_element(By.CSS_SELECTOR, "textarea, input")
            box.clear()
            box.send_keys(value)

    dialog.find_element(By.XPATH, ".//button[normalize-space()='Submit']").click()
    try:
        WebDriverWait(driver, timeout).until(ec.invisibility_of_element(dialog))
    except TimeoutException:
        raise AssertionError(
            f"the Resume Flow Run dialog stayed open after Submit:\n{dialog.text}") from None
    return description
