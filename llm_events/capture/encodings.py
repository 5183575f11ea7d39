"""Content codings: undoing a compressed answer so it can be recorded, and asking upstream
only for the codings that can be undone.

Bytes go to the client exactly as the upstream sent them; the recorder reads a decoded copy.
gzip and deflate are undone with :mod:`zlib`; ``br`` when ``brotli`` (or ``brotlicffi``) is
installed, ``zstd`` when ``zstandard`` is (the libraries httpx uses for them).  A client
that accepts more (Node's fetch sends ``gzip, deflate, br``) has the proxy narrow its
``Accept-Encoding`` to what can be undone, so a provider never answers in a coding the
recorder cannot read: the client still gets a coding it asked for.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from functools import cache, lru_cache


def _module(*names: str) -> object | None:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


@cache
def decodable() -> frozenset[str]:
    """The content codings the recorder can undo here."""
    codings = {"identity", "gzip", "x-gzip", "deflate"}
    if _module("brotli", "brotlicffi") is not None:
        codings.add("br")
    if _module("zstandard") is not None:
        codings.add("zstd")
    return frozenset(codings)


@lru_cache(maxsize=64)  # clients send a few values over and over
def narrowed_accept_encoding(value: str) -> str:
    """``Accept-Encoding`` with only the codings :func:`decodable` (``identity`` when none
    is left); ``*`` stands for what it can, so it is spelled out."""
    kept: list[str] = []
    for item in value.split(","):
        coding = item.split(";", 1)[0].strip().lower()
        if coding == "*":
            kept.extend(c for c in ("gzip", "deflate", "br", "zstd") if c in decodable())
        elif coding in decodable():
            kept.append(item.strip())
    return ", ".join(dict.fromkeys(kept)) or "identity"


def _zlib() -> Callable[[bytes], bytes]:
    """gzip or zlib-wrapped deflate (the header tells), and raw deflate, which some servers
    send as ``deflate``: until the first bytes come out, what came in is kept, to be read
    again as raw deflate if the header turns out not to be one."""
    z = zlib.decompressobj(zlib.MAX_WBITS | 32)
    head: bytearray | None = bytearray()

    def undo(data: bytes) -> bytes:
        nonlocal z, head
        if head is None:
            return z.decompress(data)
        head += data
        try:
            out = z.decompress(data)
        except zlib.error:
            z, data, head = zlib.decompressobj(-zlib.MAX_WBITS), bytes(head), None
            return z.decompress(data)
        if out:
            head = None
        return out

    return undo


def _step(coding: str) -> Callable[[bytes], bytes] | None:
    if coding in ("gzip", "x-gzip", "deflate"):
        return _zlib()
    if coding == "br":
        brotli = _module("brotli", "brotlicffi")
        if brotli is not None:
            return brotli.Decompressor().process  # type: ignore[attr-defined]
    if coding == "zstd":
        zstandard = _module("zstandard")
        if zstandard is not None:
            return zstandard.ZstdDecompressor().decompressobj().decompress  # type: ignore[attr-defined]
    return None


class Decoder:
    """Undoes a response's ``Content-Encoding`` chunk by chunk (``ok`` False when it cannot:
    a corrupt body; the recorder then reads nothing of it).

    A coding it does not know is passed over, as the clients do (httpx, and so the openai
    and anthropic SDKs, and Node's fetch read such a body as it is): the recorder reads
    what the client read.  ``skipped`` names those codings."""

    def __init__(self, encoding: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        steps = [_step(c) for c in reversed(codings)]  # the last coding applied comes off first
        self.skipped = [c for c, s in zip(reversed(codings), steps, strict=True) if s is None]
        self.ok = True
        self._steps = [s for s in steps if s is not None]

    def __call__(self, data: bytes) -> bytes:
        if not self.ok:
            return b""
        try:
            for step in self._steps:
                data = step(data)
        except Exception:  # zlib.error, brotli.error, zstd errors: no common base
            self.ok = False
            return b""
        return data


def undone_whole(data: bytes, encoding: str, limit: int) -> bytes | None:
    """A whole body (a request's) with its ``Content-Encoding`` undone, or ``None`` when it
    is corrupt, in a coding the recorder cannot undo, or would come out over ``limit``
    bytes (a small body can stand for a huge one)."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    if any(c != "identity" and c not in decodable() for c in codings):
        return None
    decoder = Decoder(encoding)
    out = bytearray()
    step = 16 * 1024
    for i in range(0, len(data), step):
        out += decoder(data[i : i + step])
        if not decoder.ok or len(out) > limit:
            return None
    return bytes(out)
