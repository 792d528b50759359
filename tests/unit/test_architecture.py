"""The layout's rules, enforced: import direction and cycles, module and function size, where
the environment is read and written, and no reaching into another module's private names.

Each check is a function over source files, so it is also run on small planted violations to
show that it fails on one.
"""

import ast
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "handlers", "infra", "loadtest")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80
CORE_MAY_IMPORT = {"PIL", "pillow_heif", "pyvips", "nanoarrow", "boto3", "botocore"}
ENV_WRITERS = ("infra/cli.py", "infra/commands/", "infra/worker/environment.py")
SETTINGS_MODULE = "core/settings.py"
# Underscore names that are public API: NamedTuple's methods, and interpreter hooks.
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make", "_exit", "_getframe"}
# A deferred (function-level) import must say what it saves: a measured cost such as "90 ms".
MEASURED_COST = re.compile(r"\b\d+(\.\d+)?\s*(ms|s)\b")
# Private names of *other projects* that our strict local layer must reach, with the reason.
THIRD_PARTY_HOOKS = {
    "_authenticate_and_authorize_action": "moto offers no public hook to correct which IAM "
    "action its SQS batch calls ask for (infra/local/strict_front.py)",
}


@dataclass(frozen=True)
class Module:
    name: str  # dotted: "infra.local.stack"
    path: Path  # relative to the root
    tree: ast.Module
    lines: int


def load(root: Path, packages: Iterable[str] = PACKAGES) -> list[Module]:
    modules = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            source = path.read_text(encoding="utf-8")
            modules.append(
                Module(".".join(parts), relative, ast.parse(source), len(source.splitlines()))
            )
    return modules


