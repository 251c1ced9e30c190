"""The `faces` offset guard: contiguous offsets are scored, a jump is held until the missing ones come back,
re-read ones are not scored twice, a new assignment restarts from the committed offsets, and a rewind is repeated
until it delivers."""
from __future__ import annotations

from faust.types import TP

from stream_processors.handover.rewinder import REWIND_RETRY_S, Rewinder
from infra.topics import first_unread_offsets
from stream_processors.handover.offset_guard import Admission, OffsetGuard


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


def test_a_rewind_that_has_not_delivered_is_due_again_after_the_retry_interval():
    guard, rewinder = OffsetGuard(), Rewinder("faces")
    guard.reset({7: 62})
    assert guard.admit(7, 167) is Admission.HOLD
    assert rewinder.book(7, 62, now=100.0)
    assert not rewinder.book(7, 62, now=101.0)  # the same rewind again at once: nothing to do
    assigned = {TP("faces", 7)}
    assert rewinder.due(guard, assigned, now=100.0 + REWIND_RETRY_S / 2) == {}
    # no message of partition 7 arrives any more (the camera stopped): the timer repeats the rewind
    assert rewinder.due(guard, assigned, now=100.0 + REWIND_RETRY_S) == {7: 62}
    assert rewinder.pending == {7: 62}


def test_a_rewind_is_forgotten_once_its_offset_is_admitted_or_the_partition_moves():
    guard, rewinder = OffsetGuard(), Rewinder("faces")
    guard.reset({1: 10, 2: 20})
    assert guard.admit(1, 15) is Admission.HOLD and guard.admit(2, 25) is Admission.HOLD
    assert rewinder.book(1, 10, now=0.0) and rewinder.book(2, 20, now=0.0)
    assert guard.admit(1, 10) is Admission.PROCESS  # the rewind delivered partition 1
    rewinder.settle(guard)
    assert rewinder.pending == {2: 20}
    assert rewinder.due(guard, assigned={TP("faces", 1)}, now=60.0) == {}  # partition 2 went to another worker
    assert rewinder.pending == {}


def test_first_unread_offsets_start_at_the_log_start_where_retention_deleted_past_the_commit():
    # partition 0: committed 40 and still there; 1: committed 5 but the log now starts at 30 (retention);
    # 2: never committed, the worker's consumer starts at the earliest record.
    assert first_unread_offsets({0: 40, 1: 5}, {0: 12, 1: 30, 2: 7}) == {0: 40, 1: 30, 2: 7}
