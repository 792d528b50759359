"""The local API's functions: one per function the template's routes integrate, each as on
AWS (its handler, role, timeout and memory)."""

from infra.local.api_functions import ApiFunctions
from infra.template.evaluation import Evaluator
from infra.template.loading import load_template


def role_env(function: str) -> dict[str, str]:
    return {"AWS_PROFILE": function}


def test_each_route_goes_to_its_own_function_with_its_own_role_and_timeout() -> None:
    resources = Evaluator(load_template(), {"OnDemandProcessing": "true"}).resources()
    api = ApiFunctions(resources, role_env, {"IMGPIPE_CDN_DOMAIN": "http://cdn"})
    try:
        functions = api.functions
        assert sorted(functions) == ["ApiFunction", "ProcessNowFunction"]
        assert functions["ApiFunction"].handler == "handlers.api.handler"
        assert functions["ProcessNowFunction"].handler == "handlers.process_now.handler"
        for name, function in functions.items():
            props = resources[name]["Properties"]
            assert function.timeout_s == float(props["Timeout"])
            assert function.env["AWS_PROFILE"] == name
            assert function.env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == str(props["MemorySize"])
            assert function.env["IMGPIPE_CDN_DOMAIN"] == "http://cdn"
        assert functions["ApiFunction"].env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
        process = api.integrations["POST /process"]
        assert process == functions["ProcessNowFunction"].invoke
        assert api.integrations["POST /uploads"] == functions["ApiFunction"].invoke
    finally:
        api.close()


def test_without_on_demand_only_the_api_function_runs() -> None:
    api = ApiFunctions(Evaluator(load_template()).resources(), role_env, {})
    try:
        assert list(api.functions) == ["ApiFunction"]
        assert "POST /process" not in api.integrations
    finally:
        api.close()
