"""`trackcache worker --processes 2`: a killed worker process is restarted and the rest keep
working; the command itself keeps running (issue 18 point 9). Dramatiq's own `--processes N`
shuts every worker down when one dies, which used to end the whole command."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import settings
from processes import ROOT, start_cli, stop, wait_until
from services import drop_database, recreate_database
from stacks import clear_namespace

SECRETS = {"TRACKING_ADMIN_TOKENS": "worker-admin-token-0123456789", "TRACKING_INTERNAL_API_KEY": "k" * 20,
           "TRACKING_WEBHOOK_SECRET": "w" * 20, "TRACKING_CUSTOMER_TOKEN_SECRET": "c" * 20,
           "TRACKING_EMAIL_HASH_KEY": "e" * 20}


def children(pid: int) -> list[int]:
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return sorted(int(line) for line in result.stdout.split())


def worker_tree(pid: int) -> dict[int, list[int]]:
    """Each Dramatiq main process under the supervisor, with its worker processes."""
    return {group: children(group) for group in children(pid)}


def test_a_killed_worker_process_is_restarted_and_the_others_keep_running(postgres_url, redis_url, tmp_path):
    name = f"trackcache_worker_sup_{os.getpid()}"
    database_url = recreate_database(name, migrate=True)
    namespace = f"{settings.get().redis_namespace}-supervisor"
    clear_namespace(redis_url, namespace)
    env = {**os.environ, **SECRETS, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "TRACKING_REDIS_NAMESPACE": namespace, "TRACKING_LOG_LEVEL": "info"}
    log: Path = tmp_path / "worker.log"
    process = start_cli(env, log, "worker", "--processes", "2", "--threads", "1")
    try:
        # given two worker process groups, each with its one worker process up
        wait_until(lambda: log.read_text(errors="replace").count("is ready for action") >= 2, timeout=60,
                   what=f"two workers to boot (log: {log})")
        tree = wait_until(lambda: (lambda t: t if len(t) == 2 and all(len(w) == 1 for w in t.values()) else None)(
            worker_tree(process.pid)), timeout=30, what="the process tree")
        (first_group, [victim]), (second_group, [survivor]) = sorted(tree.items())
        # when one worker process is killed
        os.kill(victim, signal.SIGKILL)
        # then the command keeps running, that group is replaced, and the other is untouched
        wait_until(lambda: log.read_text(errors="replace").count("is ready for action") >= 3, timeout=60,
                   what=f"the killed worker to be replaced (log: {log})")
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        after = worker_tree(process.pid)
        assert len(after) == 2 and second_group in after and after[second_group] == [survivor]
        assert first_group not in after and all(len(workers) == 1 for workers in after.values())
        assert "restarting it" in log.read_text(errors="replace")
    finally:
        stop(process)
        clear_namespace(redis_url, namespace)
        drop_database(name)
    # and SIGTERM still stops everything cleanly
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]
