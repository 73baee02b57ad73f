"""`[[file_origin]]` tables and the files endpoint's listener in the peer's settings (damselfly/settings.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from damselfly import settings
from damselfly.cli import build_parser
from damselfly.settings import SettingsError


def build(argv: list[str], conf: dict[str, Any]) -> settings.Settings:
    return settings.build(build_parser().parse_args(argv), conf)


def test_file_origins_are_read_with_their_headers_and_ignored_query() -> None:
    conf = {"file_origin": [{"url": "https://f.example/pub/", "headers": {"Authorization": "Bearer t"},
                             "ignore_query": ["X-Amz-Signature"]}]}
    (origin,) = build(["peer"], conf).proxy.file_origins
    assert origin.url == "https://f.example/pub/"
    assert dict(origin.headers) == {"Authorization": "Bearer t"}
    assert origin.ignore_query == ("X-Amz-Signature",)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"headers": {}}, "needs a url"),
        ({"url": "ftp://f.example/"}, "http"),
        ({"url": "https://f.example/", "password": "x"}, "unknown fields"),
        ({"url": "https://f.example/", "headers": {"Host": "x"}}, "set by the download"),
        ({"url": "https://f.example/", "ca_file": "/nonexistent/ca.pem"}, "not a readable file"),
    ],
)
def test_a_bad_file_origin_is_refused_with_a_reason(entry: dict[str, object], reason: str) -> None:
    with pytest.raises(SettingsError, match=reason):
        build(["peer"], {"file_origin": [entry]})


def test_the_files_endpoint_listens_on_loopback_only(tmp_path: Path) -> None:
    assert build(["peer", "--files-listen", "127.0.0.1:7003"], {}).proxy.files_port == 7003
    with pytest.raises(SettingsError, match="loopback only"):
        build(["peer", "--files-listen", "0.0.0.0:7003"], {})
