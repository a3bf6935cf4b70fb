"""Every request corpus against the sans-I/O parser, in-process: bytes in, a request or a refusal out.

The malformed corpus, the odd-but-valid requests and llhttp's and h11's cases
(tests/servers/corpus/upstream.py) each get the answer a hand-written server gives
(:func:`outcome`: the refusal's status, or SERVED when the request would reach the app),
whole and fed in pieces of every few sizes: where the reads end must not change the
answer. test_malformed.py and test_corpus.py send a sample of the same cases over real
sockets to each hand-written mode and hold them to this very answer.
"""

from __future__ import annotations

import time

import pytest

from servers.parse import MAX_CHUNK_LINE, Limits, ProtocolError, Request, RequestParser
from servers.wsgi import ServerInfo, build_environ
from tests.servers.corpus.upstream import H11, LLHTTP, SERVED
from tests.servers.malformed import CORPUS
from tests.servers.malformed import SERVED as SERVED_CASES

INFO = ServerInfo(software="test", host="127.0.0.1", port=1)
PIECES = (1, 2, 7, 64, 1 << 20)  # 1 << 20: the whole request in one read
INCOMPLETE = "incomplete"  # the parser wants more bytes: a server would wait, then time out


def feed(raw: bytes, piece: int, limits: Limits | None = None) -> RequestParser:
    parser = RequestParser(limits or Limits())
    for i in range(0, len(raw), piece):
        parser.feed(raw[i : i + piece])
    return parser


def outcome(raw: bytes, piece: int = 1 << 20) -> int | str:
    """What a hand-written server answers to ``raw`` on a fresh connection: a refusal's status, or SERVED."""
    parser = feed(raw, piece)
    try:
        request = parser.next_request()
        if request is None:
            return INCOMPLETE
        build_environ(request, INFO, ("127.0.0.1", 1))  # refuses what the parser passes but the environ cannot hold
    except ProtocolError as exc:
        return exc.status
    return SERVED


def all_requests(parser: RequestParser) -> list[Request]:
    out = []
    while (request := parser.next_request()) is not None:
        out.append(request)
    return out


CASES = [(name, raw, expected) for name, raw, expected in CORPUS]
CASES += [(name, raw, {SERVED}) for name, raw in SERVED_CASES]
CASES += [(c.name, c.raw, {c.expect}) for c in LLHTTP + H11]


@pytest.mark.parametrize(("name", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_corpus_case_in_process(name: str, raw: bytes, expected: set[int | str]) -> None:
    answers = {piece: outcome(raw, piece) for piece in PIECES}
    assert set(answers.values()) <= expected, answers


def test_pipelined_requests_after_a_chunked_body_are_checked_one_by_one() -> None:
    post = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;e=1\r\n\n\n\n\r\n0\r\n\r\n"
    good = post + b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = post + b"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n"  # two spaces: llhttp takes it, REQUEST_LINE does not
    for piece in PIECES:
        requests = all_requests(feed(good, piece))
        assert [(r.method, r.body) for r in requests] == [("POST", b"hello\n\n\n"), ("GET", b"")], piece
        parser = feed(bad, piece)
        assert parser.next_request() is not None
        with pytest.raises(ProtocolError) as refused:
            parser.next_request()
        assert refused.value.status == 400


def test_a_chunk_size_line_is_capped_however_it_arrives() -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    over = head + b"1;" + b"e" * MAX_CHUNK_LINE + b"\r\nx\r\n0\r\n\r\n"
    for piece in PIECES:
        assert outcome(over, piece) == 400, piece
    # A 50 MB extension is refused within its first few KiB, not read to its end.
    parser = RequestParser(Limits())
    parser.feed(head + b"1;")
    for _ in range(3):
        parser.feed(b"e" * 4096)
    with pytest.raises(ProtocolError):
        parser.next_request()


def test_a_chunked_body_costs_the_same_whatever_its_bytes() -> None:
    """Issue 19.1: fed a line at a time, 10 MiB of newlines cost ~4.5 s of CPU; now as much as 10 MiB of x."""
    def cost(fill: bytes) -> float:
        body = b"".join(b"10000\r\n" + fill * 0x10000 + b"\r\n" for _ in range(150)) + b"0\r\n\r\n"
        raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        start = time.process_time()
        requests = all_requests(feed(raw, 0x10000, Limits(max_body=16 << 20)))
        assert len(requests[0].body) == 150 * 0x10000
        return time.process_time() - start

    cost(b"x")  # warm up
    plain, newlines = min(cost(b"x") for _ in range(3)), min(cost(b"\n") for _ in range(3))
    assert newlines < 2 * plain + 0.05, (plain, newlines)


def test_header_bytes_are_counted_per_request_when_reads_never_end_on_a_boundary() -> None:
    """Issue 19.7: 1,200 small pipelined requests written 31 bytes at a time are all read (was a 431 after ~24 KiB)."""
    one = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
    assert len(one) % 31
    parser = feed(one * 1200, 31, Limits(keepalive=5))
    assert len(all_requests(parser)) == 1200


@pytest.mark.parametrize(("value", "expected"), [(8181, SERVED), (8182, 431)])
def test_a_field_line_is_counted_as_gunicorn_counts_it(value: int, expected: int | str) -> None:
    """ "X-Big: " + value + CRLF: 8,190 bytes are served, 8,191 refused (gunicorn's limit_request_field_size)."""
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * value + b"\r\n\r\n"
    assert outcome(raw) == expected
