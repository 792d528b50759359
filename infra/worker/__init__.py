"""Lambda's SQS event source mapping played by worker processes: `imgpipe worker` (EC2, ECS)
runs it on its own, and the embedded stack runs it with its own settings and hooks."""
