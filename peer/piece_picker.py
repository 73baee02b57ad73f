"""Which parent for which piece, how many in flight, and when the swarm counts as stalled.

Pure bookkeeping with the clock passed in (`now`), so every rule is unit-tested without a network or a sleep
(tests/peer/test_piece_picker.py), in the way the supernode's scheduler is. The swarm loop (peer/swarm_fetch.py)
asks it what to fetch next and tells it how each fetch ended.

The rules:
- only pieces whose digests the feeder has published can be fetched (a piece is verified against its digest);
- the lowest missing pieces first, at most `max_inflight` at once and `max_inflight_per_parent` from one parent;
- parents known to hold the piece first, then the least busy; the supernode's order breaks ties;
- a parent that sent a bad piece, or could not be reached, is never asked again for this blob;
- a parent that answers "not here" is paused, for longer each time it does so in a row, and dropped after
  `MISSES_BEFORE_DROP` such answers (an instant 404 must not be asked again at once: a hot loop);
- no piece for `stall_timeout` means the swarm has stalled and the upstream should take over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from supernode.api import BadRequest, ParentInfo, hex_to_mask

# The first pause after a "not here", doubled on each further one in a row, up to MAX_PAUSE.
FIRST_PAUSE = 0.05
MAX_PAUSE = 2.0
MISSES_BEFORE_DROP = 8


@dataclass(frozen=True, slots=True)
class PickerLimits:
    max_inflight: int
    max_inflight_per_parent: int
    stall_timeout: float


@dataclass(frozen=True, slots=True)
class Pick:
    """Fetch piece `index` from `parent`, and check it against `sha256`."""

    index: int
    parent: ParentInfo
    sha256: str


@dataclass(slots=True)
class _Misses:
    count: int
    until: float


class PiecePicker:
    def __init__(self, piece_count: int, limits: PickerLimits, now: float, have: int = 0) -> None:
        self.piece_count = piece_count
        self.limits = limits
        # Piece digests the feeder published ("" while unknown).
        self.digests: list[str] = [""] * piece_count
        # The pieces whose digests are still unknown, as a bitmask.
        self.undigested = (1 << piece_count) - 1
        self._have = have  # bit i: piece i is verified here
        self._inflight: dict[int, str] = {}  # piece -> the parent it is being fetched from
        self._per_parent: dict[str, int] = {}
        self._dropped: set[str] = set()
        self._misses: dict[str, _Misses] = {}
        self._last_progress = now

    # --- what the swarm published ------------------------------------------------------------------

    def learn(self, first_index: int, digests: Sequence[str]) -> None:
        """Piece digests from the supernode, starting at `first_index`; the first one known for a piece is kept."""
        for offset, sha256 in enumerate(digests):
            index = first_index + offset
            if sha256 and 0 <= index < self.piece_count and not self.digests[index]:
                self.digests[index] = sha256
                self.undigested &= ~(1 << index)

    def digests_known(self) -> int:
        """How many digests from the start are known: the supernode need not send those again."""
        for index, sha256 in enumerate(self.digests):
            if not sha256:
                return index
        return self.piece_count

    # --- choosing ----------------------------------------------------------------------------------

    def pick(self, parents: Sequence[ParentInfo], now: float) -> list[Pick]:
        """The fetches to start now, recorded as in flight until `landed`, `missed` or `failed` is called."""
        usable = [
            parent
            for parent in parents
            if parent.peer_id not in self._dropped and not self._paused(parent.peer_id, now)
        ]
        if not usable:
            return []
        holdings = [_holding(parent) for parent in usable]
        picks: list[Pick] = []
        for index, sha256 in enumerate(self.digests):
            if len(self._inflight) >= self.limits.max_inflight:
                break
            if not sha256 or index in self._inflight or self._have >> index & 1:
                continue
            chosen = self._choose(usable, holdings, index)
            if chosen is None:
                break  # every parent is as busy as it may be
            self._inflight[index] = chosen.peer_id
            self._per_parent[chosen.peer_id] = self._per_parent.get(chosen.peer_id, 0) + 1
            picks.append(Pick(index, chosen, sha256))
        return picks

    def _choose(self, parents: Sequence[ParentInfo], holdings: Sequence[int], index: int) -> ParentInfo | None:
        best: tuple[int, int] | None = None
        chosen = None
        for order, (parent, holds) in enumerate(zip(parents, holdings, strict=True)):
            load = self._per_parent.get(parent.peer_id, 0)
            if load >= self.limits.max_inflight_per_parent:
                continue
            key = (0 if holds >> index & 1 else 1, load * 100 + order)
            if best is None or key < best:
                best, chosen = key, parent
        return chosen

    def usable(self, parent_id: str, now: float) -> bool:
        """Whether the parent may still be asked (now or after its pause): not dropped."""
        return parent_id not in self._dropped

    def _paused(self, parent_id: str, now: float) -> bool:
        misses = self._misses.get(parent_id)
        return misses is not None and now < misses.until

    # --- how a fetch ended -------------------------------------------------------------------------

    def landed(self, index: int, parent_id: str, now: float) -> None:
        """The parent's piece was verified and stored: progress, and the parent's misses are forgiven."""
        self._release(index, parent_id)
        self._misses.pop(parent_id, None)
        self.have(index, now)

    def have(self, index: int, now: float) -> None:
        """Piece `index` is verified here, from wherever it came."""
        self._have |= 1 << index
        self._last_progress = now

    def missed(self, index: int, parent_id: str, now: float) -> bool:
        """The parent answered that it does not have the piece (yet). True when it is dropped for it."""
        self._release(index, parent_id)
        misses = self._misses.get(parent_id) or _Misses(0, now)
        misses.count += 1
        misses.until = now + min(FIRST_PAUSE * 2 ** (misses.count - 1), MAX_PAUSE)
        self._misses[parent_id] = misses
        if misses.count >= MISSES_BEFORE_DROP:
            self._dropped.add(parent_id)
            return True
        return False

    def failed(self, index: int, parent_id: str) -> None:
        """The parent sent a bad piece or could not be reached: it is not asked again."""
        self._release(index, parent_id)
        self._dropped.add(parent_id)

    def cancelled(self, index: int, parent_id: str) -> None:
        """The fetch ended without a verdict on the parent."""
        self._release(index, parent_id)

    def _release(self, index: int, parent_id: str) -> None:
        if self._inflight.get(index) == parent_id:
            del self._inflight[index]
            self._per_parent[parent_id] -= 1

    # --- time --------------------------------------------------------------------------------------

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def stalled(self, now: float) -> bool:
        return now - self._last_progress >= self.limits.stall_timeout

    def wait_limit(self, now: float) -> float:
        """How long the loop may wait for news before it must look again: until the stall deadline, or until a
        paused parent may be asked again, whichever comes first (never negative)."""
        deadline = self._last_progress + self.limits.stall_timeout
        for parent_id, misses in self._misses.items():
            if parent_id not in self._dropped and misses.until > now:
                deadline = min(deadline, misses.until)
        return max(deadline - now, 0.0)


def _holding(parent: ParentInfo) -> int:
    """The parent's pieces as a mask (all bits for a parent that is done); none if the mask does not parse."""
    if parent.done:
        return -1
    try:
        return hex_to_mask(parent.pieces)
    except BadRequest:
        return 0
