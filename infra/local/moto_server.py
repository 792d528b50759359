"""An embedded moto server on loopback that plays S3, SQS and DynamoDB."""

import logging
import os
import socket
from typing import Self

from moto.server import ThreadedMotoServer

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "imgpipe-local",
    "AWS_SECRET_ACCESS_KEY": "imgpipe-local",
    "AWS_SESSION_TOKEN": "imgpipe-local",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedAws:
    """Start moto on 127.0.0.1 and point this process (and its children) at it.

    Only ``AWS_ENDPOINT_URL``, the region and dummy credentials change, so the code under
    test makes the same boto3 calls it makes on AWS.
    """

    def __init__(self, port: int = 0, region: str = "us-east-1") -> None:
        self.port = port or free_port()
        self.region = region
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._saved: dict[str, str | None] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **DUMMY_CREDENTIALS,
        }

    def __enter__(self) -> Self:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server.start()
        for name, value in self.env.items():
            self._saved[name] = os.environ.get(name)
            os.environ[name] = value
        for name in ("AWS_PROFILE",):  # a profile would override the dummy credentials
            self._saved[name] = os.environ.pop(name, None)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
