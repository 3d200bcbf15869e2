"""kue.backends.sweep: the count of writes that says when to sweep expired entries."""

from __future__ import annotations

import pytest

from kue.backends.sweep import Sweep


def test_a_sweep_comes_due_at_each_multiple_of_its_period_and_only_then() -> None:
    sweep = Sweep(3)
    assert [sweep.count() for _ in range(7)] == [False, False, True, False, False, True, False]
    assert sweep.writes == 7


def test_a_count_of_several_writes_is_due_when_it_reaches_or_passes_a_multiple() -> None:
    sweep = Sweep(100)
    assert not sweep.count(99)
    assert sweep.count(1)        # reaches 100
    assert not sweep.count(98)   # 198
    assert sweep.count(5)        # passes 200
    assert sweep.count(100)      # 303: passes 300
    assert not sweep.count(0)


def test_a_sweep_every_write_is_always_due() -> None:
    sweep = Sweep(1)
    assert all(sweep.count() for _ in range(5))


@pytest.mark.parametrize("every", [0, -1])
def test_a_period_under_one_write_is_refused(every: int) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        Sweep(every)
