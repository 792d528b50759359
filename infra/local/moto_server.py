"""An embedded moto server on loopback that plays S3, SQS, DynamoDB, IAM and STS, as strictly
as AWS: IAM authentication on, signatures verified, and :mod:`infra.local.strict_front` in
front for what moto does not check itself."""

import logging
import socket
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any, Self

import boto3
from botocore.exceptions import ClientError
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from infra.local.browser_cors import cognito_cors
from infra.local.iam import BOOTSTRAP_CALLS, Keys, bootstrap_operator, secret_for
from infra.local.strict_front import StrictFront, authorise_like_iam

# Only for the unauthenticated bootstrap calls, and for `strict=False` runs (measurements).
BOOTSTRAP_CREDENTIALS = Keys("imgpipe-bootstrap", "imgpipe-bootstrap")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EnforcementError(RuntimeError):
    """moto let through a request that AWS would refuse."""


@dataclass(frozen=True)
class EndpointSession:
    """The part of a boto3 session that provisioning uses (``client``, ``region_name``), bound
    to one endpoint and key whatever this process's environment says."""

    endpoint_url: str
    region_name: str
    keys: Keys

    def client(self, service: str, **kwargs: Any) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=self.keys.access_key_id,
            aws_secret_access_key=self.keys.secret_access_key,
            region_name=self.region_name,
        )
        return session.client(service, endpoint_url=self.endpoint_url, **kwargs)  # type: ignore[call-overload]


class EmbeddedAws:
    """Start moto on 127.0.0.1; ``client_env`` points a process (or its children) at it.

    Only ``AWS_ENDPOINT_URL``, the region and the operator's credentials differ, so the code
    under test makes the same boto3 calls it makes on AWS. ``strict=False`` leaves moto's
    IAM enforcement off; it exists to measure what enforcement costs, and nothing else.
    """

    def __init__(self, port: int = 0, region: str = "us-east-1", strict: bool = True) -> None:
        self.port = port or free_port()
        self.region = region
        self.strict = strict
        self.operator = BOOTSTRAP_CREDENTIALS
        self.front: StrictFront | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._saved_auth = (moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, 0)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client_env(self) -> dict[str, str | None]:
        """The environment of a client acting as the operator (``None``: unset the variable)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **self.operator.env(),
            "AWS_PROFILE": None,  # either would override the operator's keys
            "AWS_SESSION_TOKEN": None,
        }

    @property
    def session(self) -> EndpointSession:
        """The operator's clients of this server, whatever the environment says."""
        return EndpointSession(self.endpoint, self.region, self.operator)

    def __enter__(self) -> Self:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        authorise_like_iam()
        self.front = StrictFront(
            DomainDispatcherApplication(create_backend_app), self.endpoint, self.region, secret_for
        )
        self._server = make_server("127.0.0.1", self.port, cognito_cors(self.front),
                                   threaded=True, request_handler=MotoRequestHandler)  # fmt: skip
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        # A fresh account: moto's backends are process-wide and outlive a previous server.
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10
        ).close()
        self._saved_auth = (
            moto_settings.INITIAL_NO_AUTH_ACTION_COUNT,
            ActionAuthenticatorMixin.request_count,
        )
        if self.strict:
            moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = BOOTSTRAP_CALLS
            ActionAuthenticatorMixin.request_count = 0
        bootstrap = EndpointSession(self.endpoint, self.region, BOOTSTRAP_CREDENTIALS)
        self.operator = bootstrap_operator(bootstrap.client("iam"))
        if self.strict:
            self._check_enforced(bootstrap)
        return self

    def _check_enforced(self, bootstrap: EndpointSession) -> None:
        """Refuse to run if moto would accept a request signed with an unknown key."""
        try:
            bootstrap.client("sts").get_caller_identity()
        except ClientError:
            return
        self.__exit__()
        raise EnforcementError("moto accepted an unknown access key: IAM is not enforced")

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = (
            self._saved_auth
        )
