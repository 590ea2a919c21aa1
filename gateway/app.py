"""The device ingest gateway: a FastAPI app in front of the validating Publisher.

Every request goes through the same steps, and is refused whole at the first that fails:

1. credential (``Authorization: Bearer <token>``): none, unknown, wrong secret or revoked -> 401;
2. the device's rate limit -> 429 with ``Retry-After``;
3. content type -> 415, declared or actual body size -> 413 (the body is read only up to the limit);
4. framing -> 400 ``bad_request``; an id that breaks the id rule -> 400 ``bad_id``; an event naming
   another device or runner than the credential's -> 403 ``forbidden``. A request refused here after its
   body was read is published as one dead letter (its bytes, the reason), never as events;
5. every event is validated and encoded by the Publisher (a bad one becomes a dead letter with its
   reason, the others are accepted), then the request's records are committed to Kafka together
   (gateway/committer.py): Kafka unreachable, slow or the queue full -> 503 with ``Retry-After``.

Dead letters are only written for bodies read from an authenticated device: an unauthenticated sender
cannot fill the dead-letter topic, and 413/415/429 bodies are never read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from gateway.committer import GroupCommitter, PublishFailed, QueueFull
from gateway.credentials import Credential, DeviceStore, split_token
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import DeviceRateLimit
from gateway.wire import FIT_MEDIA_TYPES, FRAMES_MEDIA_TYPE, FramingError, unframe
from infra.broker import answers_metadata
from infra.publish import Prepared, Publisher, make_dead_letter
from schemas.codec import DecodeError, decode
from schemas.events import DeadLetter, Event
from schemas.ids import event_id_problem
from schemas.validate import Rejection

API_VERSION = "v1"
STAGE = "gateway"
HEALTH_PROBE_S = 2.0
KDF_THREADS = 2
KDF_CHECKS = "10/minute"  # uncached (KDF) checks per token id


@dataclass(frozen=True)
class GatewayConfig:
    """Limits and timeouts (defaults: a watch or pod sends one request per second of data)."""

    bootstrap: str
    max_body_bytes: int = 1024 * 1024
    max_fit_bytes: int = 16 * 1024 * 1024
    rate_limit: str = "20/second"  # per device, the `limits` package's notation
    publish_timeout_s: float = 10.0
    retry_after_s: int = 1
    max_queued_requests: int = 256


class DeadLetterInfo(BaseModel):
    index: int | None  # the frame's position in the body; None for the whole request or file
    reason: str
    detail: str


class IngestResult(BaseModel):
    accepted: int
    dead_lettered: int
    dead_letters: list[DeadLetterInfo]


class ErrorBody(BaseModel):
    error: str
    detail: str
    dead_lettered: int = 0


class Health(BaseModel):
    status: str
    broker_reachable: bool
    queued_requests: int
    in_flight_requests: int
    seconds_since_last_commit: float | None
    last_kafka_error: str | None


class Refusal(Exception):
    """A request refused whole: status, reason code, detail, extra headers."""

    def __init__(
        self, status: int, reason: str, detail: str, headers: dict | None = None, dead_lettered: int = 0
    ):
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail
        self.headers = headers or {}
        self.dead_lettered = dead_lettered


_ERRORS = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "malformed body (bad_request) or an id that breaks the id rule (bad_id)"),
        (401, "no token, or an unknown, wrong or revoked one"),
        (403, "an event names another device or runner than the token's (forbidden)"),
        (413, "body larger than the gateway's limit"),
        (415, "wrong Content-Type"),
        (429, "the device's rate limit; retry after Retry-After seconds"),
        (503, "Kafka unreachable or slow, or too many requests waiting for it; nothing was published"),
    )
}


def _binary_body(*media_types: str) -> dict:
    content = {m: {"schema": {"type": "string", "format": "binary"}} for m in media_types}
    return {"requestBody": {"required": True, "content": content}}


class Gateway:
    """State shared by the routes: publisher, committer, credentials, limiter, metrics."""

    def __init__(self, cfg: GatewayConfig, publisher: Publisher | None, store: DeviceStore | None):
        """``publisher`` and ``store`` None: an app for its OpenAPI document only (gateway/openapi.py)."""
        self.cfg, self.publisher, self.store = cfg, publisher, store
        self.metrics = GatewayMetrics()
        self.committer = GroupCommitter(
            publisher,
            max_queued=cfg.max_queued_requests,
            on_send_errors=self.metrics.kafka_send_errors.inc,
        )
        self.limiter = DeviceRateLimit(cfg.rate_limit)
        # scrypt takes 4 MB and a core for ~10-30 ms: two at a time (anyio's default, 40 threads, held
        # 340 MB after 1,000 first checks; more threads than cores only queue on them)
        self._kdf_slots = anyio.CapacityLimiter(KDF_THREADS)
        # a device needs one KDF check per gateway process; wrong secrets under a known token id get a few
        self.kdf_budget = DeviceRateLimit(KDF_CHECKS)

    def retry_headers(self, seconds: float | None = None) -> dict[str, str]:
        return {
            "Retry-After": str(max(1, math.ceil(seconds if seconds is not None else self.cfg.retry_after_s)))
        }

    async def authenticate(self, token: str | None) -> Credential:
        if not token:
            raise Refusal(401, "unauthorized", "missing bearer token", {"WWW-Authenticate": "Bearer"})
        if self.store.is_cached(token):
            cred = self.store.verify(token)
        else:  # the KDF takes milliseconds: keep it off the event loop, and ration it per token id
            parts = split_token(token)
            wait_s = self.kdf_budget.hit(parts[0]) if parts else 0.0
            if wait_s > 0:
                raise Refusal(
                    429,
                    "credential_checks",
                    f"too many failed checks of token id {parts[0]} (limit {KDF_CHECKS})",
                    self.retry_headers(wait_s),
                )
            cred = await anyio.to_thread.run_sync(self.store.verify, token, limiter=self._kdf_slots)
        if cred is None:
            raise Refusal(
                401, "unauthorized", "unknown, invalid or revoked token", {"WWW-Authenticate": "Bearer"}
            )
        wait_s = self.limiter.hit(cred.device_id)
        if wait_s > 0:
            headers = self.retry_headers(wait_s)
            raise Refusal(
                429, "rate_limited", f"device {cred.device_id} exceeds {self.cfg.rate_limit}", headers
            )
        return cred

    async def read_body(self, request: Request, media_types: Sequence[str], limit: int) -> bytes:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in media_types:
            raise Refusal(
                415,
                "unsupported_media_type",
                f"Content-Type {ctype or 'missing'!r}, expected {', '.join(media_types)}",
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Refusal(413, "too_large", f"body of {declared} bytes exceeds {limit}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise Refusal(413, "too_large", f"body exceeds {limit} bytes")
        return bytes(body)

    def letter(self, reason: str, detail: str, original: bytes, cred: Credential) -> Prepared:
        """A gateway dead letter, attributed to the credential's runner and device (never to ids the body claims)."""
        letter = make_dead_letter(Rejection(reason, detail), STAGE, original)
        letter.runner_id, letter.device_id = cred.runner_id, cred.device_id
        return self.publisher.prepare_letter(letter)

    async def commit(self, records: Sequence[Prepared]) -> None:
        """Publish one request's records together; 503 when Kafka does not take them in time."""
        try:
            future = self.committer.submit(records)
        except QueueFull as exc:
            raise Refusal(503, "backpressure", str(exc), self.retry_headers()) from None
        self.metrics.queued.set(self.committer.queued)
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), self.cfg.publish_timeout_s)
        except TimeoutError:
            raise Refusal(
                503,
                "kafka_timeout",
                f"Kafka did not acknowledge within {self.cfg.publish_timeout_s:g} s",
                self.retry_headers(),
            ) from None
        except PublishFailed as exc:
            raise Refusal(503, "kafka_unavailable", str(exc), self.retry_headers()) from None
        for rec in records:
            if rec.rejection is None:
                self.metrics.accepted.labels(rec.topic).inc()
            else:
                self.metrics.dead_lettered.labels(rec.rejection.reason).inc()

    async def refuse_with_letter(self, refusal: Refusal, body: bytes, cred: Credential) -> None:
        """Publish one dead letter for a refused request's body, then raise the refusal."""
        await self.commit([self.letter(refusal.reason, refusal.detail, body, cred)])
        refusal.dead_lettered = 1
        raise refusal

    async def ingest_frames(
        self, request: Request, cred: Credential, kinds: frozenset[str], endpoint: str
    ) -> IngestResult:
        """Read, unframe, check and prepare a frames body, then commit it whole."""
        body = await self.read_body(request, (FRAMES_MEDIA_TYPE,), self.cfg.max_body_bytes)
        self.metrics.body_bytes.labels(endpoint).inc(len(body))
        try:
            messages = unframe(body)
        except FramingError as exc:
            await self.refuse_with_letter(Refusal(400, "bad_request", str(exc)), body, cred)
        if not messages:
            raise Refusal(400, "bad_request", "empty body: no frames")
        prepared = prepare_frames(self, messages, cred, kinds)
        if isinstance(prepared, Refusal):
            await self.refuse_with_letter(prepared, body, cred)
        await self.commit(prepared)
        return result_of(prepared, range(len(prepared)))

    async def health(self) -> Health:
        """Broker reachability (a metadata answer within HEALTH_PROBE_S) and the commit queue."""
        reachable = False
        # a stalled broker accepts the connection and never answers: bound the probe, leave its thread
        with anyio.move_on_after(HEALTH_PROBE_S):
            reachable = await anyio.to_thread.run_sync(
                answers_metadata, self.cfg.bootstrap, 1.0, abandon_on_cancel=True
            )
        last = self.committer.last_ok_at
        return Health(
            status="ok" if reachable else "unavailable",
            broker_reachable=reachable,
            queued_requests=self.committer.queued,
            in_flight_requests=self.committer.in_flight,
            seconds_since_last_commit=None if last is None else round(time.monotonic() - last, 3),
            last_kafka_error=self.committer.last_error,
        )


