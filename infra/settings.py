"""Where things live. Every output path is under one data directory.

Resolution order: explicit argument (``--data-dir``) > ``GLUTEFLOW_DATA_DIR`` > ``./data``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DATA_DIR = "GLUTEFLOW_DATA_DIR"
ENV_BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"


@dataclass(frozen=True)
class Paths:
    """All output locations, derived from one root."""

    root: Path

    @classmethod
    def resolve(cls, data_dir: str | os.PathLike | None = None) -> Paths:
        raw = data_dir or os.environ.get(ENV_DATA_DIR) or "data"
        return cls(Path(raw).expanduser().resolve())

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    def table(self, name: str) -> Path:
        return self.lake / name

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def broker_dir(self) -> Path:
        return self.root / "broker"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def truth(self) -> Path:
        return self.root / "truth"

    @property
    def catalog(self) -> Path:
        return self.root / "gluteflow.duckdb"

    @property
    def devices_db(self) -> Path:
        """The gateway's device credentials (SQLite; salted scrypt hashes only, never a token)."""
        return self.root / "gateway" / "devices.sqlite"

    @property
    def quality(self) -> Path:
        return self.root / "quality"

    def ensure(self) -> Paths:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
