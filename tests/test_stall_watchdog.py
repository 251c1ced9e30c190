"""The stall watchdog (table recovery, `faces` partitions): records that stop moving are sought again from the
next offset to apply; a moving or finished recovery is left alone."""
from __future__ import annotations

from stream_processors.handover.stall_watchdog import StallWatchdog


def test_a_recovery_that_stops_moving_is_sought_again_from_the_next_offset_every_stall_period():
    watchdog = StallWatchdog(stall_s=10.0)
    remaining, applied = {"changelog-9": 24, "changelog-11": 48}, {"changelog-9": -1, "changelog-11": -1}
    assert watchdog.check(remaining, applied, now=0.0) == {}
    assert watchdog.check(remaining, applied, now=9.0) == {}
    assert watchdog.check(remaining, applied, now=10.0) == {"changelog-9": 0, "changelog-11": 0}
    assert watchdog.check(remaining, applied, now=12.0) == {}  # give the seek time to deliver
    assert watchdog.check(remaining, applied, now=20.0) == {"changelog-9": 0, "changelog-11": 0}


def test_a_recovery_that_moves_is_left_alone_and_a_partial_one_resumes_after_its_last_applied_offset():
    watchdog = StallWatchdog(stall_s=10.0)
    for step, left in enumerate(range(24, 4, -2)):  # two records applied every 9 s: slow, but moving
        assert watchdog.check({"changelog-1": left}, {"changelog-1": 23 - left}, now=step * 9.0) == {}
    # then nothing more arrives: 6 records left, offsets up to 17 applied
    assert watchdog.check({"changelog-1": 6}, {"changelog-1": 17}, now=9 * 9.0 + 10.0) == {"changelog-1": 18}


def test_no_recovery_or_a_finished_one_never_seeks():
    watchdog = StallWatchdog(stall_s=10.0)
    assert watchdog.check({}, {}, now=0.0) == {}
    assert watchdog.check({}, {}, now=100.0) == {}
    assert watchdog.check({"changelog-3": 0}, {"changelog-3": 23}, now=200.0) == {}


def test_a_stuck_partition_is_sought_although_new_records_keep_arriving_on_it():
    """A live screening: cameras keep producing into the partition whose fetch stopped, so its waiting count grows
    every check; nothing is taken from it, and that is the stall."""
    watchdog = StallWatchdog(stall_s=5.0)
    for second in range(5):
        assert watchdog.check({3: 100 + 10 * second}, {3: 41}, now=float(second)) == {}
    assert watchdog.check({3: 150}, {3: 41}, now=5.0) == {3: 42}


def test_a_stuck_partition_is_sought_while_the_other_partitions_move_and_only_it():
    watchdog = StallWatchdog(stall_s=5.0)
    for second in range(5):  # partition 0 is consumed (its taken offset advances), partition 1 is not
        waiting = {0: 7 + second % 3, 1: 60 + second}
        assert watchdog.check(waiting, {0: 1000 + 50 * second, 1: 499}, now=float(second)) == {}
    assert watchdog.check({0: 8, 1: 65}, {0: 1250, 1: 499}, now=5.0) == {1: 500}


def test_a_partition_that_catches_up_or_leaves_starts_a_fresh_clock():
    watchdog = StallWatchdog(stall_s=5.0)
    assert watchdog.check({2: 30}, {2: 9}, now=0.0) == {}
    assert watchdog.check({}, {}, now=3.0) == {}  # nothing waits (or the agent was busy): no clock runs
    assert watchdog.check({2: 30}, {2: 9}, now=4.0) == {}
    assert watchdog.check({2: 30}, {2: 9}, now=8.0) == {}  # 4 s since it waited again, not 8
    assert watchdog.check({2: 30}, {2: 9}, now=9.0) == {2: 10}
