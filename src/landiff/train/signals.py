"""Graceful stop: SIGTERM or SIGINT asks the training loop to finish its step, checkpoint and exit.

Clusters send SIGTERM before they reclaim a node (SLURM, Kubernetes, torchrun's own shutdown),
and Ctrl-C sends SIGINT. The first such signal only sets a flag; the loop checks it after each
optimiser step (all-reduced under DDP, so every rank stops at the same step), saves a checkpoint
and returns. A second signal raises KeyboardInterrupt at once: the user really wants out, and
the atomic writes guarantee that an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Context manager that turns the first SIGTERM/SIGINT into a stop request.

    Outside the main thread (where Python cannot install handlers) it does nothing and
    :attr:`requested` stays False.

    Example::

        with GracefulStop() as stop:
            while training:
                step()
                if stop.requested:
                    save_checkpoint(); break
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a stop signal has arrived."""
        return self.signal_name is not None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            raise KeyboardInterrupt(f"second stop signal ({name}): aborting without a final checkpoint")
        self.signal_name = name

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
