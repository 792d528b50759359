"""Load a CloudFormation template through cfn-lint's decoder, as plain JSON-shaped data.

``cfnlint.decode`` turns the short-form tags (``!Ref``, ``!Sub``, ``!GetAtt``...) into their
long JSON form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``, ``{"Fn::GetAtt": [name, attribute]}``)
and reports syntax errors and duplicate keys with their line. Its position-carrying node types
are turned back into builtin ``dict``/``list``/``str`` so the data pickles and compares plainly.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "template.yaml"

Template = dict[str, Any]


def load_template(path: Path | str | None = None) -> Template:
    """Load the template (default: ``infra/template.yaml``) with the intrinsics in long form."""
    source = Path(path or TEMPLATE_PATH)
    data, errors = decode_str(source.read_text(encoding="utf-8"))
    if errors:
        details = "; ".join(f"line {e.linenumber}: {e.message}" for e in errors)
        raise ValueError(f"{source}: {details}")
    if not isinstance(data, dict):
        raise TypeError(f"{source}: not a CloudFormation template")
    template: Template = builtin_data(data)
    return template


def builtin_data(node: Any) -> Any:
    """``node`` (decoded by cfn-lint) with its node subclasses replaced by builtin types.

    CloudFormation has no YAML timestamps: an unquoted ``2010-09-09`` comes back as the string.
    """
    if isinstance(node, dict):
        return {builtin_data(key): builtin_data(value) for key, value in node.items()}
    if isinstance(node, list):
        return [builtin_data(item) for item in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime.date):  # datetime.datetime included
        return node.isoformat()
    return node
