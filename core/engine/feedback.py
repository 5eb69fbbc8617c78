"""Progress, logging and cancellation without QGIS.

Core functions take a ``feedback`` argument: any object with the methods of
:class:`Feedback`. The Processing layer passes a bridge to
``QgsProcessingFeedback``; plain Python callers may pass ``None`` (silent) or
:class:`PrintFeedback`.
"""

import sys

from .errors import Cancelled


class Feedback:
    """Silent feedback: no progress shown, never cancelled."""

    def progress(self, percent):
        """Report overall progress in percent (0-100)."""

    def is_canceled(self):
        return False

    def info(self, message):
        """Log an informational message."""

    def warning(self, message):
        """Log a warning the user should read."""

    def check(self):
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self.is_canceled():
            raise Cancelled()

    def scaled(self, start, end):
        """Feedback whose 0-100 maps onto ``start``-``end`` of this one."""
        return _Scaled(self, start, end)


class PrintFeedback(Feedback):
    """Feedback for scripts: messages to stderr, progress ignored."""

    def info(self, message):
        print(message, file=sys.stderr)

    def warning(self, message):
        print(f"WARNING: {message}", file=sys.stderr)


class _Scaled(Feedback):
    def __init__(self, parent, start, end):
        self._parent, self._start, self._end = parent, float(start), float(end)

    def progress(self, percent):
        self._parent.progress(self._start + (self._end - self._start) * percent / 100.0)

    def is_canceled(self):
        return self._parent.is_canceled()

    def info(self, message):
        self._parent.info(message)

    def warning(self, message):
        self._parent.warning(message)


def ensure(feedback):
    """Return ``feedback`` or a silent :class:`Feedback` when it is ``None``."""
    return feedback if feedback is not None else Feedback()
