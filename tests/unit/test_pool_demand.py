"""How the warm pool's target follows demand: the arithmetic, without Docker."""

from __future__ import annotations

from executor.pool import Demand, pool_target


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_target_is_the_recent_arrivals_between_floor_and_ceiling() -> None:
    assert pool_target(2, 64, 0) == 2  # quiet: the floor
    assert pool_target(2, 64, 30) == 30  # a crowd of 30: as many next time
    assert pool_target(2, 64, 500) == 64  # never past the ceiling
    assert pool_target(0, 0, 10) == 0  # pool off stays off


def test_arrivals_count_for_one_window_then_fall_away() -> None:
    clock = Clock()
    demand = Demand(window_s=120, clock=clock)
    for _ in range(30):
        demand.arrived()
    clock.now += 60
    demand.arrived()
    assert demand.recent() == 31  # a minute later the first crowd still counts
    clock.now += 61
    assert demand.recent() == 1  # the crowd is older than the window
    clock.now += 120
    assert demand.recent() == 0


def test_how_long_since_the_latest_arrival() -> None:
    clock = Clock()
    demand = Demand(window_s=120, clock=clock)
    assert demand.quiet_for() == float("inf")  # nobody came yet: a refill need not wait
    demand.arrived()
    clock.now += 0.1
    demand.arrived()
    clock.now += 0.2
    assert abs(demand.quiet_for() - 0.2) < 1e-9  # from the latest, not the first
