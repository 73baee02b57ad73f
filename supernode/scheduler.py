"""The swarm scheduling state: plain, synchronous, no I/O; time is passed in as `now`.

A swarm is keyed by blob digest. Its members are ranked: the feeder first, then members in the
order they joined. A child's parents are always members ranked before it (or members that are done), so
parent links never form a cycle and every wait for a piece ends at the feeder.
"""

from __future__ import annotations

import heapq
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.pieces import PieceLayout, choose_piece_size

from .api import ROLE_CHILD, ROLE_FEEDER, HostFacts, ParentInfo, SwarmView, UnknownPeer, mask_to_hex
from .config import SchedulerConfig
from .suspects import Suspects

log = logging.getLogger(__name__)

LOCALITY_LABELS = ("zone", "rack")


@dataclass(slots=True)
class PeerRecord:
    peer_id: str
    url: str
    labels: dict[str, str]
    last_seen: float
    # The sha256 of the credential issued at register (supernode/identity.py); empty: none was issued.
    credential_hash: bytes = b""
    # What the host said of itself last (supernode/api.py HostFacts), for the platform's view of hosts.
    host: HostFacts | None = None
    # The sha256 of the platform cluster's join token it registered with ("" for none); never the token.
    cluster_token_hash: str = ""


@dataclass(slots=True)
class Member:
    peer_id: str
    rank: float
    pieces: int = 0
    done: bool = False
    parents: list[str] = field(default_factory=list)
    # The swarm's membership version when parents were last chosen: no need to look again until it moves.
    chosen_at: int = -1
    # The swarm's version at the last change that concerned this member: its parents, or parents it lacks.
    version: int = 0


@dataclass(slots=True)
class Swarm:
    digest: str
    layout: PieceLayout
    piece_digests: list[str]
    touched: float
    feeder: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    next_rank: int = 1
    # Moves on what changes members' parents (a member leaves, finishes, is blocked; a new feeder). A member's view
    # carries the version of the last change that concerned it (`Member.version`) or everyone (`everyone`): a
    # member that finishes does not concern children whose parents are all fine, and in a swarm of a thousand,
    # waking everyone for each of a thousand members that finish is a million views.
    version: int = 0
    everyone: int = 0
    # Members with fewer parents than they ask for: a member that finishes or leaves may give them one.
    short: set[str] = field(default_factory=set)
    # How many piece digests from the start are known: what children wait for as the feeder goes.
    known_prefix: int = 0
    # Moves when members leave or finish, or a feeder is promoted: the only events that can offer a child new
    # parents (a newcomer ranks after everyone, so it is nobody's parent).
    membership: int = 0
    # How many children each member serves in this swarm: the fan-out cap is per swarm, since a host pulling
    # five layers at once is in five swarms, and each wants parents.
    load: dict[str, int] = field(default_factory=dict)
    # Who has whom as a parent, so a leaving member's children are found without a scan of the swarm.
    children: dict[str, set[str]] = field(default_factory=dict)
    # Members in a list, for picking candidate parents at random in O(1).
    roster: list[str] = field(default_factory=list)
    roster_index: dict[str, int] = field(default_factory=dict)
    completed_members: int = 0
    # Moves when the swarm is reset (`Scheduler.reset`): every piece verified against the digests of an earlier
    # epoch is void, and members that see a new epoch in their view start over.
    epoch: int = 0
    # The members whose reports set the published piece digests (the feeders so far, in this epoch).
    digest_feeders: set[str] = field(default_factory=set)
    # Until when the swarm is being rebuilt after a restart (`Scheduler.join`), and by piece, who claims which digest.
    rebuilding_until: float = float("-inf")
    claims: dict[int, dict[str, set[str]]] = field(default_factory=dict)

    @property
    def complete_mask(self) -> int:
        return (1 << self.layout.count) - 1


class UnknownSwarm(LookupError):
    """No swarm for this digest; the member must join first."""


