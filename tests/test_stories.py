"""Simulator storylines (jobs/simulate/stories.py): the situations the default run must contain."""

from __future__ import annotations

import datetime as dt

import pytest

from jobs.simulate.plan import SPIKE_FACTOR, plan_runner
from jobs.simulate.stories import STORIES, apply_story, story_for, traits_on
from jobs.simulate.traits import draw_traits

START = dt.date(2026, 10, 5)
DAYS = 35
LAST = START + dt.timedelta(days=DAYS - 1)


def test_first_runners_get_one_story_each_only_when_enabled():
    assert [story_for(i, True).key for i in range(len(STORIES))] == [
        "distance_spike",
        "rising_calf",
        "pelvic_drop",
        "asymmetry",
        "chronic_glute",
    ]
    assert story_for(len(STORIES), True) is None
    assert all(story_for(i, False) is None for i in range(len(STORIES)))


@pytest.mark.parametrize("story", [s for s in STORIES if s.ramp_to], ids=lambda s: s.key)
def test_ramps_start_flat_and_end_on_their_target(story):
    traits = apply_story(draw_traits(7, 0), story)
    assert traits.kit == story.kit
    before = traits_on(traits, story, LAST - dt.timedelta(days=story.ramp_days), LAST)
    assert before == traits  # flat until the ramp starts
    end = traits_on(traits, story, LAST, LAST)
    half = traits_on(traits, story, LAST - dt.timedelta(days=story.ramp_days // 2), LAST)
    for name, target in story.ramp_to.items():
        assert getattr(end, name) == pytest.approx(target)
        start = story.set.get(name, getattr(traits, name))
        frac = 1 - (story.ramp_days // 2) / story.ramp_days
        assert getattr(half, name) == pytest.approx(start + frac * (target - start))


@pytest.mark.parametrize(
    "story", [s for s in STORIES if s.spike_days_before_end is not None], ids=lambda s: s.key
)
def test_spike_story_runs_the_planned_spike(story):
    index = STORIES.index(story)
    traits = apply_story(draw_traits(7, index), story)
    plan = plan_runner(traits, START, DAYS, 7, 0.04, (story.spike_days_before_end, story.spike_factor))
    day = LAST - dt.timedelta(days=story.spike_days_before_end)
    (run,) = [s for s in plan if s.local_date == day]
    previous = [s.distance_m for s in plan if 0 < (day - s.local_date).days <= 30]
    assert run.kind == "long" and run.spike and run.distance_m / max(previous) > SPIKE_FACTOR
    # whole seconds of running: the ratio is the story's factor within one second of running
    assert run.distance_m / max(previous) == pytest.approx(
        story.spike_factor, abs=run.mean_speed_m_s / max(previous) * 2
    )
    assert run.battery is None  # the spike run is recorded completely
