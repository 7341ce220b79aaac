"""A websocket flood from its own process: `python -m tests.wsflood URL COOKIE ORIGIN SECONDS RATE`.

Sends heartbeat and resync frames at RATE frames a second for SECONDS, reconnecting whenever
the server closes the socket, and prints what happened as JSON. Its own process, so the
measuring test's event loop (and its GIL) is not slowed by the flood it measures.
"""

from __future__ import annotations

import json
import sys
import time
import uuid


def flood(url: str, cookie: str, origin: str, seconds: float, rate: float) -> dict[str, int]:
    """Flood for `seconds`; returns frames sent, sockets opened and close codes seen."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    frames = [
        json.dumps({"action": "heartbeat", "streaming": [str(uuid.uuid4())]}),
        json.dumps({"action": "resync", "last_seq": 0, "streaming": [str(uuid.uuid4())]}),
    ]
    out: dict[str, int] = {"frames": 0, "sockets": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with connect(
                url,
                origin=origin,  # type: ignore[arg-type]
                additional_headers={"Cookie": cookie},
                max_size=None,
            ) as ws:
                out["sockets"] += 1
                start, sent = time.monotonic(), 0
                while time.monotonic() < deadline:
                    for _ in range(100):
                        ws.send(frames[out["frames"] % 2])
                        out["frames"] += 1
                    sent += 100
                    ahead = start + sent / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        except ConnectionClosed as exc:
            key = f"closed {exc.rcvd.code if exc.rcvd else 1006}"
            out[key] = out.get(key, 0) + 1
        except OSError:
            time.sleep(0.05)
    return out


if __name__ == "__main__":
    url, cookie, origin, seconds, rate = sys.argv[1:6]
    print(json.dumps(flood(url, cookie, origin, float(seconds), float(rate))))
