"""The SQS batch handler of the container-image Lambda (ReportBatchItemFailures).

Records of a batch run concurrently on ``IMGPIPE_WORKERS`` threads: Pillow releases the GIL
in decode, resize and encode. Only transient failures are reported in ``batchItemFailures``;
rejected images are recorded as FAILED and acknowledged, so a poison image never cycles.

Clients, settings and the thread pool are built at import, in Lambda's init phase, which runs
before the first event and does not count against its timeout. Each record then runs under a
deadline, ``IMGPIPE_SAFETY_MARGIN_MS`` before the invocation's end: checked before every
stage, and bounding every AWS call's timeouts and retries, so a slow record fails alone, not
the batch.

When every record fails, the response lists every one (``raise_on_entire_batch_failure=False``)
rather than raising: the event source mapping retries exactly the same messages either way,
but an explicit list keeps the invocation and its metrics flushing normally, and the local
poller honours both shapes.
"""

import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.catalog import Status
from core.errors import Transient
from core.events import SourceObject, parse_body
from core.pipeline import Outcome, process_source
from core.ports import Deadline
from core.settings import Settings, SettingsError
from handlers.runtime import Runtime, connect

logger = Logger(service="imgpipe")
metrics = Metrics(namespace=os.getenv("POWERTOOLS_METRICS_NAMESPACE", "imgpipe"), service="imgpipe")


class ThreadedBatchProcessor(BatchProcessor):
    """Powertools' SQS batch processor, with the records of a batch run on a thread pool
    (``_process_record`` is Powertools' documented hook for custom processors)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        self.pool = pool

    def process(self) -> list[tuple[Any, ...]]:
        return list(self.pool.map(self._process_record, self.records))


@cache
def runtime() -> Runtime:
    """Built once per container; refuses to start without the buckets and table, or when the
    output bucket is the raw bucket. Pooled connections for every worker's parallel PUTs."""
    settings = Settings.from_env()
    settings.check_processing()
    return connect(settings, pool_size=settings.workers * settings.parallel_puts)


@cache
def batch_processor(workers: int) -> ThreadedBatchProcessor:
    """One per container, with its pool of ``workers`` threads."""
    return ThreadedBatchProcessor(ThreadPoolExecutor(workers))


def _init() -> None:
    """Lambda's init phase: the clients and the pool, built once, before the first event.
    Missing settings are not raised here but by ``runtime()`` on every invoke, naming the
    variable, as before; importing the module (tests, tools) never needs AWS."""
    try:
        rt = runtime()
    except SettingsError:
        return
    batch_processor(rt.settings.workers)


def record_deadline(rt: Runtime, lambda_context: LambdaContext | None) -> Deadline:
    """When a record must be done: the safety margin before the invocation's end."""
    if lambda_context is None:
        return Deadline.unbounded()
    remaining_ms = lambda_context.get_remaining_time_in_millis()
    return Deadline((remaining_ms - rt.settings.safety_margin_ms) / 1000)


def handle_record(
    rt: Runtime, record: SQSRecord, lambda_context: LambdaContext | None
) -> list[Outcome]:
    logger.thread_safe_append_keys(message_id=record.message_id)
    try:
        deadline = record_deadline(rt, lambda_context)
        if deadline.remaining_s() <= 0:
            logger.warning("not started: too little time left", extra={"reason": "deadline"})
            raise Transient("too little time left; leaving the message for a retry")
        attempts = int(record.attributes.approximate_receive_count or 1)
        return [_process(rt, source, attempts, deadline) for source in parse_body(record.body)]
    finally:
        logger.thread_safe_clear_keys()


def _process(rt: Runtime, source: SourceObject, attempts: int, deadline: Deadline) -> Outcome:
    try:
        outcome = process_source(
            source, rt.settings, rt.storage, rt.catalog, attempts, deadline=deadline
        )
    except Exception as exc:
        logger.warning(
            "transient failure, will retry",
            extra={"key": source.key, "reason": "transient", "error": repr(exc)},
        )
        raise
    if outcome.leftover:  # the record is written; reconcile --fix deletes what is left
        logger.warning(
            "outputs left behind: their deletion failed",
            extra={"key": source.key, "reason": "cleanup_failed", "leftover": outcome.leftover},
        )
    logger.info(
        outcome.status.lower(),
        extra={
            "key": source.key,
            "reason": outcome.reason or "none",
            "ms": round(outcome.processing_ms, 1),
        },
    )
    return outcome


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    processor = batch_processor(rt.settings.workers)
    with processor(event["Records"], partial(handle_record, rt), lambda_context=context):
        results = processor.process()
    emit_metrics(o for status, result, _ in results if status == "success" for o in result)
    return dict(processor.response())


def emit_metrics(outcomes: Iterable[Outcome]) -> None:
    failed: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.status == Status.PROCESSED:
            metrics.add_metric("ImagesProcessed", MetricUnit.Count, 1)
            metrics.add_metric("ProcessingMs", MetricUnit.Milliseconds, outcome.processing_ms)
            metrics.add_metric("BytesIn", MetricUnit.Bytes, outcome.source.size)
            metrics.add_metric("BytesOut", MetricUnit.Bytes, outcome.bytes_out)
        elif outcome.status == Status.FAILED:
            failed[outcome.reason or "unknown"] += 1
        elif outcome.status == Status.DELETED:
            metrics.add_metric("ImagesDeleted", MetricUnit.Count, 1)
        else:
            metrics.add_metric("ImagesSkipped", MetricUnit.Count, 1)
        if outcome.leftover:
            metrics.add_metric("OutputsLeftBehind", MetricUnit.Count, len(outcome.leftover))
    if is_metrics_disabled():  # single_metric prints regardless; the flush of log_metrics asks
        return
    for reason, count in failed.items():
        with single_metric(
            name="ImagesFailed", unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="reason", value=reason)


_init()
