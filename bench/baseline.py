"""The floor: a bare `websockets` server that forwards the fake model's stream as plain frames.

No Django, no Channels, no database: the client sends the app's own
``{"action": "send", "message": ...}``; the server asks the model (one kept-alive HTTP
connection per socket) and forwards every token as its own frame ``t:<text>``, then
``d:<tokens>``. Two ways to read the model:

* ``--model-client raw`` (default): a minimal asyncio HTTP/1.1 + SSE reader — the floor
  for Python on this machine;
* ``--model-client sdk``: the ``openai`` SDK, as the app uses it — what the SDK costs.

Run: ``python -m bench.baseline --model-url http://127.0.0.1:PORT/v1 [--port 0]``; the
first stdout line is ``ws://127.0.0.1:<port>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, serve


class RawModel:
    """Streams a chat completion over one kept-alive HTTP/1.1 connection, parsing SSE."""

    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.path = url.path.rstrip("/") + "/chat/completions"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def stream(self, text: str) -> AsyncIterator[str]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        body = json.dumps(
            {
                "model": "fake-model",
                "stream": True,
                "messages": [{"role": "user", "content": text}],
            }
        ).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"model answered {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return
            data = await reader.readexactly(size + 2)
            for line in data.split(b"\n"):
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield content

    async def aclose(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


class SdkModel:
    """Streams a chat completion through the openai SDK (as the app's provider does)."""

    def __init__(self, base_url: str) -> None:
        import openai

        self.client = openai.AsyncOpenAI(api_key="not-needed", base_url=base_url, max_retries=0)

    async def stream(self, text: str) -> AsyncIterator[str]:
        response: Any = await self.client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": text}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in response:
            for choice in chunk.choices or []:
                if choice.delta is not None and choice.delta.content:
                    yield choice.delta.content

    async def aclose(self) -> None:
        await self.client.close()


async def serve_forever(base_url: str, port: int, model_client: str) -> None:
    async def handler(ws: ServerConnection) -> None:
        model = SdkModel(base_url) if model_client == "sdk" else RawModel(base_url)
        try:
            async for message in ws:
                try:
                    payload = json.loads(message)
                except ValueError:
                    continue
                if not isinstance(payload, dict) or payload.get("action") != "send":
                    continue
                count = 0
                async for delta in model.stream(str(payload.get("message", ""))):
                    await ws.send("t:" + delta)
                    count += 1
                await ws.send(f"d:{count}")
        finally:
            await model.aclose()

    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        max_size=None,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"ws://127.0.0.1:{bound}/", flush=True)
        await done.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-url", required=True, help="the fake model's base URL (…/v1)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model-client", choices=("raw", "sdk"), default="raw")
    args = parser.parse_args(argv)
    asyncio.run(serve_forever(args.model_url, args.port, args.model_client))


if __name__ == "__main__":
    main()
