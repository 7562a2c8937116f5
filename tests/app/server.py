"""Start ``vqcnir-app`` in a subprocess on a free local port, and the headless Chromium that drives it."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

CHROMIUM = os.environ.get("VQCNIR_CHROMIUM", "/usr/bin/chromium")
# Debian's Chromium as root, headless, and nothing that reaches for the network on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = os.environ.get(
    "VQCNIR_TEST_ARTIFACTS", os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts")
)


def browser_unavailable() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    for module, install in (("gradio", "pip install -e '.[app]'"), ("playwright", "pip install playwright")):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed ({install}, or scripts/install.sh test)"
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"headless Chromium not found at {CHROMIUM}: apt-get install chromium (.ci/run does), "
            "or point VQCNIR_CHROMIUM at a Chromium binary"
        )
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(args: Sequence[str], log_path: str, env: dict[str, str], timeout: float = 180.0) -> Iterator[str]:
    """Run ``python -m vqcnir.app ARGS --port <free>`` until the block ends; yields the page's URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "vqcnir.app", *args, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vqcnir-app exited with {process.returncode}:\n{open(log_path).read()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"vqcnir-app did not answer on {url} in {timeout} s:\n{open(log_path).read()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def night_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A real photo (scikit-image's cat, held out of the demo set) made dark, blurred and noisy."""
    from PIL import Image
    from skimage import data

    from vqcnir.data import degrade

    sharp = np.asarray(Image.fromarray(data.chelsea()).resize((width, height), Image.Resampling.LANCZOS))
    return degrade(sharp, np.random.default_rng(seed))
