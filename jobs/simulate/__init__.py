"""Device-fleet simulator: runners with latent traits, training plans, sensor signals, device realities.

Public API::

    simulate_fleet(bootstrap, paths, runners, days, start, seed, progress=True) -> SimulationSummary
    iter_runner_events(traits, day, seed=..., duration_scale=...) -> Iterator[Event]   # no Kafka
    draw_traits(seed, runner_index) -> RunnerTraits
    plan_runner(traits, start, days, seed) -> list[PlannedSession]

Signal models: :mod:`jobs.simulate.signals`; stream layout: :mod:`jobs.simulate.fleet`; truth files:
:mod:`jobs.simulate.truth`.
"""

from jobs.simulate.fleet import (
    DEFAULT_REALITIES,
    NO_REALITIES,
    DeviceRealities,
    SimulationSummary,
    default_start,
    iter_runner_events,
    iter_session_events,
    profile_event,
    simulate_fleet,
)
from jobs.simulate.plan import PlannedSession, plan_day, plan_runner
from jobs.simulate.traits import RunnerTraits, draw_traits

__all__ = [
    "DEFAULT_REALITIES",
    "NO_REALITIES",
    "DeviceRealities",
    "PlannedSession",
    "RunnerTraits",
    "SimulationSummary",
    "default_start",
    "draw_traits",
    "iter_runner_events",
    "iter_session_events",
    "plan_day",
    "plan_runner",
    "profile_event",
    "simulate_fleet",
]
