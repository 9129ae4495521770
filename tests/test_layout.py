"""The package's layout: no import cycle through the report's modules, counting the imports inside
functions too (a lazy import only hides a cycle until both modules are loaded)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(package: str) -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in the file."""
    graph = {}
    for path in sorted((ROOT / package).glob("*.py")):
        name = f"{package}.{path.stem}"
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}  # from pipelines import plots
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


REPORT = ["pipelines.report", "pipelines.tables", "pipelines.plots", "pipelines.page", "pipelines.verdict",
          "pipelines.publish", "pipelines.heatmaps", "pipelines.cli"]


def test_no_import_cycle_through_the_report():
    graph = {**imports("pipelines"), **imports("vae")}
    assert {m: cycle_through(graph, m) for m in REPORT} == {m: set() for m in REPORT}


def test_the_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set()}
    assert cycle_through(graph, "a") == {"a", "b", "c"} and cycle_through(graph, "d") == set()
    # the cycle this layout had: report.write_report imported page, page imported report
    graph = {"pipelines.report": {"pipelines.page"}, "pipelines.page": {"pipelines.report"}}
    assert cycle_through(graph, "pipelines.report") == {"pipelines.report", "pipelines.page"}
    assert imports("pipelines")["pipelines.page"] >= {"pipelines.report", "pipelines.tables", "pipelines.plots"}


def test_report_layers():
    """report.py is the data: it imports none of the modules that render it; figures and tables
    take data, not the page."""
    graph = imports("pipelines")
    assert not graph["pipelines.report"] & {"pipelines.tables", "pipelines.plots", "pipelines.page"}
    assert not graph["pipelines.plots"] & {"pipelines.report", "pipelines.tables", "pipelines.page"}
    # the verdict is computed from the data alone; where it is stated (MLflow, Optuna) is publish.py's
    assert not graph["pipelines.verdict"] & {"pipelines.tracking", "pipelines.study", "pipelines.page",
                                             "pipelines.tables", "pipelines.publish"}
    assert "pipelines.page" not in graph["pipelines.tables"]
