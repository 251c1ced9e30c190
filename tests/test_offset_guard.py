"""The `faces` offset guard: contiguous offsets are scored, a jump is held until the missing ones come back,
re-read ones are not scored twice, and a new assignment restarts from the committed offsets."""
from __future__ import annotations

from stream_processors.offset_guard import Admission, OffsetGuard


def test_contiguous_offsets_from_the_committed_one_are_processed():
    guard = OffsetGuard()
    guard.reset({3: 60})
    assert [guard.admit(3, offset) for offset in (60, 61, 62)] == [Admission.PROCESS] * 3
    assert guard.expected(3) == 63


def test_a_jump_is_held_and_the_partition_waits_for_the_first_missing_offset():
    guard = OffsetGuard()
    guard.reset({7: 62})
    assert guard.admit(7, 167) is Admission.HOLD  # 62..166 were skipped by the consumer
    assert guard.admit(7, 168) is Admission.HOLD
    assert guard.expected(7) == 62
    # the rewind delivers them again, in order, then the held ones
    assert all(guard.admit(7, offset) is Admission.PROCESS for offset in range(62, 169))
    assert guard.expected(7) == 169


def test_offsets_below_the_expected_one_are_replays_not_scored_twice():
    guard = OffsetGuard()
    guard.reset({0: 10})
    assert guard.admit(0, 10) is Admission.PROCESS
    assert guard.admit(0, 9) is Admission.REPLAYED
    assert guard.admit(0, 10) is Admission.REPLAYED
    assert guard.admit(0, 11) is Admission.PROCESS


def test_a_partition_never_committed_starts_at_its_first_message():
    guard = OffsetGuard()
    guard.reset({})
    assert guard.admit(5, 1234) is Admission.PROCESS
    assert guard.admit(5, 1236) is Admission.HOLD


def test_partitions_are_independent():
    guard = OffsetGuard()
    guard.reset({1: 5, 2: 50})
    assert guard.admit(1, 5) is Admission.PROCESS
    assert guard.admit(2, 52) is Admission.HOLD
    assert guard.admit(1, 6) is Admission.PROCESS
    assert guard.expected(2) == 50


def test_a_new_assignment_is_not_current_until_reset_with_its_committed_offsets():
    guard = OffsetGuard()
    guard.reset({4: 100})
    assert guard.current
    assert guard.admit(4, 100) is Admission.PROCESS
    guard.invalidate()
    assert not guard.current
    guard.reset({4: 300})  # another worker owned it meanwhile
    assert guard.current and guard.expected(4) == 300
    assert guard.admit(4, 300) is Admission.PROCESS
