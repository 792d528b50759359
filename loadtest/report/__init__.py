"""The load-test reports: Markdown, HTML and charts, and the run folder they go in."""
