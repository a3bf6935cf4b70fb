"""A corpus of malformed and hostile requests, with the answers a careful server gives.

Drawn from the kinds of input that the invalid-request corpora of gunicorn, llhttp
and h11 cover: broken request lines, bad header syntax, request smuggling through
framing headers, broken chunked bodies, and limits; then the defects of issue 9 and
the MUSTs of RFC 9112/9110 on request parsing. Each ``CORPUS`` entry is
``(name, raw bytes, acceptable statuses)``; ``SERVED`` holds requests that are odd but
valid (or deliberately tolerated) and must reach the app. Cases copied from llhttp's
and h11's own test suites are in ``tests/servers/corpus/upstream.py``.
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
    # issue 9: trailers, per-field limit, targets, repeated fields, bounded leading empty lines
    ("trailer-host", _post(CHUNKED, b"1\r\nx\r\n0\r\nHost: evil\r\n\r\n"), {400}),
    ("trailer-content-type", _post(CHUNKED, b"1\r\nx\r\n0\r\nContent-Type: text/evil\r\n\r\n"), {400}),
    ("trailer-authorization", _post(CHUNKED, b"1\r\nx\r\n0\r\nAuthorization: Basic eDp5\r\n\r\n"), {400}),
    ("trailer-transfer-encoding", _post(CHUNKED, b"1\r\nx\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"), {400}),
    ("header-value-over-8190", _get(b"GET / HTTP/1.1", H + b"X-Big: " + b"y" * 8191 + b"\r\n"), {431}),
    ("header-name-over-8190", _get(b"GET / HTTP/1.1", H + b"X" * 8191 + b": y\r\n"), {431}),
    ("asterisk-form-on-get", _get(b"GET * HTTP/1.1"), {400}),
    ("asterisk-form-on-post", _post(b"Content-Length: 0\r\n", b"").replace(b"/upload", b"*"), {400}),
    ("two-content-types", _get(b"GET / HTTP/1.1", H + b"Content-Type: a/b\r\nContent-Type: c/d\r\n"), {400}),
    ("five-empty-lines-first", b"\r\n" * 5 + _get(b"GET / HTTP/1.1"), {400}),
    ("connect", _get(b"CONNECT x:443 HTTP/1.1"), {501}),
    ("upgrade-with-body", _post(b"Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n", b"abc"), {501}),
    ("spaces-then-split-line", _get(b"GET" + b" " * 9000 + b"/ HTTP/1.1"), {400, 414}),
    # RFC 9112 3 (request line), 3.2 (Host), 5 (field syntax), 6-7 (framing)
    ("authority-form-on-get", _get(b"GET x:80 HTTP/1.1"), {400}),
    ("raw-utf8-in-target", _get(b"GET /\xc3\xa9 HTTP/1.1"), {400}),
    ("raw-8bit-in-target", _get(b"GET /\xff HTTP/1.1"), {400}),
    ("del-in-target", _get(b"GET /\x7f HTTP/1.1"), {400}),
    ("tab-after-method", _get(b"GET\t/ HTTP/1.1"), {400}),
    ("space-after-version", _get(b"GET / HTTP/1.1 "), {400}),
    ("leading-space", _get(b" GET / HTTP/1.1"), {400}),
    ("mixed-case-method", _get(b"Get / HTTP/1.1"), {400}),
    ("http-1.2", _get(b"GET / HTTP/1.2"), {400, 505}),
    ("http-0.9-versioned", _get(b"GET / HTTP/0.9"), {400, 505}),
    ("del-in-header-value", _get(b"GET / HTTP/1.1", H + b"X-A: a\x7fb\r\n"), {400}),
    ("whitespace-only-line-in-headers", _get(b"GET / HTTP/1.1", H + b" \r\nX-A: b\r\n"), {400}),
    ("host-with-space", _get(b"GET / HTTP/1.1", b"Host: a b\r\n"), {400}),
    ("host-with-slash", _get(b"GET / HTTP/1.1", b"Host: a/b\r\n"), {400}),
    ("host-with-userinfo", _get(b"GET / HTTP/1.1", b"Host: u@a\r\n"), {400}),
    ("two-identical-hosts", _get(b"GET / HTTP/1.1", H + H), {400}),
    ("te-trailing-comma", _post(b"Transfer-Encoding: chunked,\r\n", b"1\r\nx\r\n0\r\n\r\n"), {400, 501}),
    ("te-identity", _post(b"Transfer-Encoding: identity\r\n", b""), {501}),
    ("cl-repeated-same-value", _post(b"Content-Length: 1\r\nContent-Length: 1\r\n", b"x"), {400}),
    # issue 19: a field line is counted as gunicorn counts it ("name: value" and its CRLF, at most 8,190 bytes),
    # and a chunk-size line with its extensions is capped (llhttp skips extensions without a limit)
    ("field-line-of-8191", _get(b"GET / HTTP/1.1", H + b"X-Big: " + b"y" * 8182 + b"\r\n"), {431}),
    ("field-line-of-8196", _get(b"GET / HTTP/1.1", H + b"X: " + b"y" * 8193 + b"\r\n"), {431}),
    ("chunk-extension-over-4k", _post(CHUNKED, b"1;ext=" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n"), {400}),
]

# Odd but valid requests (or ones tolerated on purpose): each must reach the app.
SERVED: list[tuple[str, bytes]] = [
    ("one-empty-line-first", b"\r\n" + _get(b"GET /health HTTP/1.1")),
    ("four-empty-lines-first", b"\r\n" * 4 + _get(b"GET /health HTTP/1.1")),
    ("bare-lf-empty-line-first", b"\n" + _get(b"GET /health HTTP/1.1")),
    ("upgrade-h2c", _get(b"GET /health HTTP/1.1", H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                         b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")),
    ("upgrade-websocket", _get(b"GET /health HTTP/1.1", H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n")),
    ("underscore-header", _get(b"GET /health HTTP/1.1", H + b"X_Forwarded_For: 6.6.6.6\r\n")),
    ("harmless-trailer", _post(CHUNKED, b"1\r\nx\r\n0\r\nX-Trailer: t\r\n\r\n")),
    ("field-line-of-8190", _get(b"GET /health HTTP/1.1", H + b"X-Big: " + b"y" * 8181 + b"\r\n")),
    ("chunk-extension-of-4k", _post(CHUNKED, b"1;ext=" + b"e" * 4087 + b"\r\nx\r\n0\r\n\r\n")),
    ("chunked-body-of-newlines", _post(CHUNKED, b"400\r\n" + b"\n" * 1024 + b"\r\n0\r\n\r\n")),
    ("options-asterisk", _get(b"OPTIONS * HTTP/1.1")),
    ("absolute-form", _get(b"GET http://x/health HTTP/1.1")),
    ("fragment-in-target", _get(b"GET /health#frag HTTP/1.1")),
    ("http-1.0-without-host", b"GET /health HTTP/1.0\r\n\r\n"),
    ("obs-text-in-value", _get(b"GET /health HTTP/1.1", H + b"X-A: caf\xe9\r\n")),
    ("tab-in-value", _get(b"GET /health HTTP/1.1", H + b"X-A: a\tb\r\n")),
    ("trailing-whitespace-in-value", _get(b"GET /health HTTP/1.1", H + b"X-A: a \t \r\n")),
    ("host-ipv6-and-port", _get(b"GET /health HTTP/1.1", b"Host: [::1]:8080\r\n")),
    ("empty-host", _get(b"GET /health HTTP/1.1", b"Host:\r\n")),
    ("expect-continue-on-http-1.0", b"POST /upload HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"),
    ("content-length-0-on-get", _get(b"GET /health HTTP/1.1", H + b"Content-Length: 0\r\n")),
    ("te-chunked-capitals", _post(b"Transfer-Encoding: CHUNKED\r\n", b"1\r\nx\r\n0\r\n\r\n")),
    ("chunk-size-leading-zeros", _post(CHUNKED, b"0001\r\nx\r\n0\r\n\r\n")),
    ("empty-chunked-body", _post(CHUNKED, b"0\r\n\r\n")),
    ("head-http-1.0", b"HEAD /plaintext HTTP/1.0\r\n\r\n"),
    ("bytes-after-connection-close", _get(b"GET /health HTTP/1.1", H + b"Connection: close\r\n") + b"GARBAGE\r\n\r\n"),
    ("bytes-after-http-1.0", b"GET /health HTTP/1.0\r\n\r\nGARBAGE\r\n\r\n"),
]
