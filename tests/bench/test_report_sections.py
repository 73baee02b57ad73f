"""Generated sections of docs/benchmarks.md are replaced in place; hand-written text around them is kept."""

from __future__ import annotations

from pathlib import Path

from bench.report import update_section


def test_a_section_is_appended_then_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# Notes\n\nbefore\n")
    update_section(path, "one", "first run\n")
    update_section(path, "two", "other\n")
    path.write_text(path.read_text() + "\nafter\n")
    update_section(path, "one", "second run\n")
    text = path.read_text()
    assert "first run" not in text and text.count("second run") == 1
    assert text.index("before") < text.index("second run") < text.index("other") < text.index("after")


def test_a_missing_file_is_created_with_an_explanation(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "benchmarks.md"
    update_section(path, "one", "figures\n")
    text = path.read_text()
    assert text.startswith("# Damselfly benchmarks") and "figures" in text
