"""A live progress line on a terminal; plain log lines when output is a file or pipe."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Shows ``desc  step/total  fields  rate  ETA``.

    On a TTY the line is redrawn in place at most ~10 times a second; otherwise a line is printed
    only when :meth:`log` is called (the trainer's log interval), so logs stay readable.
    """

    def __init__(self, total: int, desc: str = "", start: int = 0, stream: TextIO | None = None, unit: str = "it",
                 time_left: float | None = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.time_left = time_left  # a time budget (s) that ends the job before ``total`` when shorter
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start_count = self.count = start
        self.start_time = self.last_draw = time.monotonic()
        self.fields = ""

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start_time
        done = self.count - self.start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        if self.time_left is not None:
            eta = min(eta, self.time_left - elapsed) if eta == eta else self.time_left - elapsed
        eta_text = _duration(eta) if eta == eta else "--:--"
        return f"{self.desc} {self.count}/{self.total} {self.fields} {rate:.2f} {self.unit}/s ETA {eta_text}".strip()

    def update(self, count: int, fields: str | None = None) -> None:
        self.count = count
        if fields is not None:
            self.fields = fields
        now = time.monotonic()
        if self.live and (now - self.last_draw > 0.1 or count >= self.total):
            self.stream.write("\r\033[K" + self._line())
            self.stream.flush()
            self.last_draw = now

    def log(self, fields: str | None = None) -> None:
        """A log interval: on a pipe print a full line; on a TTY just refresh the live line."""
        if fields is not None:
            self.fields = fields
        if self.live:
            self.update(self.count)
        else:
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\r\033[K" + self._line() + "\n")
            self.stream.flush()
