"""The package's structure: modules in layers with no import cycle, imports at the top of modules, one reader of the
network kind. Read from the source with `ast` (nothing is imported), so a violation names the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "purejaxppo"

# Bottom to top: a module may import only modules listed before it (so the graph has no cycle by construction).
ORDER = (
    "version", "compiler",
    # pure maths
    "streams", "gae", "losses", "optim", "normalize",
    # inputs
    "extras", "brax_env", "craftax_env", "jumanji_env", "navix_env", "playground_env", "envs", "config", "configs",
    # models
    "networks", "policies",
    # the pipeline
    "rollout", "batch", "metrics", "evaluation", "train",
    # scale and the user API
    "sweeps", "population", "parallel", "trainer",
    # the host side (logs: the run directory's files, which checkpoint's save_run writes)
    "logs", "checkpoint", "export", "configfields", "runlock", "progress", "plotting", "compare", "cli",
    "__init__", "__main__",
)
# Imports allowed inside functions: optional extras, and the command line's deliberate lazy imports.
LAZY_IMPORTS_ALLOWED = {
    "brax_env": {"brax"},
    "craftax_env": {"craftax"},
    "jumanji_env": {"jumanji"},
    "navix_env": {"navix"},
    "playground_env": {"mujoco_playground"},
    "export": {"jax2onnx", "onnxruntime"},
    "logs": {"tensorboardX", "wandb"},
    "plotting": {"gymnasium", "pygame", "gymnax.visualize"},
    "cli": None,  # any
}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/__init__", "")
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def package_imports(tree: ast.AST) -> list[tuple[str, int]]:
    """``(module, line)`` for every import of a purejaxppo module in `tree`."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "purejaxppo":
            if node.module == "purejaxppo":
                out += [(alias.name, node.lineno) for alias in node.names]
            else:
                out.append((node.module.split(".")[1], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".")[1], node.lineno) for a in node.names if a.name.startswith("purejaxppo.")]
    return out


def test_every_module_is_placed_in_a_layer():
    assert set(modules()) == set(ORDER)


def test_modules_import_only_from_below():
    rank = {name: i for i, name in enumerate(ORDER)}
    bad = [f"{name}.py:{line} imports {target}" for name, tree in modules().items()
           for target, line in package_imports(tree) if target in rank and rank[target] >= rank[name]]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_imports_inside_functions_but_optional_extras():
    bad = []
    for name, tree in modules().items():
        allowed = LAZY_IMPORTS_ALLOWED.get(name, set())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    targets = [node.module or ""]
                else:
                    continue
                for target in targets:
                    if allowed is not None and not any(target == a or target.startswith(a + ".") for a in allowed):
                        bad.append(f"{name}.py:{node.lineno} imports {target} inside {func.name}()")
    assert not bad, "\n".join(bad)


def test_the_network_kind_is_read_only_by_config_and_the_policy_factory():
    readers = sorted({name for name, tree in modules().items() for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and node.attr == "network"})
    assert readers == ["config", "policies"], readers
