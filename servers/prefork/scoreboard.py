"""The scoreboard: per-worker slots in shared memory, written by each worker, read by the master and the others."""

from __future__ import annotations

import math
import mmap

from servers.prefork.options import IDLE_BEAT_S, MAX_SLOTS, STUCK_S

STATE_FREE, STATE_BOOTING, STATE_READY = 0.0, 1.0, 2.0
STATE_NAMES = {STATE_FREE: "free", STATE_BOOTING: "booting", STATE_READY: "ready"}


class Scoreboard:
    """Per-worker slots in memory shared across fork, seven doubles a slot, and one cell for the slots in use.

    Written by one worker each (its own slot) and read by the master and the other
    workers; a torn read of one double cannot happen on the platforms we run on
    (aligned 8-byte stores).
    """

    # state, last beat, current request start (0 when idle), requests served, connections held, slow clients,
    # listener in its epoll set (1.0) or not
    FIELDS = 7
    STATE, BEAT, BUSY, SERVED, HELD, SLOW, LISTENING = range(FIELDS)

    def __init__(self, slots: int = MAX_SLOTS) -> None:
        self._map = mmap.mmap(-1, (slots * self.FIELDS + 1) * 8)
        self.cells = memoryview(self._map).cast("d")
        self.slots = slots
        self._span = slots * self.FIELDS  # the cell holding 1 + the highest slot ever used

    def _base(self, slot: int) -> int:
        return slot * self.FIELDS

    def reset(self, slot: int, now: float) -> None:
        b = self._base(slot)
        for i in range(self.FIELDS):
            self.cells[b + i] = 0.0
        self.cells[b + self.STATE] = STATE_BOOTING
        self.cells[b + self.BEAT] = now  # booting counts as alive until the timeout runs out
        self.cells[self._span] = max(self.cells[self._span], slot + 1)

    def free(self, slot: int) -> None:
        b = self._base(slot)
        self.cells[b + self.STATE] = STATE_FREE
        self.cells[b + self.HELD] = 0.0  # a dead worker's connections are gone with it

    def ready(self, slot: int) -> None:
        self.cells[self._base(slot)] = STATE_READY

    def beat(self, slot: int, now: float) -> None:
        self.cells[self._base(slot) + self.BEAT] = now

    def request_started(self, slot: int, now: float) -> None:
        b = self._base(slot)
        self.cells[b + self.BEAT] = now
        self.cells[b + self.BUSY] = now

    def request_done(self, slot: int, served: int) -> None:
        b = self._base(slot)
        self.cells[b + self.BUSY] = 0.0
        self.cells[b + self.SERVED] = float(served)

    def set_held(self, slot: int, held: int) -> None:
        self.cells[slot * self.FIELDS + self.HELD] = float(held)  # _base() inlined: twice a connection

    def set_listening(self, slot: int, on: bool) -> None:
        self.cells[self._base(slot) + self.LISTENING] = 1.0 if on else 0.0

    def set_slow(self, slot: int, slow: int) -> None:
        self.cells[self._base(slot) + self.SLOW] = float(slow)

    def read(self, slot: int) -> tuple[float, float, float, int]:
        b = self._base(slot)
        return self.cells[b], self.cells[b + 1], self.cells[b + 2], int(self.cells[b + 3])

    def connections(self, slot: int) -> tuple[int, int]:
        """(connections held, slow clients dropped) by the worker in ``slot``."""
        b = self._base(slot)
        return int(self.cells[b + self.HELD]), int(self.cells[b + self.SLOW])

    def load(self, me: int = -1, now: float = 0.0) -> tuple[int, int, float]:
        """(connections held by the ready workers, how many are ready, fewest held by another that takes more now).

        Another worker takes connections now if its listener is in its epoll set and it has
        not been inside one request for STUCK_S (a slow body, a slow app): the pool must
        never steer connections towards a worker that cannot accept them.
        """
        cells, fields = self.cells, self.FIELDS
        total = ready = 0
        fewest = math.inf
        for slot in range(int(cells[self._span])):
            b = slot * fields
            if cells[b] != STATE_READY:
                continue
            held = int(cells[b + self.HELD])
            ready += 1
            total += held
            busy = cells[b + self.BUSY]
            alive = now - cells[b + self.BEAT] < 2 * IDLE_BEAT_S  # not stopped, say
            if slot != me and held < fewest and cells[b + self.LISTENING] and alive and (
                    not busy or now - busy < STUCK_S):
                fewest = held
        return total, ready, fewest

