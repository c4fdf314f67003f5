"""Presentation stays in the shell: no domain package imports the command-line libraries."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mecharena"
PRESENTATION = {"cli"}  # the command line (typer, rich); every other package is domain or a server
UI_LIBRARIES = {"typer", "rich", "click"}


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in names}


def test_no_domain_module_imports_typer_rich_or_click():
    offenders = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                       if path.relative_to(PACKAGE).parts[0] not in PRESENTATION and imported(path) & UI_LIBRARIES)
    assert offenders == []


def test_the_check_sees_the_command_line_itself():
    assert set().union(*(imported(path) for path in (PACKAGE / "cli").glob("*.py"))) >= {"typer", "rich"}


def test_every_top_level_command_lives_in_its_group_module():
    """cli/__init__.py wires the groups together and defines no command of its own."""
    tree = ast.parse((PACKAGE / "cli" / "__init__.py").read_text())
    decorated = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                 and any("command" in ast.unparse(d) for d in node.decorator_list)]
    assert decorated == []
