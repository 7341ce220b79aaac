"""The HTTP client under the openai SDK: its aiohttp client, keeping every byte that came.

Why aiohttp: with 200 replies streaming on one process the SDK's aiohttp client
(`openai[aiohttp]`) used 75-77 % of the core against 96-98 % for its default httpx one,
whose AnyIO sockets pause and resume reading around every chunk (bench part "concurrent",
K = 200, interleaved runs; bench/results.md).

What is changed here: aiohttp's `StreamReader` raises a dropped connection's error before it
hands over the bytes it had already received, so a reply whose model connection dropped
lost its last tokens (httpx hands over every byte, then raises). The response stream below
drains the reader's buffer first and raises after, so a cut-off reply keeps everything that
reached us. `tests/integration/test_openai_provider.py` holds it to that (the fake server's
`drop_after`), and pins the private names it uses.

`AI_HTTP_CLIENT=httpx` reads through the SDK's default httpx client instead (a server or
proxy the aiohttp client does not get along with).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx2
from openai._vendor.httpx_aiohttp.transport import (
    AiohttpResponseStream,
    AiohttpTransport,
    map_aiohttp_exceptions,
)

# As many model connections as replies in flight (the SDK's own default limits).
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


class EveryByteStream(AiohttpResponseStream):
    """A response body read chunk by chunk; on a dropped connection, what came, then the error."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._aiohttp_response.content
        with map_aiohttp_exceptions():
            while True:
                try:
                    chunk = await content.readany()
                except aiohttp.ClientPayloadError:
                    # Received before the drop and still buffered: aiohttp's readers all
                    # raise before returning it, its `_read_nowait` does not.
                    rest = content._read_nowait(-1)
                    if rest:
                        yield rest
                    raise
                if not chunk:  # the end of the body
                    return
                yield chunk


class EveryByteTransport(AiohttpTransport):
    """The SDK's aiohttp transport with `EveryByteStream` bodies."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        if isinstance(response.stream, AiohttpResponseStream):
            response.stream = EveryByteStream(response.stream._aiohttp_response)
        return response


def http_client(kind: str = "aiohttp") -> httpx2.AsyncClient:
    """A new client for one event loop's `openai.AsyncOpenAI`: "aiohttp" or "httpx"."""
    import openai

    if kind == "httpx":
        return openai.DefaultAsyncHttpxClient()
    return openai.DefaultAioHttpClient(transport=EveryByteTransport(limits=LIMITS))
