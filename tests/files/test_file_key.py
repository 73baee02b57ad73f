"""The file key (core/file_key.py) and which URLs an origin covers (upstream/origin.py): pure functions."""

from __future__ import annotations

import pytest

from core.digest import Digest
from core.file_key import digest_file_key, file_key, keyed_url
from upstream.origin import FileOrigin, FileOrigins, OriginRefused, check_headers


def test_ignored_query_parameters_are_left_out_of_the_key_and_the_rest_kept() -> None:
    one = "https://Files.Example.com/a.tar?X-Amz-Signature=1&v=2"
    two = "https://files.example.com/a.tar?v=2&x-amz-signature=9"
    assert keyed_url(one, ["X-Amz-Signature"]) == "https://files.example.com/a.tar?v=2"
    assert file_key(one, 10, '"e"', "", ["x-amz-signature"]) == file_key(two, 10, '"e"', "", ["X-Amz-Signature"])
    assert file_key(one, 10, '"e"', "") != file_key(two, 10, '"e"', "")


def test_another_size_or_validator_is_another_key_and_never_a_content_digest() -> None:
    base = file_key("https://f.example/a", 10, '"e1"', "Mon")
    assert base != file_key("https://f.example/a", 11, '"e1"', "Mon")
    assert base != file_key("https://f.example/a", 10, '"e2"', "Mon")
    assert base != file_key("https://f.example/a", 10, '"e1"', "Tue")
    assert str(base).startswith("sha256:") and len(base.hex) == 64


@pytest.mark.parametrize(
    ("url", "covered"),
    [
        ("https://files.example.com/pub/a.tar", True),
        ("https://files.example.com/pub/sub/a.tar", True),
        ("https://files.example.com/public/a.tar", False),  # a prefix of the text, not of the path
        ("https://files.example.com.evil.test/pub/a.tar", False),
        ("http://files.example.com/pub/a.tar", False),
        ("https://files.example.com:8443/pub/a.tar", False),
    ],
)
def test_an_origin_covers_urls_under_its_prefix_only(url: str, covered: bool) -> None:
    assert FileOrigin("https://files.example.com/pub/").covers(url) is covered


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://files.example.com/pub/../private/key", "'..'"),
        ("https://files.example.com/pub/%2e%2e/private/key", "'..'"),
        ("https://user:pw@files.example.com/pub/a", "credentials"),
        ("ftp://files.example.com/pub/a", "http"),
        ("https://other.example.com/pub/a", "no configured file origin"),
    ],
)
def test_urls_outside_the_origins_are_refused_with_a_reason(url: str, reason: str) -> None:
    origins = FileOrigins([FileOrigin("https://files.example.com/pub/")])
    with pytest.raises(OriginRefused, match=reason):
        origins.origin_for(url)


def test_the_longest_prefix_wins_and_headers_are_checked() -> None:
    wide, narrow = FileOrigin("https://f.example/"), FileOrigin("https://f.example/team/", {"Authorization": "x"})
    assert FileOrigins([wide, narrow]).origin_for("https://f.example/team/a") is narrow
    assert "Authorization" not in repr(narrow) and "x" not in repr(narrow).split("headers=")[1]
    for bad in ({"Range": "bytes=0-"}, {"X-A": "1\r\nHost: evil"}, {"bad name": "1"}):
        with pytest.raises(OriginRefused):
            check_headers(bad, "headers")


def test_a_file_asked_for_by_digest_is_never_keyed_as_that_blob() -> None:
    layer = Digest.parse("sha256:" + "ab" * 32)
    key = digest_file_key(layer)
    # Not the blob's swarm or store entry: the files endpoint cannot be asked for a private layer by its digest.
    assert key != layer and key.algorithm == "sha256"
    assert key == digest_file_key(Digest.parse("sha256:" + "ab" * 32))
    assert key != digest_file_key(Digest.parse("sha256:" + "cd" * 32))
