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


SAFE_SECRETS = {
    "TRACKING_ADMIN_TOKENS": "cli-admin-token-0123456789", "TRACKING_INTERNAL_API_KEY": "k" * 20,
    "TRACKING_WEBHOOK_SECRET": "w" * 20, "TRACKING_CUSTOMER_TOKEN_SECRET": "c" * 20,
    "TRACKING_EMAIL_HASH_KEY": "e" * 20,
}


def test_production_commands_refuse_to_start_without_redis(tmp_path):
    for command in ("serve", "worker", "scheduler"):
        result = run_cli(command, env={**SAFE_SECRETS, "REDIS_URL": ""}, cwd=tmp_path)
        assert result.returncode == 3, (command, result.stderr)
        assert result.stderr.startswith(f"trackcache {command}: refusing to start: REDIS_URL is not set")
        assert "Traceback" not in result.stderr


def test_production_commands_name_every_unsafe_setting(tmp_path):
    env = {"REDIS_URL": "redis://127.0.0.1:6379/9", "TRACKING_ADMIN_TOKENS": "", "TRACKING_INTERNAL_API_KEY": "",
           "TRACKING_WEBHOOK_SECRET": "short", "TRACKING_CUSTOMER_TOKEN_SECRET": "c" * 20,
           "TRACKING_EMAIL_HASH_KEY": "e" * 20, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = run_cli("worker", "--processes", "2", env=env, cwd=tmp_path)
    assert result.returncode == 3
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    for problem in ("TRACKING_ADMIN_TOKENS is empty", "TRACKING_INTERNAL_API_KEY must be set",
                    "TRACKING_WEBHOOK_SECRET must be set", "SQLite cannot be shared by several worker processes"):
        assert problem in message


def test_serve_refuses_a_schema_behind_its_migrations(tmp_path):
    env = {**SAFE_SECRETS, "REDIS_URL": "redis://127.0.0.1:6379/9", "DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    result = run_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert "pending migrations 0001" in result.stderr and "run `trackcache migrate` first" in result.stderr


def test_customer_token_prints_a_token_the_api_accepts(tmp_path):
    from web.auth import mint_customer_token

    secret = "c" * 20
    result = run_cli("customer-token", "cust-42", "--premium", env={"TRACKING_CUSTOMER_TOKEN_SECRET": secret},
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token and len(token.splitlines()) == 1
    from itsdangerous import URLSafeTimedSerializer

    payload = URLSafeTimedSerializer(secret, salt="trackcache-customer").loads(token)
    assert payload == {"customer_id": "cust-42", "premium": True}
    assert mint_customer_token(secret, "cust-42", premium=True).count(".") == token.count(".")


def test_bad_options_are_one_line_usage_errors(tmp_path):
    result = run_cli("dev", "--port", "99999", cwd=tmp_path)
    assert result.returncode == 2
    assert "must be a port from 1 to 65535" in result.stderr


def test_enable_debug_turns_on_debug_logs_whatever_the_log_level(tmp_path):
    # TRACKING_ENABLE_DEBUG's "verbose diagnostics": debug-level logs (every SQL statement, for one)
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'debug.db'}", "TRACKING_LOG_LEVEL": "warning"}
    quiet = run_cli("migrate", env=env, cwd=tmp_path)
    verbose = run_cli("migrate", env={**env, "TRACKING_ENABLE_DEBUG": "true"}, cwd=tmp_path)
    assert quiet.returncode == verbose.returncode == 0, verbose.stderr
    assert " DEBUG " not in quiet.stderr
    assert " DEBUG peewee: (" in verbose.stderr


def test_inbox_replay_makes_failed_webhooks_pending_again_and_says_how_many(tmp_path):
    import sqlite3

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'inbox.db'}"}
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "inbox.db") as db:
        for index, status in enumerate(("failed", "failed", "processed")):
            db.execute("INSERT INTO webhook_inbox (courier, external_event_id, raw_body, received_at, status, error,"
                       " attempts) VALUES ('fake', ?, '{}', '2026-11-30 10:00:00.000000', ?, 'lost', 6)",
                       (f"e{index}", status))
    unsaid = run_cli("inbox", "replay", env=env, cwd=tmp_path)
    assert unsaid.returncode == 2 and "--id N" in unsaid.stderr and "Traceback" not in unsaid.stderr
    result = run_cli("inbox", "replay", "--all", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 inbox row(s) pending again")
    with sqlite3.connect(tmp_path / "inbox.db") as db:
        rows = db.execute("SELECT status, error, attempts FROM webhook_inbox ORDER BY id").fetchall()
    assert rows == [("pending", None, 0), ("pending", None, 0), ("processed", "lost", 6)]
    counts = run_cli("inbox", "counts", env=env, cwd=tmp_path)
    assert counts.stdout.split() == ["pending", "2", "processed", "1"]


def test_estimates_backtest_on_simulated_history_prints_the_table_and_json(tmp_path):
    table = run_cli("estimates", "backtest", "--simulated", "400", "--days", "60", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "| **overall** |" in table.stdout and "courier City-Link" in table.stdout
    as_json = run_cli("estimates", "backtest", "--simulated", "400", "--days", "60", "--json", cwd=tmp_path)
    import json

    report = json.loads(as_json.stdout)
    assert report["journeys"] == 400 and {"mae_days", "baseline_mae_days", "inside_range", "bias_days"} <= set(
        report["overall"])


def test_estimates_backtest_on_an_empty_history_says_so(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    result = run_cli("estimates", "backtest", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("trackcache estimates: no finished journeys to replay (journey_facts is empty; "
                                     "try --simulated 3000)")
