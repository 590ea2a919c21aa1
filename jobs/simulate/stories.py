"""Storylines: the situations the product exists for, given to the first runners of a simulated fleet.

``gluteflow simulate --stories`` (on by default in ``gluteflow run``) replaces the randomly drawn traits of
runners ``r0000..r0004`` with one storyline each, so a default run always contains them:

* ``distance_spike``: a long run 40 % longer than the longest of the previous 30 days, two days before the
  last simulated day (Frandsen et al. 2025: the best-supported overuse predictor);
* ``rising_calf``: a long run 30 % over the runner's longest six days before the end, after which the calves
  take over push-off (calf dominance up, glutes down over the last 7 days);
* ``pelvic_drop``: contralateral pelvic drop doubles over the last 10 days (weakening glutes, the right one
  more, knee valgus up with it);
* ``asymmetry``: the right glute stops working over the last 10 days (left/right gap opens, the calf and the
  pelvis compensate);
* ``chronic_glute``: glutes under-work on both sides the whole time, with calf and hamstring
  compensation and a late glute onset: a standing pattern that no trend rule flags, visible in the
  report's compensation profiles.

A ramp moves a trait linearly from its storyline start value (``set``) to its end value over the last
``ramp_days`` simulated days; traits stay at the start value before. Other runners keep their drawn traits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from jobs.simulate.traits import RunnerTraits

__all__ = ["STORIES", "Story", "apply_story", "story_for", "traits_on"]


@dataclass(frozen=True)
class Story:
    key: str
    kit: str
    set: dict[str, float] = field(default_factory=dict)
    #: trait -> value reached on the last simulated day
    ramp_to: dict[str, float] = field(default_factory=dict)
    ramp_days: int = 10
    #: a long run ``spike_factor`` x the longest of the previous 30 days, this many days before the end
    spike_days_before_end: int | None = None
    spike_factor: float = 1.4


_NORMAL = dict(
    glute_underactivation_left=0.05,
    glute_underactivation_right=0.05,
    calf_dominance=0.05,
    hamstring_dominance=0.05,
    glute_onset_lag_ms=-25.0,
    pelvic_drop_deg=4.5,
    knee_valgus=0.1,
    gct_balance_left_pct=50.0,
)

STORIES: tuple[Story, ...] = (
    Story("distance_spike", "feet", set=dict(_NORMAL), spike_days_before_end=2),
    Story(
        "rising_calf",
        "full",
        set=dict(_NORMAL),
        ramp_to=dict(
            calf_dominance=1.4,
            glute_underactivation_left=0.6,
            glute_underactivation_right=0.6,
            glute_onset_lag_ms=30.0,
        ),
        ramp_days=7,
        spike_days_before_end=6,
        spike_factor=1.3,
    ),
    Story(
        "pelvic_drop",
        "full",
        set=dict(_NORMAL, pelvic_drop_deg=5.0),
        ramp_to=dict(
            pelvic_drop_deg=10.5,
            knee_valgus=0.6,
            glute_underactivation_left=0.6,
            glute_underactivation_right=0.7,
        ),
    ),
    Story(
        "asymmetry",
        "full",
        set=dict(_NORMAL),
        ramp_to=dict(
            glute_underactivation_right=0.8,
            calf_dominance=0.6,
            pelvic_drop_deg=7.0,
            gct_balance_left_pct=46.5,
        ),
    ),
    Story(
        "chronic_glute",
        "full",
        set=dict(
            _NORMAL,
            glute_underactivation_left=0.6,
            glute_underactivation_right=0.6,
            calf_dominance=0.7,
            hamstring_dominance=0.6,
            glute_onset_lag_ms=40.0,
            pelvic_drop_deg=7.5,
        ),
    ),
)


def story_for(runner_index: int, enabled: bool) -> Story | None:
    """The storyline of runner ``runner_index`` (the first ``len(STORIES)`` runners), or None."""
    return STORIES[runner_index] if enabled and runner_index < len(STORIES) else None


def apply_story(traits: RunnerTraits, story: Story | None) -> RunnerTraits:
    """The runner's traits at the start of its storyline (kit and ``set`` values)."""
    if story is None:
        return traits
    return dataclasses.replace(traits, kit=story.kit, **story.set)


def traits_on(traits: RunnerTraits, story: Story | None, day: dt.date, last_day: dt.date) -> RunnerTraits:
    """The runner's traits on ``day``: ramps move linearly over the last ``ramp_days`` days to ``last_day``."""
    if story is None or not story.ramp_to:
        return traits
    into = story.ramp_days - (last_day - day).days  # 0 before the ramp, ramp_days on the last day
    frac = min(1.0, max(0.0, into / story.ramp_days))
    if frac == 0.0:
        return traits
    moved = {k: getattr(traits, k) + frac * (v - getattr(traits, k)) for k, v in story.ramp_to.items()}
    return dataclasses.replace(traits, **moved)