def prepare_frames(
    gw: Gateway, messages: list[bytes], cred: Credential, kinds: frozenset[str]
) -> list[Prepared] | Refusal:
    """Decode, check ids and binding, validate and encode every frame; a Refusal for the whole request."""
    records: list[Prepared] = []
    for i, message in enumerate(messages):
        try:
            event: Event = decode(message)
        except DecodeError as exc:
            records.append(gw.letter(exc.reason, f"frame {i}: {exc.detail}", message, cred))
            continue
        if event.KIND not in kinds or isinstance(event, DeadLetter):
            records.append(
                gw.letter(
                    "unknown_schema",
                    f"frame {i}: {event.KIND} is not accepted here (accepts {', '.join(sorted(kinds))})",
                    message,
                    cred,
                )
            )
            continue
        problem = event_id_problem(event)
        if problem:
            return Refusal(400, "bad_id", f"frame {i}: {problem}")
        if event.runner_id != cred.runner_id or event.device_id != cred.device_id:
            return Refusal(
                403,
                "forbidden",
                f"frame {i} names runner {event.runner_id!r} device {event.device_id!r}; the token is bound to runner {cred.runner_id!r} device {cred.device_id!r}",
            )
        records.append(gw.publisher.prepare(event))
    return records


def result_of(records: Sequence[Prepared], indices: Sequence[int | None]) -> IngestResult:
    letters = [
        DeadLetterInfo(index=i, reason=r.rejection.reason, detail=r.rejection.detail)
        for r, i in zip(records, indices, strict=True)
        if r.rejection is not None
    ]
    return IngestResult(
        accepted=len(records) - len(letters), dead_lettered=len(letters), dead_letters=letters
    )


