"""The HTTP/1.1 load engine under both generators: one engine, two schedules.

A run is ``connections`` slots. A slot carries one request at a time: it takes the request's
due time from the schedule, sends the prebuilt request bytes on its connection (connecting
first if it has none), and when httptools reports the answer complete it records the latency
and, in the same callback, takes and sends the next request. No coroutine, future or timer is
made per request, which is what lets one Python process on one core keep up with wrk
(~100,000-170,000 requests/s against nginx): the per-request cost is the parser callback, one
clock read, a histogram increment and one ``send``.

Connections are raw non-blocking sockets in an epoll set of the engine's own, which is one
reader of the event loop. Against the loop's ``add_reader`` per socket this saves, per new
connection, four ``epoll_ctl`` calls and an ``ioctl`` (uvloop's poll handles: measured with
strace), closing a socket needs no call at all (the kernel drops it from the set), and one
wake-up hands over a batch of ready connections. The write after a non-blocking connect is
tried at once, because on loopback the handshake is over when connect returns; EAGAIN falls
back to waiting for writability. Against nginx from one core (32 connections), with
``Connection: close``: ~22,300 requests/s this way, ~20,500 with a loop reader per socket,
~16,500 with asyncio transports and a ``create_connection`` task per connection; wrk ~22,000.

The two schedules:

* :class:`ClosedSchedule`: the next request is due as soon as the slot is free, until the end
  (wrk's model, and locust's).
* :class:`OpenSchedule`: request ``i`` is due at ``t0 + i/R`` whatever the server does. A
  Linux ``timerfd`` wakes the loop at each due time; due requests go to idle slots, or to a
  FIFO that slots drain as they free up. See :mod:`scripts.load.engine_process` for why and what to trust.

Timeouts are found by a sweep every few tens of milliseconds instead of a timer per request,
so a timeout fires up to one sweep period late. A request on a kept-alive connection that
the server closed before answering a byte (the keep-alive race) is resent once on a new
connection, as HTTP clients do (RFC 9112 section 9.3.1), and counted in ``retries``.
"""

from __future__ import annotations

import _socket
import asyncio
import ctypes
import errno
import math
import os
import select
from collections import deque
from time import get_clock_info, monotonic
from typing import Any, Protocol

import httptools

from scripts.load.histogram import Histogram

ERROR_KINDS = ("connect", "read", "write", "timeout", "status")
# How a failed request ended, as the outcome timeline splits failures (a fault harness tells a refused
# connection from a cut one, a timeout, the server's own 5xx, or an answer that is neither 2xx nor 5xx
# or cannot be parsed).
FAILURE_KINDS = ("refused", "reset", "timeout", "5xx", "wrong")
# take() returns WAIT when the slot must wait for the schedule to hand it a request, STOP when
# the schedule is over (NaN: a float like the due times, so take() needs no tuple or None).
WAIT = -1.0
STOP = math.nan
# Timeouts are checked this often at most (and at least 10 times per timeout).
SWEEP_S = 0.05
# One recv per readable event, into one buffer all slots share (the parser consumes it before the
# next event); a response bigger than this takes more events. A fresh ``recv(256 KiB)`` per event
# instead cost an allocation glibc serves with mmap/munmap: ~40,000 instead of ~150,000 requests/s.
RECV_BYTES = 64 * 1024
EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
# The outcome timeline's resolution: fine enough to time a recovery to a tenth of a second, coarse
# enough that a minute's timeline is a few hundred numbers.
TIMELINE_STEP_S = 0.1


class Schedule(Protocol):
    def take(self, slot: Slot, now: float) -> float:
        """The due time of the slot's next request, WAIT (the schedule calls ``slot.begin`` later), or NaN: stop."""

    def start(self, engine: Engine) -> None: ...

    def close(self) -> None: ...


# --- the clock ------------------------------------------------------------------------------------------------------

