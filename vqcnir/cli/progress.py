"""A dependency-free progress bar on stderr: redrawn in place on a terminal, one line per item otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "restoring") as bar: ... bar.update(name)`` prints count, rate and ETA."""

    def __init__(
        self, total: int, description: str, stream: TextIO | None = None, enabled: bool = True, unit: str = "img"
    ) -> None:
        self.total, self.description, self.done, self.unit = total, description, 0, unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interactive = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.start = time.perf_counter()

    def __enter__(self) -> Progress:
        return self

    def update(self, item: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        rate = elapsed / self.done
        eta = rate * (self.total - self.done)
        width = 24
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        line = f"{self.description} [{bar}] {self.done}/{self.total} {rate:.2f} s/{self.unit} eta {eta:.0f} s {item}"
        if self.interactive:
            self.stream.write("\r" + line[:160].ljust(160))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
