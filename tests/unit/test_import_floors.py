"""The packages of ``ops_gateway`` stand on floors: every import points down (or stays in its package).

The floors are the README's Architecture section. A new import that points up, or a cycle between
packages, fails here with the module and the import that did it.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Low to high; a package may import its own floor's other package only where the pair is listed.
FLOORS = [
    ("core",),
    ("telemetry",),
    ("billing",),
    ("limits",),
    ("accounts",),
    ("upstream",),
    ("pipeline",),
    ("observability", "maintenance"),
    ("dashboard",),
]
FLOOR_OF = {package: level for level, packages in enumerate(FLOORS) for package in packages}
# Modules directly in ops_gateway/ (services, cli) sit above every package; the package's
# __init__ (the version) below them all.
TOP = len(FLOORS)
OUTSIDE_THE_PRODUCT = ("blueprints", "scheduler", "devtools", "tests", "bench")


def imports_of(path):
    """Every absolute module name a file imports, at module level or inside functions."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def floor_of(module):
    """(package, floor) of an ``ops_gateway`` module name."""
    parts = module.split(".")
    if len(parts) == 1:
        return "ops_gateway", -1
    if parts[1] in FLOOR_OF:
        return parts[1], FLOOR_OF[parts[1]]
    return parts[1], TOP


def product_modules():
    """(module name, path) of every module under ops_gateway/."""
    for path in sorted((ROOT / "ops_gateway").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def package_edges():
    """{(importing package, imported package): first (module, import) seen}."""
    edges = {}
    for module, path in product_modules():
        package, _ = floor_of(module)
        for target in imports_of(path):
            if target.split(".")[0] == "ops_gateway" and len(target.split(".")) > 1:
                other, _ = floor_of(target)
                if other != package and (ROOT / "ops_gateway" / other).is_dir():
                    edges.setdefault((package, other), (module, target))
    return edges


def test_every_package_is_on_a_floor():
    packages = {path.parent.name for path in (ROOT / "ops_gateway").glob("*/__init__.py")}
    assert packages - {"static"} == set(FLOOR_OF)


def test_every_import_between_packages_points_down():
    upward = [
        f"{module} imports {target}"
        for (package, other), (module, target) in package_edges().items()
        if floor_of(target)[1] >= floor_of(module)[1]
    ]
    assert upward == []


def test_the_package_graph_has_no_cycle():
    graph = {}
    for package, other in package_edges():
        graph.setdefault(package, set()).add(other)
    done, on_path = set(), []

    def visit(package):
        if package in on_path:
            raise AssertionError("import cycle: " + " -> ".join([*on_path[on_path.index(package) :], package]))
        if package in done:
            return
        on_path.append(package)
        for other in sorted(graph.get(package, ())):
            visit(other)
        on_path.pop()
        done.add(package)

    for package in sorted(graph):
        visit(package)


def test_nothing_in_the_product_imports_the_http_layer_the_clock_or_dev_tooling():
    offending = [
        f"{module} imports {target}"
        for module, path in product_modules()
        for target in imports_of(path)
        if target.split(".")[0] in OUTSIDE_THE_PRODUCT or target == "flask.request"
    ]
    assert offending == []


def test_no_fake_or_dev_server_ships_in_the_product():
    shipped = {path.relative_to(ROOT).as_posix() for path in (ROOT / "ops_gateway").rglob("*.py")}
    assert not [name for name in shipped if "fake" in name or "devserver" in name]
