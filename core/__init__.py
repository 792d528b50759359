"""imgpipe core: settings, events, the error taxonomy, the pipeline and the AWS adapters."""
