"""`trackcache worker`'s supervisor: one Dramatiq process group per worker process, each started
as `dramatiq pipeline.worker_entry --processes 1`, and restarted when it ends unexpectedly.

Dramatiq's own `--processes N` shuts every worker down when one of them dies (its main loop
stops the rest and exits), so a single killed or crashed worker used to stop the whole
`trackcache worker`. Here each slot fails alone: the supervisor restarts it (with a growing delay
if it keeps failing right after its start, e.g. while the broker is unreachable) and the other
slots keep working. SIGTERM/SIGINT are passed on and the supervisor waits for every slot."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

logger = logging.getLogger(__name__)

# dramatiq.cli exit code for "the module could not be imported or the arguments are wrong":
# restarting cannot help.
RET_IMPORT = 2


def restart_delay(quick_failures: int, *, base: float = 1.0, ceiling: float = 30.0) -> float:
    """Seconds to wait before restarting a slot that has failed `quick_failures` times in a row
    right after starting (doubling from `base`, at most `ceiling`)."""
    return min(ceiling, base * 2 ** max(0, quick_failures - 1))


@dataclass
class Slot:
    index: int
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    starts: int = 0
    quick_failures: int = 0
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)  # pids, oldest first


class WorkerSupervisor:
    """Runs and restarts the slots until stopped; `run()` returns the exit code."""

    def __init__(self, argv: Sequence[str], processes: int, *, env_for_slot: Callable[[int], Mapping[str, str]],
                 quick_seconds: float = 30.0, poll_seconds: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = [Slot(index, list(argv), dict(env_for_slot(index))) for index in range(processes)]
        self.quick_seconds = quick_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.stopping = threading.Event()
        self.fatal: str | None = None

    def _start(self, slot: Slot) -> None:
        # Each slot in a session of its own: a signal to the supervisor's process group reaches
        # the slots once, passed on by `stop()`. (Dramatiq kills a worker outright on its second
        # SIGTERM, so a group-wide SIGTERM plus the pass-on would cut in-flight messages short.)
        # The slots die with the supervisor all the same (PR_SET_PDEATHSIG).
        slot.process = subprocess.Popen(slot.argv, env=slot.env, start_new_session=True,
                                        preexec_fn=_terminate_with_parent)
        slot.started_at, slot.restart_at = self.clock(), None
        slot.starts += 1
        slot.history.append(slot.process.pid)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Pass a stop signal to every slot; `run()` returns once they have all ended."""
        self.stopping.set()
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                try:
                    slot.process.send_signal(signum)
                except OSError:
                    pass

    def run(self) -> int:
        for slot in self.slots:
            self._start(slot)
        logger.info("worker supervisor started %d worker process group(s): %s", len(self.slots),
                    ", ".join(str(slot.process.pid) for slot in self.slots if slot.process))
        while not self.stopping.is_set():
            for slot in self.slots:
                self._watch(slot)
                if self.fatal:
                    self.stop()
                    break
            self.stopping.wait(self.poll_seconds)
        codes = [slot.process.wait() for slot in self.slots if slot.process is not None]
        if self.fatal:
            logger.error("%s", self.fatal)
            return 1
        if any(code not in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes):
            logger.warning("worker process groups ended with exit codes %s", codes)
            return 1
        return 0

    def _watch(self, slot: Slot) -> None:
        if slot.process is None:
            if slot.restart_at is not None and self.clock() >= slot.restart_at:
                self._start(slot)
            return
        code = slot.process.poll()
        if code is None:
            if slot.quick_failures and self.clock() - slot.started_at > self.quick_seconds:
                slot.quick_failures = 0  # it has run a while: its next failure is not a crash loop
            return
        pid = slot.process.pid
        slot.process = None
        is_quick = self.clock() - slot.started_at < self.quick_seconds
        if code == RET_IMPORT and slot.starts == 1:
            self.fatal = (f"worker process group {slot.index} could not start (exit code {code}: the worker module "
                          "failed to import or its arguments are wrong); see the lines above")
            return
        slot.quick_failures = slot.quick_failures + 1 if is_quick else 1
        delay = restart_delay(slot.quick_failures)
        slot.restart_at = self.clock() + delay
        logger.warning("worker process group %d (pid %d) ended with exit code %s; restarting it in %.0f s, the "
                       "others keep working", slot.index, pid, code, delay)


def _terminate_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the supervisor dies (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def install_signal_handlers(supervisor: WorkerSupervisor) -> None:
    """SIGTERM and SIGINT stop the slots (passed on as SIGTERM); SIGHUP is passed on (Dramatiq reloads)."""

    def on_stop(signum: int, frame: object) -> None:
        supervisor.stop(signal.SIGTERM)

    def on_hangup(signum: int, frame: object) -> None:
        for slot in supervisor.slots:
            if slot.process is not None and slot.process.poll() is None:
                os.kill(slot.process.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hangup)
