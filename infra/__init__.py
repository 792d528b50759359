"""Infrastructure: the SAM template, the embedded local stack and the `imgpipe` CLI."""
