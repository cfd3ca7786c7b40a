"""Bounded reading of hostile streams (`connectors.bounded_streams`): LF-only line splitting with a
line limit, Content-Encoding decoded piece by piece, bodies read up to a cap."""

from __future__ import annotations

import gzip
import zlib

import pytest

from connectors.bounded_streams import (
    BoundedDecoder,
    LineSplitter,
    OversizeLine,
    UnsupportedEncoding,
)
from operators.events import RAW_EXCERPT_BYTES

NOT_BREAKS = "x\x85y\u2028z\u2029\x1c\x0b\x0c\rw"
LONG = b"0123456789abcdefXYZ"


def split(chunks: list[bytes], limit: int = 16) -> tuple[list[bytes | OversizeLine], int]:
    splitter = LineSplitter(limit)
    out = [line for chunk in chunks for line in splitter.feed(chunk)]
    return out, splitter.buffered


@pytest.mark.parametrize(
    ("chunks", "lines", "left"),
    [
        ([b"a\nb\n"], [b"a", b"b"], 0),
        ([b"a\r\nb\r\n"], [b"a", b"b"], 0),
        ([b"a", b"b", b"\n"], [b"ab"], 0),
        ([b"partial"], [], 7),
        ([b"\n\n"], [b"", b""], 0),
        # JSON carries these unescaped; str.splitlines (and httpx's aiter_lines) breaks at them
        ([NOT_BREAKS.encode() + b"\n"], [NOT_BREAKS.encode()], 0),
        ([b"0123456789abcdef\n"], [b"0123456789abcdef"], 0),  # exactly the limit
        ([b"0123456789abcdefX\nok\n"], [OversizeLine(b"0123456789abcdefX", 17), b"ok"], 0),
        ([b"0123456789", b"abcdefXYZ", b"more", b"\nok\n"], [OversizeLine(LONG, 23), b"ok"], 0),
        ([b"0123456789abcdefXYZ", b"still going"], [], 0),  # nothing held while skipping
    ],
)  # fmt: skip
def test_line_splitter(chunks: list[bytes], lines: list[object], left: int) -> None:
    assert split(chunks) == (lines, left)


def test_line_splitter_keeps_only_an_excerpt_of_a_long_line() -> None:
    splitter = LineSplitter(1024)
    out = []
    for _ in range(200):  # 200 x 64 KiB = 12.5 MiB without a newline
        out += list(splitter.feed(b"z" * 65536))
        assert splitter.buffered <= 1024
    out += list(splitter.feed(b"\nnext\n"))
    assert len(out) == 2 and out[1] == b"next"
    assert isinstance(out[0], OversizeLine)
    assert out[0].size == 200 * 65536 and len(out[0].excerpt) == RAW_EXCERPT_BYTES


def _deflate(data: bytes, wbits: int) -> bytes:
    c = zlib.compressobj(wbits=wbits)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", lambda b: _deflate(b, zlib.MAX_WBITS)),
        ("deflate", lambda b: _deflate(b, -zlib.MAX_WBITS)),  # raw deflate, as some servers send
    ],
)
def test_bounded_decoder_decodes_in_bounded_pieces(encoding: str | None, encode: object) -> None:
    plain = b"event: update\ndata: {}\n\n" * 20_000 + b"\x00" * 300_000
    body = encode(plain)  # type: ignore[operator]
    decoder = BoundedDecoder(encoding, piece=4096)
    out = [
        piece for at in range(0, len(body), 1000) for piece in decoder.feed(body[at : at + 1000])
    ]
    assert b"".join(out) == plain
    assert max(map(len, out)) <= 4096


def test_a_gzip_bomb_is_decoded_piece_by_piece() -> None:
    bomb = gzip.compress(b"\x00" * (64 << 20))  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    decoder = BoundedDecoder("gzip", piece=65536)
    total = 0
    for piece in decoder.feed(bomb):
        assert len(piece) <= 65536
        total += len(piece)
    assert total == 64 << 20


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip", "gzip, br"])
def test_unsupported_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(UnsupportedEncoding):
        BoundedDecoder(encoding)


def test_corrupt_compressed_stream_is_a_connection_error() -> None:
    decoder = BoundedDecoder("gzip")
    with pytest.raises(ConnectionError):
        list(decoder.feed(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10))
