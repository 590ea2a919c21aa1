"""The get_dofn_specs memo: same answers as Beam's own, one inspection per DoFn class, state still works."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from pipelines import beam_patches


class _Plain(beam.DoFn):
    def process(self, x):
        yield x


class _Counter(beam.DoFn):
    COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())

    def process(self, kv, count=beam.DoFn.StateParam(COUNT)):  # noqa: B008 (Beam's state idiom)
        n = (count.read() or 0) + 1
        count.write(n)
        yield kv[0], n


def test_memo_answers_as_beam_does_and_inspects_each_class_once(monkeypatch) -> None:
    calls: list[type] = []
    original = beam_patches._original

    def counting(dofn):
        calls.append(type(dofn))
        return original(dofn)

    monkeypatch.setattr(beam_patches, "_original", counting)
    monkeypatch.setattr(beam_patches, "_cache", {})
    beam_patches.install()
    assert userstate.get_dofn_specs is beam_patches._cached_get_dofn_specs
    for _ in range(3):
        assert userstate.get_dofn_specs(_Plain()) == (set(), set())
        state, timers = userstate.get_dofn_specs(_Counter())
        assert [s.name for s in state] == ["count"] and timers == set()
    assert calls == [_Plain, _Counter]
    assert userstate.is_stateful_dofn(_Counter()) and not userstate.is_stateful_dofn(_Plain())
    # a bound method stored on the instance is part of the key: inspected, not served from the cache
    odd = _Plain()
    odd.finish_bundle = _Counter().process
    assert userstate.get_dofn_specs(odd)[0] == userstate.get_dofn_specs(_Counter())[0]
    assert calls == [_Plain, _Counter, _Plain]


def test_a_stateful_dofn_still_runs_with_the_memo_installed() -> None:
    beam_patches.install()
    options = PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    with beam.Pipeline(runner=FnApiRunner(), options=options) as p:
        out = (
            p
            | beam.Create([("a", 1), ("b", 1), ("a", 1), ("a", 1)])
            | beam.ParDo(_Counter())
            | beam.CombinePerKey(max)
        )
        assert_that(out, equal_to([("a", 3), ("b", 1)]))


def test_option_views_are_memoised_and_still_share_their_values() -> None:
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    beam_patches.install()
    options = PipelineOptions(["--direct_num_workers=3", "--runner=FnApiRunner"])
    std = options.view_as(StandardOptions)
    assert options.view_as(StandardOptions) is std  # the memo
    assert std.runner == "FnApiRunner" and options.view_as(DirectOptions).direct_num_workers == 3
    std.streaming = True  # a write through one view is seen by every view and the options
    assert options.view_as(StandardOptions).streaming and options.get_all_options()["streaming"]
    other = PipelineOptions(["--direct_num_workers=5"])
    assert other.view_as(DirectOptions).direct_num_workers == 5  # per options object, not per class
    assert other.view_as(StandardOptions) is not std and not other.view_as(StandardOptions).streaming
