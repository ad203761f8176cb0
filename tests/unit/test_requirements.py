"""requirements.txt names every third-party package the code imports directly, and nothing it does not use."""
import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
OURS = {"include", "dags", "plugins", "devtools", "tests", "bench"}
# Named in requirements.txt for what they provide, not for an import: the Airflow core distribution (imported as
# `airflow`, provided by several distributions), the Task SDK pin, psycopg's binary build, pytest plugins and
# command-line tools.
NOT_IMPORTED = {"apache-airflow", "apache-airflow-task-sdk", "apache-airflow-providers-standard",
                "apache-airflow-providers-postgres", "apache-airflow-providers-slack", "pytest-timeout", "pytest-xdist",
                "ruff"}


def _imported_modules() -> set[str]:
    found = set()
    for folder in OURS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in OURS}


def _required() -> set[str]:
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(canonicalize_name(Requirement(line).name))
    return names


def test_every_imported_package_is_a_direct_requirement():
    providers = metadata.packages_distributions()
    required = _required()
    missing = {}
    for module in sorted(_imported_modules()):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists, f"{module} is imported but no installed distribution provides it"
        if module == "airflow":
            continue  # apache-airflow and the Task SDK provide it; both are pinned
        if not dists & required:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not in requirements.txt: {missing}"


def test_every_requirement_is_used():
    providers = metadata.packages_distributions()
    provided = {canonicalize_name(d) for m in _imported_modules() for d in providers.get(m, [])}
    unused = _required() - provided - {canonicalize_name(n) for n in NOT_IMPORTED}
    assert not unused, f"in requirements.txt but never imported: {sorted(unused)}"
