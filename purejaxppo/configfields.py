"""`PPOConfig`'s fields as the command line needs them, without importing jax: names, types, defaults, help, choices.

Importing `purejaxppo.config` imports jax and gymnax (about 3 s), which ``purejaxppo --help`` and a mistyped flag
should not wait for. So this module reads them from the *source* of ``purejaxppo/config.py`` with `ast` (nothing is
executed): the fields and defaults of the `PPOConfig` class body, each field's help from the "Attributes:" section of
its docstring, and the choices of the fields checked with ``_check_choice(config, "<field>", <TUPLE>)``. `PPOConfig`
stays the one place the fields are written; tests/cli/test_cli.py checks that this reading equals the real class.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, NamedTuple

CONFIG_SOURCE = Path(__file__).resolve().with_name("config.py")
CLASS_NAME = "PPOConfig"


class FieldSpec(NamedTuple):
    """One `PPOConfig` field."""

    name: str
    annotation: str  # as written in the class body: "int", "tuple[int, ...]", "Any"
    default: Any
    doc: str  # its entry in the docstring's "Attributes:" section, "*leaf*, " removed
    choices: tuple[str, ...] | None  # the allowed strings, for fields checked with _check_choice


def _attribute_docs(docstring: str) -> dict[str, str]:
    """``{field: text}`` from a cleaned docstring's "Attributes...:" section (entries indented by 2, continued by 4)."""
    docs: dict[str, str] = {}
    current = None
    lines = docstring.split("Attributes", 1)[-1].splitlines()[1:]
    for line in lines:
        match = re.match(r"^  (\w+):\s*(.*)$", line)
        if match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif current and line.startswith("    ") and line.strip():
            docs[current] += " " + line.strip()
        elif line.strip():
            current = None
    return {k: v.replace("*leaf*, ", "").strip() for k, v in docs.items()}


def read_fields(source: str) -> tuple[FieldSpec, ...]:
    """The fields of the `PPOConfig` class in `source` (the text of config.py), in order."""
    tree = ast.parse(source)
    constants: dict[str, Any] = {}
    choices: dict[str, str] = {}
    cls = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
        elif isinstance(node, ast.ClassDef) and node.name == CLASS_NAME:
            cls = node
    if cls is None:
        raise RuntimeError(f"{CONFIG_SOURCE} defines no class {CLASS_NAME}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_check_choice"
                and len(node.args) == 3 and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[2], ast.Name)):
            choices[node.args[1].value] = node.args[2].id
    docs = _attribute_docs(ast.get_docstring(cls) or "")
    fields = []
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            if node.value is None:
                raise RuntimeError(f"{CLASS_NAME}.{name} has no default")
            fields.append(FieldSpec(name, ast.unparse(node.annotation), ast.literal_eval(node.value),
                                    docs.get(name, ""),
                                    tuple(constants[choices[name]]) if name in choices else None))
    return tuple(fields)


FIELDS: tuple[FieldSpec, ...] = read_fields(CONFIG_SOURCE.read_text())
