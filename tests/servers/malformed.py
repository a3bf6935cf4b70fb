"""A corpus of malformed and hostile requests, with the answers a careful server gives.

Drawn from the kinds of input that the invalid-request corpora of gunicorn, llhttp
and h11 cover: broken request lines, bad header syntax, request smuggling through
framing headers, broken chunked bodies, and limits. Each entry is
``(name, raw bytes, acceptable statuses)``.
"""

from __future__ import annotations

H = b"Host: x\r\n"


def _get(line: bytes, headers: bytes = H) -> bytes:
    return line + b"\r\n" + headers + b"\r\n"


def _post(headers: bytes, body: bytes) -> bytes:
    return b"POST /upload HTTP/1.1\r\n" + H + headers + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked\r\n"

CORPUS: list[tuple[str, bytes, set[int]]] = [
    # request line
    ("not-http", b"GARBAGE\r\n\r\n", {400}),
    ("method-only", b"GET\r\n\r\n", {400}),
    ("http-0.9", b"GET /\r\n\r\n", {400, 505}),
    ("extra-token", _get(b"GET / HTTP/1.1 extra"), {400}),
    ("double-space", _get(b"GET  / HTTP/1.1"), {400}),
    ("lowercase-method", _get(b"get / HTTP/1.1"), {400}),
    ("bad-char-in-method", _get(b"G@T / HTTP/1.1"), {400}),
    ("http-2.0", _get(b"GET / HTTP/2.0"), {400, 505}),
    ("http-9.9", _get(b"GET / HTTP/9.9"), {400, 505}),
    ("bad-version-digit", _get(b"GET / HTTP/1.x"), {400}),
    ("bad-protocol-name", _get(b"GET / FOO/1.1"), {400}),
    ("lowercase-protocol", _get(b"GET / http/1.1"), {400}),
    ("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: x\n\n", {400}),
    ("bare-lf-after-header", b"GET / HTTP/1.1\r\nHost: x\n\r\n", {400}),
    ("bare-cr", b"GET / HTTP/1.1\rHost: x\r\n\r\n", {400}),
    ("nul-before-method", b"\x00" + _get(b"GET / HTTP/1.1"), {400}),
    ("control-char-in-target", _get(b"GET /\x01 HTTP/1.1"), {400}),
    ("space-in-target", _get(b"GET /a b HTTP/1.1"), {400}),
    ("request-line-over-8k", _get(b"GET /" + b"a" * 9000 + b" HTTP/1.1"), {414}),
    # headers
    ("obs-fold", _get(b"GET / HTTP/1.1", H + b"X-A: a\r\n b\r\n"), {400}),
    ("space-before-colon", _get(b"GET / HTTP/1.1", b"Host : x\r\n"), {400}),
    ("empty-header-name", _get(b"GET / HTTP/1.1", H + b": x\r\n"), {400}),
    ("header-without-colon", _get(b"GET / HTTP/1.1", H + b"X-A x\r\n"), {400}),
    ("bad-char-in-header-name", _get(b"GET / HTTP/1.1", H + b"X@Y: z\r\n"), {400}),
    ("nul-in-header-value", _get(b"GET / HTTP/1.1", H + b"X-A: a\x00b\r\n"), {400}),
    ("no-host-http11", _get(b"GET / HTTP/1.1", b""), {400}),
    ("two-host-headers", _get(b"GET / HTTP/1.1", H + b"Host: y\r\n"), {400}),
    ("101-headers", _get(b"GET / HTTP/1.1", H + b"".join(b"X-%d: y\r\n" % i for i in range(100))), {431}),
    ("header-block-over-16k", _get(b"GET / HTTP/1.1", H + b"X-Big: " + b"y" * 17000 + b"\r\n"), {431}),
    ("header-name-over-16k", _get(b"GET / HTTP/1.1", H + b"X" * 17000 + b": y\r\n"), {431}),
    ("unsupported-expect", _get(b"GET / HTTP/1.1", H + b"Expect: 200-ok\r\n"), {417}),
    # framing and smuggling
    ("cl-and-te", _post(b"Content-Length: 3\r\n" + CHUNKED, b"0\r\n\r\n"), {400}),
    ("te-and-cl", _post(CHUNKED + b"Content-Length: 3\r\n", b"0\r\n\r\n"), {400}),
    ("two-different-cl", _post(b"Content-Length: 3\r\nContent-Length: 4\r\n", b"abcd"), {400}),
    ("cl-list", _post(b"Content-Length: 3, 4\r\n", b"abcd"), {400}),
    ("cl-not-a-number", _post(b"Content-Length: abc\r\n", b"abc"), {400}),
    ("cl-negative", _post(b"Content-Length: -3\r\n", b""), {400}),
    ("cl-plus-sign", _post(b"Content-Length: +3\r\n", b"abc"), {400}),
    ("cl-inner-space", _post(b"Content-Length: 1 2\r\n", b"abc"), {400}),
    ("cl-hex", _post(b"Content-Length: 0x3\r\n", b"abc"), {400}),
    ("cl-over-limit", _post(b"Content-Length: 99999999999\r\n", b""), {413}),
    ("te-gzip", _post(b"Transfer-Encoding: gzip\r\n", b""), {501, 400}),
    ("te-gzip-chunked", _post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), {501, 400}),
    ("te-chunked-gzip", _post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"), {501, 400}),
    ("te-xchunked", _post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), {501, 400}),
    ("te-chunked-twice", _post(CHUNKED + CHUNKED, b"0\r\n\r\n"), {501, 400}),
    ("te-http10", b"POST /upload HTTP/1.0\r\n" + CHUNKED + b"\r\n0\r\n\r\n", {400, 501}),
    # chunked bodies
    ("chunk-size-not-hex", _post(CHUNKED, b"ZZ\r\nabc\r\n0\r\n\r\n"), {400}),
    ("chunk-size-negative", _post(CHUNKED, b"-1\r\nabc\r\n0\r\n\r\n"), {400}),
    ("chunk-size-overflow", _post(CHUNKED, b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), {400, 413}),
    ("chunk-longer-than-size", _post(CHUNKED, b"2\r\nabcdef\r\n0\r\n\r\n"), {400}),
    ("chunk-bare-lf", _post(CHUNKED, b"3\nabc\n0\n\n"), {400}),
    ("chunk-space-in-size", _post(CHUNKED, b"3 3\r\nabc\r\n0\r\n\r\n"), {400}),
]
