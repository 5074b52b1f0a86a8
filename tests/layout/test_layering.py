"""Dependencies run one way, and a test keeps them so (docs/architecture.md, "Layers").

Every import of the project's own modules counts, at the top of a file or inside a
function: an import hidden in a function is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top. A module may import its own layer and the layers below it, never above.
LAYERS = [
    "core", "config.base", "audit", "accounts", "tenants", "billing", "webhooks", "generation",
    "batches", "ops",
    "site",
]  # fmt: skip
# The Django project's own wiring sits on top: it mounts every app's URLs.
SITE_MODULES = {
    "config.urls",
    "config.dashboard_urls",
    "config.views",
    "config.wsgi",
    "config.asgi",
}
PACKAGES = [
    "core", "config", "audit", "accounts", "tenants", "billing", "webhooks", "generation",
    "batches", "ops",
]  # fmt: skip
OUTSIDE = {"emulators", "tests", "bench"}  # the app never imports these
# Roles that translate (HTTP, forms, admin): nothing in the domain imports them. `events`
# renders a webhook payload with the API's own serializer, so the payload equals GET's body.
TRANSLATING = {"api", "serializers", "views", "forms", "urls", "dashboard_urls", "admin", "streams"}
MAY_RENDER_PAYLOADS = {"events"}

Graph = Mapping[str, set[str]]


def layer_of(module: str) -> str:
    if module in SITE_MODULES:
        return "site"
    top = module.split(".")[0]
    return "config.base" if top == "config" else top


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest known module that `name` is or lies in."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def project_imports() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    known = {_module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for name in names:
                if name.split(".")[0] in OUTSIDE:
                    targets.add(name)
                elif (found := _resolve(name, known)) and found != module:
                    targets.add(found)
        graph[module] = targets
    return graph


def upward_imports(graph: Graph) -> list[str]:
    found = []
    for module, targets in graph.items():
        if "migrations" in module.split("."):
            continue  # a migration names the state of its time, checked by the migration test
        for target in targets:
            if target.split(".")[0] in OUTSIDE:
                found.append(f"{module} imports {target}, which the app never imports")
            elif LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)):
                found.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    return sorted(found)


def domain_importing_translation(graph: Graph) -> list[str]:
    def role(module: str) -> str:
        return module.rpartition(".")[2]

    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if role(module) not in TRANSLATING | MAY_RENDER_PAYLOADS
        and "management" not in module.split(".")
        and layer_of(module) != "site"
        for target in targets
        if role(target) in TRANSLATING and target.split(".")[0] not in OUTSIDE
    )


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graph(edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    return graph


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert upward_imports(project_imports()) == []


def test_services_selectors_and_tasks_never_import_api_serializers_or_views() -> None:
    assert domain_importing_translation(project_imports()) == []


def test_there_are_no_import_cycles() -> None:
    assert cycles(project_imports()) == []


def test_the_graph_sees_imports_inside_functions_and_relative_ones() -> None:
    graph = project_imports()
    assert "generation.providers.types" in graph["generation.providers.retry"]  # relative
    assert "core.catalog" in graph["billing.migrations.0003_seed_prices"]
    assert "generation.services" in graph["generation.runner"]


def test_an_upward_import_is_reported() -> None:
    graph = _graph([("generation.services", "batches.services"), ("batches.api", "core.money")])
    assert upward_imports(graph) == [
        "generation.services (generation) imports batches.services (batches)"
    ]


def test_billing_may_not_import_generation_nor_the_app_the_emulators() -> None:
    graph = _graph([("billing.models", "generation.models"), ("generation.gateway", "emulators")])
    assert upward_imports(graph) == [
        "billing.models (billing) imports generation.models (generation)",
        "generation.gateway imports emulators, which the app never imports",
    ]


def test_a_service_importing_a_serializer_is_reported() -> None:
    graph = _graph(
        [("batches.services", "batches.serializers"), ("batches.api", "batches.services")]
    )
    assert domain_importing_translation(graph) == ["batches.services imports batches.serializers"]


def test_a_cycle_inside_an_app_is_reported() -> None:
    graph = _graph(
        [
            ("generation.runner", "generation.services"),
            ("generation.services", "generation.ingest"),
            ("generation.ingest", "generation.runner"),
            ("generation.api", "generation.services"),
        ]
    )
    assert cycles(graph) == [["generation.ingest", "generation.runner", "generation.services"]]


def test_the_architecture_page_draws_every_layer_in_order() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    diagram = page.split("### Layers", 1)[1].split("```", 2)[1]
    names = [
        line.split()[0].rstrip(",")
        for line in diagram.splitlines()
        if line.strip() and line.strip()[0] != "│"
    ]
    drawn = ["site" if n == "config.urls" else "config.base" if n == "config" else n for n in names]
    assert drawn[::-1] == LAYERS
