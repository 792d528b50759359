"""A Lambda function played by spawned processes, each with the function's own environment.

Each process sets the variables the function has on AWS (its settings, and credentials from
its own IAM role only) before it imports the handler, so an in-process call can never borrow
the operator's credentials. One process serves one invocation at a time, as a Lambda
instance does.
"""

import importlib
import multiprocessing
import signal
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from infra.worker.environment import apply_env
from infra.worker.lambda_event import LambdaContext


def _start(env: Mapping[str, str | None]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    apply_env(env)


def _import(module: str) -> None:
    importlib.import_module(module)


def _invoke(handler: str, event: dict[str, Any], timeout_s: float, name: str) -> Any:
    module, _, function = handler.rpartition(".")
    entry = getattr(importlib.import_module(module), function)
    return entry(event, LambdaContext(timeout_s, function_name=name))


class LocalFunction:
    """``invoke(event)`` runs ``handler`` (``"handlers.api.handler"``) in a worker process."""

    def __init__(
        self,
        handler: str,
        env: Mapping[str, str | None],
        timeout_s: float,
        name: str,
        processes: int = 2,
    ) -> None:
        self.handler, self.env, self.timeout_s, self.name = handler, dict(env), timeout_s, name
        self.processes = processes
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self.env,),
        )

    def warm(self) -> None:
        """Import the handler in every process now (an init phase), not on the first request."""
        futures = [self._pool.submit(_import, self.handler.rpartition(".")[0])
                   for _ in range(self.processes)]  # fmt: skip
        for future in futures:
            future.result(timeout=60)

    def invoke(self, event: dict[str, Any]) -> Any:
        """The handler's response; raises what it raised, or TimeoutError past the timeout."""
        try:
            future = self._pool.submit(_invoke, self.handler, event, self.timeout_s, self.name)
            return future.result(timeout=self.timeout_s + 1)
        except BrokenProcessPool:  # a process died (as a Lambda instance can): start afresh
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
