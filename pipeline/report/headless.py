"""Opens a report in headless Chromium (Debian's `chromium`): the DOM after its scripts
ran, every console message, and a screenshot. Used by the report's tests; `chromium()`
says why a browser is not there (scripts/test.sh installs it where it can)."""
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from typing import List, Optional

_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\] (.*)")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


@dataclasses.dataclass
class Page:
    dom: str
    console: List[str]          # every console message and uncaught error
    screenshot: bytes           # PNG


def chromium() -> Optional[str]:
    """Path of a Chromium binary, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(binary: str, url: str, extra: List[str], size: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--user-data-dir=" + profile, "--hide-scrollbars", "--window-size=" + size,
             "--enable-logging=stderr", "--v=0"] + extra + [url],
            capture_output=True, timeout=120, check=False)


def open_page(path: str, size: str = "1100,2400") -> Page:
    """Loads the file at `path` twice (DOM and console, then a screenshot)."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("no Chromium found (%s)" % ", ".join(CANDIDATES))
    url = "file://" + os.path.abspath(path)
    dumped = _run(binary, url, ["--dump-dom"], size)
    console = [m.group(1) for m in _CONSOLE.finditer(dumped.stderr.decode(errors="replace"))]
    with tempfile.TemporaryDirectory() as folder:
        png = os.path.join(folder, "page.png")
        _run(binary, url, ["--screenshot=" + png], size)
        with open(png, "rb") as f:
            screenshot = f.read()
    return Page(dom=dumped.stdout.decode(errors="replace"), console=console,
                screenshot=screenshot)