def imports(module: Module) -> Iterator[tuple[str, int]]:
    """Every module this one imports (at any depth: function-level imports count), absolute."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.name.split(".")
                is_package = module.path.name == "__init__.py"
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names)


def layer(name: str) -> str:
    if name == "infra.cli" or name.startswith(("infra.cli.", "infra.commands")):
        return "commands"
    return name.split(".", 1)[0]


# Who may import whom: each layer sees only the layers below it.
BELOW = {
    "core": {"core"},
    "handlers": {"core", "handlers"},
    "infra": {"core", "handlers", "infra"},
    "loadtest": {"core", "handlers", "infra", "loadtest"},
    "commands": {"core", "handlers", "infra", "loadtest", "commands"},
}


def layer_violations(modules: list[Module]) -> list[str]:
    known = {m.name for m in modules}
    problems = []
    for module in modules:
        mine = layer(module.name)
        for target, line in imports(module):
            top = target.split(".", 1)[0]
            if target in known or top in PACKAGES:
                if layer(target) not in BELOW[mine]:
                    problems.append(f"{module.path}:{line}: {mine} imports {target}")
            elif mine == "core" and top not in CORE_MAY_IMPORT and top not in STDLIB:
                problems.append(f"{module.path}:{line}: core imports {target}")
    return problems


STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def cycles(modules: list[Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), imports at any depth."""
    known = {m.name for m in modules}
    graph = {
        m.name: sorted({t for t, _ in imports(m) if t in known and t != m.name}) for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    return found


def size_violations(modules: list[Module]) -> list[str]:
    problems = [
        f"{m.path}: {m.lines} lines (at most {MAX_MODULE_LINES})"
        for m in modules
        if m.lines > MAX_MODULE_LINES
    ]
    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{module.path}:{node.lineno}: {node.name} is {length} lines")
    return problems


def _is_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def environment_violations(modules: list[Module]) -> list[str]:
    problems = []
    for module in modules:
        where = module.path.as_posix()
        writer = where.startswith(ENV_WRITERS)
        for node in ast.walk(module.tree):
            if not writer and _writes_environ(node):
                problems.append(f"{where}:{node.lineno}: writes os.environ")  # type: ignore[attr-defined]
            name = _imgpipe_read(node)
            if name and where != SETTINGS_MODULE:
                problems.append(f"{where}:{node.lineno}: reads {name}")  # type: ignore[attr-defined]
    return problems


def _writes_environ(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        return any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        mutators = {"update", "pop", "setdefault", "clear", "popitem", "__setitem__"}
        if node.func.attr in mutators and _is_environ(node.func.value):
            return True
        owner = node.func.value
        return isinstance(owner, ast.Name) and owner.id == "os" and node.func.attr in (
            "putenv", "unsetenv"
        )  # fmt: skip
    return False


def _imgpipe_read(node: ast.AST) -> str | None:
    """``os.environ.get("IMGPIPE_X")``, ``os.environ["IMGPIPE_X"]`` or ``os.getenv(...)``."""
    argument: ast.AST | None = None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        func = node.func
        getter = func.attr == "get" and _is_environ(func.value)
        getenv = (
            func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os"
        )
        argument = node.args[0] if getter or getenv else None
    elif (
        isinstance(node, ast.Subscript)
        and isinstance(node.ctx, ast.Load)
        and _is_environ(node.value)
    ):
        argument = node.slice
    if isinstance(argument, ast.Constant) and str(argument.value).startswith("IMGPIPE_"):
        return str(argument.value)
    return None


def private_violations(modules: list[Module]) -> list[str]:
    problems = []
    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names if _private(a.name)]
                problems += [f"{module.path}:{node.lineno}: imports {n}" for n in names]
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                owner = node.value
                own = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
                if not own and not _is_super(owner):
                    problems.append(f"{module.path}:{node.lineno}: reaches into .{node.attr}")
    return problems


def _private(name: str) -> bool:
    exempt = PUBLIC_UNDERSCORE | THIRD_PARTY_HOOKS.keys()
    return name.startswith("_") and not name.startswith("__") and name not in exempt


def _is_super(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def unexplained_deferred_imports(modules: list[Module], root: Path = ROOT) -> list[str]:
    """Function-level imports whose block carries no comment with a measured import cost.

    A block is a run of consecutive import statements; its comment is the run of comment lines
    just above it plus any comment at the end of its own lines.
    """
    problems = []
    for module in modules:
        lines = (root / module.path).read_text(encoding="utf-8").splitlines()
        for function in ast.walk(module.tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for block in _import_blocks(function):
                    if not MEASURED_COST.search(_block_comment(lines, block)):
                        problems.append(f"{module.path}:{block[0].lineno}: deferred import "
                                        "without a measured cost")  # fmt: skip
    return problems


def _import_blocks(function: ast.AST) -> Iterator[list[ast.stmt]]:
    for node in ast.walk(function):
        body = getattr(node, "body", None)
        if node is not function and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # a nested function is visited on its own
        for statements in (body, getattr(node, "orelse", None), getattr(node, "finalbody", None)):
            run: list[ast.stmt] = []
            for statement in statements if isinstance(statements, list) else []:
                if isinstance(statement, ast.Import | ast.ImportFrom):
                    run.append(statement)
                    continue
                if run:
                    yield run
                run = []
            if run:
                yield run


def _block_comment(lines: list[str], block: list[ast.stmt]) -> str:
    above = []
    index = block[0].lineno - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        above.append(lines[index])
        index -= 1
    last = block[-1].end_lineno or block[-1].lineno
    own = [line.partition("#")[2] for line in lines[block[0].lineno - 1 : last] if "#" in line]
    return " ".join(above + own)


# ------------------------------------------------------------------------- the project

MODULES = load(ROOT)


def test_layers_import_one_way() -> None:
    assert layer_violations(MODULES) == []


def test_no_import_cycles() -> None:
    assert cycles(MODULES) == []


def test_modules_and_functions_are_small() -> None:
    assert size_violations(MODULES) == []


def test_only_settings_reads_imgpipe_and_only_commands_write_the_environment() -> None:
    assert environment_violations(MODULES) == []


def test_no_reaching_into_private_names() -> None:
    assert private_violations(MODULES) == []


def test_deferred_imports_say_what_they_save() -> None:
    assert unexplained_deferred_imports(MODULES) == []


# ------------------------------------------------------- each check fails on a violation


def planted(tmp_path: Path, files: dict[str, str]) -> list[Module]:
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
    return load(tmp_path)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"core/a.py": "import infra.b\n", "infra/b.py": ""}, "core imports infra.b"),
        ({"core/a.py": "import requests\n"}, "core imports requests"),
        ({"handlers/a.py": "def f():\n    from loadtest import x\n"}, "handlers imports loadtest"),
        (
            {"infra/a.py": "from infra.commands import up\n", "infra/commands/up.py": ""},
            "infra imports infra.commands",
        ),
    ],
)
def test_the_layer_check_fails_on_a_violation(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    assert any(expected in problem for problem in layer_violations(planted(tmp_path, files)))


def test_the_cycle_check_fails_on_a_cycle_made_inside_a_function(tmp_path: Path) -> None:
    modules = planted(tmp_path, {
        "infra/a.py": "import infra.b\n",
        "infra/b.py": "def later():\n    from infra import a\n",
    })  # fmt: skip
    assert cycles(modules) == [["infra.a", "infra.b"]]


def test_the_size_check_fails_on_a_long_function_and_module(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long_module = "\n".join(f"y{i} = {i}" for i in range(MAX_MODULE_LINES + 1))
    modules = planted(tmp_path, {"core/f.py": f"def f():\n{body}\n", "core/m.py": long_module})
    problems = size_violations(modules)
    assert any("f is 81 lines" in p for p in problems)
    assert any("core/m.py: 501 lines" in p for p in problems)


def test_the_environment_check_fails_on_reads_and_writes(tmp_path: Path) -> None:
    modules = planted(tmp_path, {
        "infra/local/x.py": "import os\nos.environ['A'] = '1'\nos.environ.update(B='2')\n",
        "handlers/y.py": "import os\nv = os.environ.get('IMGPIPE_TABLE')\n",
        "infra/commands/ok.py": "import os\nos.environ['A'] = '1'\n",
        "core/settings.py": "import os\nv = os.environ['IMGPIPE_TABLE']\n",
    })  # fmt: skip
    assert environment_violations(modules) == [
        "handlers/y.py:2: reads IMGPIPE_TABLE",
        "infra/local/x.py:2: writes os.environ",
        "infra/local/x.py:3: writes os.environ",
    ]


def test_the_private_check_fails_on_reaching_in(tmp_path: Path) -> None:
    modules = planted(tmp_path, {
        "loadtest/h.py": "def f(local):\n    return local._monitor\n",
        "infra/i.py": "from core.x import _helper\n",
        "core/ok.py": "class A:\n    def f(self):\n        return self._own, super()._base\n",
    })  # fmt: skip
    assert private_violations(modules) == [
        "infra/i.py:1: imports _helper",
        "loadtest/h.py:2: reaches into ._monitor",
    ]


def test_the_deferred_import_check_fails_without_a_measured_cost(tmp_path: Path) -> None:
    modules = planted(tmp_path, {
        "infra/d.py": (
            "def bare():\n    import json\n\n"
            "def vague():\n    # deferred: it is slow\n    import csv\n    import zlib\n\n"
            "def measured():\n    # deferred: boto3 costs about 300 ms\n    import gzip\n"
            "    import bz2\n\n"
            "def inline():\n    import lzma  # deferred: 2 s\n"
        ),
    })  # fmt: skip
    assert unexplained_deferred_imports(modules, tmp_path) == [
        "infra/d.py:2: deferred import without a measured cost",
        "infra/d.py:6: deferred import without a measured cost",
    ]
