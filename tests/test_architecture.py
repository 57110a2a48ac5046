"""The package's structure: packages in layers named for the data's path, modules that import only from below (so no
import cycle), imports at the top of modules, one reader of the network kind, small modules and a short top level.
Read from the source with `ast` (nothing is imported), so a violation names the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "purejaxppo"

# Bottom to top, one row per layer: a module may import only modules listed before it (so the graph has no cycle by
# construction). Names are dotted paths under purejaxppo/ ("envs.suites.brax"); a package's own name is its
# __init__.py.
LAYERS = {
    "base": ("version", "compiler", "extras"),
    "core": ("core", "core.streams", "core.gae", "core.per_env", "core.losses", "core.optim", "core.normalize"),
    "envs": ("envs.spec", "envs.wrappers", "envs.suites", "envs.suites.base", "envs.suites.brax",
             "envs.suites.craftax", "envs.suites.jumanji", "envs.suites.navix", "envs.suites.playground",
             "envs.pools.base", "envs.pools.envpool", "envs.pools.gymnasium", "envs.pools",
             "envs.registry", "envs.make", "envs"),
    "config": ("config", "configs"),
    "models": ("models", "models.networks", "models.policies"),
    "training": ("training", "training.rollout", "training.batch", "training.metrics", "training.evaluation",
                 "training.train", "training.trainer"),
    "scale": ("scale", "scale.sweeps", "scale.population", "scale.parallel", "scale.processes"),
    "runs": ("runs", "runs.logs", "runs.checkpoint", "runs.policy", "runs.export", "runs.runlock",
             "runs.progress", "runs.plotting", "runs.compare", "runs.compile_cache"),
    "cli": ("configfields", "cli.args", "cli.plans", "cli.runloop", "cli.train", "cli.pbt", "cli.sweep", "cli.commands",
            "cli"),
    "api": ("__init__", "__main__"),
}
ORDER = tuple(name for layer in LAYERS.values() for name in layer)
# Imports allowed inside functions: optional extras, and the command line's deliberate lazy imports (so that --help
# and a bad flag answer without importing jax).
LAZY_IMPORTS_ALLOWED = {
    "envs.suites.brax": {"brax"},
    "envs.suites.jumanji": {"jumanji"},
    "envs.suites.navix": {"navix"},
    "envs.suites.playground": {"mujoco_playground"},
    "runs.export": {"jax2onnx", "onnxruntime"},
    "runs.logs": {"tensorboardX", "wandb"},
    "runs.plotting": {"gymnasium", "pygame", "gymnax.visualize"},
    "runs.compile_cache": {"jax"},  # read before jax is imported: XLA's log level is set from the environment
    **{name: None for name in ORDER if name == "cli" or name.startswith("cli.")},  # any
}
MAX_TOP_LEVEL_MODULES = 12
MAX_MODULE_LINES = 600


def module_paths() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
        found[name] = path
    return found


def modules() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text(), str(path)) for name, path in module_paths().items()}


def _resolve(dotted: str, known: set[str]) -> str:
    """The longest known module prefix of ``a.b.c`` (a name imported from a module resolves to that module)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in known:
            return ".".join(parts[:i])
    return dotted


def package_imports(tree: ast.AST, known: set[str]) -> list[tuple[str, int]]:
    """``(module, line)`` for every import of a purejaxppo module in `tree` (dotted below purejaxppo)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "purejaxppo":
            base = node.module.partition(".")[2]
            for alias in node.names:
                target = f"{base}.{alias.name}" if base else alias.name
                out.append((_resolve(target, known) if target in known or base else target, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(_resolve(a.name.partition(".")[2], known), node.lineno) for a in node.names
                    if a.name.startswith("purejaxppo.")]
    return out


def test_every_module_is_placed_in_a_layer():
    assert set(modules()) == set(ORDER)


def test_modules_import_only_from_below():
    rank = {name: i for i, name in enumerate(ORDER)}
    bad = [f"{name}.py:{line} imports {target}" for name, tree in modules().items()
           for target, line in package_imports(tree, set(rank)) if target in rank and rank[target] >= rank[name]]
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
    assert readers == ["config", "models.policies"], readers


def test_the_top_level_is_short_and_the_layers_are_packages():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert {"core", "envs", "models", "training", "scale", "runs", "cli"} <= set(packages), packages


def test_every_package_says_what_lives_there_and_what_it_may_import():
    bad = []
    for name, path in module_paths().items():
        if path.name != "__init__.py" or name == "__init__" or name == "configs":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if "May import" not in doc:
            bad.append(f"{path.relative_to(PACKAGE)}: no 'May import' in its docstring")
    assert not bad, "\n".join(bad)


def test_no_module_is_longer_than_600_lines():
    long = {name: n for name, path in module_paths().items()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_package_init_exports_a_name_equal_to_a_sibling_module():
    """``from purejaxppo.envs import make`` must mean one thing: a re-exported name never shadows a submodule."""
    paths = module_paths()
    bad = []
    for name, path in paths.items():
        if path.name != "__init__.py" or name == "__init__":
            continue
        siblings = ({p.stem for p in path.parent.glob("*.py")}
                    | {p.parent.name for p in path.parent.glob("*/__init__.py")})
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                bad += [f"{name}: {a.asname or a.name}" for a in node.names
                        if (a.asname or a.name) in siblings and f"{node.module}" != f"purejaxppo.{name}"]
    assert not bad, bad
