"""Progress of a long run on stderr: count/total and images/s, redrawn in place on a terminal, one
line a minute in a log (a file or a pipe), and a last line when it ends."""
from __future__ import annotations

import time
from typing import TextIO

_TERMINAL_EVERY_S = 0.2
_LOG_EVERY_S = 60.0


class Progress:
    """Reports `done` of `total` items on `stream` as they are done.

    Args:
        total: how many items the run has.
        stream: where to write (stderr, usually); None reports nothing.
        every: seconds between reports (default: 0.2 on a terminal, 60 otherwise).
    """

    def __init__(self, total: int, stream: TextIO | None, every: float | None = None):
        self.total = total
        self.stream = stream
        self.terminal = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.every = every if every is not None else (_TERMINAL_EVERY_S if self.terminal else _LOG_EVERY_S)
        self.started = time.perf_counter()
        self.reported = self.started
        self.done = 0

    def line(self) -> str:
        """``done/total images, N images/s``."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return f"{self.done:,}/{self.total:,} images, {self.done / elapsed:.1f} images/s"

    def update(self, done: int) -> None:
        """`done` items are finished now; report when the last report is `every` seconds old."""
        self.done = done
        now = time.perf_counter()
        if self.stream is not None and now - self.reported >= self.every:
            self.reported = now
            self._write()

    def close(self) -> None:
        """The last report (and, on a terminal, the end of the line redrawn in place)."""
        if self.stream is not None:
            self._write()
            if self.terminal:
                self.stream.write("\n")
            self.stream.flush()

    def _write(self) -> None:
        self.stream.write(f"\r{self.line()}\x1b[K" if self.terminal else f"{self.line()}\n")
        self.stream.flush()
