"""A benchmark rewrites only its own section of BENCHMARKS.md."""
from bench.markdown import write_section


def test_a_section_is_appended_then_replaced_and_the_rest_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    write_section("bench-a", "first A", path)
    assert path.read_text().startswith("# Benchmarks") and "<!-- bench-a:begin -->\nfirst A\n<!-- bench-a:end -->" in path.read_text()
    write_section("bench-b", "only B", path)
    path.write_text(path.read_text() + "\nnotes after\n")
    write_section("bench-a", "second A", path)
    text = path.read_text()
    assert "first A" not in text and "second A" in text and "only B" in text and text.endswith("notes after\n")
    assert text.index("bench-a:begin") < text.index("bench-b:begin")
