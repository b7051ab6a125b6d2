"""Find the HTTP functions in functions/ and the path each is mounted at."""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "functions"
ROUTES_FILE = "routes.toml"


@dataclass(frozen=True)
class Route:
    path: str
    target: str
    source: Path


def _is_http_decorator(node: ast.expr) -> bool:
    # @functions_framework.http, or `from functions_framework import http` then @http
    if isinstance(node, ast.Attribute):
        return node.attr == "http" and isinstance(node.value, ast.Name) and node.value.id == "functions_framework"
    return isinstance(node, ast.Name) and node.id == "http"


def http_targets(source: Path) -> list[str]:
    """Names of the functions in `source` decorated as HTTP functions (read, not imported)."""
    try:
        # Bytes: ast.parse decodes them as Python does (UTF-8, or the file's coding line), whatever the locale.
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError:
        return []  # reported when the function is loaded; the route is still known from the table
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any(_is_http_decorator(d) for d in node.decorator_list)
    ]


def discover(functions_dir: Path = FUNCTIONS_DIR) -> list[Route]:
    table_path = functions_dir / ROUTES_FILE
    table: dict[str, str] = {}
    if table_path.exists():
        with table_path.open("rb") as file:  # TOML is UTF-8 by definition, not the locale's encoding
            table = tomllib.load(file)
    routes: dict[str, Route] = {}
    for source in sorted(functions_dir.glob("*.py")):
        for target in http_targets(source):
            path = "/" + table.get(target, target).strip("/")
            if path in routes:
                raise ValueError(
                    f"{source.name}:{target} and {routes[path].source.name}:{routes[path].target} both claim {path}"
                )
            routes[path] = Route(path, target, source)
    # A file with a syntax error still keeps its declared route, so --reload can serve its error.
    for target, path in table.items():
        path = "/" + path.strip("/")
        source = functions_dir / f"{target}.py"
        if path not in routes and source.exists():
            routes[path] = Route(path, target, source)
    return sorted(routes.values(), key=lambda r: r.path)
