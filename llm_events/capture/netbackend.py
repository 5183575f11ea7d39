"""httpcore's network layer on plain asyncio streams, for the proxy's upstream pool.

httpx (through httpcore) reaches the network through anyio by default; on asyncio that layer
cost half of each forwarded request's CPU time here (1.4 -> 0.8 ms per request in an A/B on
this machine, same pool, same upstream).  The proxy only ever runs on asyncio (uvicorn), so
its pool talks to asyncio streams directly; TLS and HTTP/2 (ALPN) work as before.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpcore


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            if timeout is None:
                return await self.reader.read(max_bytes)
            async with asyncio.timeout(timeout):
                return await self.reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout(f"no data from upstream for {timeout} s") from None
        except OSError as e:
            raise httpcore.ReadError(str(e)) from e

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self.writer.write(buffer)
            if self.writer.transport.get_write_buffer_size() > 65536:
                async with asyncio.timeout(timeout):
                    await self.writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout(f"upstream did not take data for {timeout} s") from None
        except OSError as e:
            raise httpcore.WriteError(str(e)) from e

    async def aclose(self) -> None:
        self.writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self.writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"TLS handshake took over {timeout} s") from None
        except (OSError, ssl.SSLError) as e:
            raise httpcore.ConnectError(str(e)) from e
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self.writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self.writer.get_extra_info("sockname")
        if info == "server_addr":
            return self.writer.get_extra_info("peername")
        if info == "socket":
            return self.writer.get_extra_info("socket")
        if info == "is_readable":  # an idle pooled connection the server closed
            return self.reader.at_eof() or self.writer.transport.is_closing()
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    limit=1 << 20,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from None
        except OSError as e:
            raise httpcore.ConnectError(str(e)) from e
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from None
        except OSError as e:
            raise httpcore.ConnectError(str(e)) from e
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


#: Pools a proxy's upstream connections are spread over (see :class:`ShardedPool`): 32
#: cost 1.21 ms of CPU per forwarded request at 64 in flight, 8 cost 1.52 (interleaved A/B,
#: same upstream); 64 were no better.
SHARDS = 32


class _CountedStream:
    """A response body that tells its shard when it is closed (the request is over)."""

    def __init__(self, stream: Any, done: Any) -> None:
        self.stream, self.done = stream, done

    async def __aiter__(self) -> Any:
        async for chunk in self.stream:
            yield chunk

    async def aclose(self) -> None:
        done, self.done = self.done, None
        try:
            if hasattr(self.stream, "aclose"):
                await self.stream.aclose()
        finally:
            if done is not None:
                done()


class ShardedPool:
    """Several httpcore pools, each request sent through the least busy (the first on a
    tie, so a quiet proxy keeps using one connection).

    httpcore's pool walks all its connections, and for each idle one all of them again,
    every time a request starts or ends: with 64 requests in flight that walk was most of
    the proxy's CPU time per request.  Many pools of a few connections each walk little.
    """

    def __init__(self, pools: list[httpcore.AsyncConnectionPool]) -> None:
        self.pools = pools
        self.busy = [0] * len(pools)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        busy = self.busy
        i = busy.index(min(busy))
        busy[i] += 1
        released = False

        def done() -> None:
            nonlocal released
            if not released:
                released = True
                busy[i] -= 1

        try:
            response = await self.pools[i].handle_async_request(request)
        except BaseException:
            done()
            raise
        response.stream = _CountedStream(response.stream, done)
        return response

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()

    async def __aenter__(self) -> ShardedPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def asyncio_transport(*, http2: bool, limits: Any, retries: int = 0, shards: int = 1) -> Any:
    """An ``httpx.AsyncHTTPTransport`` whose pool uses :class:`AsyncioBackend` (its pool is
    replaced after construction: httpx takes no network backend argument; where a future
    httpx has no ``_pool``, the default pool stays).  ``shards`` > 1: a :class:`ShardedPool`
    of that many pools sharing ``limits``."""
    import httpx

    transport = httpx.AsyncHTTPTransport(http2=http2, limits=limits, retries=retries)
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool):

        def one(n: int) -> httpcore.AsyncConnectionPool:
            def share(total: int | None) -> int | None:
                return None if total is None else max(1, -(-total // n))

            return httpcore.AsyncConnectionPool(
                ssl_context=pool._ssl_context,
                max_connections=share(limits.max_connections),
                max_keepalive_connections=share(limits.max_keepalive_connections),
                keepalive_expiry=limits.keepalive_expiry,
                http1=True,
                http2=http2,
                retries=retries,
                network_backend=AsyncioBackend(),
            )

        if shards > 1:
            transport._pool = ShardedPool([one(shards) for _ in range(shards)])
        else:
            transport._pool = one(1)
    return transport
