"""What one shard of one micro-batch reads and where it writes, as a small JSON file.

The stream pipeline reads its per-batch parameters from this file at run time instead of having
them baked into its transforms, so a shard's pipeline graph is the same for every batch and a
long-lived worker builds it once (building it was ~0.25 s of every batch and shard). Paths in the
sink specs may hold ``{staging}``, ``{batch}`` and ``{shard}``, filled from the manifest when the
sink writes.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.io.kafka_source import PartitionSpec


@dataclass(frozen=True)
class ShardManifest:
    """One shard's inputs for one batch: Kafka offset ranges, the previous batch's carry-over files
    and the partition indices whose keys it owns (``None``: all), partition maxima (block end us) so
    far, the current runners table rows, and the batch's staging directory, number and shard index."""

    specs: tuple[PartitionSpec, ...]
    state_files: tuple[str, ...]
    owned_partitions: frozenset[int] | None
    previous_partition_max: dict[int, int]
    existing_runners: tuple[dict, ...]
    staging: str
    batch: int
    shard: int
    dead_letters_dir: str = ""  # the lake's dead_letters table (own letters are verified there)

    def write(self, path: Path) -> Path:
        """Atomic replace (tmp + rename): a reader never sees half a manifest."""
        doc = {
            "specs": [list(s) for s in self.specs],
            "state_files": list(self.state_files),
            "owned_partitions": None if self.owned_partitions is None else sorted(self.owned_partitions),
            "previous_partition_max": {str(p): v for p, v in self.previous_partition_max.items()},
            "existing_runners": list(self.existing_runners),
            "staging": self.staging,
            "batch": self.batch,
            "shard": self.shard,
            "dead_letters_dir": self.dead_letters_dir,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> ShardManifest:
        doc = json.loads(Path(path).read_text())
        owned = doc["owned_partitions"]
        return cls(
            specs=tuple(PartitionSpec(*s) for s in doc["specs"]),
            state_files=tuple(doc["state_files"]),
            owned_partitions=None if owned is None else frozenset(owned),
            previous_partition_max={int(p): int(v) for p, v in doc["previous_partition_max"].items()},
            existing_runners=tuple(doc["existing_runners"]),
            staging=doc["staging"],
            batch=int(doc["batch"]),
            shard=int(doc["shard"]),
            dead_letters_dir=doc.get("dead_letters_dir", ""),
        )

    def fill(self, value: Any) -> Any:
        """``value`` with ``{staging}``, ``{batch}`` and ``{shard}`` filled in (strings only)."""
        if isinstance(value, str):
            return value.format(staging=self.staging, batch=self.batch, shard=self.shard)
        return value
