"""JavaScript pages rendered by headless Chromium through Selenium 4, with a pool of reused browsers.

Starting Chromium costs about half a second; a pool keeps ``size`` browsers
open and hands them to pages one at a time (a page never shares a browser with
another in flight). Debian's Chromium and chromedriver are used by explicit
path, so Selenium Manager never downloads a driver. A browser whose page failed
(time-out, crash) is quit and replaced, and :meth:`DriverPool.close` quits every
browser and kills any chromedriver still alive, also when rendering raised.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelloop.exceptions import CrawlError

__all__ = ["DriverPool", "RenderResult", "BROWSER_FLAGS"]

# Flags the crawler always passes: headless, no sandbox (containers), no /dev/shm (small in containers),
# and no traffic of the browser's own (updates, safe-browsing pings) to hosts we were not asked to visit.
BROWSER_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--disable-extensions",
    "--no-first-run",
    "--mute-audio",
    "--no-pings",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,AutofillServerCommunication",
)


@dataclass
class RenderResult:
    url: str
    final_url: str
    html: str
    status: int | None
    elapsed: float


class DriverPool:
    """A pool of headless Chromium browsers.

    Parameters
    ----------
    size : int, default=2
        Browsers kept open.
    chromium, chromedriver : path
        Debian's ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` by default.
    user_agent : str or None
        Sent instead of Chromium's own, so sites see the same honest name as for plain requests.
    page_load_timeout, wait_timeout : float
        Seconds for the page load and for the wait selector.
    poll_frequency : float, default=0.02
        How often the wait checks the selector (Selenium's 0.5 s default hides render time).
    extra_args : list of str
        More Chromium flags.
    """

    def __init__(
        self,
        size: int = 2,
        chromium: str | os.PathLike[str] = "/usr/bin/chromium",
        chromedriver: str | os.PathLike[str] = "/usr/bin/chromedriver",
        user_agent: str | None = None,
        page_load_timeout: float = 30.0,
        wait_timeout: float = 10.0,
        poll_frequency: float = 0.02,
        extra_args: list[str] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1 (got {size})")
        self.size = size
        self.chromium = Path(chromium)
        self.chromedriver = Path(chromedriver)
        self.user_agent = user_agent
        self.page_load_timeout = page_load_timeout
        self.wait_timeout = wait_timeout
        self.poll_frequency = poll_frequency
        self.extra_args = list(extra_args or [])
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._created = 0
        self._closed = False
        self.started = 0  # browsers started over the pool's life (restarts included)

    # -- browsers -------------------------------------------------------------------------------
    def _browser_binary(self) -> str:
        # Debian's /usr/bin/chromium is a shell wrapper adding flags from /etc/chromium.d; the real
        # binary sits next to it. Either works; the real one saves a shell per browser.
        real = Path("/usr/lib/chromium/chromium")
        if self.chromium == Path("/usr/bin/chromium") and real.exists():
            return str(real)
        return str(self.chromium)

    def _start(self) -> Any:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        for path, what in ((self.chromium, "Chromium"), (self.chromedriver, "chromedriver")):
            if not path.exists():
                raise CrawlError(
                    f"{path}: {what} not found; install Debian's chromium and chromium-driver (make setup)"
                )
        options = webdriver.ChromeOptions()
        options.binary_location = self._browser_binary()
        for flag in (*BROWSER_FLAGS, *self.extra_args):
            options.add_argument(flag)
        if self.user_agent:
            options.add_argument(f"--user-agent={self.user_agent}")
        options.page_load_strategy = "normal"
        service = Service(executable_path=str(self.chromedriver))
        try:
            driver = webdriver.Chrome(service=service, options=options)
        except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
            try:
                service.stop()
            except Exception:  # noqa: BLE001
                pass
            raise CrawlError(f"{self.chromium}: Chromium did not start ({type(exc).__name__}: {exc})") from None
        driver.set_page_load_timeout(self.page_load_timeout)
        with self._lock:
            self._all.append(driver)
            self.started += 1
        return driver

    def _acquire(self) -> Any:
        while True:
            if self._closed:
                raise CrawlError("driver pool is closed")
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                may_start = self._created < self.size
                if may_start:
                    self._created += 1
            if may_start:
                try:
                    return self._start()
                except BaseException:
                    with self._lock:
                        self._created -= 1
                    raise
            # Wait briefly, then look again: a failed browser frees its place without filling the queue.
            try:
                return self._idle.get(timeout=0.05)
            except queue.Empty:
                continue

    def _release(self, driver: Any, healthy: bool) -> None:
        if healthy and not self._closed:
            self._idle.put(driver)
            return
        self._quit(driver)
        with self._lock:
            self._created -= 1

    def _quit(self, driver: Any) -> None:
        pid = None
        try:
            pid = driver.service.process.pid if driver.service.process else None
        except Exception:  # noqa: BLE001
            pass
        try:
            driver.quit()
        except Exception:  # noqa: BLE001 - a dead browser cannot be quit politely; kill below
            pass
        if pid is not None:
            _kill_if_alive(pid)
        with self._lock:
            if driver in self._all:
                self._all.remove(driver)

    # -- pages ----------------------------------------------------------------------------------
    def render(self, url: str, wait_selector: str | None = None) -> RenderResult:
        """Load ``url``, wait until ``wait_selector`` is present, return the DOM as HTML.

        Raises
        ------
        CrawlError
            The page did not load or the selector did not appear in time (the message names both).
        """
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        driver = self._acquire()
        healthy = False
        started = time.perf_counter()
        try:
            try:
                driver.get(url)
            except TimeoutException:
                raise CrawlError(f"{url}: page did not load within {self.page_load_timeout:g} s") from None
            if wait_selector:
                try:
                    WebDriverWait(driver, self.wait_timeout, poll_frequency=self.poll_frequency).until(
                        ec.presence_of_element_located((By.CSS_SELECTOR, wait_selector))
                    )
                except TimeoutException:
                    healthy = True  # the browser is fine; the page just never showed the selector
                    raise CrawlError(
                        f"{url}: wait selector {wait_selector!r} did not appear within {self.wait_timeout:g} s"
                    ) from None
            html = driver.page_source
            final_url = driver.current_url
            try:
                # Navigation Timing level 2 (Chromium >= 109) knows the document's HTTP status.
                status = driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0]; return n ? n.responseStatus : null;"
                )
            except WebDriverException:
                status = None
            healthy = True
            return RenderResult(url, final_url, html, int(status) if status else None, time.perf_counter() - started)
        except WebDriverException as exc:
            raise CrawlError(f"{url}: browser failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        finally:
            if healthy:
                try:
                    driver.get("about:blank")  # drop the page's timers and sockets before the next one
                except Exception:  # noqa: BLE001
                    healthy = False
            self._release(driver, healthy)

    def pids(self) -> list[int]:
        """chromedriver PIDs of open browsers (tests check they are gone after close)."""
        with self._lock:
            out = []
            for driver in self._all:
                try:
                    out.append(driver.service.process.pid)
                except Exception:  # noqa: BLE001
                    pass
            return out

    def close(self) -> None:
        """Quit every browser, in use or idle."""
        self._closed = True
        with self._lock:
            drivers = list(self._all)
        for driver in drivers:
            self._quit(driver)
        while True:
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break

    def __enter__(self) -> "DriverPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; close() is the contract
        try:
            if not self._closed and self._all:
                self.close()
        except Exception:  # noqa: BLE001
            pass


def _kill_if_alive(pid: int) -> None:
    try:
        os.kill(pid, 0)
    except OSError:
        return
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, os.WNOHANG)
    except (OSError, ChildProcessError):
        pass
