"""The malformed-request corpus against the production servers of the registry, with their differences on record.

The hand-written servers must give the corpus's answer to every case (tests/servers/test_malformed.py). The
production servers are not ours to fix, so this test holds each of them to the corpus except where
:data:`DIFFERENCES` records, case by case, what it answers instead and why. An entry is a finding
(docs/explanation/request-policy.md summarises them), not a tolerance: the test fails when a server's answer
changes either way, so a table that no longer matches the servers is noticed. After every case the server must
still serve a normal request.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest

from scripts.common.procs import free_port, get, running, wait_ready
from scripts.modes import MODES
from scripts.plan import environment
from tests.conftest import HOST, ROOT, Server, server_env
from tests.servers.malformed import CORPUS

THIRD_PARTY = [name for name, mode in MODES.items() if not mode.placement.hand_written]
# What a server did instead of answering: it closed the connection, or kept it open and said nothing.
CLOSED: Final = "closed without an answer"
SILENT: Final = "no answer, connection kept open"
SILENCE_S = 2.0  # how long a server may take to answer one small malformed request on loopback
Outcome = int | str

_GUNICORN = ("gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent")  # one parser, whatever the worker class
_GRANIAN = ("granian-wsgi", "granian-asgi")
_HTTPTOOLS = ("uvicorn", "gunicorn-uvicorn")  # uvicorn's protocol on llhttp, under its own or gunicorn's master
_GASGI = "gunicorn-asgi"  # gunicorn's own asyncio ASGI worker and parser: stricter than its WSGI workers in places
_LAX_REQUEST_LINE = ("request-line-over-8k",)
_LAX_HEADERS = ("101-headers", "header-block-over-16k", "header-name-over-16k", "header-value-over-8190",
                "header-name-over-8190", "field-line-of-8191", "field-line-of-8196")
_HOST = ("no-host-http11", "two-host-headers", "two-identical-hosts")
_BOTH_LENGTHS = ("cl-and-te", "te-and-cl")
_HOST_VALUES = ("host-with-space", "host-with-slash", "host-with-userinfo")
_ASTERISK = ("asterisk-form-on-get", "asterisk-form-on-post")
_TRAILERS = ("trailer-host", "trailer-content-type", "trailer-authorization")
_BROKEN_CHUNKS = ("chunk-size-not-hex", "chunk-size-negative", "chunk-size-overflow", "chunk-longer-than-size",
                  "chunk-bare-lf", "chunk-space-in-size")

# Why, in the words of the summary in docs/explanation/request-policy.md. A 404 is the app's answer to
# "GET /" and a 200 its answer to "POST /upload": the server took the request as valid and passed it on.
WHY_HOST = "Host is not checked: an HTTP/1.1 request without one, or with two, is served (RFC 9112 says 400)"
WHY_LIMITS = ("larger limits than the corpus's 8 KiB request line, 8,190-byte field and 16 KiB / 100 header lines; "
              "served")
WHY_EXPECT = "an Expect other than 100-continue is ignored (RFC 9110 allows 417); served"
WHY_NO_BODY_LIMIT = ("no body-size limit in the server: the app starts reading the 99,999,999,999 bytes announced "
                     "and waits for them (the corpus wants 413 at once)")
WHY_TE_WINS = ("Transfer-Encoding overrides Content-Length and the request is served (RFC 9112 allows it if the "
               "connection is closed afterwards; rejecting is the safer choice the corpus asks for)")
WHY_CODINGS = "a coding list ending in chunked, or chunked twice, is taken as chunked; served without the coding"
WHY_LAZY_CHUNKS = ("a chunked body is parsed only as the app reads wsgi.input; the WSGI app reads no body without "
                   "Content-Length (PEP 3333 has no chunked input), so the broken chunk is never seen")
WHY_TOKEN_METHOD = "any token is a method, lowercase too (methods are case-sensitive tokens in RFC 9110); served"
WHY_BARE_LF = "a bare LF is accepted as a line ending (RFC 9112 lets a recipient do so); served"
WHY_OTHER_VERSIONS = "a request line with another HTTP version (or none: HTTP/0.9) is served"
WHY_HOST_VALUE = "the Host value is not checked: one with a space, a slash or userinfo (not a uri-host) is served"
WHY_ASTERISK = "the asterisk form is passed to the app on any method, not only OPTIONS (RFC 9112 3.2.4); served"
WHY_AUTHORITY = "the authority form is passed to the app on a method other than CONNECT (RFC 9112 3.2.3); served"
WHY_TRAILERS = ("trailer fields are read and dropped without a look: a Host, Content-Type or Authorization the "
                "corpus refuses in a trailer never reaches the app, which is served the body")
WHY_TRAILER_TE = ("a Transfer-Encoding trailer is dropped like any other trailer; served (httptools' uvicorn "
                  "refuses it)")
WHY_UPGRADE_BODY = ("an Upgrade with a body is served as a plain request and the Upgrade ignored (the corpus "
                    "refuses: it cannot tell which bytes belong to the new protocol)")
WHY_CONNECT = "CONNECT is passed to the app like any method (the corpus answers 501: no tunnels here)"
WHY_CONNECT_LLHTTP = ("llhttp reads CONNECT as an upgrade and uvicorn refuses what follows with 400, not the "
                      "corpus's 501")
WHY_TE_IDENTITY = "Transfer-Encoding: identity is refused with 400 instead of the corpus's 501 (not implemented)"
WHY_REPEATED_FIELD = "a repeated singleton field (two Content-Types) is passed to the app; served"
WHY_EMPTY_LINES = "any number of empty lines before the request line is skipped (the corpus allows 4); served"
WHY_CHUNK_EXT = ("a chunk-size line's extensions are read without a cap of their own (the corpus refuses one over "
                 "4 KiB); served")
WHY_SAME_CL = ("Content-Length repeated with the same value is taken as that value (RFC 9112 6.3 lets a recipient "
               "do so); served")

# uWSGI: its HTTP router (--http) parses the request and passes it to a worker as uwsgi packets. It splits the
# request line at its first two spaces and the head into "name: value" lines and checks neither, reads a body by
# Content-Length alone, and never looks at Transfer-Encoding.
WHY_UWSGI_ECHO = ("the request line is split at its first two spaces and nothing is checked: the third part, whatever "
                  "it is, comes back as the protocol of the status line ('FOO/1.1 404 Not Found'), which is no HTTP "
                  "answer")
WHY_UWSGI_WAITS = "a head not ended by CRLF CRLF does not end: it waits for more until --http-timeout"
WHY_UWSGI_CLOSES = ("a line it cannot split into a request line of three parts, or into 'name: value', closes the "
                    "connection without an answer (the corpus answers 400)")
WHY_UWSGI_UNCHECKED = ("the method, target, version, field names and values are not checked: whatever splits is "
                       "passed to the app; served")
WHY_UWSGI_BUFFER = ("the whole request head must fit the router's 4 KiB buffer (--buffer-size): a larger one is "
                    "closed without an answer (the corpus answers 414 or 431)")
WHY_UWSGI_EMPTY_LINE = "an empty line (or one of spaces) before the request line ends the connection without an answer"
WHY_UWSGI_LENGTH = ("Content-Length is read as a number without validation (a list, a sign, hex, a negative or a "
                    "second, different value) and Transfer-Encoding beside it is ignored; served")
WHY_UWSGI_NO_TE = ("Transfer-Encoding is never looked at: the body is read by Content-Length alone (none here, so an "
                   "empty body), whatever coding is named; a chunked body's bytes are left as the next request")
_UWSGI_ECHOES: dict[str, str] = {
    "extra-token": "not HTTP: b'HTTP/1.1 extra 404 Not Found\\r\\nContent-Ty'",
    "double-space": "not HTTP: b'/ HTTP/1.1 404 Not Found\\r\\nContent-Type: '",
    "http-2.0": "not HTTP: b'HTTP/2.0 404 Not Found\\r\\nContent-Type: te'",
    "http-9.9": "not HTTP: b'HTTP/9.9 404 Not Found\\r\\nContent-Type: te'",
    "bad-protocol-name": "not HTTP: b'FOO/1.1 404 Not Found\\r\\nContent-Type: tex'",
    "lowercase-protocol": "not HTTP: b'http/1.1 404 Not Found\\r\\nContent-Type: te'",
    "space-in-target": "not HTTP: b'b HTTP/1.1 404 Not Found\\r\\nContent-Type: '",
    "tab-after-method": "not HTTP: b'x 404 Not Found\\r\\nContent-Type: text/plai'",
    "space-after-version": "not HTTP: b'HTTP/1.1  404 Not Found\\r\\nContent-Type: t'",
    "leading-space": "not HTTP: b'/ HTTP/1.1 404 Not Found\\r\\nContent-Type: '",
    "http-0.9-versioned": "not HTTP: b'HTTP/0.9 404 Not Found\\r\\nContent-Type: te'",
}
_UWSGI_WAITS = ("bare-lf-everywhere", "bare-lf-after-header")
_UWSGI_CLOSES = ("not-http", "method-only", "http-0.9", "bare-cr", "empty-header-name", "header-without-colon")
_UWSGI_UNCHECKED = ("lowercase-method", "mixed-case-method", "bad-char-in-method", "bad-version-digit",
                    "http-1.2", "nul-before-method", "control-char-in-target", "del-in-target", "raw-utf8-in-target",
                    "raw-8bit-in-target", "authority-form-on-get", "obs-fold", "whitespace-only-line-in-headers",
                    "space-before-colon", "bad-char-in-header-name", "nul-in-header-value", "del-in-header-value")
_UWSGI_LENGTHS = ("cl-and-te", "te-and-cl", "two-different-cl", "cl-list", "cl-not-a-number", "cl-negative",
                  "cl-plus-sign", "cl-inner-space", "cl-hex", "cl-repeated-same-value")
_UWSGI_CODINGS = ("te-gzip", "te-gzip-chunked", "te-chunked-gzip", "te-xchunked", "te-chunked-twice", "te-http10",
                  "te-trailing-comma", "te-identity")
# daphne (Twisted's HTTPChannel): lenient where RFC 9112 permits, a 16 KiB line limit, waits on broken chunk lines.
WHY_TWISTED_LINE = ("Twisted reads the head line by line, each up to 16 KiB (LineReceiver.MAX_LENGTH): a longer "
                    "line closes the connection without an answer, anything shorter is served")

DIFFERENCES: dict[tuple[str, str], tuple[Outcome, str]] = {
    **{(m, "no-host-http11"): (404, WHY_HOST) for m in _GUNICORN},
    **{(m, "cl-over-limit"): (SILENT, WHY_NO_BODY_LIMIT) for m in _GUNICORN + _GRANIAN + _HTTPTOOLS},
    **{(m, "te-gzip-chunked"): (200, WHY_CODINGS) for m in _GUNICORN + _GRANIAN + _HTTPTOOLS},
    **{(m, case): (200, WHY_LAZY_CHUNKS) for m in (*_GUNICORN, "granian-wsgi") for case in _BROKEN_CHUNKS},
    # every production server: trailers, Host values, Upgrade with a body.
    **{(m, c): (200, WHY_TRAILERS) for m in THIRD_PARTY if m != _GASGI for c in _TRAILERS},
    **{(m, "trailer-transfer-encoding"): (200, WHY_TRAILER_TE) for m in THIRD_PARTY
       if m not in (*_HTTPTOOLS, _GASGI)},
    **{(m, c): (404, WHY_HOST_VALUE) for m in THIRD_PARTY for c in _HOST_VALUES},
    **{(m, "upgrade-with-body"): (200, WHY_UPGRADE_BODY) for m in THIRD_PARTY},
    **{(m, "connect"): (404, WHY_CONNECT) for m in THIRD_PARTY if m not in _HTTPTOOLS},
    **{(m, "connect"): (400, WHY_CONNECT_LLHTTP) for m in _HTTPTOOLS},
    **{(m, "te-identity"): (400, WHY_TE_IDENTITY) for m in _GUNICORN + _GRANIAN + _HTTPTOOLS},
    **{(m, c): (404, WHY_ASTERISK) for m in THIRD_PARTY if m not in (*_GUNICORN, _GASGI) for c in _ASTERISK},
    **{(m, "two-content-types"): (404, WHY_REPEATED_FIELD) for m in THIRD_PARTY if m not in (*_GUNICORN, _GASGI)},
    **{(m, "authority-form-on-get"): (404, WHY_AUTHORITY) for m in (*_GRANIAN, "waitress", "hypercorn")},
    **{(m, "five-empty-lines-first"): (404, WHY_EMPTY_LINES) for m in (*_GRANIAN, *_HTTPTOOLS, "waitress")},
    **{(m, "cl-repeated-same-value"): (200, WHY_SAME_CL) for m in (*_GRANIAN, "hypercorn")},
    **{(m, "chunk-extension-over-4k"): (200, WHY_LAZY_CHUNKS) for m in (*_GUNICORN, "granian-wsgi")},
    **{(m, "chunk-extension-over-4k"): (200, WHY_CHUNK_EXT)
       for m in ("waitress", "granian-asgi", "hypercorn", _GASGI, *_HTTPTOOLS)},
    **{(m, "http-1.2"): (404, WHY_OTHER_VERSIONS) for m in _GUNICORN},
    # waitress: a lenient parser that serves what it can read and waits for what it cannot.
    **{("waitress", c): (404, WHY_OTHER_VERSIONS + " (waitress answers as HTTP/1.0)")
       for c in ("http-0.9", "http-2.0", "http-9.9", "http-1.2", "http-0.9-versioned")},
    **{("waitress", c): (SILENT, "a header block must end in CRLF CRLF: one ended by bare LFs never ends, and "
                         "waitress waits for more") for c in ("bare-lf-everywhere", "bare-lf-after-header")},
    **{("waitress", c): (404, "control characters (DEL too) in the target are passed to the app")
       for c in ("control-char-in-target", "del-in-target")},
    **{("waitress", c): (404, "the request line is split on runs of whitespace: a leading space, or one after the "
                         "version, is dropped; served") for c in ("leading-space", "space-after-version")},
    ("waitress", "whitespace-only-line-in-headers"): (404, "a whitespace-only line is taken as a folded "
                                                      "continuation of the field before it and unfolded; served"),
    ("waitress", "obs-fold"): (404, "a folded header line is unfolded (RFC 9112 lets a recipient do so); served"),
    **{("waitress", c): (404, WHY_LIMITS + " (waitress allows 256 KiB of headers)")
       for c in (*_LAX_REQUEST_LINE, *_LAX_HEADERS)},
    **{("waitress", c): (404, WHY_HOST) for c in _HOST},
    ("waitress", "unsupported-expect"): (404, WHY_EXPECT),
    **{("waitress", c): (200, WHY_TE_WINS) for c in _BOTH_LENGTHS},
    ("waitress", "te-chunked-twice"): (200, WHY_CODINGS),
    ("waitress", "te-trailing-comma"): (200, "'chunked,' is taken as chunked: the empty list element is dropped "
                                        "(RFC 9110 5.6.1 lets a recipient ignore it); served"),
    ("waitress", "te-http10"): (200, "chunked is accepted in an HTTP/1.0 request, which has no chunked coding"),
    **{("waitress", c): (SILENT, "its chunk parser waits for a line end it never gets")
       for c in ("chunk-size-overflow", "chunk-bare-lf")},
    # granian: hyper's parser (httparse), lenient where RFC 9112 permits and with larger limits.
    **{(m, c): (404, WHY_TOKEN_METHOD) for m in _GRANIAN for c in ("lowercase-method", "mixed-case-method")},
    **{(m, "raw-utf8-in-target"): (404, "raw UTF-8 in the target is passed to the app (a lone \\xff is refused)")
       for m in _GRANIAN},
    **{(m, c): (404, WHY_BARE_LF) for m in _GRANIAN for c in ("bare-lf-everywhere", "bare-lf-after-header")},
    **{(m, c): (404, WHY_LIMITS + " (hyper reads up to about 400 KiB of head)")
       for m in _GRANIAN for c in ("request-line-over-8k", *_LAX_HEADERS[1:])},
    **{(m, c): (404, WHY_HOST) for m in _GRANIAN for c in _HOST},
    **{(m, "unsupported-expect"): (404, WHY_EXPECT) for m in _GRANIAN},
    **{(m, c): (200, WHY_TE_WINS) for m in _GRANIAN for c in _BOTH_LENGTHS},
    **{(m, "te-chunked-twice"): (200, WHY_CODINGS) for m in _GRANIAN},
    **{("granian-asgi", c): (500, "the broken chunk reaches the app as an error from receive(): a 500 from the "
                             "app instead of a 400 from the server") for c in _BROKEN_CHUNKS},
    # uvicorn (httptools, llhttp): no limits on the head, and llhttp's lenient request line.
    **{(m, c): (404, WHY_OTHER_VERSIONS) for m in _HTTPTOOLS for c in ("http-0.9", "http-2.0", "http-0.9-versioned")},
    **{(m, c): (404, "llhttp accepts a run of spaces between method and target; served")
       for m in _HTTPTOOLS for c in ("double-space", "spaces-then-split-line")},
    **{(m, c): (404, WHY_LIMITS + " (uvicorn sets no limit on the head with httptools)")
       for m in _HTTPTOOLS for c in (*_LAX_REQUEST_LINE, *_LAX_HEADERS)},
    **{(m, c): (404, WHY_HOST) for m in _HTTPTOOLS for c in _HOST},
    **{(m, "unsupported-expect"): (404, WHY_EXPECT) for m in _HTTPTOOLS},
    **{(m, "te-http10"): (200, "chunked is accepted in an HTTP/1.0 request, which has no chunked coding")
       for m in _HTTPTOOLS},
    # hypercorn (h11): lenient where RFC 9112 permits, larger limits, and waits on broken chunk lines.
    **{("hypercorn", c): (404, WHY_TOKEN_METHOD) for c in ("lowercase-method", "mixed-case-method")},
    **{("hypercorn", c): (404, WHY_OTHER_VERSIONS) for c in ("http-2.0", "http-9.9", "http-1.2", "http-0.9-versioned")},
    **{("hypercorn", c): (404, WHY_BARE_LF) for c in ("bare-lf-everywhere", "bare-lf-after-header")},
    **{("hypercorn", c): (404, WHY_LIMITS + " (h11's limit is 64 KiB of head)")
       for c in (*_LAX_REQUEST_LINE, *_LAX_HEADERS)},
    ("hypercorn", "obs-fold"): (404, "a folded header line is unfolded (RFC 9112 lets a recipient do so); served"),
    ("hypercorn", "whitespace-only-line-in-headers"): (404, "a whitespace-only line is taken as a folded "
                                                       "continuation of the field before it and unfolded; served"),
    ("hypercorn", "del-in-header-value"): (404, "h11 accepts DEL in a field value; served"),
    ("hypercorn", "unsupported-expect"): (404, WHY_EXPECT),
    **{("hypercorn", c): (200, WHY_TE_WINS) for c in _BOTH_LENGTHS},
    ("hypercorn", "cl-over-limit"): (SILENT, WHY_NO_BODY_LIMIT),
    ("hypercorn", "te-http10"): (200, "chunked is accepted in an HTTP/1.0 request, which has no chunked coding"),
    **{("hypercorn", c): (SILENT, "its chunk parser waits for a line end it never gets")
       for c in ("chunk-size-overflow", "chunk-bare-lf")},
    # uWSGI.
    **{("uwsgi", c): (a, WHY_UWSGI_ECHO) for c, a in _UWSGI_ECHOES.items()},
    **{("uwsgi", c): (SILENT, WHY_UWSGI_WAITS) for c in _UWSGI_WAITS},
    **{("uwsgi", c): (CLOSED, WHY_UWSGI_CLOSES) for c in _UWSGI_CLOSES},
    **{("uwsgi", c): (404, WHY_UWSGI_UNCHECKED) for c in _UWSGI_UNCHECKED},
    **{("uwsgi", c): (CLOSED, WHY_UWSGI_BUFFER) for c in (*_LAX_REQUEST_LINE, *_LAX_HEADERS[1:])},
    ("uwsgi", "101-headers"): (404, "no limit on the number of header lines (only on the head's bytes); served"),
    **{("uwsgi", c): (CLOSED, WHY_UWSGI_EMPTY_LINE) for c in ("five-empty-lines-first", "spaces-then-split-line")},
    **{("uwsgi", c): (404, WHY_HOST) for c in _HOST},
    ("uwsgi", "unsupported-expect"): (404, WHY_EXPECT),
    **{("uwsgi", c): (200, WHY_UWSGI_LENGTH) for c in _UWSGI_LENGTHS},
    ("uwsgi", "cl-over-limit"): (SILENT, WHY_NO_BODY_LIMIT),
    **{("uwsgi", c): (200, WHY_UWSGI_NO_TE) for c in (*_UWSGI_CODINGS, *_BROKEN_CHUNKS, "chunk-extension-over-4k")},
    # daphne (Twisted).
    **{("daphne", c): (404, WHY_TOKEN_METHOD) for c in ("lowercase-method", "mixed-case-method")},
    **{("daphne", c): (SILENT, "a head must end in CRLF CRLF: one ended by bare LFs never ends, and Twisted waits "
                       "for more") for c in ("bare-lf-everywhere", "bare-lf-after-header")},
    **{("daphne", c): (404, WHY_TWISTED_LINE) for c in ("request-line-over-8k", "header-value-over-8190",
                                                        "header-name-over-8190", "field-line-of-8191",
                                                        "field-line-of-8196")},
    **{("daphne", c): (CLOSED, WHY_TWISTED_LINE) for c in ("header-block-over-16k", "header-name-over-16k")},
    ("daphne", "101-headers"): (404, WHY_LIMITS + " (Twisted allows 500 header lines)"),
    ("daphne", "obs-fold"): (404, "a folded header line is unfolded (RFC 9112 lets a recipient do so); served"),
    ("daphne", "whitespace-only-line-in-headers"): (404, "a whitespace-only line is taken as a folded continuation "
                                                    "of the field before it and unfolded; served"),
    **{("daphne", c): (404, WHY_HOST) for c in _HOST},
    ("daphne", "unsupported-expect"): (404, WHY_EXPECT),
    ("daphne", "cl-over-limit"): (SILENT, WHY_NO_BODY_LIMIT),
    ("daphne", "te-http10"): (200, "chunked is accepted in an HTTP/1.0 request, which has no chunked coding"),
    **{("daphne", c): (SILENT, "its chunk parser waits for a line end it never gets")
       for c in ("chunk-size-overflow", "chunk-bare-lf")},
    ("daphne", "te-identity"): (200, "Transfer-Encoding: identity is taken as no coding; served"),
    ("daphne", "del-in-target"): (404, "DEL in the target is passed to the app; served"),
    ("daphne", "del-in-header-value"): (404, "Twisted accepts DEL in a field value; served"),
    ("daphne", "authority-form-on-get"): (404, WHY_AUTHORITY),
    # gunicorn-asgi (gunicorn's asyncio worker, its pure-Python parser): refuses the trailers RFC 9110 6.5.1
    # forbids, the asterisk form and a repeated Content-Type as the corpus does; lenient like gunicorn elsewhere.
    (_GASGI, "no-host-http11"): (404, WHY_HOST),
    (_GASGI, "unsupported-expect"): (404, WHY_EXPECT),
    (_GASGI, "cl-over-limit"): (SILENT, WHY_NO_BODY_LIMIT),
    (_GASGI, "te-gzip-chunked"): (200, WHY_CODINGS),
    (_GASGI, "te-identity"): (400, WHY_TE_IDENTITY),
    (_GASGI, "chunk-size-overflow"): (SILENT, "a chunk size of any length is taken at its word (Python's int has "
                                      "no overflow): it waits for the 2^76 bytes announced (the corpus wants 400 "
                                      "or 413)"),
    (_GASGI, "trailer-content-type"): (200, "trailers are checked against RFC 9110 6.5.1's list (Host, "
                                       "Authorization, Transfer-Encoding... are refused, as the corpus does), "
                                       "which lacks Content-Type: dropped; served"),
}


def _read_answer(sock: socket.socket) -> Outcome:
    """The status of the first response, reading no further than its end; CLOSED or SILENT if there is none."""
    sock.settimeout(SILENCE_S)
    data = b""
    try:
        while b"\r\n\r\n" not in data and b"\n\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        if not data:
            return SILENT
    status = data.split(b" ", 2)[1] if data.startswith(b"HTTP/1.") and data.count(b" ") >= 1 else b""
    if not status.isdigit():
        # uWSGI echoes the request's protocol field as its own: "HTTP/1.1 extra 404 ..." is not an answer.
        return CLOSED if not data else f"not HTTP: {data[:40]!r}"
    return int(status)


def exchange(srv: Server, data: bytes) -> Outcome:
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may answer and close before it has read everything
        return _read_answer(sock)


def idle_close(srv: Server) -> tuple[Outcome, float]:
    """One request on a new connection, then silence: (its answer, seconds until the server closed the connection)."""
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_answer(sock)
        start = time.monotonic()
        sock.settimeout(20)
        try:
            while sock.recv(65536):
                pass  # the rest of the answer's body
        except ConnectionResetError:
            pass
        except TimeoutError:
            pass  # still open after 20 s (daphne)
        return answer, time.monotonic() - start


# Each mode's idle_close, started with its server: its 5-10 s of waiting run beside the corpus cases, and
# test_an_idle_connection_is_kept_as_long_as_the_other_modes_keep_it reads the outcome.
IDLE: dict[str, Future[tuple[Outcome, float]]] = {}


@pytest.fixture(scope="module", params=THIRD_PARTY)
def srv(request: pytest.FixtureRequest, world_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    name = request.param
    port = free_port(HOST)
    log = tmp_path_factory.mktemp(name) / "server.log"
    argv = MODES[name].argv(host=HOST, port=port, workers=2)
    with running(argv, log_path=log, env=server_env(world_db), cwd=ROOT) as proc, ThreadPoolExecutor(1) as idle:
        wait_ready(proc, HOST, port, log_path=log)
        server = Server(HOST, port, proc, log)
        IDLE[name] = idle.submit(idle_close, server)
        yield server


def expected_outcome(mode: str, case: str, corpus_answer: set[int]) -> set[Outcome]:
    if (mode, case) in DIFFERENCES:
        return {DIFFERENCES[(mode, case)][0]}
    return set(corpus_answer)


def test_there_are_production_modes_of_both_interfaces() -> None:
    assert {MODES[m].interface for m in THIRD_PARTY} == {"wsgi", "asgi"}
    assert len(THIRD_PARTY) >= 8


def test_every_production_mode_names_its_packages_and_they_are_installed_and_recorded() -> None:
    versions = environment.package_versions()  # what every run's plan.json records
    for name in THIRD_PARTY:
        assert MODES[name].process.packages, name
        for package in MODES[name].process.packages:
            # pyproject.toml installs them all: a missing one is an error, not a skip.
            assert versions[package], f"{name} needs {package}, which is not installed"


def test_every_difference_names_a_real_mode_and_case_and_gives_a_reason() -> None:
    cases = {name for name, _, _ in CORPUS}
    for (mode, case), (outcome, reason) in DIFFERENCES.items():
        assert mode in THIRD_PARTY and case in cases, (mode, case)
        assert reason.strip() and isinstance(outcome, int | str)
        corpus = next(expected for name, _, expected in CORPUS if name == case)
        assert outcome not in corpus, f"{mode} {case}: not a difference, the corpus accepts {outcome}"


@pytest.mark.parametrize(("name", "data", "corpus_answer"), CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_request_answer_is_the_corpus_or_a_recorded_difference(
        srv: Server, request: pytest.FixtureRequest, name: str, data: bytes, corpus_answer: set[int]) -> None:
    mode = request.node.callspec.params["srv"]
    outcome = exchange(srv, data)
    assert outcome in expected_outcome(mode, name, corpus_answer), (mode, name, outcome)
    assert srv.proc.poll() is None, srv.log_text()[-2000:]
    # The next client is served normally, whatever the last one sent (a worker may be restarting: retry briefly).
    deadline = time.monotonic() + 5
    while True:
        try:
            assert get(srv.host, srv.port, "/plaintext")[2] == b"Hello, World!"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_an_idle_connection_is_kept_as_long_as_the_other_modes_keep_it(srv: Server,
                                                                       request: pytest.FixtureRequest) -> None:
    """KEEPALIVE_S (5 s) where the server lets us set it: kept past 2 s, closed well before its own default."""
    mode = request.node.callspec.params["srv"]
    answer, idle = IDLE[mode].result()  # measured from the server's start (IDLE)
    assert answer == 200
    if mode == "gunicorn-sync":
        assert idle < 1, "sync workers close after every response"
    elif mode == "daphne":
        # daphne has no option for it: Twisted's HTTPFactory closes an idle connection after 60 s.
        assert idle >= 20, (mode, idle)
    else:
        # waitress looks for idle connections every 5 s, so it closes them after 5 to 10 s.
        assert 2 < idle < 12, (mode, idle)
