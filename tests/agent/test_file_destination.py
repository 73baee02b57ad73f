"""Where a file job may write: below the host's --file-job-dirs only, links resolved; none configured, nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.failure import JobFailed
from agent.file_job import check_destination


def test_with_no_directories_configured_no_file_job_may_write(tmp_path: Path) -> None:
    with pytest.raises(JobFailed, match="no --file-job-dirs"):
        check_destination(tmp_path / "file", ())


def test_below_a_configured_directory_is_allowed_at_any_depth(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    check_destination(tmp_path / "file", (str(tmp_path),))
    check_destination(tmp_path / "a" / "b" / "file", (str(tmp_path),))


def test_outside_or_beside_a_configured_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files-other").mkdir()
    allowed = (str(tmp_path / "files"),)
    for path in (tmp_path / "file", tmp_path / "files-other" / "file", tmp_path / "files" / ".." / "file"):
        with pytest.raises(JobFailed, match="is not below"):
            check_destination(path, allowed)


def test_a_link_out_of_a_configured_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "files" / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(JobFailed, match="is not below"):
        check_destination(tmp_path / "files" / "out" / "file", (str(tmp_path / "files"),))


def test_the_directory_itself_is_no_file_name(tmp_path: Path) -> None:
    with pytest.raises(JobFailed):
        check_destination(tmp_path / "..", (str(tmp_path),))
