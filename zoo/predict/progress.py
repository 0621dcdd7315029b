"""Progress of a long prediction run on a stream (stderr): count/total and images/s, redrawn in
place on a terminal, one line per interval (a minute) in a log, and a last line when it ends."""
from __future__ import annotations

import time
from typing import Any, TextIO

_TERMINAL_EVERY_S = 0.2
_LOG_EVERY_S = 60.0


class Progress:
    """A `progress` callback for `zoo.predict_files`: ``progress(stage, done, total, info)``.

    Args:
        stream: where to write (stderr, usually).
        every: seconds between two reports (default: 0.2 on a terminal, 60 otherwise).
    """

    def __init__(self, stream: TextIO, every: float | None = None):
        self.stream = stream
        self.terminal = bool(getattr(stream, "isatty", lambda: False)())
        self.every = every if every is not None else (_TERMINAL_EVERY_S if self.terminal else _LOG_EVERY_S)
        self.started = self.reported = time.perf_counter()
        self.done = self.total = self.resumed = 0

    def line(self) -> str:
        """``done/total images, N images/s`` (the rate of this run's images: a resumed run's earlier ones are not)."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return f"{self.done:,}/{self.total:,} images, {(self.done - self.resumed) / elapsed:.1f} images/s"

    def __call__(self, stage: str, done: int, total: int, info: dict[str, Any]) -> None:
        """`done` of `total` items are finished (``info["resumed"]`` of them by an interrupted run);
        report when the last report is `every` seconds old."""
        self.done, self.total, self.resumed = done, total, int(info.get("resumed", 0))
        now = time.perf_counter()
        if now - self.reported >= self.every:
            self.reported = now
            self._write()

    def close(self) -> None:
        """The last report (ending, on a terminal, the line redrawn in place)."""
        self._write()
        if self.terminal:
            self.stream.write("\n")
        self.stream.flush()

    def _write(self) -> None:
        self.stream.write(f"\r{self.line()}\x1b[K" if self.terminal else f"{self.line()}\n")
        self.stream.flush()
