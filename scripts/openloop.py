"""An open-loop HTTP load generator that measures latency against offered load.

Why: a closed-loop generator (each connection sends its next request only after
the previous answer, as locust's users and plain wrk do) stops sending while the
server stalls, so only the few requests in flight see the stall and the
percentiles hide it. This is "coordinated omission" (Gil Tene): the generator
coordinates with the server and omits exactly the samples that would show the
queue.

Method: ``python -m scripts.openloop --url http://127.0.0.1:PORT/path --rate R
--duration S --out result.json``. Request ``i`` is due at ``t0 + i/R`` whatever
the server does. A scheduler puts each request in a FIFO queue at its due time;
a pool of ``--connections`` HTTP/1.1 keep-alive connections takes them in order.
Each request's latency is measured from its *due* time to the last byte of its
answer, so time spent waiting for a free connection (because the server has not
answered the earlier ones) counts, exactly as it would for a user who arrived at
that moment. This is the correction wrk2 applies and HdrHistogram's
``recordValueWithExpectedInterval`` approximates. The uncorrected latency, from
the moment a connection took the request (connect, if any, plus send and
answer), is reported beside it: the gap between the two is the queueing a
closed-loop measurement leaves out. ``--closed-loop`` runs the classic closed
loop instead (N connections back to back, no schedule) for comparison.

What to trust and what not:

* The scheduler wakes on a Linux ``timerfd`` set to the next due time
  (``CLOCK_MONOTONIC``, the clock of ``time.monotonic``), which the event loop
  polls beside the sockets: wake-ups are accurate to tens of microseconds
  without spinning, where the loop's own timers round to whole milliseconds.
  It enqueues every request due when it wakes. Its lateness is part of the
  corrected latency, so it is reported: ``scheduler_lag_ms`` and
  ``generator_behind_s`` (the largest lag); a p99 lag over 5 ms sets
  ``generator_kept_up`` false, with a warning. An overloaded event loop
  handles the timer late just as it reads sockets late, so the lag tracks the
  generator's own delay. It is a lower bound, though: a generator that runs
  intermittently (sharing its core) also releases requests in bursts, and the
  queueing for connections that follows looks exactly like server queueing.
  Pin the generator to a core of its own. The lag also misses a generator that
  is out of CPU: the pool caps the work per loop turn at one answer per
  connection, so the loop keeps waking on time while requests pile up in the
  queue. So the run also reports ``queue_wait_ms`` (due time to a connection
  taking the request), ``generator_cpu_util`` (CPU seconds per second of run)
  and ``generator_runqueue_frac`` (share of the run the generator was runnable
  but waiting for its CPU, from ``/proc/self/schedstat``: other processes on
  its core). Requests waiting over 5 ms at p99 while the generator's demand
  (the sum of those two shares) exceeded 80% of a CPU set
  ``generator_kept_up`` false with a warning. High CPU alone is no proof: a
  busy loop handles more events per wake-up and may keep up.
* Percentiles are exact (nearest rank over every latency kept in memory), over
  *completed* requests: connect errors, read errors and timeouts are counted in
  ``errors``, not in the percentiles. A non-2xx answer is completed and counted
  in ``errors["status"]``.
* Every run is bounded: the schedule ends after ``--duration``; what is still
  queued or in flight then gets ``--timeout`` more seconds, and anything left is
  a timeout. A request also times out ``--timeout`` after its connection took it.
* Loopback only: any host but 127.0.0.1, ::1 and localhost is refused (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from time import get_clock_info, monotonic, process_time
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import uvloop

from scripts.loadgen import LoadError
from scripts.procs import log_tail, running

ROOT = Path(__file__).resolve().parent.parent

LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "::1": "::1", "localhost": "127.0.0.1"}
EXIT_REFUSED = 2
DEFAULT_CONNECTIONS = 64
DEFAULT_TIMEOUT_S = 10.0
# run_openloop allows the process this long beyond duration + timeout to start and write its file.
MARGIN_S = 30.0
# A p99 scheduler lag past this means the generator itself delays requests (an unloaded loop on its
# own core wakes within ~0.1 ms), and the warning says so.
BEHIND_WARN_S = 0.005
# Requests waiting for connections while the generator wanted more CPU than this (used, plus waited
# for on the run queue; share of one core) suggest the generator, not the server, held them.
BUSY_CPU = 0.8
ERROR_KINDS = ("connect", "read", "timeout", "status")
PERCENTILES = {"p50": 0.50, "p75": 0.75, "p90": 0.90, "p99": 0.99, "p999": 0.999}


# --- statistics -----------------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest value such that at least ``fraction`` of ``sorted_values`` are <= it."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    # round() first: 0.99 * 800 is 792.0000000000001 in floating point, whose ceil would skip a rank.
    rank = max(1, math.ceil(round(fraction * len(sorted_values), 9)))
    return sorted_values[rank - 1]


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 ... p999, max and mean of latencies given in seconds, in milliseconds; {} for none."""
    if not seconds:
        return {}
    ordered = sorted(seconds)
    out = {key: round(percentile(ordered, fraction) * 1000.0, 3) for key, fraction in PERCENTILES.items()}
    out["max"] = round(ordered[-1] * 1000.0, 3)
    out["mean"] = round(math.fsum(ordered) / len(ordered) * 1000.0, 3)
    return out


