"""The shared model's lock for ``anygpt serve``: first come, first served across the page and the API."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class FairLock:
    """The model's lock, granted in the order it was asked for (page and API requests alike); a waiter gives up its
    place when its ``cancelled()`` turns true."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._held = False

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self, cancelled: Callable[[], bool] = lambda: False, poll: float = 0.05) -> bool:
        me = object()
        with self._cond:
            self._queue.append(me)
            while self._held or self._queue[0] is not me:
                if cancelled():
                    self._queue.remove(me)
                    self._cond.notify_all()
                    return False
                self._cond.wait(poll)
            self._queue.popleft()
            self._held = True
            return True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()