_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """A one-shot Linux timerfd on CLOCK_MONOTONIC: readable once ``time.monotonic()`` reaches the armed time.

    Registered with the event loop (``add_reader``), it wakes the loop's epoll at the due time with the
    kernel's high-resolution timer; uvloop's ``call_at`` rounds delays to whole milliseconds.
    """

    def __init__(self) -> None:
        if get_clock_info("monotonic").implementation != "clock_gettime(CLOCK_MONOTONIC)":
            raise OSError("time.monotonic() is not CLOCK_MONOTONIC: due times and the timerfd would disagree")
        libc = ctypes.CDLL(None, use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        fd = int(libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd = fd
        self._spec = _Itimerspec()  # it_interval stays zero: one shot per arm

    def arm_at(self, when: float) -> None:
        """Fire at monotonic time ``when`` (at once if it has passed)."""
        sec = math.floor(when)
        self._spec.it_value.tv_sec = sec
        # Never all zeros: that would disarm the timer instead of firing it.
        self._spec.it_value.tv_nsec = max(1, min(999_999_999, int((when - sec) * 1e9)))
        if self._settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def clear(self) -> None:
        try:
            os.read(self.fd, 8)  # the expiration count; reading makes the fd quiet until the next arm
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)


# --- schedules ------------------------------------------------------------------------------------------------------


class ClosedSchedule:
    """Each slot sends its next request as soon as the previous one is answered, until ``end``."""

    def __init__(self, end: float) -> None:
        self.end = end

    def start(self, engine: Engine) -> None:
        pass

    def take(self, slot: Slot, now: float) -> float:
        return now if now < self.end else STOP

    def close(self) -> None:
        pass


class OpenSchedule:
    """Request ``i`` is due at ``t0 + i * period`` for ``i < count``; due requests wait in a FIFO for a free slot."""

    def __init__(self, t0: float, count: int, period: float) -> None:
        self.t0 = t0
        self.count = count
        self.period = period
        self.next = 0
        self.queue: deque[float] = deque()
        self.idle: deque[Slot] = deque()
        self.finished = False
        self.lags = Histogram()  # microseconds from due time to the wake-up that released the request
        self.timer: TimerFd | None = None
        self.engine: Engine | None = None

    def start(self, engine: Engine) -> None:
        self.engine = engine
        self.timer = TimerFd()
        engine.loop.add_reader(self.timer.fd, self._tick)
        self.timer.arm_at(self.t0)

    def take(self, slot: Slot, now: float) -> float:
        if self.queue:
            return self.queue.popleft()
        if self.finished:
            return STOP
        self.idle.append(slot)
        return WAIT

    def _tick(self) -> None:
        try:
            self._release_due()
        except Exception as exc:  # a failed settime must end the run, not hang it until the deadline
            self.close()
            assert self.engine is not None
            self.engine.fail(exc)

    def _release_due(self) -> None:
        assert self.timer is not None
        self.timer.clear()
        now = monotonic()
        i, t0, period, queue, idle, lags = self.next, self.t0, self.period, self.queue, self.idle, self.lags
        # Release everything already due. Due times come from i, never from the previous wake-up,
        # so a late wake-up does not shift the rest of the schedule.
        while i < self.count and (due := t0 + i * period) <= now:
            lags.record_seconds(now - due)
            if idle:
                idle.popleft().begin(due, now)
            else:
                queue.append(due)
            i += 1
        self.next = i
        if i < self.count:
            self.timer.arm_at(t0 + i * period)
            return
        self.finished = True
        self.close()
        while idle:
            idle.popleft().stop()  # the rest stop when the queue is drained

    def close(self) -> None:
        if self.timer is not None and self.timer.fd >= 0:
            assert self.engine is not None
            self.engine.loop.remove_reader(self.timer.fd)
            self.timer.close()
            self.timer.fd = -1


# --- connections and slots ------------------------------------------------------------------------------------------


class Slot:
    """One request at a time on one connection at a time, on a raw non-blocking socket; reconnects when needed.

    The slot is the httptools callback object of its connection's parser, so a complete answer
    reaches ``on_message_complete`` here directly. Its socket joins the engine's epoll set once
    per connection, not per request, and leaves it by being closed.
    """

    __slots__ = ("busy", "connected", "deadline", "due", "engine", "fd", "got_bytes", "mask", "parser", "pending",
                 "retried", "served", "sock", "start", "stopped", "written")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sock: _socket.socket | None = None
        self.fd = -1
        self.parser: httptools.HttpResponseParser | None = None
        self.connected = False  # the handshake is known to be complete
        self.mask = 0  # the events the engine's epoll reports for the socket; 0: not registered
        self.served = 0  # answers on this connection: a reused one may meet the keep-alive race
        self.busy = False  # a request is in flight (or waiting for its connection)
        self.stopped = False
        self.retried = False
        self.written = False  # the current request's bytes all went out once
        self.got_bytes = False  # the current request got a byte of answer
        self.pending = b""  # what is left to write of the current request
        self.due = self.start = self.deadline = 0.0

    # -- the request cycle

    def next(self) -> None:
        if not self.stopped:
            self.take_next(monotonic())

    def take_next(self, now: float) -> None:
        due = self.engine.schedule.take(self, now)
        if due >= 0.0:
            self.begin(due, now)
        elif due != due:  # NaN: the schedule is over
            self.stop()

    def begin(self, due: float, now: float) -> None:
        """Start the request due at ``due``; ``now`` is the clock as read by the caller (one read per request)."""
        engine = self.engine
        engine.taken += 1
        self.due = due
        self.start = now
        self.deadline = now + engine.timeout
        self.busy = True
        self.retried = self.written = False
        if self.sock is None:
            self.connect()
        else:
            self.got_bytes = False
            self.pending = engine.payload
            self.flush()

    def on_message_complete(self) -> None:
        """httptools: the answer is complete. Count it, and send the next request from right here."""
        done = monotonic()
        parser = self.parser
        if parser is None or not self.busy:
            return  # an answer nobody asked for: nothing to count
        self.served += 1
        engine = self.engine
        engine.completed += 1
        status = parser.get_status_code()
        if 200 <= status < 300:
            engine.ok += 1
            engine.outcome(done, True)
        else:
            engine.errors["status"] += 1
            engine.outcome(done, False, "5xx" if status >= 500 else "wrong")
        if engine.open_loop:
            engine.corrected.record(int((done - self.due) * 1e6 + 0.5))
            engine.wait.record(int((self.start - self.due) * 1e6 + 0.5))
        engine.uncorrected.record(int((done - self.start) * 1e6 + 0.5))
        engine.last_done = done
        self.busy = False
        if engine.close or not parser.should_keep_alive():
            self.drop()
        # In the closed loop the next request is due now: the clock read above serves as its start.
        self.take_next(done)

    def finish(self) -> None:
        """The current request ended in an error; on to the next."""
        self.busy = False
        self.next()

    # -- the socket

    def connect(self) -> None:
        engine = self.engine
        # SOCK_NONBLOCK at creation: Python then treats the socket as non-blocking without the
        # extra ioctl of setblocking(False), one of a handful of syscalls per request in close mode.
        self.sock = sock = _socket.socket(engine.family, _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK)
        # As wrk does, so both put the same segments on the wire (and a request written in
        # pieces is not held back by Nagle's algorithm).
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self.fd = sock.fileno()
        self.parser = httptools.HttpResponseParser(self)
        self.connected = False
        self.served = 0
        err = sock.connect_ex(engine.sockaddr)
        if err in (0, errno.EINPROGRESS):
            # On loopback the handshake is usually over when connect returns: write at once and
            # only wait for writability when the kernel says so.
            self.got_bytes = False
            self.pending = engine.payload
            self.flush()
        else:
            self.connect_failed()

    def connect_failed(self) -> None:
        self.engine.errors["connect"] += 1
        self.engine.outcome(monotonic(), False, "refused")
        self.drop()
        self.busy = False
        # Not next() from here: a refused connect can fail at once, and a closed loop would recurse.
        self.engine.loop.call_soon(self.next)

    def watch(self, mask: int) -> None:
        """Have the engine's epoll report ``mask`` events on this connection."""
        if mask == self.mask:
            return
        engine = self.engine
        if self.mask:
            engine.epoll.modify(self.fd, mask)
        else:
            engine.epoll.register(self.fd, mask)
            engine.by_fd[self.fd] = self
        self.mask = mask

    def flush(self) -> None:
        pending = self.pending
        sock = self.sock
        assert sock is not None
        try:
            n = sock.send(pending)
        except BlockingIOError:
            n = 0
        except OSError:
            if self.connected:
                self.lost(writing=True)
            else:
                self.connect_failed()
            return
        if n and not self.connected:
            self.connected = True
            self.engine.connects += 1
        if n == len(pending):
            self.pending = b""
            if self.mask != EPOLLIN:
                self.watch(EPOLLIN)
            if not self.written:
                self.written = True
                self.engine.sent += 1
            return
        self.pending = pending[n:]
        # Until the handshake is known to be over, only writability (or an error) is of interest.
        self.watch(EPOLLIN | EPOLLOUT if self.connected else EPOLLOUT)

    def on_events(self, fd: int, mask: int) -> None:
        """Anything but plain readability: a connect finishing or failing, room to write, an error."""
        if mask & EPOLLOUT or not self.connected:
            self.writable()
        if self.sock is not None and self.fd == fd and self.connected and mask & ~EPOLLOUT:
            self.readable()

    def writable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        if not self.connected:
            if sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR):
                self.connect_failed()
                return
            try:
                sock.getpeername()
            except OSError:
                # Still connecting: the event was meant for an earlier socket that had this fd
                # number and was closed in the same batch of events.
                return
            self.connected = True
            self.engine.connects += 1
        self.flush()

    def readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            n = sock.recv_into(self.engine.buffer)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if not n:
            # Also how a server's idle keep-alive close is noticed: the slot forgets the connection
            # and connects anew for its next request instead of writing into a dead socket.
            self.lost()
            return
        self.got_bytes = True
        assert self.parser is not None
        try:
            self.parser.feed_data(self.engine.view[:n])
        except httptools.HttpParserError:
            self.lost(kind="wrong")

    def lost(self, writing: bool = False, kind: str = "reset") -> None:
        """The connection closed, failed, or answered what httptools cannot parse."""
        reused = self.served > 0 and not self.got_bytes
        self.drop()
        if not self.busy:
            return  # idle: the next request connects anew
        engine = self.engine
        if reused and not self.retried:
            # The keep-alive race; the latency keeps counting from the first attempt.
            self.retried = True
            engine.retries += 1
            self.connect()
            return
        engine.errors["write" if writing else "read"] += 1
        engine.outcome(monotonic(), False, kind)
        self.busy = False
        engine.loop.call_soon(self.next)

    def drop(self) -> None:
        sock = self.sock
        if sock is None:
            return
        if self.mask:
            # Closing the socket takes it out of the epoll set; only the map needs updating.
            self.mask = 0
            self.engine.by_fd.pop(self.fd, None)
        self.sock = None
        self.parser = None  # it holds this slot for its callbacks
        self.pending = b""
        sock.close()

    # -- the end

    def time_out(self) -> None:
        self.engine.errors["timeout" if self.connected else "connect"] += 1
        self.engine.outcome(monotonic(), False, "timeout" if self.connected else "refused")
        self.drop()  # a late answer must not be read as the next request's
        self.finish()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.busy = False
        self.drop()
        self.engine.slot_stopped()

    def abort(self) -> None:
        """Cut off at the end of the run: drop whatever is in flight."""
        self.stopped = True
        self.busy = False
        self.drop()



