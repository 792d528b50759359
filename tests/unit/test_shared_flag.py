"""The lock-free stop flag that the backfill senders and the local stack's workers share."""

import multiprocessing
import os
import signal

from infra.worker.shared_flag import SharedFlag


def _set_from_a_signal_handler(flag: SharedFlag) -> None:
    signal.signal(signal.SIGUSR1, lambda *_: flag.set())
    os.kill(os.getpid(), signal.SIGUSR1)


def test_a_flag_set_in_another_process_is_seen() -> None:
    context = multiprocessing.get_context("spawn")
    flag = SharedFlag(context)
    assert not flag.is_set()
    assert flag.wait(0.05) is False  # nobody sets it: the wait times out
    child = context.Process(target=_set_from_a_signal_handler, args=(flag,))
    child.start()
    assert flag.wait(60)  # returns as soon as the child's handler has set it
    child.join()
    assert child.exitcode == 0 and flag.is_set()
