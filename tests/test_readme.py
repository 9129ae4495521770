"""The README: short, the quick start first, and the test command CI runs (the commands it and the
docs show are checked in tests/test_docs.py)."""

from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_gives_the_test_command_ci_runs():
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_short_and_starts_with_the_quick_start():
    assert len(README.splitlines()) <= 250
    assert README.index("## Quick start") < README.index("verdict: z-dim") < README.index("## Where to go next")
    for page in ("verdict", "balance-table", "credible", "conditional", "commands", "scaling", "speed", "reliability",
                 "development"):
        assert f"(docs/{page}.md)" in README and (ROOT / "docs" / f"{page}.md").exists(), page
