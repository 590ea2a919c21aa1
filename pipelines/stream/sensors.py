"""The sensor kinds that add columns to a foot IMU's strides: one registry entry each.

Adding a kind: its channels in :data:`schemas.events.SENSOR_CHANNELS` (and its sampling-rate range),
its columns in the strides table (:mod:`schemas.tables`), one science module with a ``stride_columns``
function of the signature below, and one entry here. The stream job then waits for the kind's data
to be final over each stride, aligns its clock, trims its buffer, fills its columns and names it in
the ``sensors`` column; nothing else names a kind.

``stride_columns(t_s, data, ic_s, tc_s, ic_next_s, foot, max_gap_s, reference) -> {column: array}``:
sample times on the strides' clock (s), samples ``(n, channels)`` in the kind's channel order, the
strides' initial contact, toe-off and next initial contact (s), the foot, the longest sampling gap
allowed inside a stride (s), and a dict of per-session state the function may keep (e.g. a
reference for normalisation). NaN (or ``None``) where the kind did not cover a stride.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipelines.science import emg, pelvis

#: the kind whose strides the others join
FOOT_KIND = "foot_imu"


@dataclass(frozen=True)
class StrideSensor:
    """A sensor kind that joins the foot IMU's strides."""

    kind: str  #: ``SensorBlock.sensor``
    columns: tuple[str, ...]  #: the strides table columns it fills
    stride_columns: Callable[..., dict]  #: its science module's ``stride_columns``
    covered_by: str  #: a column whose finite value says the kind covered the stride


STRIDE_SENSORS: tuple[StrideSensor, ...] = (
    StrideSensor("pelvis_imu", pelvis.STRIDE_COLUMNS, pelvis.stride_columns, "vertical_oscillation_mm"),
    StrideSensor("emg", emg.STRIDE_COLUMNS, emg.stride_columns, "glute_max_act_norm"),
)
