"""The worker supervisor's restart policy, on stand-in commands: a slot that dies is restarted
alone, one that keeps failing right away waits longer each time, and one whose module cannot be
imported stops everything with one line."""
from __future__ import annotations

import sys
import threading
import time

from pipeline.supervisor import WorkerSupervisor, restart_delay


def test_restart_delays_double_up_to_a_ceiling():
    assert [restart_delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_dying_slot_is_restarted_and_the_other_keeps_its_process():
    commands = {0: "import time; time.sleep(0.3)", 1: "import time; time.sleep(60)"}
    supervisor = WorkerSupervisor([], 2, env_for_slot=lambda index: {}, poll_seconds=0.05)
    for slot in supervisor.slots:
        slot.argv = [sys.executable, "-c", commands[slot.index]]
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while supervisor.slots[0].starts < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert supervisor.slots[0].starts >= 3
        assert supervisor.slots[1].starts == 1
    finally:
        supervisor.stop()
        runner.join(timeout=20)
    assert not runner.is_alive()


def test_a_slot_that_cannot_import_its_module_stops_everything():
    supervisor = WorkerSupervisor([sys.executable, "-c", "import sys; sys.exit(2)"], 2,
                                  env_for_slot=lambda index: {}, poll_seconds=0.05)
    assert supervisor.run() == 1
    assert "could not start" in (supervisor.fatal or "")
