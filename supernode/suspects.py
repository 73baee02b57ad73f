"""Hosts found sending bad bytes, and the quarantine of those found so in several swarms.

A strike is one swarm (one blob) where a host was the feeder that published piece digests that did not assemble into the
blob, or where it served a piece that failed its digest. A host struck in `quarantine_after` different swarms is
quarantined: never chosen as a parent or a feeder, in any swarm, until an operator clears it (a broken disk or a
rogue process is not something the host recovers from by itself). A host's id is bound to its secret
(supernode/identity.py), so re-registering does not shake the quarantine off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Strike", "Suspect", "Suspects"]

# Strikes kept per host (the newest), and hosts tracked, so that neither grows without bound.
MAX_STRIKES = 32
MAX_SUSPECTS = 4096


@dataclass(frozen=True, slots=True)
class Strike:
    digest: str
    reason: str
    # The member whose report found it (its accusation is logged under its own id).
    reporter: str
    at: float


@dataclass(slots=True)
class Suspect:
    peer_id: str
    strikes: list[Strike] = field(default_factory=list)
    quarantined_at: float | None = None

    @property
    def swarms(self) -> set[str]:
        return {strike.digest for strike in self.strikes}


class Suspects:
    def __init__(self, quarantine_after: int) -> None:
        self.quarantine_after = max(1, quarantine_after)
        self.hosts: dict[str, Suspect] = {}
        self.quarantined: set[str] = set()

    def strike(self, peer_id: str, digest: str, reason: str, reporter: str, now: float) -> bool:
        """Note a strike; True if it put the host in quarantine just now."""
        suspect = self.hosts.get(peer_id)
        if suspect is None:
            self._make_room()
            suspect = self.hosts[peer_id] = Suspect(peer_id)
        if any(s.digest == digest and s.reason == reason for s in suspect.strikes):
            return False  # one swarm counts once, however many members noticed
        suspect.strikes = [*suspect.strikes, Strike(digest, reason, reporter, now)][-MAX_STRIKES:]
        if peer_id not in self.quarantined and len(suspect.swarms) >= self.quarantine_after:
            suspect.quarantined_at = now
            self.quarantined.add(peer_id)
            return True
        return False

    def clear(self, peer_id: str) -> bool:
        """The operator's word: the host is trusted again, its strikes forgotten. False if it had none."""
        self.quarantined.discard(peer_id)
        return self.hosts.pop(peer_id, None) is not None

    def _make_room(self) -> None:
        if len(self.hosts) < MAX_SUSPECTS:
            return
        # The oldest host not in quarantine goes (dicts keep insertion order); quarantined ones stay.
        for peer_id in self.hosts:
            if peer_id not in self.quarantined:
                del self.hosts[peer_id]
                return
