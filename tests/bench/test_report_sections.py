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


def test_parts_inside_an_outer_section_replace_only_themselves(tmp_path: Path) -> None:
    # `damselfly bench --disrupt KIND` owns one part of docs/reliability.md's `disruptions` block per kind.
    path = tmp_path / "reliability.md"
    path.write_text("# Reliability\n\nhand-written\n\n<!-- generated: disruptions begin -->\nnot measured yet\n"
                    "<!-- generated: disruptions end -->\n")
    update_section(path, "disruption-a", "a first\n", inside="disruptions")
    update_section(path, "disruption-b", "b only\n", inside="disruptions")
    update_section(path, "disruption-a", "a second\n", inside="disruptions")
    text = path.read_text()
    assert "not measured yet" not in text
    assert "a first" not in text and text.count("a second") == 1 and text.count("b only") == 1
    assert text.count("<!-- generated: disruptions begin -->") == text.count("<!-- generated: disruptions end -->") == 1
    begin, end = text.index("disruptions begin"), text.index("disruptions end")
    assert begin < text.index("a second") < text.index("b only") < end
    assert text.index("hand-written") < begin
