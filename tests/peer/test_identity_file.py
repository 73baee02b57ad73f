"""This host's identity in its data directory (peer/identity_file.py): made once, the secret readable by its owner
only, the same after a restart, and replaced when it is not bound (a data directory from before identities)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from peer.identity_file import ID_FILE, SECRET_FILE, load_identity
from supernode.identity import is_bound


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """A umask that lets everything through: the secret's mode must not depend on the caller's umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_start_makes_a_bound_identity_with_a_private_secret(tmp_path: Path, permissive_umask: None) -> None:
    data_dir = tmp_path / "new" / "data"  # not there yet
    identity = load_identity(data_dir)
    assert is_bound(identity.peer_id, identity.secret)
    assert (data_dir / ID_FILE).read_text().strip() == identity.peer_id
    assert (data_dir / SECRET_FILE).read_text().strip() == identity.secret
    assert mode(data_dir / SECRET_FILE) == 0o600
    assert mode(data_dir / ID_FILE) == 0o644
    assert sorted(p.name for p in data_dir.iterdir()) == [ID_FILE, SECRET_FILE]  # no temporary left behind
    assert identity.secret not in repr(identity)
    # Two data directories are two hosts.
    other = load_identity(tmp_path / "other")
    assert other.peer_id != identity.peer_id and other.secret != identity.secret


def test_a_restart_loads_the_same_identity(tmp_path: Path) -> None:
    first = load_identity(tmp_path)
    files = {name: (tmp_path / name).read_text() for name in (ID_FILE, SECRET_FILE)}
    again = load_identity(tmp_path)
    assert again == first
    assert {name: (tmp_path / name).read_text() for name in files} == files


def test_a_legacy_peer_id_without_a_secret_gets_a_new_bound_identity(tmp_path: Path) -> None:
    (tmp_path / ID_FILE).write_text("oldhost-1a2b3c4d")
    identity = load_identity(tmp_path)
    assert identity.peer_id != "oldhost-1a2b3c4d" and is_bound(identity.peer_id, identity.secret)
    assert (tmp_path / ID_FILE).read_text().strip() == identity.peer_id
    assert mode(tmp_path / SECRET_FILE) == 0o600
    assert load_identity(tmp_path) == identity  # and it is kept from then on


def test_an_id_not_bound_to_the_secret_beside_it_is_replaced_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Someone's id copied next to another secret (or a crash between the two writes of an older identity).
    theirs = load_identity(tmp_path / "theirs")
    (tmp_path / ID_FILE).write_text(theirs.peer_id + "\n")
    (tmp_path / SECRET_FILE).write_text("a-secret-it-does-not-commit-to\n")
    (tmp_path / SECRET_FILE).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        identity = load_identity(tmp_path)
    assert identity.peer_id != theirs.peer_id and is_bound(identity.peer_id, identity.secret)
    assert identity.secret != "a-secret-it-does-not-commit-to"
    assert "not bound to a secret" in caplog.text
    assert mode(tmp_path / SECRET_FILE) == 0o600  # the new secret is written whole, private
    for secret in (identity.secret, theirs.secret, "a-secret-it-does-not-commit-to"):
        assert secret not in caplog.text
