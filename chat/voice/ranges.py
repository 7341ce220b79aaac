"""Serving a stored file with HTTP Range support (Django's FileResponse always sends it whole).

Browsers ask audio for ``Range: bytes=0-`` and seek with later ranges; Safari refuses to
play audio whose server does not answer 206. One range per request is supported; a request
for several gets the whole file (RFC 9110 lets a server ignore Range).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.core.files import File
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """The (first, last) byte of a single range; None to send everything; False: unsatisfiable."""
    match = _RANGE_RE.match(header.strip().replace(" ", ""))
    if not match:
        return None  # absent, malformed or several ranges: the whole file
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:
        # "bytes=-500": the last 500 bytes.
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return False
    return first, min(last, size - 1)


def _chunks(file: File[Any], first: int, length: int) -> Iterator[bytes]:
    try:
        file.seek(first)
        left = length
        while left > 0:
            data = file.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        file.close()


def ranged_file_response(
    request: HttpRequest, file: File[Any], content_type: str
) -> HttpResponse | FileResponse | StreamingHttpResponse:
    """200 with the whole file, 206 with the asked range, or 416 when it lies past the end."""
    size = file.size
    wanted = (
        parse_range(request.headers.get("Range", ""), size) if request.method == "GET" else None
    )
    response: HttpResponse | FileResponse | StreamingHttpResponse
    if wanted is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    elif wanted is None:
        file.open("rb")
        response = FileResponse(file, content_type=content_type)
        response["Content-Length"] = str(size)
    else:
        assert isinstance(wanted, tuple)
        first, last = wanted
        file.open("rb")
        response = StreamingHttpResponse(
            _chunks(file, first, last - first + 1), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Content-Length"] = str(last - first + 1)
    response["Accept-Ranges"] = "bytes"
    # Stored once and never changed; private: only members may fetch it.
    response["Cache-Control"] = "private, max-age=86400"
    return response
