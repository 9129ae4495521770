"""The package's layout: no import cycle anywhere in vae/ and pipelines/, counting the imports inside
functions too (a lazy import only hides a cycle until both modules are loaded); MLflow imported only
in the tracking package; every module says in its first line what it owns."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(package: str) -> list[tuple[Path, str]]:
    """(file, dotted name) of every module of a package, sub-packages included (a package's
    __init__.py under the package's own name)."""
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append((path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    return out


KNOWN = {name for package in ("pipelines", "vae") for _, name in modules(package)}


def imported(path: Path) -> set[str]:
    """Every module name an import statement in the file names, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def imports(package: str) -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in the file."""
    graph = {}
    for path, name in modules(package):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names}  # from pipelines.report import plots
                found |= subs
                if not subs <= KNOWN:  # names from the module itself, not only its sub-modules
                    found.add(node.module)
        graph[name] = {m for m in found if m.split(".")[0] in ("pipelines", "vae") and m != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def cycle_through(graph: dict[str, set[str]], module: str) -> set[str]:
    """The modules that import `module` back, directly or not (empty: no cycle through it)."""
    return {m for m in reachable(graph, module) if module in reachable(graph, m)}


REPORT = ["pipelines.report.data", "pipelines.report.tables", "pipelines.report.plots", "pipelines.report.page",
          "pipelines.report.verdict", "pipelines.usecases.publish", "pipelines.report.heatmaps", "pipelines.cli"]


def test_no_import_cycle_through_the_report():
    graph = {**imports("pipelines"), **imports("vae")}
    assert {m: cycle_through(graph, m) for m in REPORT} == {m: set() for m in REPORT}


def test_no_import_cycle_anywhere():
    graph = {**imports("pipelines"), **imports("vae")}
    assert len(graph) > 50  # every module of both packages, sub-packages included
    assert {m: cycles for m in graph if (cycles := cycle_through(graph, m))} == {}


LAYERS = {"common": 0, "tracking": 1, "engine": 2, "report": 2, "usecases": 3, "cli": 4}
"""pipelines/ from the bottom up (README, "Layers"): a package imports its own modules and those of
lower layers only; engine and report, side by side, never each other. vae/ is below them all."""


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "pipelines" and len(parts) > 1 else parts[0]


def test_the_layout_is_five_layers_that_import_one_way():
    top = {p.name for p in (ROOT / "pipelines").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    assert top == {"__init__.py", "cli", "common", "tracking", "engine", "report", "usecases"}
    graph = imports("pipelines")
    upward = sorted((m, d) for m, deps in graph.items() for d in deps
                    if d.startswith("pipelines.") and m != "pipelines" and package(m) != package(d)
                    and LAYERS[package(d)] >= LAYERS[package(m)])
    assert upward == []
    assert not any(d.startswith("pipelines") for m, deps in imports("vae").items() for d in deps)


def test_the_layer_check_finds_an_upward_import():
    graph = {"pipelines.tracking.runs": {"pipelines.engine.study"}, "pipelines.engine.sweep": {"pipelines.report.page"}}
    upward = [(m, d) for m, deps in graph.items() for d in deps if LAYERS[package(d)] >= LAYERS[package(m)]]
    assert upward == [("pipelines.tracking.runs", "pipelines.engine.study"), ("pipelines.engine.sweep", "pipelines.report.page")]


def test_mlflow_is_imported_only_in_the_tracking_package():
    users = {name for package in ("pipelines", "vae") for path, name in modules(package)
             if any(m.split(".")[0] == "mlflow" for m in imported(path))}
    assert users and all(name.startswith("pipelines.tracking.") for name in users), users


def client_reaches(source: str) -> list[int]:
    """Lines of `source` that touch an attribute named `client` (the Tracker's MlflowClient)."""
    return [node.lineno for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Attribute) and node.attr == "client"]


def test_mlflow_client_is_reached_only_in_the_tracking_package():
    """Outside pipelines/tracking/ the engine and the report ask the Tracker by name
    (pipelines/tracking/queries.py), never its MlflowClient."""
    reaching = {name: lines for package in ("pipelines", "vae") for path, name in modules(package)
                if not name.startswith("pipelines.tracking") and (lines := client_reaches(path.read_text()))}
    assert reaching == {}
    assert client_reaches("def f(tracker):\n    x = 1\n    return tracker.client.get_run('x')\n") == [3]


def test_every_module_says_what_it_owns():
    """Its docstring's first line: a sentence, not a blank or a file name."""
    missing = {}
    for package in ("pipelines", "vae"):
        for path, name in modules(package):
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            first = doc.strip().split("\n")[0]
            if len(first.split()) < 4:
                missing[name] = first
    assert missing == {}


def test_the_layout_table_of_the_docs_matches_the_tree():
    import re

    readme = (ROOT / "docs" / "development.md").read_text()
    table = readme[readme.index("Layout — file names are the architecture"):]
    table = table[:table.index("\n\n", table.index("| path |"))]
    listed = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, flags=re.M):
        listed |= {p.rstrip("/") for p in re.findall(r"`([^`]+)`", cell)}
    files = {str(path.relative_to(ROOT)) for package in ("pipelines", "vae") for path, _ in modules(package)
             if path.name != "__init__.py"}
    packages = {str(path.parent.relative_to(ROOT)) for package in ("pipelines",) for path, _ in modules(package)
                if path.name == "__init__.py" and path.parent != ROOT / package}
    assert files | packages <= listed, sorted((files | packages) - listed)
    assert {p for p in listed if p.startswith(("vae/", "pipelines/"))} <= files | packages


def test_the_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set()}
    assert cycle_through(graph, "a") == {"a", "b", "c"} and cycle_through(graph, "d") == set()
    # the cycle this layout had: report.write_report imported page, page imported report
    graph = {"pipelines.report.data": {"pipelines.report.page"}, "pipelines.report.page": {"pipelines.report.data"}}
    assert cycle_through(graph, "pipelines.report.data") == {"pipelines.report.data", "pipelines.report.page"}
    assert imports("pipelines")["pipelines.report.page"] >= {"pipelines.report.data", "pipelines.report.tables", "pipelines.report.plots"}


def test_report_layers():
    """report.py is the data: it imports none of the modules that render it; figures and tables
    take data, not the page."""
    graph = imports("pipelines")
    assert not graph["pipelines.report.data"] & {"pipelines.report.tables", "pipelines.report.plots", "pipelines.report.page"}
    assert not graph["pipelines.report.plots"] & {"pipelines.report.data", "pipelines.report.tables", "pipelines.report.page"}
    # the verdict is computed from the data alone; where it is stated (MLflow, Optuna) is publish.py's
    assert not graph["pipelines.report.verdict"] & {"pipelines.tracking.runs", "pipelines.engine.study", "pipelines.report.page",
                                             "pipelines.report.tables", "pipelines.usecases.publish"}
    assert "pipelines.report.page" not in graph["pipelines.report.tables"]
