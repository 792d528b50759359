"""How a command words the AWS error it cannot go on after: one line, never a traceback."""


def describe(exc: Exception) -> str:
    """botocore's message, or a hint where botocore's own says too little."""
    # deferred: botocore.exceptions costs about 28 ms, which every `imgpipe` command would
    # pay (the CLI imports each command module to build its parser)
    from botocore.exceptions import NoCredentialsError, NoRegionError

    if isinstance(exc, NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION (or a region in your AWS profile)"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    return str(exc)
