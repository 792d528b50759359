"""The embedded local stack: moto server, provisioning, and the SQS event source mapping."""
