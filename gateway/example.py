"""A framed request body to try the gateway with: ``python -m gateway.example RUNNER DEVICE [N] > blocks.bin``.

Writes N (default 3) simulated 1 s foot-IMU blocks of ``DEVICE`` (foot_imu, 200 Hz, from an hour ago) in the
project's binary encoding, framed as ``/v1/sensor-blocks`` expects, then e.g.::

    curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/vnd.gluteflow.frames' \\
         --data-binary @blocks.bin http://127.0.0.1:8470/v1/sensor-blocks
"""

from __future__ import annotations

import sys
import time

from gateway.wire import frame
from pipelines.stream.synthetic import make_session
from schemas.codec import encode


def example_body(runner_id: str, device_id: str, n: int = 3) -> bytes:
    start = int(time.time() * 1e6) - 3_600_000_000
    _, blocks, _ = make_session(runner_id, f"{runner_id}-example", start, duration_s=max(n + 1, 5))
    foot = [b for b in blocks if b.sensor == "foot_imu" and b.side == "left"][:n]
    for b in foot:
        b.device_id = device_id
    return frame(encode(b) for b in foot)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.stdout.buffer.write(
        example_body(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
    )