SENSOR_KINDS = frozenset({"sensor_block"})
RECORD_KINDS = frozenset({"watch_record", "session_marker", "runner_profile"})
_bearer = HTTPBearer(auto_error=False, description="a device token from `gluteflow devices register`")


async def current_device(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Credential:
    """The credential of the request's bearer token, within the device's rate limit (else a Refusal)."""
    return await request.app.state.gateway.authenticate(creds.credentials if creds else None)


DeviceCredential = Annotated[Credential, Depends(current_device)]


class _Staging:
    """The part of Publisher that ``jobs.fit_import.import_file`` calls, collecting the prepared records
    (same validation and encoding) so the whole file is committed as one request."""

    def __init__(self, publisher: Publisher):
        self.publisher = publisher
        self.records: list[Prepared] = []

    def publish(self, event: Event, source_file: str | None = None) -> Rejection | None:
        rec = self.publisher.prepare(event, source_file)
        self.records.append(rec)
        return rec.rejection

    def reject(self, letter: DeadLetter) -> None:
        self.records.append(self.publisher.prepare_letter(letter))

    def flush(self) -> None:
        """Nothing to flush: the gateway commits the records."""


def import_fit_upload(publisher: Publisher, body: bytes, cred: Credential):
    """Run the FIT importer on an uploaded file (decoded completely before anything is kept)."""
    from jobs.fit_import import import_file

    with tempfile.TemporaryDirectory(prefix="gluteflow-fit-") as tmp:
        path = Path(tmp) / f"upload-{hashlib.sha1(body).hexdigest()[:16]}.fit"
        path.write_bytes(body)
        staging = _Staging(publisher)
        result = import_file(staging, path, cred.runner_id, cred.device_id)
    return staging.records, result


class _Measure:
    """ASGI middleware: request count by endpoint and status, latency histogram (bounded label set)."""

    def __init__(self, app, metrics: GatewayMetrics, endpoints: frozenset[str]):
        self.app, self.metrics, self.endpoints = app, metrics, endpoints

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"
        start = time.perf_counter()
        status = 500

        async def send_measured(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()


def create_app(gw: Gateway) -> FastAPI:
    """The FastAPI app over one Gateway; closing the app commits what is queued and closes the producer."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        gw.committer.close()
        gw.publisher.close()

    app = FastAPI(
        title="gluteflow device ingest gateway",
        version=API_VERSION,
        summary="HTTP front door for wearables: per-device tokens, limits, validated publishing to Kafka.",
        lifespan=lifespan,
    )
    app.state.gateway = gw

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        gw.metrics.refused.labels(exc.reason).inc()
        body = ErrorBody(error=exc.reason, detail=exc.detail, dead_lettered=exc.dead_lettered)
        return JSONResponse(body.model_dump(), status_code=exc.status, headers=exc.headers)

    _ingest_routes(app, gw)
    _operations_routes(app, gw)
    paths = frozenset(r.path for r in app.routes if hasattr(r, "methods"))
    app.add_middleware(_Measure, metrics=gw.metrics, endpoints=paths)
    return app


def _ingest_routes(app: FastAPI, gw: Gateway) -> None:
    frames = _binary_body(FRAMES_MEDIA_TYPE)

    @app.post(
        "/v1/sensor-blocks",
        response_model=IngestResult,
        responses=_ERRORS,
        openapi_extra=frames,
        tags=["ingest"],
    )
    async def sensor_blocks(request: Request, cred: DeviceCredential) -> IngestResult:
        """Sensor blocks (foot/pelvis IMU, EMG) of the token's device, several per request, each a framed
        message in the project's binary encoding. Accepted whole (bad blocks dead-lettered with their
        reason) or refused whole."""
        return await gw.ingest_frames(request, cred, SENSOR_KINDS, "/v1/sensor-blocks")

    @app.post(
        "/v1/records", response_model=IngestResult, responses=_ERRORS, openapi_extra=frames, tags=["ingest"]
    )
    async def records(request: Request, cred: DeviceCredential) -> IngestResult:
        """Watch records, session markers and runner profiles of the token's device, framed like sensor blocks."""
        return await gw.ingest_frames(request, cred, RECORD_KINDS, "/v1/records")

    @app.post(
        "/v1/fit",
        response_model=IngestResult,
        responses={
            **_ERRORS,
            422: {
                "model": IngestResult,
                "description": "corrupt FIT file: one corrupt_file dead letter, nothing else",
            },
        },
        openapi_extra=_binary_body(*FIT_MEDIA_TYPES),
        tags=["ingest"],
    )
    async def fit(request: Request, cred: DeviceCredential) -> JSONResponse:
        """A FIT file from the token's device, imported by the FIT importer (decoded completely first: a
        corrupt file publishes nothing but its dead letter); its running sessions become watch records and
        session markers of the token's runner."""
        body = await gw.read_body(request, FIT_MEDIA_TYPES, gw.cfg.max_fit_bytes)
        gw.metrics.body_bytes.labels("/v1/fit").inc(len(body))
        prepared, outcome = await anyio.to_thread.run_sync(import_fit_upload, gw.publisher, body, cred)
        await gw.commit(prepared)
        result = result_of(prepared, [None] * len(prepared))
        return JSONResponse(result.model_dump(), status_code=200 if outcome.ok else 422)


def _operations_routes(app: FastAPI, gw: Gateway) -> None:
    @app.get(
        "/v1/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "broker unreachable"}},
        tags=["operations"],
    )
    async def health() -> JSONResponse:
        """Whether the Kafka broker answers a metadata request (within 2 s), and the commit queue."""
        body = await gw.health()
        headers = {} if body.broker_reachable else gw.retry_headers()
        return JSONResponse(
            body.model_dump(), status_code=200 if body.broker_reachable else 503, headers=headers
        )

    @app.get(
        "/metrics",
        response_class=Response,
        tags=["operations"],
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics() -> Response:
        """Prometheus exposition format: requests, refusals, accepted and dead-lettered events, bytes,
        latency histogram, Kafka send errors."""
        gw.metrics.queued.set(gw.committer.queued)
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)
