"""Request cases from the test suites of llhttp and h11, each with the answer our servers give.

Where they come from (both projects are MIT licensed; the licence texts are beside this file,
``LICENSE-llhttp`` and ``LICENSE-h11``):

- ``LLHTTP``: every ``{"type": "request"}`` case of llhttp's ``test/request/{invalid,
  transfer-encoding, content-length, uri, method, connection, sample, pipelining}.md``
  (https://github.com/nodejs/llhttp, commit 01e105a30fd06e248bc8ac73c4adb34a63d4114a).
  Left out: lenient-mode cases (another parser configuration), cases built with inline
  JavaScript, and two that are not one request ("Content-Length reset when no body is
  received", "Missing last-chunk").
  Each id is ``llhttp-<file>-<section title>``. The markdown's escapes were decoded as
  llhttp's ``test/md-test.ts`` decodes them. llhttp tests parser events, so many cases stop
  before the request is complete; ``changed`` says what was added to make one complete
  request: ``Host added`` (HTTP/1.1 requires it, and its absence would hide what the case
  is about), ``final CRLF added``, ``last chunk added``, ``end of last chunk added``,
  ``body added``.
- ``H11``: the request-side cases of h11's ``h11/tests/test_io.py`` (request readers,
  ``ChunkedReader``) and ``test_headers.py`` (``normalize_and_validate``)
  (https://github.com/python-hyper/h11, commit 62c5068c971579d61fa1b55373390e12f25fd856);
  header and chunked-body cases are wrapped in a request to ``/upload``.

``upstream`` is the other parser's verdict ("ok", or llhttp's error reason). Where ours
differs, the case is one of the deliberate choices listed in
docs/explanation/request-policy.md: llhttp's "Pause on CONNECT/Upgrade" requests are served as plain
HTTP/1.1 (CONNECT and an upgrade with a body are 501); bytes after a closing request are
ignored instead of being an error; h11 unfolds obs-fold and accepts a repeated identical
Content-Length, whitespace after a chunk size and spaces in chunk extensions, where we
(with llhttp) answer 400; transfer codings other than chunked are 501; an asterisk-form
target is only for OPTIONS.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

SERVED: Literal["served"] = "served"  # the app answered (any status the app chose)


class Case(NamedTuple):
    name: str
    raw: bytes
    expect: int | Literal["served"]
    upstream: str
    changed: str = ""


LLHTTP: list[Case] = [
    Case('llhttp-invalid-ice-protocol-and-get-method', (
        b'GET /music/sweet/music ICE/1.0\r\nHost: ex'
        b'ample.com\r\n\r\n'
    ),
         400, upstream='error: Expected SOURCE method for ICE/x.x request',
         changed='final CRLF added'),
    Case('llhttp-invalid-ice-protocol-but-not-really', (
        b'GET /music/sweet/music IHTTP/1.0\r\nHost: '
        b'example.com\r\n\r\n'
    ),
         400, upstream='error: Expected HTTP/, RTSP/ or ICE/',
         changed='final CRLF added'),
    Case('llhttp-invalid-rtsp-protocol-and-put-method', (
        b'PUT /music/sweet/music RTSP/1.0\r\nHost: e'
        b'xample.com\r\n\r\n'
    ),
         400, upstream='error: Invalid method for RTSP/x.x request',
         changed='final CRLF added'),
    Case('llhttp-invalid-http-protocol-and-announce-method', (
        b'ANNOUNCE /music/sweet/music HTTP/1.0\r\nHo'
        b'st: example.com\r\n\r\n'
    ),
         400, upstream='error: Invalid method for HTTP/x.x request',
         changed='final CRLF added'),
    Case('llhttp-invalid-headers-separated-by-cr', (
        b'GET / HTTP/1.1\r\nHost: x\r\nFoo: 1\rBar: 2\r\n'
        b'\r\n'
    ),
         400, upstream='error: Missing expected LF after header value',
         changed='Host added, final CRLF added'),
    Case('llhttp-invalid-headers-separated-by-lf', (
        b'POST / HTTP/1.1\r\nHost: localhost:5000\r\nx'
        b':x\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0'
        b'\r\n\r\n'
    ),
         400, upstream='error: Missing expected CR after header value',
         changed='end of last chunk added'),
    Case('llhttp-invalid-headers-separated-by-dummy-characters', (
        b'GET / HTTP/1.1\r\nConnection: close\r\nHost:'
        b' a\r\n\rZGET /evil: HTTP/1.1\r\nHost: a'
    ),
         400, upstream='error: Expected LF after headers',
         changed=''),
    Case('llhttp-invalid-empty-headers-separated-by-cr', (
        b'POST / HTTP/1.1\r\nConnection: Close\r\nHost'
        b': localhost:5000\r\nx:\rTransfer-Encoding: '
        b'chunked\r\n\r\n1\r\nA\r\n0'
    ),
         400, upstream='error: Expected LF after CR',
         changed=''),
    Case('llhttp-invalid-empty-headers-separated-by-lf', (
        b'POST / HTTP/1.1\r\nHost: localhost:5000\r\nx'
        b':\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r'
        b'\n\r\n'
    ),
         400, upstream='error: Invalid header value char',
         changed='end of last chunk added'),
    Case('llhttp-invalid-invalid-header-token-1', (
        b'GET / HTTP/1.1\r\nHost: x\r\nFo@: Failure\r\n\r'
        b'\n'
    ),
         400, upstream='error: Invalid header token',
         changed='Host added, final CRLF added'),
    Case('llhttp-invalid-invalid-header-token-2', (
        b'GET / HTTP/1.1\r\nHost: x\r\nFoo\x01\test: Bar\r\n'
        b'\r\n'
    ),
         400, upstream='error: Invalid header token',
         changed='Host added, final CRLF added'),
    Case('llhttp-invalid-invalid-header-token-3', b'GET / HTTP/1.1\r\nHost: x\r\n: Bar\r\n\r\n',
         400, upstream='error: Invalid header token',
         changed='Host added, final CRLF added'),
    Case('llhttp-invalid-invalid-method', b'MKCOLA / HTTP/1.1\r\nHost: x\r\n\r\n',
         400, upstream='error: Expected space after method',
         changed='Host added, final CRLF added'),
    Case('llhttp-invalid-illegal-header-field-name-line-folding', (
        b'GET / HTTP/1.1\r\nHost: x\r\nname\r\n : value\r'
        b'\n\r\n'
    ),
         400, upstream='error: Invalid header token',
         changed='Host added, final CRLF added'),
    Case('llhttp-invalid-corrupted-connection-header', (
        b'GET / HTTP/1.1\r\nHost: www.example.com\r\nC'
        b'onnection\r\x1b5\xc3\x95eep-Alive\r\nAccept-Encoding'
        b': gzip\r\n\r\n'
    ),
         400, upstream='error: Invalid header token',
         changed='final CRLF added'),
    Case('llhttp-invalid-corrupted-header-name', (
        b'GET / HTTP/1.1\r\nHost: www.example.com\r\nX'
        b'-Some-Header\r\x1b5\xc3\x95eep-Alive\r\nAccept-Encod'
        b'ing: gzip\r\n\r\n'
    ),
         400, upstream='error: Invalid header token',
         changed='final CRLF added'),
    Case('llhttp-invalid-missing-cr-between-headers', (
        b'GET / HTTP/1.1\r\nHost: localhost\r\nDummy: '
        b'x\nContent-Length: 23\r\n\r\nGET / HTTP/1.1\r\n'
        b'Dummy: GET /admin HTTP/1.1\r\nHost: localh'
        b'ost\r\n'
    ),
         400, upstream='error: Missing expected CR after header value',
         changed=''),
    Case('llhttp-invalid-invalid-http-version', b'GET / HTTP/5.6',
         400, upstream='error: Invalid HTTP version',
         changed=''),
    Case('llhttp-invalid-invalid-space-after-start-line', b'GET / HTTP/1.1\r\nHost: x\r\n Host: foo',
         400, upstream='error: Unexpected space after start line',
         changed='Host added'),
    Case('llhttp-invalid-only-lfs-present', (
        b'POST / HTTP/1.1\nTransfer-Encoding: chunk'
        b'ed\nTrailer: Baz\r\nFoo: abc\nBar: def\n\n1\nA\n'
        b'1;abc\nB\n1;def=ghi\nC\n1;jkl="mno"\nD\n0\n\nBaz'
        b': ghi\n\n\\'
    ),
         400, upstream='error: Expected CRLF after version',
         changed=''),
    Case('llhttp-invalid-spaces-before-headers', (
        b'POST /hello HTTP/1.1\r\nHost: localhost\r\nF'
        b'oo: bar\r\n Content-Length: 38\r\n\r\nGET /bye'
        b' HTTP/1.1\r\nHost: localhost\r\n'
    ),
         400, upstream='error: Unexpected whitespace after header value',
         changed=''),
    Case('llhttp-transfer-encoding-parsing-and-setting-flag', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nTransfer-Enc'
        b'oding: chunked\r\n\r\n0\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added, last chunk added'),
    Case('llhttp-transfer-encoding-parse-chunks-with-lowercase-size', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nTransfer-Enc'
        b'oding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-transfer-encoding-parse-chunks-with-uppercase-size', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nTransfer-Enc'
        b'oding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-transfer-encoding-post-with-transfer-encoding-chunked', (
        b'POST /post_chunked_all_your_base HTTP/1.'
        b'1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n'
        b'\r\n1e\r\nall your base are belong to us\r\n0\r'
        b'\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-transfer-encoding-two-chunks-and-triple-zero-prefixed-end-chunk', (
        b'POST /two_chunks_mult_zero_end HTTP/1.1\r'
        b'\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
        b'5\r\nhello\r\n6\r\n world\r\n000\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-transfer-encoding-trailing-headers', (
        b'POST /chunked_w_trailing_headers HTTP/1.'
        b'1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n'
        b'\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nVary: *\r\nConte'
        b'nt-Type: text/plain\r\n\r\n'
    ),
         400, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-transfer-encoding-chunk-extensions', (
        b'POST /chunked_w_unicorns_after_length HT'
        b'TP/1.1\r\nHost: x\r\nTransfer-Encoding: chun'
        b'ked\r\n\r\n5;ilovew3;somuchlove=arethesepara'
        b'metersfor;another=withvalue\r\nhello\r\n6;bl'
        b'ahblah;blah\r\n world\r\n0\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, end of last chunk added'),
    Case('llhttp-transfer-encoding-no-semicolon-before-chunk-extensions', (
        b'POST /chunked_w_unicorns_after_length HT'
        b'TP/1.1\r\nHost: localhost\r\nTransfer-encodi'
        b'ng: chunked\r\n\r\n2 erfrferferf\r\naa\r\n0 rrrr'
        b'\r\n\r\n'
    ),
         400, upstream='error: Invalid character in chunk size',
         changed='final CRLF added'),
    Case('llhttp-transfer-encoding-no-extension-after-semicolon', (
        b'POST /chunked_w_unicorns_after_length HT'
        b'TP/1.1\r\nHost: localhost\r\nTransfer-encodi'
        b'ng: chunked\r\n\r\n2;\r\naa\r\n0\r\n\r\n'
    ),
         400, upstream='error: Invalid character in chunk extensions',
         changed='final CRLF added'),
    Case('llhttp-transfer-encoding-chunk-extensions-quoting', (
        b'POST /chunked_w_unicorns_after_length HT'
        b'TP/1.1\r\nHost: x\r\nTransfer-Encoding: chun'
        b'ked\r\n\r\n5;ilovew3="I \\"love\\"; \\\\extensio'
        b'ns\\\\";somuchlove="aretheseparametersfor"'
        b';blah;foo=bar\r\nhello\r\n6;blahblah;blah\r\n '
        b'world\r\n0\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, end of last chunk added'),
    Case('llhttp-transfer-encoding-unbalanced-chunk-extensions-quoting', (
        b'POST /chunked_w_unicorns_after_length HT'
        b'TP/1.1\r\nHost: x\r\nTransfer-Encoding: chun'
        b'ked\r\n\r\n5;ilovew3="abc";somuchlove="def; '
        b'ghi\r\nhello\r\n6;blahblah;blah\r\n world\r\n0\r\n'
        b'\r\n'
    ),
         400, upstream='error: Invalid character in chunk extensions quoted value',
         changed='Host added, end of last chunk added'),
    Case('llhttp-transfer-encoding-ignoring-pigeons', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nTransfer-Enc'
        b'oding: pigeons\r\n\r\n'
    ),
         501, upstream='error: Request has invalid `Transfer-Encoding`',
         changed='Host added, final CRLF added'),
    Case('llhttp-transfer-encoding-post-with-transfer-encoding-and-content-length', (
        b'POST /post_identity_body_world?q=search#'
        b'hey HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nTran'
        b'sfer-Encoding: identity\r\nContent-Length:'
        b' 5\r\n\r\nWorld'
    ),
         400, upstream="error: Content-Length can't be present with Transfer-Encoding",
         changed='Host added'),
    Case('llhttp-transfer-encoding-post-with-empty-transfer-encoding-and-content-length-lenient', (
        b'POST / HTTP/1.1\r\nHost: foo\r\nContent-Leng'
        b'th: 10\r\nTransfer-Encoding:\r\nTransfer-Enc'
        b'oding:\r\nTransfer-Encoding:\r\n\r\n2\r\nAA\r\n0'
    ),
         400, upstream="error: Transfer-Encoding can't be present with Content-Length",
         changed=''),
    Case('llhttp-transfer-encoding-post-with-chunked-before-other-transfer-coding-names', (
        b'POST /post_identity_body_world?q=search#'
        b'hey HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nTran'
        b'sfer-Encoding: chunked, deflate\r\n\r\nWorld'
    ),
         400, upstream='error: Invalid `Transfer-Encoding` header value',
         changed='Host added'),
    Case('llhttp-transfer-encoding-post-with-chunked-and-duplicate-transfer-encoding', (
        b'POST /post_identity_body_world?q=search#'
        b'hey HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nTran'
        b'sfer-Encoding: chunked\r\nTransfer-Encodin'
        b'g: deflate\r\n\r\nWorld'
    ),
         400, upstream='error: Invalid `Transfer-Encoding` header value',
         changed='Host added'),
    Case('llhttp-transfer-encoding-post-with-chunked-as-last-transfer-encoding', (
        b'POST /post_identity_body_world?q=search#'
        b'hey HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nTran'
        b'sfer-Encoding: deflate, chunked\r\n\r\n5\r\nWo'
        b'rld\r\n0\r\n'
    ),
         501, upstream='ok',
         changed='Host added'),
    Case('llhttp-transfer-encoding-post-with-chunked-as-last-transfer-encoding-multiple-headers', (
        b'POST /post_identity_body_world?q=search#'
        b'hey HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nTran'
        b'sfer-Encoding: deflate\r\nTransfer-Encodin'
        b'g: chunked\r\n\r\n5\r\nWorld\r\n0\r\n\r\n'
    ),
         501, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-transfer-encoding-post-with-chunkedchunked-as-transfer-encoding', (
        b'POST /post_identity_body_world?q=search#'
        b'hey HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nTran'
        b'sfer-Encoding: chunkedchunked\r\n\r\n5\r\nWorl'
        b'd\r\n0\r\n'
    ),
         501, upstream='error: Request has invalid `Transfer-Encoding`',
         changed='Host added'),
    Case('llhttp-transfer-encoding-validate-chunk-parameters', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nTransfer-Enc'
        b'oding: chunked\r\n\r\n3 \n  \r\nfoo\r\n\r\n'
    ),
         400, upstream='error: Invalid character in chunk size',
         changed='Host added, final CRLF added'),
    Case('llhttp-transfer-encoding-chunk-header-not-terminated-by-crlf', (
        b'GET / HTTP/1.1\r\nHost: a\r\nConnection: clo'
        b'se \r\nTransfer-Encoding: chunked \r\n\r\n5\r\r;'
        b'ABCD\r\n34\r\nE\r\n0\r\n\r\nGET / HTTP/1.1 \r\nHost:'
        b' a\r\nContent-Length: 5\r\n\r\n0'
    ),
         400, upstream='error: Expected LF after chunk size',
         changed=''),
    Case('llhttp-transfer-encoding-chunk-data-not-terminated-by-crlf', (
        b'GET / HTTP/1.1\r\nHost: a\r\nConnection: clo'
        b'se \r\nTransfer-Encoding: chunked \r\n\r\n5\r\nA'
        b'BCDE0'
    ),
         400, upstream='error: Expected LF after chunk data',
         changed=''),
    Case('llhttp-transfer-encoding-space-after-chunk-header', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nTransfer-Enc'
        b'oding: chunked\r\n\r\na \r\n0123456789\r\n0\r\n\r\n'
    ),
         400, upstream='error: Invalid character in chunk size',
         changed='Host added, final CRLF added'),
    Case('llhttp-content-length-content-length-with-zeroes', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nContent-Leng'
        b'th: 003\r\n\r\nabc'
    ),
         SERVED, upstream='ok',
         changed='Host added'),
    Case('llhttp-content-length-content-length-with-follow-up-headers', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nContent-Leng'
        b'th: 003\r\nOhai: world\r\n\r\nabc'
    ),
         SERVED, upstream='ok',
         changed='Host added'),
    Case('llhttp-content-length-error-on-content-length-overflow', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nContent-Leng'
        b'th: 1000000000000000000000'
    ),
         400, upstream='error: Content-Length overflow',
         changed='Host added'),
    Case('llhttp-content-length-error-on-duplicate-content-length', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nContent-Leng'
        b'th: 1\r\nContent-Length: 2'
    ),
         400, upstream='error: Duplicate Content-Length',
         changed='Host added'),
    Case('llhttp-content-length-error-on-simultaneous-content-length-and-transfer-encoding-identity', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nContent-Leng'
        b'th: 1\r\nTransfer-Encoding: identity\r\n\r\nx'
    ),
         400, upstream="error: Transfer-Encoding can't be present with Content-Length",
         changed='Host added, final CRLF added, body added'),
    Case('llhttp-content-length-invalid-whitespace-token-with-content-length-header-field', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'upgrade\r\nContent-Length : 4\r\nUpgrade: ws'
        b'\r\n\r\nabcdefgh'
    ),
         400, upstream='error: Invalid header field char',
         changed='Host added'),
    Case('llhttp-content-length-funky-content-length-with-body', (
        b'GET /get_funky_content_length_body_hello'
        b' HTTP/1.0\r\nconTENT-Length: 5\r\n\r\nHELLO'
    ),
         SERVED, upstream='ok',
         changed=''),
    Case('llhttp-content-length-spaces-in-content-length-surrounding', (
        b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length'
        b':  42 \r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
        b'xxxxxxxxxxxx'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added, body added'),
    Case('llhttp-content-length-tabs-in-content-length-surrounding', (
        b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length'
        b':\t42\t  \r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
        b'xxxxxxxxxxxxx'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added, body added'),
    Case('llhttp-content-length-spaces-in-content-length-2', (
        b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length'
        b': 4 2\r\n\r\n'
    ),
         400, upstream='error: Invalid character in Content-Length',
         changed='Host added, final CRLF added'),
    Case('llhttp-content-length-spaces-in-content-length-3', (
        b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length'
        b': 13 37\r\n\r\n'
    ),
         400, upstream='error: Invalid character in Content-Length',
         changed='Host added, final CRLF added'),
    Case('llhttp-content-length-empty-content-length', (
        b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length'
        b':\r\n\r\n'
    ),
         400, upstream='error: Empty Content-Length',
         changed='Host added, final CRLF added'),
    Case('llhttp-content-length-content-length-with-cr-instead-of-dash', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nContent\rLeng'
        b'th: 003\r\n\r\nabc'
    ),
         400, upstream='error: Invalid header token',
         changed='Host added'),
    Case('llhttp-content-length-missing-crlf-crlf-before-body', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nContent-Leng'
        b'th: 3\r\n\rabc'
    ),
         400, upstream='error: Expected LF after headers',
         changed='Host added'),
    Case('llhttp-uri-quotes-in-uri', (
        b'GET /with_"lovely"_quotes?foo=\\"bar\\" HT'
        b'TP/1.1\r\nHost: x\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-uri-query-url-with-question-mark', (
        b'GET /test.cgi?foo=bar?baz HTTP/1.1\r\nHost'
        b': x\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-uri-host-terminated-by-a-query-string', (
        b'GET http://hypnotoad.org?hail=all HTTP/1'
        b'.1\r\nHost: x\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added'),
    Case('llhttp-uri-host-port-terminated-by-a-query-string', (
        b'GET http://hypnotoad.org:1234?hail=all H'
        b'TTP/1.1\r\nHost: x\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-uri-query-url-with-vertical-bar-character', (
        b'GET /test.cgi?query=| HTTP/1.1\r\nHost: x\r'
        b'\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-uri-host-port-terminated-by-a-space', (
        b'GET http://hypnotoad.org:1234 HTTP/1.1\r\n'
        b'Host: x\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-uri-disallow-utf-8-in-uri-path-in-strict-mode', (
        b'GET /\xce\xb4\xc2\xb6/\xce\xb4t/pope?q=1#narf HTTP/1.1\r\nHo'
        b'st: github.com\r\n\r\n'
    ),
         400, upstream='error: Invalid char in url path',
         changed='final CRLF added'),
    Case('llhttp-uri-fragment-in-uri', (
        b'GET /forums/1/topics/2375?page=1#posts-1'
        b'7408 HTTP/1.1\r\nHost: x\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-uri-underscore-in-hostname', (
        b'CONNECT home_0.netscape.com:443 HTTP/1.0'
        b'\r\nUser-agent: Mozilla/1.1N\r\nProxy-author'
        b'ization: basic aGVsbG86d29ybGQ=\r\n\r\n'
    ),
         501, upstream='error: Pause on CONNECT/Upgrade',
         changed='final CRLF added'),
    Case('llhttp-uri-host-port-and-basic-auth', (
        b'GET http://a%12:b!&*$@hypnotoad.org:1234'
        b'/toto HTTP/1.1\r\nHost: x\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-uri-space-in-uri', b'GET /foo bar/ HTTP/1.1\r\nHost: x\r\n\r\n',
         400, upstream='error: Expected HTTP/, RTSP/ or ICE/',
         changed='Host added, final CRLF added'),
    Case('llhttp-method-report-request', b'REPORT /test HTTP/1.1\r\nHost: x\r\n\r\n',
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-method-connect-request', (
        b'CONNECT 0-home0.netscape.com:443 HTTP/1.'
        b'0\r\nUser-agent: Mozilla/1.1N\r\nProxy-autho'
        b'rization: basic aGVsbG86d29ybGQ=\r\n\r\nsome'
        b' data\r\nand yet even more data'
    ),
         501, upstream='error: Pause on CONNECT/Upgrade',
         changed=''),
    Case('llhttp-method-connect-request-with-caps', (
        b'CONNECT HOME0.NETSCAPE.COM:443 HTTP/1.0\r'
        b'\nUser-agent: Mozilla/1.1N\r\nProxy-authori'
        b'zation: basic aGVsbG86d29ybGQ=\r\n\r\n'
    ),
         501, upstream='error: Pause on CONNECT/Upgrade',
         changed='final CRLF added'),
    Case('llhttp-method-connect-with-body', (
        b'CONNECT foo.bar.com:443 HTTP/1.0\r\nUser-a'
        b'gent: Mozilla/1.1N\r\nProxy-authorization:'
        b' basic aGVsbG86d29ybGQ=\r\nContent-Length:'
        b' 10\r\n\r\nblarfcicle"'
    ),
         501, upstream='error: Pause on CONNECT/Upgrade',
         changed=''),
    Case('llhttp-method-m-search-request', (
        b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.2'
        b'50:1900\r\nMAN: "ssdp:discover"\r\nST: "ssdp'
        b':all"\r\n\r\n'
    ),
         400, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-patch-request', (
        b'PATCH /file.txt HTTP/1.1\r\nHost: www.exam'
        b'ple.com\r\nContent-Type: application/examp'
        b'le\r\nIf-Match: "e0023aa4e"\r\nContent-Lengt'
        b'h: 10\r\n\r\ncccccccccc'
    ),
         SERVED, upstream='ok',
         changed=''),
    Case('llhttp-method-purge-request', (
        b'PURGE /file.txt HTTP/1.1\r\nHost: www.exam'
        b'ple.com\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-search-request', (
        b'SEARCH / HTTP/1.1\r\nHost: www.example.com'
        b'\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-link-request', (
        b'LINK /images/my_dog.jpg HTTP/1.1\r\nHost: '
        b'example.com\r\nLink: <http://example.com/p'
        b'rofiles/joe>; rel="tag"\r\nLink: <http://e'
        b'xample.com/profiles/sally>; rel="tag"\r\n\r'
        b'\n'
    ),
         SERVED, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-link-request-2', (
        b'UNLINK /images/my_dog.jpg HTTP/1.1\r\nHost'
        b': example.com\r\nLink: <http://example.com'
        b'/profiles/sally>; rel="tag"\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-source-request', (
        b'SOURCE /music/sweet/music HTTP/1.1\r\nHost'
        b': example.com\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-source-request-with-ice', (
        b'SOURCE /music/sweet/music ICE/1.0\r\nHost:'
        b' example.com\r\n\r\n'
    ),
         400, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-options-request-with-rtsp', (
        b'OPTIONS /music/sweet/music RTSP/1.0\r\nHos'
        b't: example.com\r\n\r\n'
    ),
         400, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-announce-request-with-rtsp', (
        b'ANNOUNCE /music/sweet/music RTSP/1.0\r\nHo'
        b'st: example.com\r\n\r\n'
    ),
         400, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-method-pri-request-http2', b'PRI * HTTP/1.1\r\nHost: x\r\n\r\nSM\r\n',
         400, upstream='error: Pause on PRI/Upgrade',
         changed='Host added'),
    Case('llhttp-method-query-request', (
        b'QUERY /contacts HTTP/1.1\r\nHost: example.'
        b'org\r\nContent-Type: example/query\r\nAccept'
        b': text/csv\r\nContent-Length: 41\r\n\r\nselect'
        b' surname, givenname, email limit 10'
    ),
         SERVED, upstream='ok',
         changed=''),
    Case('llhttp-connection-setting-flag', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'keep-alive\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-connection-restarting-when-keep-alive-is-explicitly', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'keep-alive\r\n\r\nPUT /url HTTP/1.1\r\nConnect'
        b'ion: keep-alive\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added'),
    Case('llhttp-connection-no-restart-when-keep-alive-is-off-1-0', b'PUT /url HTTP/1.0\r\n\r\nPUT /url HTTP/1.1\r\n',
         SERVED, upstream='error: Data after `Connection: close`',
         changed=''),
    Case('llhttp-connection-crlf-between-requests-implicit-keep-alive', (
        b'POST / HTTP/1.1\r\nHost: www.example.com\r\n'
        b'Content-Type: application/x-www-form-url'
        b'encoded\r\nContent-Length: 4\r\n\r\nq=42\r\n\r\nGE'
        b'T / HTTP/1.1'
    ),
         SERVED, upstream='ok',
         changed=''),
    Case('llhttp-connection-not-treating-r-as', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'keep\ralive\r\n\r\n'
    ),
         400, upstream='error: Missing expected LF after header value',
         changed='Host added, final CRLF added'),
    Case('llhttp-connection-setting-flag-on-close', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'close\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-connection-setting-flag-on-close-followed-by-tab', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'close\t\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-connection-crlf-between-requests-explicit-close', (
        b'POST / HTTP/1.1\r\nHost: www.example.com\r\n'
        b'Content-Type: application/x-www-form-url'
        b'encoded\r\nContent-Length: 4\r\nConnection: '
        b'close\r\n\r\nq=42\r\n\r\nGET / HTTP/1.1'
    ),
         SERVED, upstream='error: Data after `Connection: close`',
         changed=''),
    Case('llhttp-connection-crlf-between-requests-explicit-close-followed-by-tab', (
        b'POST / HTTP/1.1\r\nHost: www.example.com\r\n'
        b'Content-Type: application/x-www-form-url'
        b'encoded\r\nContent-Length: 4\r\nConnection: '
        b'close\t\r\n\r\nq=42\r\n\r\nGET / HTTP/1.1'
    ),
         SERVED, upstream='error: Data after `Connection: close`',
         changed=''),
    Case('llhttp-connection-sample', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'close, token, upgrade, token, keep-alive'
        b'\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-connection-multiple-tokens-with-folding-and-lws', (
        b'GET /demo HTTP/1.1\r\nHost: x\r\nConnection:'
        b' keep-alive, upgrade\r\nUpgrade: WebSocket'
        b'\r\n\r\nHot diggity dogg'
    ),
         SERVED, upstream='error: Pause on CONNECT/Upgrade',
         changed='Host added'),
    Case('llhttp-connection-invalid-whitespace-token-with-connection-header-field', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection :'
        b' upgrade\r\nContent-Length: 4\r\nUpgrade: ws'
        b'\r\n\r\nabcdefgh'
    ),
         400, upstream='error: Invalid header field char',
         changed='Host added'),
    Case('llhttp-connection-setting-a-flag-and-pausing', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'upgrade\r\nUpgrade: ws\r\n\r\n'
    ),
         SERVED, upstream='error: Pause on CONNECT/Upgrade',
         changed='Host added, final CRLF added'),
    Case('llhttp-connection-emitting-part-of-body-and-pausing', (
        b'PUT /url HTTP/1.1\r\nHost: x\r\nConnection: '
        b'upgrade\r\nContent-Length: 4\r\nUpgrade: ws\r'
        b'\n\r\nabcdefgh'
    ),
         501, upstream='error: Pause on CONNECT/Upgrade',
         changed='Host added'),
    Case('llhttp-connection-upgrade-get-request', (
        b'GET /demo HTTP/1.1\r\nHost: example.com\r\nC'
        b'onnection: Upgrade\r\nSec-WebSocket-Key2: '
        b'12998 5 Y3 1  .P00\r\nSec-WebSocket-Protoc'
        b'ol: sample\r\nUpgrade: WebSocket\r\nSec-WebS'
        b'ocket-Key1: 4 @1  46546xW%0l 1 5\r\nOrigin'
        b': http://example.com\r\n\r\nHot diggity dogg'
    ),
         SERVED, upstream='error: Pause on CONNECT/Upgrade',
         changed=''),
    Case('llhttp-connection-upgrade-post-request', (
        b'POST /demo HTTP/1.1\r\nHost: example.com\r\n'
        b'Connection: Upgrade\r\nUpgrade: HTTP/2.0\r\n'
        b'Content-Length: 15\r\n\r\nsweet post bodyHot'
        b' diggity dogg'
    ),
         501, upstream='error: Pause on CONNECT/Upgrade',
         changed=''),
    Case('llhttp-sample-simple-request', (
        b'OPTIONS /url HTTP/1.1\r\nHost: x\r\nHeader1:'
        b' Value1\r\nHeader2:\t Value2\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-sample-request-with-method-starting-with-h', b'HEAD /url HTTP/1.1\r\nHost: x\r\n\r\n',
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-sample-curl-get', (
        b'GET /test HTTP/1.1\r\nUser-Agent: curl/7.1'
        b'8.0 (i486-pc-linux-gnu) libcurl/7.18.0 O'
        b'penSSL/0.9.8g zlib/1.2.3.3 libidn/1.1\r\nH'
        b'ost: 0.0.0.0=5000\r\nAccept: */*\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-sample-firefox-get', (
        b'GET /favicon.ico HTTP/1.1\r\nHost: 0.0.0.0'
        b'=5000\r\nUser-Agent: Mozilla/5.0 (X11; U; '
        b'Linux i686; en-US; rv:1.9) Gecko/2008061'
        b'015 Firefox/3.0\r\nAccept: text/html,appli'
        b'cation/xhtml+xml,application/xml;q=0.9,*'
        b'/*;q=0.8\r\nAccept-Language: en-us,en;q=0.'
        b'5\r\nAccept-Encoding: gzip,deflate\r\nAccept'
        b'-Charset: ISO-8859-1,utf-8;q=0.7,*;q=0.7'
        b'\r\nKeep-Alive: 300\r\nConnection: keep-aliv'
        b'e\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-sample-dumbpack', (
        b'GET /dumbpack HTTP/1.1\r\nHost: x\r\naaaaaaa'
        b'aaaaaa:++++++++++\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-sample-no-headers-and-no-body', (
        b'GET /get_no_headers_no_body/world HTTP/1'
        b'.1\r\nHost: x\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-sample-one-header-and-no-body', (
        b'GET /get_one_header_no_body HTTP/1.1\r\nHo'
        b'st: x\r\nAccept: */*\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-sample-apache-bench-get', (
        b'GET /test HTTP/1.0\r\nHost: 0.0.0.0:5000\r\n'
        b'User-Agent: ApacheBench/2.3\r\nAccept: */*'
        b'\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-sample-prefix-newline', b'\r\nGET /test HTTP/1.1\r\nHost: x\r\n\r\n',
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-sample-no-http-version', b'GET /\r\n\r\n',
         400, upstream='ok',
         changed='final CRLF added'),
    Case('llhttp-sample-line-folding-in-header-value-with-lf', (
        b'GET / HTTP/1.1\r\nHost: x\r\nLine1:   abc\n\td'
        b'ef\n ghi\n\t\tjkl\n  mno \n\t \tqrs\nLine2: \t lin'
        b'e2\t\nLine3:\n line3\nLine4: \n \nConnection:\n'
        b' close\n\n'
    ),
         400, upstream='error: Missing expected CR after header value',
         changed='Host added'),
    Case('llhttp-sample-no-lf-after-cr', b'GET / HTTP/1.1\rLine: 1',
         400, upstream='error: Expected CRLF after version',
         changed=''),
    Case('llhttp-sample-request-starting-with-crlf', (
        b'\r\nGET /url HTTP/1.1\r\nHost: x\r\nHeader1: V'
        b'alue1\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-sample-extended-characters', (
        b'GET / HTTP/1.1\r\nHost: x\r\nTest: D\xc3\xbcsseldo'
        b'rf\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-sample-255-ascii-in-header-value', (
        b'OPTIONS /url HTTP/1.1\r\nHost: x\r\nHeader1:'
        b' Value1\r\nHeader2: \xc3\xbfValue2\r\n\r\n'
    ),
         SERVED, upstream='ok',
         changed='Host added, final CRLF added'),
    Case('llhttp-pipelining-should-parse-multiple-events', (
        b'POST /aaa HTTP/1.1\r\nHost: x\r\nContent-Len'
        b'gth: 3\r\n\r\nAAA\r\nPUT /bbb HTTP/1.1\r\nConten'
        b't-Length: 4\r\n\r\nBBBB\r\nPATCH /ccc HTTP/1.1'
        b'\r\nContent-Length: 5\r\n\r\nCCCC'
    ),
         SERVED, upstream='ok',
         changed='Host added'),
]

H11: list[Case] = [
    Case('h11-http-1-0-head-with-a-header', b'HEAD /foo HTTP/1.0\r\nSome: header\r\n\r\n',
         SERVED, upstream='ok'),
    Case('h11-http-1-0-head-without-headers', b'HEAD /foo HTTP/1.0\r\n\r\n',
         SERVED, upstream='ok'),
    Case('h11-obsolete-line-folding', (
        b'HEAD /foo HTTP/1.1\r\nHost: example.com\r\nS'
        b'ome: multi-line\r\n header\r\n\tnonsense\r\n   '
        b' \t   \t\tI guess\r\nConnection: close\r\nMore-'
        b'nonsense: in the\r\n    last header  \r\n\r\n'
    ),
         400, upstream='ok'),
    Case('h11-folded-first-header-line', b'HEAD /foo HTTP/1.1\r\n  folded: line\r\n\r\n',
         400, upstream='error'),
    Case('h11-spaces-before-colon', b'HEAD /foo HTTP/1.1\r\nfoo  : line\r\n\r\n',
         400, upstream='error'),
    Case('h11-tab-before-colon', b'HEAD /foo HTTP/1.1\r\nfoo\t: line\r\n\r\n',
         400, upstream='error'),
    Case('h11-empty-header-name', b'HEAD /foo HTTP/1.1\r\n: line\r\n\r\n',
         400, upstream='error'),
    Case('h11-chunk-size-of-100-digits', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer'
        b'-Encoding: chunked\r\n\r\n999999999999999999'
        b'9999999999999999999999999999999999999999'
        b'9999999999999999999999999999999999999999'
        b'99\r\nxxx'
    ),
         400, upstream='error'),
    Case('h11-nul-in-chunk-size', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer'
        b'-Encoding: chunked\r\n\r\n10\x00\r\nxxx'
    ),
         400, upstream='error'),
    Case('h11-chunk-extensions', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer'
        b'-Encoding: chunked\r\n\r\n5; hello=there\r\nxx'
        b'xxx\r\n0; random="junk"; some=more; canbe='
        b'lonnnnngg\r\n\r\n'
    ),
         400, upstream='ok'),
    Case('h11-whitespace-after-chunk-size', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer'
        b'-Encoding: chunked\r\n\r\n5   \t \r\n01234\r\n0\r\n'
        b'\r\n'
    ),
         400, upstream='ok'),
    Case('h11-chunk-data-followed-by', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer'
        b'-Encoding: chunked\r\n\r\n3\r\nxxx__1a\r\n'
    ),
         400, upstream='error'),
    Case('h11-chunk-data-followed-by-cr', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer'
        b'-Encoding: chunked\r\n\r\n3\r\nxxx\r_1a\r\n'
    ),
         400, upstream='error'),
    Case('h11-chunk-data-followed-by-lf', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer'
        b'-Encoding: chunked\r\n\r\n3\r\nxxx_\n1a\r\n'
    ),
         400, upstream='error'),
    Case('h11-space-in-header-name', (
        b'GET / HTTP/1.1\r\nHost: x\r\nfoo bar: baz\r\n\r'
        b'\n'
    ),
         400, upstream='error'),
    Case('h11-nul-in-header-name', (
        b'GET / HTTP/1.1\r\nHost: x\r\nfoo\x00bar: baz\r\n\r'
        b'\n'
    ),
         400, upstream='error'),
    Case('h11-8-bit-byte-in-header-name', (
        b'GET / HTTP/1.1\r\nHost: x\r\nfoo\xffbar: baz\r\n\r'
        b'\n'
    ),
         400, upstream='error'),
    Case('h11-control-byte-in-header-name', (
        b'GET / HTTP/1.1\r\nHost: x\r\nfoo\x01bar: baz\r\n\r'
        b'\n'
    ),
         400, upstream='error'),
    Case('h11-cr-in-header-value', (
        b'GET / HTTP/1.1\r\nHost: x\r\nfoo: bar\rbaz\r\n\r'
        b'\n'
    ),
         400, upstream='error'),
    Case('h11-content-length-asdf', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nContent-'
        b'Length: asdf\r\n\r\n'
    ),
         400, upstream='error'),
    Case('h11-content-length-1x', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nContent-'
        b'Length: 1x\r\n\r\nx'
    ),
         400, upstream='error'),
    Case('h11-content-length-1-1-2-as-lines', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nContent-'
        b'Length: 1\r\nContent-Length: 1\r\nContent-Le'
        b'ngth: 2\r\n\r\nxx'
    ),
         400, upstream='error'),
    Case('h11-content-length-0-0', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nContent-'
        b'Length: 0 , 0\r\n\r\n'
    ),
         400, upstream='ok'),
    Case('h11-content-length-of-21-digits', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nContent-'
        b'Length: 111111111111111111111\r\n\r\n'
    ),
         400, upstream='error'),
    Case('h11-content-length-twice-same-value', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nContent-'
        b'Length: 1\r\nContent-Length: 1\r\n\r\nx'
    ),
         400, upstream='ok'),
    Case('h11-transfer-encoding-gzip', (
        b'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer'
        b'-Encoding: gzip\r\n\r\n'
    ),
         501, upstream='error'),
]
