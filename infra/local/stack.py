"""The embedded stack: moto on loopback, the provisioned resources and the worker pool."""

import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from infra.local.chaos import Chaos
from infra.local.cognito import DemoUser, create_demo_users, pool_and_client
from infra.local.iam import STATIC_CREDENTIALS, function_env, write_profiles
from infra.local.moto_server import EmbeddedAws
from infra.local.provision import PROCESS_FUNCTION, Stack, post_rule, provision
from infra.local.strict_front import FormPostGuard
from infra.template.evaluation import stack_settings
from infra.worker.poller import PollerConfig
from infra.worker.pool import WorkerPool

log = logging.getLogger("imgpipe.stack")

# moto's SQS scans the whole queue on every call, so its cost grows with depth (see README).
DEFAULT_DEPTH_WARNING = 500


@dataclass(frozen=True)
class StackOptions:
    workers: int = os.cpu_count() or 1
    port: int = 0
    prefix: str = "imgpipe"
    batch_window_s: float | None = None  # None: the template's MaximumBatchingWindowInSeconds
    function_timeout_s: float | None = None  # None: the template's Timeout
    visibility_timeout_s: int | None = None  # None: the template's (6x Timeout); tests shorten it
    parameters: Mapping[str, str] = field(default_factory=dict)  # the template's parameters
    depth_warning: int = DEFAULT_DEPTH_WARNING
    threads_per_worker: int = 1  # IMGPIPE_WORKERS of the workers, unless the environment has one
    strict: bool = True  # False only to measure what IAM enforcement costs (loadtest)
    chaos: Chaos | None = None  # fault injection in the workers (tests of the retry path)


class LocalStack:
    """Start everything on enter; stop it all (finishing batches in flight) on exit.

    It leaves this process's environment alone: a command applies ``client_env()`` to act as
    the stack's operator."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.aws = EmbeddedAws(self.options.port, strict=self.options.strict)
        self.stack: Stack | None = None
        self._credentials = tempfile.TemporaryDirectory(prefix="imgpipe-iam-")
        self.config_file = Path(self._credentials.name) / "config"
        self.pool: WorkerPool | None = None
        self.users: dict[str, DemoUser] = {}  # the user pool's demo users (AuthMode cognito)
        self.depth = 0
        self.depth_peak = 0
        self.depth_warned = False
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.aws.__enter__()
        try:
            parameters = dict(self.options.parameters)
            settings = stack_settings(parameters=parameters)
            if self.options.visibility_timeout_s is not None:
                settings = replace(settings, visibility_timeout=self.options.visibility_timeout_s)
            self.stack = provision(self.options.prefix, settings, parameters, self.aws.session)
            assert self.aws.front is not None
            self.aws.front.guard(
                FormPostGuard.from_rule(self.stack.raw_bucket, post_rule(self.stack.resources))
            )
            write_profiles(self.config_file, self.aws.operator, self.stack.roles)
            self.users = self._demo_users()
            timeout = self.options.function_timeout_s or settings.function_timeout
            window = self.options.batch_window_s
            config = PollerConfig(
                queue_url=self.stack.queue_url,
                queue_arn=self.stack.queue_arn,
                region=self.stack.region,
                batch_size=settings.batch_size,
                batching_window_s=settings.batching_window if window is None else window,
                function_timeout_s=timeout,
                # Lambda tells the function its memory; the worker default follows it.
                env={
                    **self.worker_env(),
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(settings.memory_size),
                },
                env_defaults=self.worker_defaults(),
                setup=self.options.chaos.install if self.options.chaos else None,
            )
            self.pool = WorkerPool(config, self.options.workers)
            self.pool.start()
            if not self.pool.wait_ready():
                raise RuntimeError("the worker processes did not start within 60 s")
            self._monitor = threading.Thread(target=self._watch, name="depth", daemon=True)
            self._monitor.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _demo_users(self) -> dict[str, DemoUser]:
        ids = pool_and_client(self.resources.resources)
        if ids is None:
            return {}
        idp = self.aws.session.client("cognito-idp")
        return create_demo_users(idp, self.aws.endpoint, self.aws.region, *ids)

    def client_env(self) -> dict[str, str | None]:
        """The environment of a client acting as the stack's operator: the endpoint, the
        operator's keys and the stack's settings (``None``: unset the variable)."""
        return {**self.aws.client_env, **self.resources.env()}

    def function_env(self, function: str) -> dict[str, str | None]:
        """The environment of a local process playing ``function``: the stack's settings and
        the endpoint, and credentials only from the function's role (static keys removed).
        The rest (IMGPIPE_RENDITIONS, the limits...) it inherits from this process."""
        env = self.client_env()
        env.update(dict.fromkeys(STATIC_CREDENTIALS))
        env.update(function_env(self.config_file, function))
        return env

    def worker_env(self) -> dict[str, str | None]:
        return {**self.function_env(PROCESS_FUNCTION), "POWERTOOLS_METRICS_DISABLED": "true"}

    def worker_defaults(self) -> dict[str, str]:
        """What a worker sets only when it inherits no value."""
        return {
            "IMGPIPE_WORKERS": str(self.options.threads_per_worker),
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self.pool is not None:
            self.pool.stop()
        if self._monitor is not None:
            self._monitor.join(5)
        self.aws.__exit__()
        self._credentials.cleanup()

    @property
    def monitor_thread_id(self) -> int | None:
        """The native id of the thread that supervises the workers and watches the queue."""
        return self._monitor.native_id if self._monitor is not None else None

    def _watch(self) -> None:
        sqs = self.aws.session.client("sqs")
        while not self._stop.wait(1.0):
            assert self.pool is not None and self.stack is not None
            self.pool.supervise()
            try:
                self.depth = queue_depth(sqs, self.stack.queue_url)
            except (BotoCoreError, ClientError) as exc:  # never let the monitor stop the stack
                log.debug("depth check failed: %s", exc)
                continue
            self.depth_peak = max(self.depth_peak, self.depth)
            if self.depth > self.options.depth_warning and not self.depth_warned:
                self.depth_warned = True
                log.warning(
                    "queue depth %d passed %d: moto's SQS slows down as its queue grows; "
                    "pace the producer or use AWS for high volume",
                    self.depth,
                    self.options.depth_warning,
                )

    def status(self) -> dict[str, Any]:
        """What the stack is doing now (served at /_stack by `imgpipe up`)."""
        assert self.pool is not None
        return {
            **self.pool.status(),
            "queue_depth": self.depth,
            "queue_depth_peak": self.depth_peak,
        }

    @property
    def resources(self) -> Stack:
        assert self.stack is not None, "the stack is not running"
        return self.stack


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Visible plus in-flight messages."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())
