"""The worker's background upkeep waits while agents answer, but never for ever."""

from __future__ import annotations

import time

from backend.worker import AgentActivity


def test_upkeep_runs_when_agents_are_quiet() -> None:
    activity = AgentActivity(quiet_s=2.0, max_deferrals=3)
    assert not activity.defer_upkeep()


def test_upkeep_waits_while_a_directive_runs_and_just_after() -> None:
    activity = AgentActivity(quiet_s=2.0, max_deferrals=3)
    activity.running = 1
    assert activity.defer_upkeep()
    activity.running = 0
    activity.last_end = time.monotonic()  # one just finished
    assert activity.defer_upkeep()
    activity.last_end = time.monotonic() - 5.0  # quiet again
    assert not activity.defer_upkeep()


def test_upkeep_is_deferred_a_bounded_number_of_passes() -> None:
    activity = AgentActivity(quiet_s=2.0, max_deferrals=3)
    activity.running = 1  # agents never stop
    passes = [activity.defer_upkeep() for _ in range(8)]
    assert passes == [True, True, True, False, True, True, True, False]
