"""The shape the code promises: thin handlers over one booking service, a domain that knows no HTTP,
and links made by route name. These read the source; they fail when a shortcut creeps back in."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = sorted((ROOT / "web" / "routes").rglob("*.py"))
QUERY_METHODS = {"filter", "get", "get_or_none", "create", "all", "exclude", "update", "delete",
                 "bulk_create", "get_or_create", "exists", "count", "raw", "execute_query"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imported_names(tree: ast.Module, module_prefix: str) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(module_prefix):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def test_no_handler_module_queries_the_database():
    for path in HANDLERS + [ROOT / "web" / "app.py"]:
        tree = _tree(path)
        tables = _imported_names(tree, "models.db.tables")
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", None) or node.names[0].name
                assert not module.startswith("tortoise"), f"{path.name} imports {module}"
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in tables
                    and node.func.attr in QUERY_METHODS):
                raise AssertionError(f"{path.name}:{node.lineno} queries {node.func.value.id} itself")


def _calls(path: Path) -> set[str]:
    return {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(_tree(path))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name)}


def test_resident_and_call_centre_book_through_the_same_service_functions():
    for name in ("resident.py", "callcentre.py"):
        path = ROOT / "web" / "routes" / name
        calls = _calls(path)
        for use_case in ("service.stand", "service.choose", "service.confirm", "service.cancel"):
            assert use_case in calls, f"{name} does not call {use_case}"
        assert "engine" not in _imported_names(_tree(path), "models.booking"), \
            f"{name} talks to the engine directly"


def test_the_domain_knows_nothing_of_the_web():
    for path in (ROOT / "models").rglob("*.py"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("web", "starlette")), f"{path} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("web", "starlette")), f"{path} imports {alias.name}"


def test_nothing_in_the_domain_reads_the_environment():
    for path in list((ROOT / "models").rglob("*.py")) + list((ROOT / "web").rglob("*.py")):
        if path.name == "settings.py":
            continue  # the one place that reads the environment, at start-up
        text = path.read_text(encoding="utf-8")
        assert "os.environ" not in text and "getenv" not in text, f"{path} reads the environment"


def test_links_and_redirects_are_made_by_route_name():
    literal = re.compile(r'(href|action|data-hx-(get|post))="/(?!static/)')
    for path in (ROOT / "templates").rglob("*.html"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not literal.search(line), f"{path.relative_to(ROOT)}:{n} has a literal path: {line.strip()}"
    for path in HANDLERS:
        text = path.read_text(encoding="utf-8")
        assert "RedirectResponse(" not in text, f"{path.name} builds its own redirect: use see_other()"
        assert not re.search(r'see_other\(\s*f?["\']/', text), f"{path.name} redirects to a literal path"
