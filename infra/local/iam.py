"""IAM on the embedded stack: the operator principal, one role per function of the template,
and the credentials each local function runs with.

The roles carry exactly the template's policy documents (resolved by the same evaluator that
provisioning uses). Their trust policy is the template's plus one statement that lets the
local operator assume them: on AWS the Lambda service assumes a function's role, and here the
local stack plays that service.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT_ID = "123456789012"
OPERATOR = "imgpipe-operator"
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "LocalOperator", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# Unauthenticated calls that bootstrap_operator makes before moto enforces IAM.
BOOTSTRAP_CALLS = 3
# botocore refreshes assumed-role credentials 15 minutes before they expire.
SESSION_SECONDS = 3600


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key}  # fmt: skip


def bootstrap_operator(iam: Any) -> Keys:
    """Create the operator user with full access (the stack's own admin) and its key.

    These are the only calls moto lets through unauthenticated (``BOOTSTRAP_CALLS``)."""
    iam.create_user(UserName=OPERATOR)
    iam.put_user_policy(
        UserName=OPERATOR, PolicyName="operator", PolicyDocument=json.dumps(ADMIN_POLICY)
    )
    key = iam.create_access_key(UserName=OPERATOR)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


def operator_arn(partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{ACCOUNT_ID}:user/{OPERATOR}"


def function_roles(resources: Mapping[str, Any]) -> dict[str, str]:
    """``{function logical id: role logical id}`` for every function with a template role."""
    roles: dict[str, str] = {}
    for name, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        role = str((resource.get("Properties") or {}).get("Role", ""))
        logical = role.strip("<>").split(".", 1)[0]
        if resources.get(logical, {}).get("Type") == "AWS::IAM::Role":
            roles[name] = logical
    return roles


def role_name(prefix: str, logical_id: str) -> str:
    return f"{prefix}-{logical_id}"[:64]


def local_trust_policy(document: Mapping[str, Any]) -> dict[str, Any]:
    """The template's trust policy with the operator added as a principal of each statement
    (added to the statements, not beside them: moto fails on a statement without an AWS
    principal when it checks a trust policy)."""
    trust: dict[str, Any] = json.loads(json.dumps(document))
    for statement in trust["Statement"]:
        principal = statement.setdefault("Principal", {})
        principal["AWS"] = operator_arn()
    return trust


def create_roles(iam: Any, resources: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """Create each function's role from the resolved template; ``{function: role ARN}``."""
    arns: dict[str, str] = {}
    for function, logical in function_roles(resources).items():
        properties = resources[logical]["Properties"]
        trust = local_trust_policy(properties["AssumeRolePolicyDocument"])
        name = role_name(prefix, logical)
        try:
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        except iam.exceptions.EntityAlreadyExistsException:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            role = iam.get_role(RoleName=name)
        arns[function] = role["Role"]["Arn"]
        for policy in properties.get("Policies") or []:
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )
        for managed in properties.get("ManagedPolicyArns") or []:
            iam.attach_role_policy(RoleName=name, PolicyArn=managed)
    return arns


def write_profiles(path: Path, operator: Keys, roles: Mapping[str, str]) -> Path:
    """An AWS config file with the operator and one assume-role profile per function.

    A process started with ``AWS_PROFILE=<function>`` and this file as ``AWS_CONFIG_FILE`` gets
    botocore's own refreshing assume-role credentials, so it acts as the function's role."""
    lines = [
        f"[profile {OPERATOR}]",
        f"aws_access_key_id = {operator.access_key_id}",
        f"aws_secret_access_key = {operator.secret_access_key}",
    ]
    for function, arn in roles.items():
        lines += [
            "",
            f"[profile {function}]",
            f"role_arn = {arn}",
            f"source_profile = {OPERATOR}",
            f"role_session_name = {function}",
            f"duration_seconds = {SESSION_SECONDS}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def function_env(config_file: Path, function: str) -> dict[str, str]:
    """The credential settings of a process that runs as ``function``'s role. Any static
    credentials in its environment must be removed: they come first in botocore's chain."""
    return {"AWS_CONFIG_FILE": str(config_file), "AWS_PROFILE": function,
            "AWS_SHARED_CREDENTIALS_FILE": str(config_file.with_suffix(".none"))}  # fmt: skip


STATIC_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def secret_for(access_key_id: str, session_token: str | None) -> str | None:
    """The secret of a key that this process's moto server issued (user or assumed role)."""
    # Deferred: moto takes about 2 s to import, and provisioning (which imports this module)
    # also runs against AWS, where moto is never needed.
    from moto.iam.access_control import CreateAccessKeyFailure, create_access_key

    headers = {"X-Amz-Security-Token": session_token} if session_token else {}
    try:
        key = create_access_key(ACCOUNT_ID, "aws", access_key_id, headers)
    except CreateAccessKeyFailure:
        return None
    return str(key.create_credentials().secret_key)
