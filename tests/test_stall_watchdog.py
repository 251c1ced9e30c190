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
