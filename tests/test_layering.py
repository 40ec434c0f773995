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
