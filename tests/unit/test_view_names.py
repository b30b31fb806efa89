"""A view's name is spelled once, in freeze_tui/app/modes.py (LOSS, DW, ...; tab_id, widget_id): the app,
its keys, its widgets' ids and the load bench use those, so renaming a view is one line."""

from __future__ import annotations

import ast
from pathlib import Path

from freeze_tui.app import modes

ROOT = Path(__file__).resolve().parents[2]
NAMES = {view.name for view in modes.VIEWS}
FILES = [*sorted((ROOT / "freeze_tui" / "app").rglob("*.py")), ROOT / "bench" / "app_load.py"]


def _calls(node: ast.AST, method: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method


def _used_as_view_name(node: ast.AST) -> list[ast.AST]:
    """What `node` uses as a view's name: the keys of a dict literal keyed by view names only (not one
    keyed by the chart's axes, "time" among them), the index of `views`, what is compared with `active_view()`."""
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) and k.value in NAMES for k in node.keys):
        return [key for key in node.keys if key is not None]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "views":
        return [node.slice]
    if isinstance(node, ast.Compare) and any(_calls(n, "active_view") for n in [node.left, *node.comparators]):
        return [node.left, *node.comparators]
    return []


def view_names_spelled(source: str) -> list[str]:
    """View names written as string literals where a view is meant, and widget/tab ids built by hand."""
    spelled = []
    for node in ast.walk(ast.parse(source)):
        used = _used_as_view_name(node)
        spelled += [f"{n.lineno}: {n.value!r}" for n in used if isinstance(n, ast.Constant) and n.value in NAMES]
        if isinstance(node, ast.Constant) and str(node.value).lstrip("#").startswith(("tab-", "view-")):
            spelled.append(f"{node.lineno}: {node.value!r}")
    return sorted(spelled)


def test_no_view_name_is_spelled_outside_modes():
    spelled = [
        f"{path.relative_to(ROOT)}:{where}"
        for path in FILES
        if path.name != "modes.py"
        for where in view_names_spelled(path.read_text(encoding="utf-8"))
    ]
    assert spelled == []


def test_the_check_finds_view_names_spelled_by_hand():
    code = (
        'VIEW_WIDGETS = {"dw": DWView}\n'
        'self.views["samples"].move(1)\n'
        'ok = self.active_view() == "plan"\n'
        'self.tabs.active = f"tab-{key}"\n'
    )
    assert view_names_spelled(code) == ["1: 'dw'", "2: 'samples'", "3: 'plan'", "4: 'tab-'"]


def test_tab_ids_name_their_view():
    assert [modes.view_of_tab(modes.tab_id(view.name)) for view in modes.VIEWS] == [v.name for v in modes.VIEWS]
