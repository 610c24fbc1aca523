"""`trackcache settings --check` flags /metrics open to every client address (issue 18 point 9):
a warning, since production processes still start (many deployments fence /metrics off at the
network); setting TRACKING_INTERNAL_NETWORKS clears it."""
from __future__ import annotations

import settings
from test_cli import SAFE_SECRETS, run_cli


def test_settings_check_warns_that_metrics_answer_everyone_by_default(tmp_path):
    result = run_cli("settings", "--check", env=SAFE_SECRETS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: TRACKING_INTERNAL_NETWORKS is empty: /metrics answers every client address" in result.stderr
    assert "1 warning" in result.stdout


def test_settings_check_is_quiet_once_internal_networks_are_set(tmp_path):
    result = run_cli("settings", "--check", env={**SAFE_SECRETS, "TRACKING_INTERNAL_NETWORKS": "10.0.0.0/8"},
                     cwd=tmp_path)
    assert result.returncode == 0 and "warning" not in result.stderr + result.stdout


def test_production_warnings_name_open_metrics():
    config = settings.load({}, dotenv_path=None)
    assert any("/metrics" in warning for warning in config.production_warnings())
