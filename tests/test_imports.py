"""Packages import downward, never in a circle (read from the source, not by importing)."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("pipeline", "components", "models", "kubeflow", "simulator")


def first_party_imports(path):
    """Dotted names of this project's modules that a file imports (anywhere in it)."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update("%s.%s" % (node.module, alias.name) for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def source_files(package):
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if name.endswith(".py") and not name.endswith("_test.py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield module.replace(".__init__", ""), path


def graph(level):
    edges = {}
    for package in PACKAGES:
        for module, path in source_files(package):
            source = ".".join(module.split(".")[:level])
            for target in first_party_imports(path):
                target = ".".join(target.split(".")[:level])
                if target != source:
                    edges.setdefault(source, set()).add(target)
    return edges


def find_cycle(edges):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_packages_import_without_cycles():
    edges = graph(level=1)
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))
    assert "models" not in edges.get("components", ()), "components must not import models"
    assert "components" not in edges.get("models", ()), "models must not import components"


def test_modules_import_without_cycles():
    edges = {}
    for package in PACKAGES:
        for module, path in source_files(package):
            modules = {m for m in first_party_imports(path)}
            edges[module] = {m for m in modules if m != module}
    known = set(edges)
    edges = {k: {v for v in vs if v in known} for k, vs in edges.items()}
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
