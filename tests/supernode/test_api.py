"""Bodies of the supernode's API: a view's hand-written JSON is exactly what `dataclasses.asdict` gives."""

from __future__ import annotations

from dataclasses import asdict

from supernode.api import ROLE_CHILD, ParentInfo, SwarmView


def test_a_view_renders_as_asdict_would_and_reads_back_the_same() -> None:
    view = SwarmView(
        digest="sha256:" + "ab" * 32,
        role=ROLE_CHILD,
        size=10 << 20,
        piece_size=4 << 20,
        piece_digests=["c" * 64, "", ""],
        parents=[ParentInfo("p0", "http://10.0.0.1:65002", "3", False), ParentInfo("p2", "http://[::1]:1", "", True)],
        version=7,
        feeder_alive=True,
        digests_from=1,
    )
    body = view.to_json()
    assert body == asdict(view)
    assert list(body) == list(asdict(view)), "same keys in the same order"
    assert SwarmView.from_json(body) == view
    # The JSON holds copies: changing the view afterwards does not change what was rendered.
    view.piece_digests[1] = "d" * 64
    assert body["piece_digests"][1] == ""
