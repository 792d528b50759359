"""The SAM template ``infra/template.yaml``: loading, evaluation, and the project's lint rules.

``loading`` reads it through cfn-lint's decoder, ``evaluation`` resolves it for one parameter
set (the local stack provisions from that), and ``rules`` holds the project's invariants as
cfn-lint custom rules (``cfn-lint infra/template.yaml --append-rules infra.template.rules``).
"""
