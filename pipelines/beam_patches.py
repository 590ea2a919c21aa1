"""One measured workaround for Beam 2.77's Python SDK, installed by :func:`install` (idempotent).

``apache_beam.transforms.userstate.get_dofn_specs`` finds a DoFn's state and timer specs by calling
``inspect.signature`` on every bound method of the instance (about 30 per DoFn, most inherited from
``DoFn``). Beam calls it about six times per ParDo while building, translating and executing a pipeline
(``is_stateful_dofn`` and ``validate_stateful_dofn`` in each ``DoFnSignature``). For the stream job's
pipeline (37 ParDos) that was 6,930 ``inspect.signature`` calls: 0.6 s of a 1.2 s fixed cost that every
micro-batch and every shard paid again, whatever the batch size (cProfile of a 22-message batch).

The specs depend only on the default values of the DoFn's bound methods: the methods of its class
plus any bound method stored on the instance. :func:`install` memoises the result on exactly that key
(the class and the instance's bound-method functions), so each DoFn class is inspected once per
process. Results are returned as fresh sets, as the original does.
"""

from __future__ import annotations

import types
from typing import Any

from apache_beam.transforms import userstate

_original = userstate.get_dofn_specs
_cache: dict[tuple, tuple[frozenset, frozenset]] = {}


def _key(dofn: Any) -> tuple | None:
    try:
        instance = vars(dofn)
    except TypeError:  # __slots__: no per-instance methods to see, but be conservative
        return None
    bound = tuple(
        sorted((name, v.__func__) for name, v in instance.items() if isinstance(v, types.MethodType))
    )
    return (type(dofn), bound)


def _cached_get_dofn_specs(dofn: Any):
    key = _key(dofn)
    if key is None:
        return _original(dofn)
    try:
        state, timers = _cache[key]
    except KeyError:
        s, t = _original(dofn)  # raises on invalid DoFns exactly as before (nothing cached then)
        state, timers = _cache[key] = (frozenset(s), frozenset(t))
    return set(state), set(timers)


def install() -> None:
    """Replace ``userstate.get_dofn_specs`` (every caller looks it up on the module) with the memo."""
    userstate.get_dofn_specs = _cached_get_dofn_specs
