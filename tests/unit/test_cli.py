"""The command line: help, and one clear line (no traceback) for bad settings."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "import sys, cli; sys.exit(cli.main())", *args],
        cwd=cwd or ROOT, env={**full_env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "migrate" in result.stdout


def test_bad_setting_stops_with_one_line_and_no_traceback(tmp_path):
    result = run_cli("migrate", env={"TRACKING_JOB_BATCH_SIZE": "abc"}, cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip() == (
        "trackcache migrate: TRACKING_JOB_BATCH_SIZE must be a positive integer, got 'abc'"
    )
    assert "Traceback" not in result.stderr


def test_migrate_creates_the_default_sqlite_database_and_a_rerun_is_a_noop(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    first = run_cli("migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied migrations: 0001" in first.stdout
    second = run_cli("migrate", env=env, cwd=tmp_path)
    assert second.returncode == 0
    assert "nothing to apply" in second.stdout
    check = run_cli("migrate", "--check", env=env, cwd=tmp_path)
    assert check.returncode == 0 and "up to date" in check.stdout


def test_unreachable_database_is_one_line(tmp_path):
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = run_cli("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 4
    assert result.stderr.startswith("trackcache migrate: cannot reach the database at postgresql://nobody@127.0.0.1:1/none")
    assert len(result.stderr.strip().splitlines()) == 1


def test_docs_settings_table_is_current():
    import cli

    assert (ROOT / "docs" / "settings.md").read_text(encoding="utf-8") == cli.settings_markdown(), (
        "docs/settings.md is stale: run `trackcache settings --markdown > docs/settings.md`"
    )
