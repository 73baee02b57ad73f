"""Range header parsing without sockets: one byte range, as registry clients send them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import RegistryError
from proxy.ranges import parse_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 0)),
        ("bytes=0-999", (0, 999)),
        ("bytes=0-5000", (0, 999)),  # clamped to the blob
        ("bytes=500-", (500, 999)),
        ("bytes=999-", (999, 999)),
        ("bytes=-1", (999, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),  # a suffix longer than the blob is the whole blob
        (" bytes=1-2 ", (1, 2)),
        # not understood: ignored, the whole blob (RFC 9110 allows a server to ignore Range)
        ("bytes=5-2", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
        ("bytes 0-1", None),
        ("bytes=" + "9" * 20 + "-", None),
    ],
)
def test_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=1000-", 1000), ("bytes=5000-6000", 1000), ("bytes=-0", 1000), ("bytes=0-", 0), ("bytes=-5", 0)],
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_range(header, size)
    assert caught.value.status == 416
    assert caught.value.error.code == "RANGE_NOT_SATISFIABLE"
    assert caught.value.headers == {"content-range": f"bytes */{size}"}


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_any_answered_range_lies_inside_the_blob(start: int, end: int, size: int) -> None:
    try:
        answer = parse_range(f"bytes={start}-{end}", size)
    except RegistryError:
        assert start >= size
        return
    if answer is None:
        assert end < start
    else:
        assert 0 <= answer[0] <= answer[1] < size
        assert answer == (start, min(end, size - 1))
