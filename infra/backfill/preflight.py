"""The checks before anything is listed: options that could not work, and a queue, table or
bucket that cannot be used (each of their errors would otherwise hit every key)."""

from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from infra.backfill.clients import Clients, describe_error
from infra.backfill.options import BackfillError, Options
from infra.backfill.sources import Source

# The jobs queue's tags (the template's and the local stack's): the buckets its consumer may
# read. The source buckets are space-separated (an SQS tag value allows no commas).
RAW_BUCKET_TAG: Final = "imgpipe:raw-bucket"
SOURCE_BUCKETS_TAG: Final = "imgpipe:backfill-source-buckets"


def check_options(options: Options, source: Source) -> None:
    """Refuse combinations that could not do what they say."""
    if options.concurrency < 1 or options.head_concurrency < 1:
        raise BackfillError("--concurrency must be at least 1")
    if options.processes < 1:
        raise BackfillError("--processes must be at least 1")
    if options.skip_processed and options.reprocess:
        raise BackfillError(
            "--skip-processed and --reprocess contradict each other: "
            "--reprocess outdated already sends only images rendered with another profile"
        )
    if options.reads_table and not options.table:
        flag = "--skip-processed" if options.skip_processed else "--reprocess outdated"
        raise BackfillError(f"{flag} needs --table (or IMGPIPE_TABLE)")
    if not options.queue_url and not options.dry_run:
        raise BackfillError("--queue-url (or IMGPIPE_QUEUE_URL) is required")
    if not options.head:
        provided = source.provides()
        needs = [
            flag
            for flag, field_name, used in (
                ("--min-size/--max-size", "size", options.filters.needs_size),
                ("--modified-after/--modified-before", "time", options.filters.needs_time),
                ("--skip-processed", "etag", options.skip_processed),
                ("--reprocess outdated", "etag", options.reprocess == "outdated"),
            )
            if used and field_name not in provided
        ]
        if needs:
            raise BackfillError(
                f"{', '.join(needs)} need object metadata this source lacks: drop --no-head"
            )


def preflight(options: Options, clients: Clients) -> list[str]:
    """Fail fast, before listing anything, when the queue, the bucket or the table cannot be
    used: such errors would otherwise be retried or recorded for every key. Returns warnings
    about checks that had to be skipped."""
    if not options.dry_run:
        try:
            clients.sqs.get_queue_attributes(
                QueueUrl=options.queue_url, AttributeNames=["QueueArn"]
            )
        except Exception as exc:
            raise BackfillError(
                f"cannot use queue {options.queue_url}: {describe_error(exc)}"
            ) from exc
    if options.reads_table and clients.dynamodb is not None and options.table:
        probe = {options.table: {"Keys": [{"image_id": {"S": "imgpipe-backfill/preflight"}}]}}
        try:
            clients.dynamodb.batch_get_item(RequestItems=probe)
        except Exception as exc:
            raise BackfillError(
                f"cannot read table {options.table}: {describe_error(exc)}"
            ) from exc
    warning = check_readable(options, clients)
    return [warning] if warning else []


def check_readable(options: Options, clients: Clients) -> str | None:
    """Refuse a bucket the process function may not read (every image of it would be recorded
    FAILED access_denied), as the queue's tags tell; a warning when they cannot tell."""
    skipped = f"the check that the process function may read s3://{options.bucket} was skipped"
    if not options.queue_url:
        return f"no --queue-url to read the stack's tags from: {skipped}"
    try:
        tags = clients.sqs.list_queue_tags(QueueUrl=options.queue_url).get("Tags") or {}
    except (ClientError, BotoCoreError) as exc:
        return f"cannot read the tags of {options.queue_url} ({describe_error(exc)}): {skipped}"
    raw_bucket = tags.get(RAW_BUCKET_TAG)
    if not raw_bucket:
        return f"{options.queue_url} has no {RAW_BUCKET_TAG} tag: {skipped}"
    readable = [raw_bucket, *tags.get(SOURCE_BUCKETS_TAG, "").split()]
    if options.bucket not in readable:
        raise BackfillError(
            f"the process function may not read s3://{options.bucket}: add it to the stack "
            f"parameter BackfillSourceBuckets (locally: imgpipe up --source-bucket "
            f"{options.bucket}); otherwise every image would be recorded FAILED access_denied. "
            f"The queue's tags allow: {', '.join(readable)}."
        )
    return None
