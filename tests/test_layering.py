"""The domain library never imports prefect; the layers stay where ARCHITECTURE.md puts them."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_of_ltrr_core_imports_prefect():
    offenders = [p for p in (ROOT / "ltrr_core").rglob("*.py") if "prefect" in _imported_modules(p)]
    assert offenders == []


def test_importing_all_of_ltrr_core_loads_no_prefect():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "ltrr_core").rglob("*.py")
        if p.name != "__init__.py"
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_tasks_and_flows_hold_no_numeric_libraries():
    """Domain logic lives in ltrr_core: tasks and flows never reach for numpy or sklearn."""
    for folder in ("tasks", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            assert not _imported_modules(path) & {"numpy", "sklearn", "bm25s", "lancedb", "torch"}, path


def _absolute_imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports, relative imports resolved against its package."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


LEARNERS = ("bandit", "ranking", "simulate", "eval", "memory", "contracts", "logs", "models")


def test_no_learner_imports_the_runtime():
    """Learners read logs and models through ltrr_core.logs and ltrr_core.models; a served bundle
    they replay on is handed in (ltrr_core.runtime.bundle_loader), never imported."""
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _absolute_imports(p) if m.startswith("ltrr_core.runtime"))
        for package in LEARNERS
        for p in (ROOT / "ltrr_core" / package).rglob("*.py")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_import_resolver_sees_relative_imports_of_the_runtime(tmp_path):
    """Known answer: the resolver above catches the relative forms a learner would use."""
    module = tmp_path / "ltrr_core" / "bandit" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from ..runtime.service import load_service\nfrom .. import runtime\nfrom ..logs import read_logs\n"
    )
    found = _absolute_imports(module, tmp_path)
    assert {"ltrr_core.runtime.service", "ltrr_core.runtime", "ltrr_core.logs"} <= found
