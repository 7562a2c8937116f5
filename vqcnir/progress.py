"""One dependency-free progress bar for every loop: images restored or scored, training iterations.

On a terminal the line is redrawn in place (at most ten times a second); otherwise (a log file, a pipe, CI)
one line is printed every ``every`` steps and at the last one. Each line shows the count, the rate, the time
left, and optionally the current item's name and values (losses)::

    restoring [##########..............] 5/12 1.31 s/img eta 0:00:09 photo_05.jpg
    train [####....................] 2500/15000 6.20 it/s eta 0:33:36 total=0.1812 pixel=0.0921
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping
from typing import TextIO

_BAR_WIDTH = 24
_REDRAW_SECONDS = 0.1


def format_values(values: Mapping[str, float]) -> str:
    """``name=value`` pairs with 4 significant digits, space-separated."""
    return " ".join(f"{name}={value:.4g}" for name, value in values.items())


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (e.g. ``0:01:05``); ``?`` for an unknown (infinite or NaN) duration."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(round(max(seconds, 0.0))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress:
    """Progress of ``total`` steps: ``with Progress(n, "restoring") as bar: ... bar.update(name)``.

    Args:
        total: number of steps (>= 0).
        description: first word of each line (``"restoring"``, ``"train"``).
        initial: steps already done before this object (a resumed run); the rate counts only new ones.
        unit: name of one step in the rate (``"img"``, ``"it"``).
        every: without a terminal, print a line every this many steps (and at the last one); >= 1.
        enabled: False prints nothing at all (``--quiet``, training ranks other than 0).
        stream: where lines go (default ``sys.stderr``).
        interactive: redraw one line in place; default: when ``stream`` is a terminal.

    Example:
        >>> with Progress(2, "scoring", interactive=False, stream=sys.stdout) as bar:  # doctest: +ELLIPSIS
        ...     bar.update("a.png")
        ...     bar.update("b.png", {"psnr": 31.5})
        scoring [############............] 1/2 ... a.png
        scoring [########################] 2/2 ... b.png psnr=31.5
    """

    def __init__(
        self,
        total: int,
        description: str = "",
        *,
        initial: int = 0,
        unit: str = "it",
        every: int = 1,
        enabled: bool = True,
        stream: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        if total < 0 or initial < 0 or every < 1:
            raise ValueError(f"Progress needs total >= 0, initial >= 0, every >= 1; got {total}, {initial}, {every}")
        self.total, self.description, self.unit, self.every = total, description, unit, every
        self.done = self._start_done = initial
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        if interactive is None:
            interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interactive = enabled and interactive
        self._start = time.perf_counter()
        self._last_draw = -float("inf")
        self._line = ""  # what is on the terminal's current line (interactive mode)

    @property
    def rate(self) -> float:
        """Steps per second since this object was made (0 before the first step)."""
        elapsed = time.perf_counter() - self._start
        done = self.done - self._start_done
        return done / elapsed if done and elapsed > 0 else 0.0

    def line(self, item: str = "", values: Mapping[str, float] | None = None) -> str:
        """The status line for the current count (what :meth:`update` prints)."""
        filled = _BAR_WIDTH * min(self.done, self.total) // max(self.total, 1)
        rate = self.rate
        if rate >= 1:
            speed = f"{rate:.2f} {self.unit}/s"
        else:
            speed = f"{1 / rate:.2f} s/{self.unit}" if rate > 0 else f"? s/{self.unit}"
        eta = format_duration((self.total - self.done) / rate if rate > 0 else float("inf"))
        parts = [f"{self.description} [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}]", f"{self.done}/{self.total}"]
        parts += [speed, f"eta {eta}", item, format_values(values or {})]
        return " ".join(part for part in parts if part).lstrip()

    def update(self, item: str = "", values: Mapping[str, float] | None = None) -> None:
        """One more step done; ``item`` names it (a file), ``values`` are shown as ``name=value``."""
        self.done += 1
        if not self.enabled:
            return
        last = self.done >= self.total
        if self.interactive:
            now = time.perf_counter()
            if last or now - self._last_draw >= _REDRAW_SECONDS:
                self._last_draw = now
                self._draw(self.line(item, values))
        elif last or self.done % self.every == 0:
            self._print(self.line(item, values))

    def write(self, message: str) -> None:
        """Print ``message`` on its own line (above the bar on a terminal)."""
        if not self.enabled:
            return
        if self.interactive and self._line:
            line = self._line
            self._draw("")
            self._print(message)
            self._draw(line)
        else:
            self._print(message)

    def close(self) -> None:
        """End the bar's line on a terminal. Idempotent."""
        if self.interactive and self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = ""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _draw(self, line: str) -> None:
        width = max(20, shutil.get_terminal_size((120, 24)).columns - 1)
        line = line[:width]
        self.stream.write("\r" + line.ljust(len(self._line)))
        if len(line) < len(self._line):
            self.stream.write("\r" + line)
        self.stream.flush()
        self._line = line

    def _print(self, message: str) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()
