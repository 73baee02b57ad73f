"""The piece picker's rules, with the clock in the test's hands."""

from __future__ import annotations

from peer.piece_picker import FIRST_PAUSE, MAX_PAUSE, MISSES_BEFORE_DROP, PickerLimits, PiecePicker
from supernode.api import ParentInfo, mask_to_hex

LIMITS = PickerLimits(max_inflight=4, max_inflight_per_parent=2, stall_timeout=20.0)


def parent(peer_id: str, pieces: set[int] | None = None, *, done: bool = False) -> ParentInfo:
    mask = sum(1 << index for index in pieces or set())
    return ParentInfo(peer_id, f"http://{peer_id}.test:1", mask_to_hex(mask), done)


def picker(count: int = 8, *, known: int | None = None, limits: PickerLimits = LIMITS) -> PiecePicker:
    picks = PiecePicker(count, limits, now=0.0)
    picks.learn(0, [f"d{index}" for index in range(count if known is None else known)])
    return picks


def test_only_pieces_with_published_digests_are_fetched_lowest_first() -> None:
    picks = picker(8, known=3)
    chosen = picks.pick([parent("a", done=True), parent("b", done=True)], now=0.0)
    assert [pick.index for pick in chosen] == [0, 1, 2]
    assert [pick.sha256 for pick in chosen] == ["d0", "d1", "d2"]
    assert picks.digests_known() == 3


def test_in_flight_is_bounded_overall_and_per_parent() -> None:
    picks = picker(8)
    chosen = picks.pick([parent("a", done=True)], now=0.0)
    assert [pick.index for pick in chosen] == [0, 1]  # two per parent
    more = picks.pick([parent("a", done=True), parent("b", done=True), parent("c", done=True)], now=0.0)
    assert len(chosen) + len(more) == LIMITS.max_inflight
    assert picks.pick([parent("d", done=True)], now=0.0) == []


def test_parents_holding_the_piece_come_first_then_the_least_busy() -> None:
    picks = picker(4)
    chosen = picks.pick([parent("empty"), parent("holder", {2})], now=0.0)
    by_index = {pick.index: pick.parent.peer_id for pick in chosen}
    assert by_index[2] == "holder"
    assert by_index[0] == "empty"  # holder is no better for piece 0, and by then it is busier


def test_a_landed_piece_is_not_asked_for_again_and_counts_as_progress() -> None:
    picks = picker(2)
    first = picks.pick([parent("a", done=True)], now=0.0)
    picks.landed(first[0].index, "a", now=15.0)
    assert not picks.stalled(now=30.0)
    assert picks.stalled(now=35.0)
    picks.cancelled(first[1].index, "a")
    again = picks.pick([parent("a", done=True)], now=35.0)
    assert [pick.index for pick in again] == [1]


def test_a_parent_that_sent_a_bad_piece_is_never_asked_again() -> None:
    picks = picker(4)
    chosen = picks.pick([parent("bad", done=True)], now=0.0)
    picks.failed(chosen[0].index, "bad")
    assert picks.pick([parent("bad", done=True)], now=100.0) == []
    assert [p.parent.peer_id for p in picks.pick([parent("good", done=True)], now=100.0)] == ["good", "good"]


def test_not_here_pauses_the_parent_longer_each_time_and_then_drops_it() -> None:
    picks = picker(1)
    now = 0.0
    pauses = []
    for miss in range(MISSES_BEFORE_DROP):
        chosen = picks.pick([parent("a")], now)
        assert len(chosen) == 1, f"miss {miss}: the pause should be over"
        dropped = picks.missed(0, "a", now)
        assert dropped == (miss == MISSES_BEFORE_DROP - 1)
        assert picks.pick([parent("a")], now) == []  # not asked again at once: no hot loop
        wait = picks.wait_limit(now)
        if not dropped:
            pauses.append(wait)
            now += wait
    assert pauses[0] == FIRST_PAUSE
    assert pauses == sorted(pauses) and max(pauses) == MAX_PAUSE
    assert picks.pick([parent("a")], now + 100) == []


def test_a_piece_from_a_paused_parent_forgives_its_misses() -> None:
    picks = picker(2)
    picks.pick([parent("a")], 0.0)
    picks.missed(0, "a", 0.0)
    picks.landed(1, "a", 0.01)
    assert [pick.index for pick in picks.pick([parent("a")], 0.01)] == [0]


def test_wait_limit_is_the_stall_deadline_when_nobody_is_paused() -> None:
    picks = picker(2)
    assert picks.wait_limit(5.0) == 15.0
    assert picks.wait_limit(25.0) == 0.0


def test_the_first_digest_published_for_a_piece_is_kept() -> None:
    picks = PiecePicker(3, LIMITS, now=0.0)
    picks.learn(1, ["x1", ""])
    picks.learn(0, ["y0", "y1", "y2"])
    assert picks.digests == ["y0", "x1", "y2"]


def test_a_parent_whose_piece_mask_does_not_parse_is_treated_as_holding_nothing() -> None:
    picks = picker(1)
    broken = ParentInfo("a", "http://a.test:1", "not-hex", False)
    assert [pick.parent.peer_id for pick in picks.pick([broken], 0.0)] == ["a"]


def test_pieces_already_here_are_never_picked() -> None:
    picks = PiecePicker(3, LIMITS, now=0.0, have=0b101)
    picks.learn(0, ["d0", "d1", "d2"])
    assert [pick.index for pick in picks.pick([parent("a", done=True)], 0.0)] == [1]
