"""Which FIT decoder: Garmin's SDK or fitdecode, measured on the fixtures and the protocol cases.

For every case: what the FIT protocol says (valid / corrupt), what Garmin's Python SDK does (``read()``
errors, ``check_integrity()``, timestamps of compressed-header records) and what fitdecode does (with CRC
checks raising). Then the decode speed of both on the two largest fixtures (median of 5 runs each, in one
run). The choice and the figures are in docs/fit.md.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIT_DIR = REPO.parent / "shared" / "fixtures" / "fit"


def _cases() -> list[tuple[str, bytes, str]]:
    sys.path.insert(0, str(REPO / "tests"))
    from fit_bytes import compressed_run, multisport, recompute_file_crc

    cases: list[tuple[str, bytes, str]] = []
    if FIT_DIR.exists():
        for path in sorted(FIT_DIR.glob("*.fit")):
            verdict = "corrupt" if any(k in path.name for k in ("crc", "corrupt", "eof")) else "valid"
            cases.append((path.name, path.read_bytes(), verdict))
        run = (FIT_DIR / "garmin-fenix-5-run.fit").read_bytes()
        cases.append(
            ("fenix-5 run, header CRC 0", recompute_file_crc(run[:12] + b"\0\0" + run[14:]), "valid")
        )
    compressed, _ = compressed_run()
    cases += [
        ("crafted: compressed timestamps", compressed, "valid"),
        ("crafted: multisport bike+run", multisport(), "valid"),
        ("crafted: two chained files", compressed + multisport(header_crc=False), "valid"),
        ("crafted: truncated", compressed[:-20], "corrupt"),
        ("crafted: file CRC wrong", compressed[:-1] + bytes([compressed[-1] ^ 1]), "corrupt"),
    ]
    return cases


def garmin(data: bytes) -> str:
    from garmin_fit_sdk import Decoder, Stream

    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read()
    intact = Decoder(Stream.from_byte_array(bytearray(data))).check_integrity()
    if errors:
        return f"error: {str(errors[0])[:50]}"
    missing_ts = sum(1 for r in messages.get("record_mesgs", []) if r.get("timestamp") is None)
    note = f", {missing_ts} records without timestamp" if missing_ts else ""
    return ("ok" if intact else "read ok, check_integrity False") + note


def fitdecode_outcome(data: bytes) -> str:
    from jobs.fit_import import decode_fit_bytes

    files, problems = decode_fit_bytes(data)
    if problems:
        return f"rejected: {problems[0][:50]}"
    n = sum(len(v) for f in files for v in f.values())
    return f"ok ({len(files)} file{'s' if len(files) > 1 else ''}, {n} messages)"


def _speed(name: str, data: bytes) -> None:
    import fitdecode
    from garmin_fit_sdk import Decoder, Stream

    def sdk() -> int:
        messages, _ = Decoder(Stream.from_byte_array(bytearray(data))).read()
        return sum(len(v) for v in messages.values() if isinstance(v, list))

    def fd() -> int:
        with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.RAISE) as reader:
            return sum(1 for f in reader if f.frame_type == fitdecode.FIT_FRAME_DATA)

    out = {}
    for label, fn in (("garmin-fit-sdk", sdk), ("fitdecode", fd)):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            n = fn()
            times.append(time.perf_counter() - t0)
        out[label] = (n, statistics.median(times))
    (n_g, t_g), (n_f, t_f) = out["garmin-fit-sdk"], out["fitdecode"]
    print(
        f"{name}: garmin-fit-sdk {n_g} messages {t_g * 1000:.0f} ms ({n_g / t_g:,.0f}/s); "
        f"fitdecode {n_f} messages {t_f * 1000:.0f} ms ({n_f / t_f:,.0f}/s); ratio fitdecode/sdk time {t_f / t_g:.2f}"
    )


def main() -> None:
    print(f"{'case':38} {'protocol':8} | {'garmin-fit-sdk':52} | fitdecode (as gluteflow uses it)")
    for name, data, verdict in _cases():
        print(f"{name[:38]:38} {verdict:8} | {garmin(data)[:52]:52} | {fitdecode_outcome(data)}")
    if FIT_DIR.exists():
        for name in ("activity-small-fenix2-run.fit", "developer-types-sample.fit"):
            _speed(name, (FIT_DIR / name).read_bytes())
    else:
        print(f"{FIT_DIR} not found: speed comparison skipped")


if __name__ == "__main__":
    main()
