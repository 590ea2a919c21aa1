"""The gateway's request body: several encoded gluteflow messages, each behind its length.

``application/vnd.gluteflow.frames``: a sequence of frames, each a 4-byte big-endian unsigned length
followed by that many bytes of one message in the project's binary encoding (schemas/codec.py: the
``GF`` header, kind and version, then the Avro body). The frame adds nothing else, so a message is
byte-for-byte what the direct producer sends to Kafka.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

FRAMES_MEDIA_TYPE = "application/vnd.gluteflow.frames"
FIT_MEDIA_TYPES = ("application/vnd.ant.fit", "application/octet-stream")
_LEN = struct.Struct(">I")


class FramingError(ValueError):
    """A body that is not a whole sequence of frames (truncated, or a length running past the end)."""


def frame(messages: Iterable[bytes]) -> bytes:
    """Concatenate ``messages`` as frames."""
    out = bytearray()
    for m in messages:
        out += _LEN.pack(len(m))
        out += m
    return bytes(out)


def unframe(body: bytes) -> list[bytes]:
    """The messages of a framed body; raises FramingError naming where it breaks."""
    out: list[bytes] = []
    pos, end = 0, len(body)
    view = memoryview(body)
    while pos < end:
        if end - pos < _LEN.size:
            raise FramingError(
                f"frame {len(out)} at byte {pos}: {end - pos} bytes left, need a 4-byte length"
            )
        (n,) = _LEN.unpack_from(body, pos)
        pos += _LEN.size
        if n > end - pos:
            raise FramingError(f"frame {len(out)} declares {n} bytes, only {end - pos} left (truncated body)")
        out.append(bytes(view[pos : pos + n]))
        pos += n
    return out
