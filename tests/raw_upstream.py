"""An upstream on 127.0.0.1 that speaks raw bytes, for faults an ASGI server cannot make:
an HTML page, a body that is not UTF-8, a wrong ``Content-Encoding``, a stream that ends
before its last event, a connection reset, an answer that never comes.

Each connection reads one request (head and ``Content-Length`` body) and hands the socket
to ``handler(conn, head, body)``; ``closed`` is set when the proxy closes a connection
whose handler waits on :meth:`wait_closed`.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterable


def http_response(status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n" + body


def chunked_head(status: int = 200, content_type: str = "text/event-stream") -> bytes:
    return (
        f"HTTP/1.1 {status} OK\r\ncontent-type: {content_type}\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def reset(conn: socket.socket) -> None:
    """Close with a TCP reset (RST), not a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


class RawUpstream:
    def __init__(self, handler: Callable[[socket.socket, bytes, bytes], None]) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[bytes] = []
        self.closed = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                got = conn.recv(65536)
                if not got:
                    return
                data += got
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head)
            self.handler(conn, head, body)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def wait_closed(self, conn: socket.socket, timeout: float) -> bool:
        """Wait up to ``timeout`` for the peer to close ``conn``; True (and ``closed`` set)
        when it did."""
        conn.settimeout(timeout)
        try:
            while conn.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:  # a reset is a close too
            pass
        self.closed.set()
        return True