class Scheduler:
    def __init__(self, config: SchedulerConfig | None = None, seed: int | None = None) -> None:
        self.config = config or SchedulerConfig()
        self.random = random.Random(seed)  # noqa: S311 -- sampling parents, not secrets
        self.peers: dict[str, PeerRecord] = {}
        self.swarms: dict[str, Swarm] = {}
        self.decisions = 0
        # Long-polls to wake since `take_wakes` was last asked: by swarm, the members concerned (None: all).
        self._wakes: dict[str, set[str] | None] = {}
        self.suspects = Suspects(self.config.quarantine_after)
        # Swarms being rebuilt after a restart: when their grace ends, their members are woken to find a feeder.
        self._rebuilding: set[str] = set()
        # Swarms reset because their feeder was found bad: for the metric.
        self.resets = 0
        # Hosts an operator cordoned on the platform (manager/, through damselfly/hosting.py): like quarantined
        # ones, chosen as no parent and no feeder; they still pull.
        self.cordoned: frozenset[str] = frozenset()

    # --- hosts -------------------------------------------------------------------------------------

    def register(
        self, peer_id: str, url: str, labels: dict[str, str], now: float, credential_hash: bytes = b"",
        host: HostFacts | None = None, cluster_token_hash: str = "",
    ) -> PeerRecord:
        record = PeerRecord(peer_id, url, dict(labels), now, credential_hash, host, cluster_token_hash)
        self.peers[peer_id] = record
        return record

    def heartbeat(self, peer_id: str, now: float, host: HostFacts | None = None) -> None:
        record = self.peers.get(peer_id)
        if record is None:
            raise UnknownPeer(peer_id)
        record.last_seen = now
        if host is not None:
            record.host = host

    def set_cordoned(self, peer_ids: Iterable[str]) -> None:
        """The hosts an operator cordoned, all of them (not a change): each newly cordoned one leaves the swarms it
        is in, so that its children find other parents and a swarm it fed finds another feeder at once; when it
        joins again (its next view says it must), it is nobody's parent and no feeder (`_serves`)."""
        cordoned = frozenset(peer_ids)
        newly = cordoned - self.cordoned
        self.cordoned = cordoned
        if not newly:
            return
        for swarm in self.swarms.values():
            for peer_id in newly & swarm.members.keys():
                self._leave(swarm, peer_id)
                # It is no member any more: its long-poll must wake to hear it, as its children do theirs.
                self._touch_everyone(swarm)

    def _serves(self, peer_id: str) -> bool:
        """Whether the host may be anyone's parent or a swarm's feeder: not quarantined, not cordoned."""
        return peer_id not in self.suspects.quarantined and peer_id not in self.cordoned

    def expire(self, now: float) -> list[str]:
        """Take peers whose heartbeat lapsed out of every swarm; returns their ids."""
        dead = [p.peer_id for p in self.peers.values() if now - p.last_seen > self.config.peer_ttl]
        for peer_id in dead:
            self.remove_peer(peer_id)
        for digest in [d for d in self._rebuilding if d not in self.swarms or now >= self.swarms[d].rebuilding_until]:
            self._rebuilding.discard(digest)
            swarm = self.swarms.get(digest)
            if swarm is not None and swarm.feeder is None and not swarm.completed_members:
                self._touch_everyone(swarm)  # the first to ask is made the feeder now
        stale = [d for d, t in self.swarms.items() if now - t.touched > self.config.swarm_ttl]
        for digest in stale:
            self._drop_swarm(digest)
        return dead

    def remove_peer(self, peer_id: str) -> None:
        self.peers.pop(peer_id, None)
        for swarm in list(self.swarms.values()):
            self._leave(swarm, peer_id)

    # --- swarms ------------------------------------------------------------------------------------

    def join(
        self,
        digest: str,
        peer_id: str,
        size: int,
        pieces: int,
        now: float,
        claimed: dict[int, str] | None = None,
        was_feeder: bool = False,
        rejoining: bool = False,
    ) -> SwarmView:
        """A member joins (or joins again) with the pieces it holds. A swarm this supernode does not know, joined by
        a member that holds pieces (or that was in it before: `rejoining`), is one a restart lost or one whose owner
        moved here (supernode/shards.py): it is rebuilt from its members' joins (`_claim`), and for
        `rebuild_grace` seconds nobody but the member that was its feeder is made the feeder, so that the others
        do not go to the upstream for what the swarm already holds."""
        record = self._peer(peer_id, now)
        swarm = self.swarms.get(digest)
        if swarm is None:
            layout = PieceLayout(size, choose_piece_size(size))
            swarm = Swarm(digest, layout, [""] * layout.count, touched=now)
            self.swarms[digest] = swarm
            if pieces & swarm.complete_mask or rejoining:
                swarm.rebuilding_until = now + self.config.rebuild_grace
                self._rebuilding.add(digest)
        pieces &= swarm.complete_mask
        swarm.touched = now
        member = swarm.members.get(peer_id)
        if member is None:
            # A member that already holds pieces ranks before every newcomer, by how many it holds, so that those
            # who hold the most can be everyone's parents (ranks only decide who may be whose parent).
            held = pieces.bit_count()
            rank = 1.0 - held / (swarm.layout.count + 1) if held else float(swarm.next_rank)
            member = Member(peer_id, rank=rank)
            swarm.next_rank += 1
            swarm.members[peer_id] = member
            swarm.roster_index[peer_id] = len(swarm.roster)
            swarm.roster.append(peer_id)
        member.pieces = pieces
        if claimed:
            self._claim(swarm, member, claimed, now)
        if member.pieces == swarm.complete_mask and swarm.layout.count and self._serves(peer_id):
            self._mark_done(swarm, member)
        self._ensure_feeder(swarm, record.peer_id, now, was_feeder)
        # No version bump for a plain join: newcomers rank after everyone, so they change nobody's parents, and
        # waking every member of a large swarm per join would be a storm.
        return self.view(digest, peer_id, now)

    def report(
        self,
        digest: str,
        peer_id: str,
        *,
        pieces: int,
        piece_digests: dict[int, str],
        done: bool,
        failed: bool,
        bad_parents: list[str],
        now: float,
        corrupt_parents: Sequence[str] = (),
        bad_feeder: bool = False,
    ) -> None:
        self._peer(peer_id, now)
        swarm = self._swarm(digest)
        member = swarm.members.get(peer_id)
        if member is None:
            raise UnknownSwarm(digest)
        swarm.touched = now
        if peer_id == swarm.feeder:
            # Only the feeder's digests are taken: a child cannot rewrite what others verify against.
            for index, piece_digest in piece_digests.items():
                if 0 <= index < swarm.layout.count and not swarm.piece_digests[index]:
                    swarm.piece_digests[index] = piece_digest
                    swarm.digest_feeders.add(peer_id)
            known = swarm.known_prefix
            while swarm.known_prefix < swarm.layout.count and swarm.piece_digests[swarm.known_prefix]:
                swarm.known_prefix += 1
            if swarm.known_prefix != known:
                # New digests are news for every member that lacks them (`news_for` says which).
                self._wakes[digest] = None
        member.pieces |= pieces & swarm.complete_mask
        # A quarantined or cordoned host is nobody's parent: its "done" must not stand in for a feeder
        # (`_ensure_feeder`).
        if done and member.pieces == swarm.complete_mask and self._serves(peer_id):
            self._mark_done(swarm, member)
        for bad in [*bad_parents, *corrupt_parents]:
            if bad in swarm.members and bad != peer_id:
                swarm.blocked.add(bad)
                self._leave(swarm, bad)
        for bad in corrupt_parents:
            if bad != peer_id:
                self._strike(bad, digest, "served a piece that failed its digest", peer_id, now)
        if bad_feeder:
            self.reset(swarm, peer_id, now)
        if failed:
            self._leave(swarm, peer_id)

    def feeder_disconnected(self, digest: str, peer_id: str) -> None:
        """The feeder's long-polled view was cut off before its answer: its process died (a feeder that finished
        has reported every piece first, peer/swarm_fetch.py). It leaves the swarm, and the first member to ask is
        promoted, from where the swarm stands."""
        swarm = self.swarms.get(digest)
        member = swarm.members.get(peer_id) if swarm is not None else None
        if swarm is None or member is None or swarm.feeder != peer_id or member.pieces == swarm.complete_mask:
            return
        log.info("feeder %s of %s went away mid-blob: another member takes over", peer_id, digest)
        self._leave(swarm, peer_id)

    def reset(self, swarm: Swarm, reporter: str, now: float) -> None:
        """The published piece digests did not assemble into the blob (`reporter` found it): whoever set them is
        blocked from the swarm and struck, the digests are withdrawn, and every member's pieces are void. The
        members see a new epoch in their next view and start over; the first to ask is the new feeder and goes to
        the upstream, whose bytes are checked against the blob's own digest.

        A member that set digests itself cannot accuse them (the upstream it fetched from sent what it sent).
        """
        feeders = swarm.digest_feeders - {reporter}
        if not feeders or reporter in swarm.digest_feeders:
            return
        self.resets += 1
        for feeder in sorted(feeders):
            log.warning(
                "swarm %s reset: host %s published piece digests that do not assemble into the blob (found by %s);"
                " it is blocked from this swarm", swarm.digest, feeder, reporter,
            )
            swarm.blocked.add(feeder)
            self._leave(swarm, feeder)
            self._strike(feeder, swarm.digest, "published piece digests that did not assemble", reporter, now)
        swarm.epoch += 1
        swarm.digest_feeders = set()
        swarm.piece_digests = [""] * swarm.layout.count
        swarm.known_prefix = 0
        swarm.feeder = None
        swarm.completed_members = 0
        for member in swarm.members.values():
            member.pieces = 0
            member.done = False
            self._set_parents(swarm, member, [])
        swarm.membership += 1
        self._touch_everyone(swarm)

    def _strike(self, peer_id: str, digest: str, reason: str, reporter: str, now: float) -> None:
        if self.suspects.strike(peer_id, digest, reason, reporter, now):
            log.warning(
                "host %s quarantined: bad bytes in %d swarms (last: %s, %s); it is chosen as no parent or feeder "
                "until an operator clears it", peer_id, self.suspects.quarantine_after, digest, reason,
            )

    def waiting(self, digest: str, peer_id: str) -> int:
        """How many members other than `peer_id` still need pieces: a feeder nobody waits for reports seldom."""
        swarm = self.swarms.get(digest)
        if swarm is None:
            return 0
        member = swarm.members.get(peer_id)
        others = len(swarm.members) - swarm.completed_members
        return others - (1 if member is not None and not member.done else 0)

    def news_for(self, digest: str, peer_id: str, since: int, digests_from: int) -> bool:
        """Whether a member that saw version `since` and holds `digests_from` digests has news to fetch.

        Digests are handed out in batches that grow with the swarm, so that a swarm of thousands is not woken
        once per piece: with up to a thousand members every new digest is news at once. One that is no member
        (any more) has news at once: that it must join.
        """
        swarm = self._swarm(digest)
        member = swarm.members.get(peer_id)
        if member is None or max(member.version, swarm.everyone) > since:
            return True
        count = swarm.layout.count
        if digests_from >= count:
            return False
        batch = min(8, 1 + len(swarm.members) // 1000)
        return swarm.known_prefix >= min(digests_from + batch, count)

    def take_wakes(self) -> dict[str, set[str] | None]:
        """The long-polls to wake for what changed since the last call: by swarm, its members concerned (None:
        every member; each then asks `news_for`)."""
        wakes, self._wakes = self._wakes, {}
        return wakes

    def view(self, digest: str, peer_id: str, now: float, digests_from: int = 0) -> SwarmView:
        self._peer(peer_id, now)
        swarm = self._swarm(digest)
        member = swarm.members.get(peer_id)
        if member is None:
            raise UnknownSwarm(digest)
        self._ensure_feeder(swarm, peer_id, now)
        role = ROLE_FEEDER if swarm.feeder == peer_id else ROLE_CHILD
        if role == ROLE_CHILD and not member.done:
            self._choose_parents(swarm, member)
        else:
            self._set_parents(swarm, member, [])
        parents = []
        for parent_id in member.parents:
            parent = swarm.members[parent_id]
            parents.append(ParentInfo(parent_id, self.peers[parent_id].url, mask_to_hex(parent.pieces), parent.done))
        return SwarmView(
            digest=digest,
            role=role,
            size=swarm.layout.blob_size,
            piece_size=swarm.layout.piece_size,
            piece_digests=swarm.piece_digests[max(digests_from, 0) :],
            parents=parents,
            version=max(member.version, swarm.everyone),
            feeder_alive=swarm.feeder is not None,
            digests_from=max(digests_from, 0),
            epoch=swarm.epoch,
        )

    # --- internals ---------------------------------------------------------------------------------

    def _peer(self, peer_id: str, now: float) -> PeerRecord:
        record = self.peers.get(peer_id)
        if record is None:
            raise UnknownPeer(peer_id)
        record.last_seen = max(record.last_seen, now)
        return record

    def _swarm(self, digest: str) -> Swarm:
        swarm = self.swarms.get(digest)
        if swarm is None:
            raise UnknownSwarm(digest)
        return swarm

    def _claim(self, swarm: Swarm, member: Member, claimed: dict[int, str], now: float) -> None:
        """The digests a joining member holds pieces by. While the swarm has no feeder (a restart lost it, or it
        died), they are what the swarm publishes: per piece, the digest most members claim (while the swarm is
        rebuilt, a later majority overrules an earlier claim; after, the published one stays). A piece whose
        claimed digest differs from the published one does not count as held: nobody is sent for it."""
        open_to_claims = swarm.feeder is None and not swarm.completed_members
        rebuilding = now < swarm.rebuilding_until
        changed = False
        for index, sha256 in claimed.items():
            if not (0 <= index < swarm.layout.count and member.pieces >> index & 1):
                continue
            claimants = swarm.claims.setdefault(index, {})
            claimants.setdefault(sha256, set()).add(member.peer_id)
            published = swarm.piece_digests[index]
            if open_to_claims and (not published or (rebuilding and published != sha256 and len(
                claimants[sha256]) > len(claimants.get(published, ())))):
                swarm.piece_digests[index] = sha256
                swarm.digest_feeders.add(member.peer_id)
                changed = True
        if changed:
            for other in swarm.members.values():
                for index, claimants in swarm.claims.items():
                    if other.pieces >> index & 1 and other.peer_id not in claimants.get(swarm.piece_digests[index], ()):
                        other.pieces &= ~(1 << index)
            while swarm.known_prefix < swarm.layout.count and swarm.piece_digests[swarm.known_prefix]:
                swarm.known_prefix += 1
            self._wakes[swarm.digest] = None
        for index in range(swarm.layout.count):
            published = swarm.piece_digests[index]
            if member.pieces >> index & 1 and published != claimed.get(index, published):
                member.pieces &= ~(1 << index)

    def _ensure_feeder(self, swarm: Swarm, asking: str, now: float = 0.0, was_feeder: bool = False) -> None:
        """Exactly one member goes to the upstream while nobody has the whole blob (while a swarm is rebuilt after
        a restart, only the member that was its feeder)."""
        if swarm.feeder is not None or swarm.completed_members or asking in swarm.blocked:
            return
        if not self._serves(asking):
            return
        if now < swarm.rebuilding_until and not was_feeder:
            return
        swarm.feeder = asking
        member = swarm.members[asking]
        # The new feeder needs nobody: it ranks before every member, so nobody's parent links can cycle.
        member.rank = -float(swarm.version + 1)
        self._set_parents(swarm, member, [])
        self.decisions += 1
        swarm.membership += 1
        self._touch_everyone(swarm)

    def _mark_done(self, swarm: Swarm, member: Member) -> None:
        if not member.done:
            member.done = True
            swarm.completed_members += 1
            swarm.membership += 1
            self._set_parents(swarm, member, [])
            # It can now be anyone's parent: news for those short of parents only.
            self._touch(swarm, [member.peer_id, *swarm.short])
        if swarm.feeder == member.peer_id:
            swarm.feeder = None

    def _leave(self, swarm: Swarm, peer_id: str) -> None:
        member = swarm.members.pop(peer_id, None)
        if member is None:
            return
        # Swap-remove from the roster: O(1).
        index = swarm.roster_index.pop(peer_id)
        last = swarm.roster.pop()
        if last != peer_id:
            swarm.roster[index] = last
            swarm.roster_index[last] = index
        self._set_parents(swarm, member, [])
        if member.done:
            swarm.completed_members -= 1
        swarm.membership += 1
        orphans = list(swarm.children.get(peer_id, ()))
        for child_id in orphans:
            other = swarm.members[child_id]
            self._set_parents(swarm, other, [p for p in other.parents if p != peer_id])
        if swarm.feeder == peer_id:
            # Every member must hear of it: the first to ask is made the feeder.
            swarm.feeder = None
            self._touch_everyone(swarm)
        else:
            # Its children lost a parent; its own parents have room for one more child.
            self._touch(swarm, [*orphans, *swarm.short])

    def _touch(self, swarm: Swarm, peer_ids: Iterable[str]) -> None:
        """A change that concerns these members: their views move to a new version, their long-polls wake."""
        swarm.version += 1
        woken = self._wakes.get(swarm.digest, set())
        for peer_id in peer_ids:
            member = swarm.members.get(peer_id)
            if member is not None:
                member.version = swarm.version
                if woken is not None:
                    woken.add(peer_id)
        self._wakes[swarm.digest] = woken

    def _touch_everyone(self, swarm: Swarm) -> None:
        swarm.version += 1
        swarm.everyone = swarm.version
        self._wakes[swarm.digest] = None

    def _note_short(self, swarm: Swarm, member: Member) -> None:
        short = (
            not member.done
            and member.peer_id != swarm.feeder
            and swarm.members.get(member.peer_id) is member
            and len(member.parents) < self.config.parents_per_child
        )
        if short:
            swarm.short.add(member.peer_id)
        else:
            swarm.short.discard(member.peer_id)

    def _drop_swarm(self, digest: str) -> None:
        del self.swarms[digest]

    def _set_parents(self, swarm: Swarm, member: Member, parents: list[str]) -> None:
        for parent in member.parents:
            left = swarm.load.get(parent, 0) - 1
            if left > 0:
                swarm.load[parent] = left
            else:
                swarm.load.pop(parent, None)
            served = swarm.children.get(parent)
            if served is not None:
                served.discard(member.peer_id)
                if not served:
                    del swarm.children[parent]
        member.parents = parents
        for parent in parents:
            swarm.load[parent] = swarm.load.get(parent, 0) + 1
            swarm.children.setdefault(parent, set()).add(member.peer_id)
        self._note_short(swarm, member)

    def _choose_parents(self, swarm: Swarm, child: Member) -> None:
        """Keep the parents that are still fit and top up with the best others."""
        wanted = self.config.parents_per_child
        keep = [p for p in child.parents if self._eligible(swarm, child, p)]
        if len(keep) >= wanted or (len(keep) == len(child.parents) and child.chosen_at == swarm.membership):
            if keep != child.parents:
                self._set_parents(swarm, child, keep)
            return
        child.chosen_at = swarm.membership
        child_labels = self.peers[child.peer_id].labels
        candidates = (
            swarm.members[peer_id]
            for peer_id in self._candidate_ids(swarm)
            if peer_id not in keep
            and self._eligible(swarm, child, peer_id)
            and self._has_capacity(swarm, swarm.members[peer_id])
        )
        best = heapq.nsmallest(wanted - len(keep), candidates, key=lambda m: self._preference(swarm, m, child_labels))
        chosen = keep + [m.peer_id for m in best]
        if chosen != child.parents:
            self._set_parents(swarm, child, chosen)
            self.decisions += 1
        else:
            self._note_short(swarm, child)  # a newcomer that found nobody yet

    def _candidate_ids(self, swarm: Swarm) -> list[str]:
        """Whom to consider as parents: everyone in a small swarm, a random sample in a large one.

        Scanning every member for every child makes a swarm of n members cost n^2; like Dragonfly's scheduler,
        we look at a bounded random sample instead (plus the feeder), which finds good parents with high
        probability because most members have room for children while a swarm grows.
        """
        sample = self.config.candidate_sample
        if len(swarm.roster) <= sample:
            return swarm.roster
        picked = {swarm.roster[self.random.randrange(len(swarm.roster))] for _ in range(sample)}
        if swarm.feeder is not None:
            picked.add(swarm.feeder)
        return list(picked)

    def _eligible(self, swarm: Swarm, child: Member, parent_id: str) -> bool:
        parent = swarm.members.get(parent_id)
        if parent is None or parent_id == child.peer_id or parent_id in swarm.blocked:
            return False
        if not self._serves(parent_id):
            return False
        if parent_id not in self.peers:
            return False
        return parent.done or parent.rank < child.rank

    def _has_capacity(self, swarm: Swarm, member: Member) -> bool:
        cap = self.config.feeder_fanout if member.peer_id == swarm.feeder else self.config.peer_fanout
        return swarm.load.get(member.peer_id, 0) < cap

    def _preference(self, swarm: Swarm, member: Member, child_labels: dict[str, str]) -> tuple[int, int, int, int]:
        labels = self.peers[member.peer_id].labels
        # Same rack beats same zone beats elsewhere; then finished peers, then the ones furthest along.
        distance = len(LOCALITY_LABELS)
        for depth, key in enumerate(reversed(LOCALITY_LABELS)):
            if key in child_labels and labels.get(key) == child_labels[key]:
                distance = depth
                break
        return (
            distance,
            0 if member.done else 1,
            swarm.load.get(member.peer_id, 0),
            -member.pieces.bit_count(),
        )
