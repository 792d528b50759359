"""`imgpipe reconcile`: compare the raw bucket, the images table and the processed bucket.

Three kinds of drift, each found by a merge of two streams sorted by key, so memory stays
bounded whatever the sizes:

    table scan ──▶ external sort (spilled runs) ─┬─ merge with the raw listing ──▶ sources
                                                  │   without a result, results without source
                                                  └─ merge with the processed listing ──▶
                                                      renditions that no item references

S3 lists keys in UTF-8 byte order, which is Python's code-point order for ``str``, so the
listings need no sorting; the table scan comes in hash order and is sorted on disk.

- ``sorting``: the external sort; ``merge``: the merge-join of two sorted streams;
- ``scan``: the table scan and the listings; ``run``: one run, its counts and the fixes.
"""
