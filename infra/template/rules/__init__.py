"""The project's invariants of ``infra/template.yaml``, as cfn-lint custom rules.

Load them by module path: ``cfn-lint infra/template.yaml --append-rules infra.template.rules``
(or ``append_rules=["infra.template.rules"]`` through ``cfnlint.api``). cfn-lint instantiates
every rule class found in this module's namespace.
"""

from infra.template.rules.buckets import (
    BucketsEncryptedTlsOnly,
    BucketsPrivate,
    RawAndOutputBucketsDiffer,
)
from infra.template.rules.cloudfront import CloudFrontOacOnly
from infra.template.rules.iam import IamStatementsScoped
from infra.template.rules.queues import (
    DeadLetterQueue,
    QueuesEncryptedAndScoped,
    QueueVisibilityTimeout,
    ReportBatchItemFailures,
)

__all__ = [
    "BucketsEncryptedTlsOnly",
    "BucketsPrivate",
    "CloudFrontOacOnly",
    "DeadLetterQueue",
    "IamStatementsScoped",
    "QueueVisibilityTimeout",
    "QueuesEncryptedAndScoped",
    "RawAndOutputBucketsDiffer",
    "ReportBatchItemFailures",
]
