"""The SQS batch handler of the container-image Lambda (ReportBatchItemFailures).

Records of a batch run concurrently on ``IMGPIPE_WORKERS`` threads: Pillow releases the GIL
in decode, resize and encode. Only transient failures are reported in ``batchItemFailures``;
rejected images are recorded as FAILED and acknowledged, so a poison image never cycles.

When every record fails, the response lists every one (``raise_on_entire_batch_failure=False``)
rather than raising: the event source mapping retries exactly the same messages either way,
but an explicit list keeps the invocation and its metrics flushing normally, and the local
poller honours both shapes.
"""

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from core.aws import DynamoCatalog, S3Storage, images_table, s3_client
from core.errors import Transient
from core.events import parse_body
from core.pipeline import Outcome, process_source
from core.settings import Settings

logger = Logger(service="imgpipe")
metrics = Metrics(namespace=os.getenv("POWERTOOLS_METRICS_NAMESPACE", "imgpipe"), service="imgpipe")


class ThreadedBatchProcessor(BatchProcessor):
    """Powertools' SQS batch processor, with the records of a batch run on a thread pool."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        self.pool = pool

    def process(self) -> list[tuple[Any, ...]]:
        return list(self.pool.map(self._process_record, self.records))


class Runtime:
    """Everything built once per container: settings, pooled clients and the thread pool."""

    def __init__(self, settings: Settings) -> None:
        settings.check_processing()
        self.settings = settings
        self.storage = S3Storage(s3_client(settings.workers))
        self.catalog = DynamoCatalog(images_table(settings.table, settings.workers))
        self.processor = ThreadedBatchProcessor(ThreadPoolExecutor(settings.workers))

    def handle_record(
        self, record: SQSRecord, lambda_context: LambdaContext | None
    ) -> list[Outcome]:
        logger.thread_safe_append_keys(message_id=record.message_id)
        try:
            remaining = lambda_context.get_remaining_time_in_millis() if lambda_context else None
            if remaining is not None and remaining < self.settings.safety_margin_ms:
                logger.warning("not started: too little time left", extra={"reason": "deadline"})
                raise Transient(f"only {remaining} ms left; leaving the message for a retry")
            attempts = int(record.attributes.approximate_receive_count or 1)
            return [self._process(source, attempts) for source in parse_body(record.body)]
        finally:
            logger.thread_safe_clear_keys()

    def _process(self, source: Any, attempts: int) -> Outcome:
        try:
            outcome = process_source(source, self.settings, self.storage, self.catalog, attempts)
        except Exception as exc:
            logger.warning(
                "transient failure, will retry",
                extra={"key": source.key, "reason": "transient", "error": repr(exc)},
            )
            raise
        logger.info(
            outcome.status.lower(),
            extra={
                "key": source.key,
                "reason": outcome.reason or "none",
                "ms": round(outcome.processing_ms, 1),
            },
        )
        return outcome


@cache
def runtime() -> Runtime:
    return Runtime(Settings.from_env())


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    processor = rt.processor
    with processor(event["Records"], rt.handle_record, lambda_context=context):
        results = processor.process()
    emit_metrics(o for status, result, _ in results if status == "success" for o in result)
    return dict(processor.response())


def emit_metrics(outcomes: Any) -> None:
    failed: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.status == "PROCESSED":
            metrics.add_metric("ImagesProcessed", MetricUnit.Count, 1)
            metrics.add_metric("ProcessingMs", MetricUnit.Milliseconds, outcome.processing_ms)
            metrics.add_metric("BytesIn", MetricUnit.Bytes, outcome.source.size)
            metrics.add_metric("BytesOut", MetricUnit.Bytes, outcome.bytes_out)
        elif outcome.status == "FAILED":
            failed[outcome.reason or "unknown"] += 1
        else:
            metrics.add_metric("ImagesSkipped", MetricUnit.Count, 1)
    for reason, count in failed.items():
        with single_metric(
            name="ImagesFailed", unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="reason", value=reason)