def runqueue_wait_s() -> float | None:
    """Seconds this process has spent runnable but waiting for a CPU (Linux schedstat), or None."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


# --- the target -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    url: str
    address: str  # the IP connected to
    port: int
    host_header: str
    path: str  # path and query string


def parse_target(url: str) -> Target:
    """Split ``url``; raises ValueError unless it is http:// on a loopback host."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, not {url!r}")
    host = (parts.hostname or "").lower()
    if host not in LOOPBACK_HOSTS:
        # Checked on the literal name, before any resolution: nothing leaves the machine.
        raise ValueError(f"refusing host {host!r}: the generator only loads loopback "
                         f"({', '.join(LOOPBACK_HOSTS)})")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    bracketed = f"[{host}]" if ":" in host else host
    # localhost is pinned to 127.0.0.1 rather than resolved, so a hosts file cannot send us elsewhere.
    return Target(url=url, address=LOOPBACK_HOSTS[host], port=port, host_header=f"{bracketed}:{port}", path=path)


def build_request(target: Target, method: str, body: bytes, close: bool) -> bytes:
    """The request's bytes, built once: every request of a run is identical."""
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}", "User-Agent: workerbench-openloop",
             "Accept: */*"]
    if close:
        lines.append("Connection: close")
    if body or method not in ("GET", "HEAD"):
        lines += ["Content-Type: application/octet-stream", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


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


class _Scheduler:
    """Puts request ``i`` into ``queue`` at ``t0 + i * period``, then one stop marker per connection."""

    def __init__(self, queue: asyncio.Queue[float | None], t0: float, count: int, period: float, stops: int,
                 lags: list[float]) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue = queue
        self.t0 = t0
        self.count = count
        self.period = period
        self.stops = stops
        self.lags = lags
        self.next = 0
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.timer = TimerFd()
        self.loop.add_reader(self.timer.fd, self._tick)
        self.timer.arm_at(t0)

    def _tick(self) -> None:
        try:
            self._enqueue_due()
        except Exception as exc:  # a failed settime must end the run, not hang it until the deadline
            self.close()
            if not self.done.done():
                self.done.set_exception(exc)

    def _enqueue_due(self) -> None:
        self.timer.clear()
        now = monotonic()
        i, t0, period, queue, lags = self.next, self.t0, self.period, self.queue, self.lags
        # Enqueue everything already due. Due times come from i, never from the previous wake-up,
        # so a late wake-up does not shift the rest of the schedule.
        while i < self.count and (due := t0 + i * period) <= now:
            lags.append(now - due)
            queue.put_nowait(due)
            i += 1
        self.next = i
        if i < self.count:
            self.timer.arm_at(t0 + i * period)
            return
        for _ in range(self.stops):
            queue.put_nowait(None)  # behind the last request: each connection stops once the queue is drained
        self.close()
        self.done.set_result(None)

    def close(self) -> None:
        if self.timer.fd >= 0:
            self.loop.remove_reader(self.timer.fd)
            self.timer.close()
            self.timer.fd = -1


# --- one connection -------------------------------------------------------------------------------------------------


class _Closed(Exception):
    """The connection closed (or answered garbage) before the response was complete."""

    def __init__(self, got_bytes: bool) -> None:
        super().__init__("connection closed before the response was complete")
        self.got_bytes = got_bytes


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 client connection with one request at a time; httptools parses the answers.

    The protocol callbacks stamp completion times themselves, so the latency does not include
    the event loop's hop back to the waiting coroutine.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.is_open = False
        self.keep_alive = True
        self.got_bytes = False
        self.waiter: asyncio.Future[tuple[int, float]] | None = None
        self.timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.is_open = True

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            return  # after connection_lost: nothing to answer
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(_Closed(got_bytes=True))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        # Also how a server's idle keep-alive close is noticed: is_open turns False and the
        # next request on this slot connects anew instead of writing into a dead socket.
        self.is_open = False
        self._fail(_Closed(got_bytes=self.got_bytes))
        # The parser holds this protocol for its callbacks: break the cycle so reference counting
        # frees the connection at once (the collector is off during the run; see generate()).
        self.parser = None
        self.transport = None

    # httptools callbacks
    def on_message_complete(self) -> None:
        done = monotonic()
        parser = self.parser
        assert parser is not None  # called from inside parser.feed_data
        self.keep_alive = parser.should_keep_alive()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self._clear()
            waiter.set_result((parser.get_status_code(), done))

    # used by the generator
    def exchange(self, payload: bytes, timeout: float) -> asyncio.Future[tuple[int, float]]:
        """Send ``payload``; the future gives (status, completion time) or raises _Closed / TimeoutError."""
        assert self.transport is not None
        waiter = self.loop.create_future()
        self.waiter = waiter
        self.got_bytes = False
        self.timer = self.loop.call_later(max(0.0, timeout), self._time_out)
        self.transport.write(payload)
        return waiter

    def close(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.abort()

    def _time_out(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_exception(TimeoutError())
        self.abort()  # a late answer must not be read as the next request's

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self._clear()
            waiter.set_exception(exc)

    def _clear(self) -> None:
        self.waiter = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


# --- the generator --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    target: Target
    rate: float | None  # None: closed loop
    duration: float
    connections: int
    method: str
    body: bytes
    close: bool
    timeout: float


class _Generator:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.payload = build_request(cfg.target, cfg.method, cfg.body, cfg.close)
        self.corrected: list[float] = []
        self.uncorrected: list[float] = []
        self.lags: list[float] = []
        self.taken = 0  # requests a connection took on
        self.sent = 0  # requests whose bytes were written
        self.completed = 0
        self.ok = 0
        self.connects = 0
        self.retries = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.last_done = 0.0

    async def _connect(self, deadline: float) -> _Connection:
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise TimeoutError
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(_Connection, self.cfg.target.address, self.cfg.target.port), remaining)
        self.connects += 1
        return conn

    async def _exchange(self, box: list[_Connection | None], due: float) -> _Connection | None:
        conn = box[0]
        start = monotonic()
        deadline = start + self.cfg.timeout
        written = False
        for attempt in range(2):
            fresh = conn is None or not conn.is_open
            if fresh or conn is None:
                if conn is not None:
                    conn.close()
                try:
                    conn = box[0] = await self._connect(deadline)
                except (OSError, TimeoutError):
                    self.errors["connect"] += 1
                    return None
            if not written:
                self.sent += 1
                written = True
            try:
                status, done = await conn.exchange(self.payload, deadline - monotonic())
            except _Closed as exc:
                conn.abort()
                conn = None
                if attempt == 0 and not fresh and not exc.got_bytes:
                    # A kept-alive connection the server closed just as we wrote: HTTP clients resend
                    # on a new connection in this case (RFC 9112 section 9.3.1), and so do we, once.
                    # The latency keeps counting from the first attempt.
                    self.retries += 1
                    continue
                self.errors["read"] += 1
                return None
            except TimeoutError:
                self.errors["timeout"] += 1
                return None
            self.completed += 1
            if 200 <= status < 300:
                self.ok += 1
            else:
                self.errors["status"] += 1
            self.corrected.append(done - due)
            self.uncorrected.append(done - start)
            self.last_done = done
            if self.cfg.close or not conn.keep_alive:
                conn.close()
                return None
            return conn
        return None

    async def _worker(self, take: Callable[[], Awaitable[float | None]]) -> None:
        conn: _Connection | None = None
        try:
            while (due := await take()) is not None:
                conn = await self._one(conn, due)
        finally:
            if conn is not None:
                conn.close()

    async def _one(self, conn: _Connection | None, due: float) -> _Connection | None:
        """Serve one request on ``conn`` (connecting if it is gone); returns the connection to reuse, if any."""
        self.taken += 1
        box = [conn]
        try:
            return await self._exchange(box, due)
        except asyncio.CancelledError:
            # Cut off at the end of the run: drop whichever connection the request was on.
            if box[0] is not None:
                box[0].abort()
            raise

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        cpu0, runq0, wall0 = process_time(), runqueue_wait_s(), monotonic()
        # Open loop: let every connection task start before the first due time.
        t0 = monotonic() + (0.01 if cfg.rate is not None else 0.0)
        end = t0 + cfg.duration
        scheduler: _Scheduler | None = None
        take: Callable[[], Awaitable[float | None]]
        if cfg.rate is not None:
            # i/R < S for i = 0 .. count-1 (round: 200 * 2.0 must give 400, not 401).
            count = math.ceil(round(cfg.rate * cfg.duration, 9))
            queue: asyncio.Queue[float | None] = asyncio.Queue()
            take = queue.get
            scheduler = _Scheduler(queue, t0, count, 1.0 / cfg.rate, cfg.connections, self.lags)
        else:
            count = 0

            async def closed_take() -> float | None:
                # Closed loop: the next request starts as soon as the previous one is answered.
                now = monotonic()
                return now if now < end else None

            take = closed_take

        workers = [asyncio.create_task(self._worker(take)) for _ in range(cfg.connections)]
        tasks: list[asyncio.Future[None]] = [*workers, *([scheduler.done] if scheduler else [])]
        try:
            # Outstanding requests get `timeout` beyond the end of the schedule, then are cut off.
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, end + cfg.timeout - monotonic()))
        finally:
            if scheduler is not None:
                scheduler.close()
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise cast(BaseException, task.exception())
        wall = max(1e-9, monotonic() - wall0)
        cpu_util = (process_time() - cpu0) / wall
        runq1 = runqueue_wait_s()
        runq_frac = None if runq0 is None or runq1 is None else (runq1 - runq0) / wall
        if cfg.rate is None:
            count = self.taken
        # Whatever was scheduled and neither answered nor failed was still queued or in flight at the cut-off.
        self.errors["timeout"] += count - self.completed - self.errors["connect"] - self.errors["read"] - \
            self.errors["timeout"]
        return self._report(count, t0, cpu_util, runq_frac)

    def _report(self, count: int, t0: float, cpu_util: float, runq_frac: float | None) -> dict[str, Any]:
        cfg = self.cfg
        warnings: list[str] = []
        lag = summarize_ms(self.lags)
        behind = max(self.lags) if self.lags else None
        kept_up: bool | None = None
        # Per request, corrected - uncorrected = taken by a connection - due: the wait in the queue.
        wait = summarize_ms([c - u for c, u in zip(self.corrected, self.uncorrected, strict=True)])
        if cfg.rate is not None:
            on_time = bool(lag) and lag["p99"] / 1000.0 <= BEHIND_WARN_S
            if not on_time:
                warnings.append(
                    f"the generator fell behind its schedule (scheduler lag p99 {lag.get('p99')} ms, "
                    f"max {lag.get('max')} ms): it offered the load late and in bursts, and the corrected "
                    "latency includes that delay")
            demand = cpu_util + (runq_frac or 0.0)
            busy = bool(wait) and wait["p99"] / 1000.0 > BEHIND_WARN_S and demand > BUSY_CPU
            if busy:
                warnings.append(
                    f"requests waited for connections (p99 {wait['p99']} ms) while the generator used "
                    f"{cpu_util:.0%} of a CPU and waited {runq_frac or 0.0:.0%} of the time for one: the "
                    "generator, not only the server, may have held them")
            kept_up = on_time and not busy
        failed = sum(self.errors[k] for k in ("connect", "read", "timeout"))
        if failed:
            warnings.append(f"{failed} of {count} requests failed: percentiles cover completed requests only")
        corrected = summarize_ms(self.corrected)
        uncorrected = summarize_ms(self.uncorrected)
        if cfg.rate is None:
            corrected = uncorrected  # no schedule: latency is from the actual send
        return {
            "mode": "open" if cfg.rate is not None else "closed",
            "url": cfg.target.url,
            "method": cfg.method,
            "connections": cfg.connections,
            "close": cfg.close,
            "offered_rate": cfg.rate,
            "duration_s": cfg.duration,
            "timeout_s": cfg.timeout,
            "scheduled": count,
            "sent": self.sent,
            "completed": self.completed,
            "ok": self.ok,
            "unsent": count - self.taken,
            "retries": self.retries,
            "connects": self.connects,
            "errors": self.errors,
            "achieved_rate": round(self.completed / cfg.duration, 3),
            "elapsed_s": round(max(0.0, self.last_done - t0), 6),
            "generator_behind_s": None if behind is None else round(behind, 6),
            "generator_kept_up": kept_up,
            "generator_cpu_util": round(cpu_util, 3),
            "generator_runqueue_frac": None if runq_frac is None else round(runq_frac, 3),
            "scheduler_lag_ms": lag,
            "queue_wait_ms": wait if cfg.rate is not None else {},
            "latency_ms": corrected,
            "latency_uncorrected_ms": uncorrected,
            "warnings": warnings,
        }


