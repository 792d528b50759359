"""The functions behind the local HTTP API: one :class:`LocalFunction` per function that the
template's routes integrate, each with its own role's credentials, its handler (the image's
Command), its Timeout, its MemorySize and its auth settings (the template's ``IMGPIPE_AUTH_*``
variables), as on AWS."""

from collections.abc import Callable, Mapping
from typing import Any

from infra.local.apigw import Invoke, template_routes
from infra.local.functions import LocalFunction

FunctionEnv = Callable[[str], Mapping[str, str | None]]


class ApiFunctions:
    """``integrations``: ``{route key: invoke}`` for :class:`infra.local.apigw.HttpApiGateway`."""

    def __init__(
        self,
        resources: Mapping[str, Any],
        function_env: FunctionEnv,
        extra_env: Mapping[str, str],
        prefix: str = "imgpipe",
    ) -> None:
        routes = template_routes(resources)
        self.functions: dict[str, LocalFunction] = {}
        for name in sorted(set(routes.values())):
            props = resources[name]["Properties"]
            variables = (props.get("Environment") or {}).get("Variables") or {}
            env = {
                **{k: v for k, v in variables.items() if k.startswith("IMGPIPE_AUTH_")},
                **function_env(name),
                **extra_env,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props["MemorySize"]),
            }
            handler = str(props["ImageConfig"]["Command"][0])
            self.functions[name] = LocalFunction(
                handler, env, float(props["Timeout"]), f"{prefix}-{name}"
            )
        self.integrations: dict[str, Invoke] = {
            key: self.functions[name].invoke for key, name in routes.items()
        }

    def warm(self) -> None:
        for function in self.functions.values():
            function.warm()

    def close(self) -> None:
        for function in self.functions.values():
            function.close()
