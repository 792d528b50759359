"""One module per `imgpipe` sub-command; each exposes ``register(subparsers)``."""