async def generate(cfg: Config) -> dict[str, Any]:
    """Run the load described by ``cfg`` on the running event loop; returns the result document."""
    # No collections while measuring: a pause would show up as server latency. Reference counting
    # frees what the run discards (a closed connection breaks its one cycle, with its parser), and
    # the process exits right after.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return await _Generator(cfg).run()
    finally:
        gc.enable()


# --- command line ---------------------------------------------------------------------------------------------------


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
        return value

    return parse


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.openloop", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/path (loopback only)")
    p.add_argument("--rate", type=_positive(float), help="requests per second on a fixed schedule (open loop)")
    p.add_argument("--duration", type=_positive(float), required=True, help="seconds of schedule")
    p.add_argument("--connections", type=_positive(int), default=DEFAULT_CONNECTIONS,
                   help="connection pool size (default %(default)s)")
    p.add_argument("--method", choices=["GET", "POST"], default="GET")
    p.add_argument("--body-file", type=Path, help="request body, sent as application/octet-stream")
    p.add_argument("--close", action="store_true", help="send Connection: close: a new connection per request")
    p.add_argument("--timeout", type=_positive(float), default=DEFAULT_TIMEOUT_S,
                   help="seconds a request may take, and outstanding requests get after the schedule "
                        "(default %(default)s)")
    p.add_argument("--closed-loop", action="store_true",
                   help="no schedule: each connection sends back to back (for comparison)")
    p.add_argument("--out", type=Path, required=True, help="where to write the result JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = arg_parser()
    args = p.parse_args(argv)
    try:
        target = parse_target(args.url)
    except ValueError as exc:
        print(f"openloop: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.closed_loop == (args.rate is not None):
        p.error("give either --rate (open loop) or --closed-loop")
    body = args.body_file.read_bytes() if args.body_file else b""
    cfg = Config(target=target, rate=args.rate, duration=args.duration, connections=args.connections,
                 method=args.method, body=body, close=args.close, timeout=args.timeout)
    # Last-resort bound: if the loop ever wedges, SIGALRM's default action ends the process.
    signal.alarm(math.ceil(cfg.duration + 2 * cfg.timeout + 10))
    result = uvloop.run(generate(cfg))
    signal.alarm(0)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)  # atomic: a reader never sees half a file
    summary = result["latency_ms"]
    print(f"openloop: {result['mode']} loop, {result['completed']}/{result['scheduled']} completed, "
          f"{result['achieved_rate']} req/s, p50 {summary.get('p50')} ms, p99 {summary.get('p99')} ms, "
          f"errors {result['errors']}")
    for warning in result["warnings"]:
        print(f"openloop: warning: {warning}")
    return 0


# --- harness API ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenLoopResult:
    mode: str  # "open" or "closed"
    url: str
    method: str
    connections: int
    close: bool
    offered_rate: float | None  # None in closed loop
    duration_s: float
    timeout_s: float
    scheduled: int  # requests due in the schedule (closed loop: requests started)
    sent: int
    completed: int  # full answers, any status
    ok: int  # 2xx answers
    unsent: int  # still queued at the cut-off (counted as timeouts too)
    retries: int
    connects: int
    errors: dict[str, int]  # connect, read, timeout, status (non-2xx)
    achieved_rate: float  # completed / duration_s
    elapsed_s: float
    generator_behind_s: float | None  # largest scheduler lag; None in closed loop
    generator_kept_up: bool | None  # no warning about the generator itself; None in closed loop
    generator_cpu_util: float  # CPU seconds the generator used per second of run
    generator_runqueue_frac: float | None  # share of the run spent waiting for a CPU; None off Linux
    scheduler_lag_ms: dict[str, float]
    queue_wait_ms: dict[str, float]  # due time to a connection taking the request; {} in closed loop
    latency_ms: dict[str, float]  # from the due time (closed loop: from the send)
    latency_uncorrected_ms: dict[str, float]  # from when a connection took the request
    warnings: tuple[str, ...]


def parse_result(path: Path) -> OpenLoopResult:
    """Read the JSON that ``python -m scripts.openloop --out`` wrote."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read open-loop result {path}: {exc}") from exc
    names = [f.name for f in fields(OpenLoopResult)]
    if not isinstance(doc, dict) or (missing := [n for n in names if n not in doc]):
        raise LoadError(f"unexpected open-loop result in {path}: missing {missing if isinstance(doc, dict) else names}")
    values = {n: doc[n] for n in names}
    values["warnings"] = tuple(values["warnings"])
    return OpenLoopResult(**values)


def openloop_command(url: str, *, duration: float, out: Path, rate: float | None = None,
                     connections: int = DEFAULT_CONNECTIONS, method: str = "GET", body_file: Path | None = None,
                     close: bool = False, timeout: float = DEFAULT_TIMEOUT_S, closed_loop: bool = False,
                     python: str = sys.executable) -> list[str]:
    if closed_loop == (rate is not None):
        raise ValueError("give either rate (open loop) or closed_loop=True")
    argv = [python, "-m", "scripts.openloop", "--url", url, "--duration", repr(float(duration)),
            "--connections", str(connections), "--method", method, "--timeout", repr(float(timeout)),
            "--out", str(out)]
    argv += ["--closed-loop"] if closed_loop else ["--rate", repr(float(cast(float, rate)))]
    if body_file is not None:
        argv += ["--body-file", str(body_file)]
    if close:
        argv.append("--close")
    return argv


def run_openloop(url: str, *, duration: float, workdir: Path, rate: float | None = None,
                 connections: int = DEFAULT_CONNECTIONS, method: str = "GET", body: bytes = b"",
                 close: bool = False, timeout: float = DEFAULT_TIMEOUT_S, closed_loop: bool = False,
                 cpus: set[int] | None = None) -> OpenLoopResult:
    """Run the generator as a subprocess (own process group, optionally pinned to ``cpus``) and parse its result.

    Files go to ``workdir``: ``openloop.json``, ``openloop.log`` and the body, if any.
    Raises ValueError for a non-loopback URL (before starting anything) and LoadError if the run fails.
    """
    parse_target(url)
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "openloop.json"
    log = workdir / "openloop.log"
    out.unlink(missing_ok=True)  # never parse a previous run's file
    body_file = None
    if body:
        body_file = workdir / "openloop-body.bin"
        body_file.write_bytes(body)
    argv = openloop_command(url, duration=duration, out=out, rate=rate, connections=connections, method=method,
                            body_file=body_file, close=close, timeout=timeout, closed_loop=closed_loop)
    limit = duration + timeout + MARGIN_S
    with running(argv, log_path=log, cwd=ROOT, cpus=cpus) as proc:
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            raise LoadError(f"openloop did not finish within {limit:.0f}s\n{log_tail(log)}") from None
    if code != 0 or not out.exists():
        raise LoadError(f"openloop failed (exit {code})\n{log_tail(log)}")
    return parse_result(out)


if __name__ == "__main__":
    sys.exit(main())
