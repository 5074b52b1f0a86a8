"""The runner's call pace: bursts of call starts are spread out, steady work is not held."""

from __future__ import annotations

import asyncio

import pytest

from generation.runner import ASSUMED_CALL_S, CallPace
from tests.plugins.clock import FakeClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()

    async def sleep(seconds: float) -> None:  # time passes only when the pace waits
        clock.now += seconds

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return clock


def _start_times(pace: CallPace, clock: FakeClock, n: int) -> list[float]:
    async def starts() -> list[float]:
        times = []
        for _ in range(n):
            await pace.start()
            times.append(clock.now - 100.0)
        return times

    return asyncio.run(starts())


def test_a_burst_of_starts_is_spread_over_half_a_call(clock: FakeClock) -> None:
    pace = CallPace(40, clock=clock)  # 5 at once, then 2 × 40 ÷ 4 s = 20 a second

    times = _start_times(pace, clock, 40)

    assert times[:5] == [0.0] * 5
    assert times[-1] == pytest.approx(35 / 20)
    assert times[-1] < ASSUMED_CALL_S / 2


def test_calls_ending_at_the_steady_rate_never_wait(clock: FakeClock) -> None:
    pace = CallPace(40, clock=clock)
    _start_times(pace, clock, 40)
    steady = []
    for _ in range(100):  # one call ends and the next starts, 40 per 4 s
        clock.now += ASSUMED_CALL_S / 40
        before = clock.now
        _start_times(pace, clock, 1)
        steady.append(clock.now - before)

    assert max(steady) == 0.0


def test_the_pace_follows_the_measured_call_time(clock: FakeClock) -> None:
    pace = CallPace(40, clock=clock)
    for _ in range(60):
        pace.answered(0.05)

    assert pace.call_s == pytest.approx(0.05, abs=0.01)
    assert pace.per_s > 1000  # a fast model is not held to the 4 s assumption
