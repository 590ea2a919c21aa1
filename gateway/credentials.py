"""Device credentials: one bearer token per registered (runner, device), stored only as a salted scrypt hash.

A token reads ``gf1.<token id>.<secret>``: the token id (public, 16 hex digits) finds the stored row, the
secret (32 random bytes, URL-safe base64) is checked against ``scrypt(secret, salt)`` with a constant-time
comparison. The token is printed once at registration and never stored.

Tokens carry 256 random bits, so guessing is not what the KDF defends against: it keeps a leaked store
from being replayed. Its cost (``SCRYPT_N``) is therefore moderate and stored per row, so it can be raised
for new tokens without invalidating old ones. A verified secret is remembered in memory as its SHA-256
(compared in constant time too), so a device pays the KDF once per gateway process, not per request;
revocation is read from the store on every request and takes effect at once.

The store is a SQLite file (``Paths.devices_db``): the CLI writes it, the gateway reads it, SQLite's
locking keeps both consistent.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from schemas.ids import id_problem

TOKEN_PREFIX = "gf1"
SCRYPT_N = 2**12
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    token_id   TEXT PRIMARY KEY,
    runner_id  TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,
    kdf        TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS credentials_device ON credentials (device_id);
"""


class CredentialError(ValueError):
    """A registration or revocation the store refuses (bad id, unknown device)."""


@dataclass(frozen=True)
class Credential:
    token_id: str
    runner_id: str
    device_id: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class _Row:
    credential: Credential
    salt: bytes
    hash: bytes
    kdf: str


def _kdf(secret: str, salt: bytes, kdf: str) -> bytes:
    name, n, r, p = kdf.split(":")
    if name != "scrypt":
        raise CredentialError(f"unknown key-derivation function {name!r}")
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=_DKLEN, maxmem=256 * 1024 * 1024
    )


def split_token(token: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token, else None."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or len(parts[1]) != 16 or not parts[2]:
        return None
    return parts[1], parts[2]


class DeviceStore:
    """Register, list, revoke and verify device tokens in one SQLite file."""

    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)
        # token id -> SHA-256 of the secret that passed the KDF check (this process only, never on disk)
        self._verified: dict[str, bytes] = {}

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (opening one per request cost ~1 ms, most of a request's time),
        inside one transaction committed on success."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.db_path, timeout=10.0)
            db.execute("PRAGMA journal_mode=WAL")  # readers (the gateway) never wait for a writer (the CLI)
        with db:
            yield db

    def register(self, runner_id: str, device_id: str) -> tuple[Credential, str]:
        """A new credential for (runner, device); returns it and the token (shown once, not stored)."""
        for name, value in (("runner_id", runner_id), ("device_id", device_id)):
            problem = id_problem(name, value)
            if problem:
                raise CredentialError(problem)
        token_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_bytes(16)
        kdf = f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}"
        cred = Credential(token_id, runner_id, device_id, time.time(), None)
        with self._connect() as db:
            db.execute(
                "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (token_id, runner_id, device_id, salt, _kdf(secret, salt, kdf), kdf, cred.created_at),
            )
        return cred, f"{TOKEN_PREFIX}.{token_id}.{secret}"

    def list(self, include_revoked: bool = True) -> list[Credential]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self._connect() as db:
            rows = db.execute(
                "SELECT token_id, runner_id, device_id, created_at, revoked_at FROM credentials"
                + where
                + " ORDER BY runner_id, device_id, created_at"
            ).fetchall()
        return [Credential(*r) for r in rows]

    def revoke(self, device_id: str | None = None, token_id: str | None = None) -> int:
        """Revoke every active token of ``device_id`` and/or the token ``token_id``; returns how many."""
        if not device_id and not token_id:
            raise CredentialError("name a device (--device) or a token id (--token-id) to revoke")
        clauses, args = [], []
        if device_id:
            clauses.append("device_id = ?")
            args.append(device_id)
        if token_id:
            clauses.append("token_id = ?")
            args.append(token_id)
        with self._connect() as db:
            cur = db.execute(
                f"UPDATE credentials SET revoked_at = ? WHERE revoked_at IS NULL AND {' AND '.join(clauses)}",
                (time.time(), *args),
            )
        return cur.rowcount

    def _row(self, token_id: str) -> _Row | None:
        with self._connect() as db:
            r = db.execute(
                "SELECT token_id, runner_id, device_id, created_at, revoked_at, salt, hash, kdf "
                "FROM credentials WHERE token_id = ?",
                (token_id,),
            ).fetchone()
        return None if r is None else _Row(Credential(*r[:5]), r[5], r[6], r[7])

    def verify(self, token: str) -> Credential | None:
        """The active credential ``token`` belongs to, or None (malformed, unknown, wrong secret, revoked).
        May run the KDF (milliseconds): call it off the event loop when the secret is not yet cached."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        row = self._row(token_id)
        if row is None or not row.credential.active:
            self._verified.pop(token_id, None)
            return None
        fast = hashlib.sha256(secret.encode()).digest()
        known = self._verified.get(token_id)
        if known is not None:
            return row.credential if hmac.compare_digest(fast, known) else None
        if not hmac.compare_digest(_kdf(secret, row.salt, row.kdf), row.hash):
            return None
        self._verified[token_id] = fast
        return row.credential

    def is_cached(self, token: str) -> bool:
        """True when ``verify`` will not need the KDF for this token's id (the cheap path)."""
        parts = split_token(token)
        return parts is not None and parts[0] in self._verified
