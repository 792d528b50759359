"""Backfill: stream existing keys into the jobs queue as S3-event-shaped messages.

The pipeline is a producer thread and a few sender threads joined by a bounded queue, so memory
stays flat whatever the bucket size:

    source (listing | key file | inventory) ─chunks─▶ cheap filters ─units of ≤100─▶ queue
        ─▶ senders: HeadObject (when metadata is missing) ─▶ metadata filters
                    ─▶ BatchGetItem (--skip-processed) ─▶ SendMessageBatch ×10, retried

With ``--processes N`` the senders are split between this process and N - 1 spawned ones
(``processes``), which take units from a shared queue and report each unit's counts back:
botocore's per-call CPU holds the GIL, so one process cannot use a second core.

A *chunk* is one unit of resumable position: a ListObjectsV2 page (its position is the page's
``NextContinuationToken``), or 1,000 lines of a key file or of an inventory CSV. The state file
only ever records the position after the longest prefix of chunks whose every key was sent,
filtered or written to the failures file, so a resume never leaves a gap; the keys of chunks
that were in flight are sent again (duplicates are harmless: processing is idempotent).

The modules, in the order the data meets them:

- ``work``: the values passed around (items, work units, counts) and the batch sizes;
- ``options``: a run's options, their parsers and ``BackfillError``; ``filters``: which keys;
- ``sources`` (listing, key file) and ``inventory`` (S3 Inventory manifests): the chunks;
- ``messages``: the message bodies; ``ratelimit``: ``--max-rate``; ``clients``: boto3 clients
  and error codes; ``sender``: a unit's HeadObject, BatchGetItem and SendMessageBatch calls;
- ``processes``: sender processes; ``state``: the resume tracker, the state and failures files;
- ``preflight``: the checks before anything is listed; ``run``: one run, end to end, and
  ``summary``: what it reports (progress snapshots and the summary).
"""