# --- the engine -----------------------------------------------------------------------------------------------------


class Engine:
    """Counters, histograms and the slots of one run; ``await run(cutoff)`` drives it."""

    def __init__(self, *, address: str, port: int, payload: bytes, connections: int, close: bool, timeout: float,
                 schedule: Schedule, open_loop: bool, origin: float | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.family = _socket.AF_INET6 if ":" in address else _socket.AF_INET
        self.sockaddr = (address, port)
        self.payload = payload
        self.buffer = bytearray(RECV_BYTES)
        self.view = memoryview(self.buffer)
        # The connections' own epoll, itself one reader of the event loop: see the module docstring.
        self.epoll = select.epoll()
        self.by_fd: dict[int, Slot] = {}
        self.max_events = min(1024, connections + 1)
        self.close = close
        self.timeout = timeout
        self.schedule = schedule
        self.open_loop = open_loop
        # Microseconds: from the due time, from when a slot took the request, and the difference.
        self.corrected = Histogram()
        self.uncorrected = Histogram()
        self.wait = Histogram()
        self.taken = 0  # requests a slot took on
        self.sent = 0  # requests whose bytes were written (a resend is not counted twice)
        self.completed = 0
        self.ok = 0
        self.connects = 0
        self.retries = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.last_done = 0.0
        # Outcomes per TIMELINE_STEP_S from ``origin`` (monotonic, the clock every process shares):
        # answers with a 2xx status, and everything else (non-2xx, connect/read/write errors,
        # timeouts), each counted when it happened. A fault harness lines this up with the moment
        # it injected a fault.
        self.origin = monotonic() if origin is None else origin
        self.timeline_ok: list[int] = []
        self.timeline_failed: list[int] = []
        self.timeline_kinds: dict[str, list[int]] = {kind: [] for kind in FAILURE_KINDS}
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.active = connections
        self.slots = [Slot(self) for _ in range(connections)]

    async def run(self, cutoff: float) -> None:
        """Until every slot has stopped, or monotonic time ``cutoff``; re-raises what failed the run."""
        period = min(SWEEP_S, self.timeout / 10.0)
        sweep: list[asyncio.TimerHandle] = []

        def check_timeouts() -> None:
            now = monotonic()
            for slot in self.slots:
                if slot.busy and now > slot.deadline:
                    slot.time_out()
            sweep[0] = self.loop.call_later(period, check_timeouts)

        sweep.append(self.loop.call_later(period, check_timeouts))
        self.loop.add_reader(self.epoll.fileno(), self._events)
        try:
            self.schedule.start(self)
            for slot in self.slots:
                slot.next()
            await asyncio.wait([self.finished], timeout=max(0.0, cutoff - monotonic()))
        finally:
            sweep[0].cancel()
            self.schedule.close()
            for slot in self.slots:
                slot.abort()
            self.loop.remove_reader(self.epoll.fileno())
            self.epoll.close()
        if self.finished.done():
            self.finished.result()  # raises the failure, if any

    def _events(self) -> None:
        by_fd = self.by_fd
        for fd, mask in self.epoll.poll(0, self.max_events):
            slot = by_fd.get(fd)
            if slot is None:
                continue  # closed earlier in this batch (a new socket of the batch may have its number)
            if mask == EPOLLIN:
                slot.readable()
            else:
                slot.on_events(fd, mask)

    def outcome(self, when: float, ok: bool, kind: str = "") -> None:
        """Count one request's outcome in the timeline bucket of ``when`` (a failure also under its ``kind``)."""
        i = int((when - self.origin) / TIMELINE_STEP_S)
        if i < 0:
            i = 0
        counts = self.timeline_ok if ok else self.timeline_failed
        if i >= len(counts):
            counts.extend([0] * (i + 1 - len(counts)))
        counts[i] += 1
        if not ok:
            by_kind = self.timeline_kinds[kind]
            if i >= len(by_kind):
                by_kind.extend([0] * (i + 1 - len(by_kind)))
            by_kind[i] += 1

    def timeline(self) -> dict[str, Any]:
        """The outcome timeline as JSON: origin (monotonic s), step, and equal-length ok/failed counts, the failures
        also by kind (``failed_by``: FAILURE_KINDS -> counts; they add up to ``failed``)."""
        n = max(len(self.timeline_ok), len(self.timeline_failed))
        pad = [0] * n
        return {"origin_monotonic": self.origin, "step_s": TIMELINE_STEP_S,
                "ok": (self.timeline_ok + pad)[:n], "failed": (self.timeline_failed + pad)[:n],
                "failed_by": {kind: (counts + pad)[:n] for kind, counts in self.timeline_kinds.items()}}

    def fail(self, exc: BaseException) -> None:
        if not self.finished.done():
            self.finished.set_exception(exc)

    def slot_stopped(self) -> None:
        self.active -= 1
        if self.active == 0 and not self.finished.done():
            self.finished.set_result(None)

    def on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's exception handler during a run: an exception escaping a callback fails the run."""
        exc = context.get("exception")
        self.fail(exc if isinstance(exc, BaseException) else RuntimeError(str(context.get("message"))))
