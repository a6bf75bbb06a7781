"""Modules cut by job (issue 13 item 5): each piece lives in one module, the old import paths keep working."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import balpm

PACKAGE = Path(balpm.__file__).resolve().parent

#: module -> the names it owns; each must be importable from there and be the very same object at the old path.
OWNERS = {
    "balpm.data.pool": ["PreferencePool", "LoadReport", "PoolFormatError", "join_prompt_completion", "CORE_COLUMNS"],
    "balpm.data.records": ["pair_id", "split_hh_transcript", "MISSING_LABEL_TEXTS", "HH_SEPARATOR", "QA_PAIRS"],
    "balpm.data.sources": ["load_pool", "data_dir", "sample_dir", "full_data_present", "BUILTIN_DATASETS",
                           "HH_SPLITS", "SAMPLE_OF", "SAMPLE_PREFIX"],
    "balpm.data.summary": ["summarize", "format_summary"],
    "balpm.report": ["load_run", "find_runs", "load_runs", "compare_runs", "labels_saved", "labels_saved_table",
                     "write_report", "ratio_by_round", "METRICS", "METRIC_COLUMNS", "ACQUIRED_COLUMNS"],
    "balpm.metrics": ["expected_calibration_error", "preference_metrics"],
    "balpm.learner_state": ["LearnerStateError", "saved_selection"],
    "balpm.store_integrity": ["LabelStoreError", "StoreDamagedError", "backups_of", "SCHEMA_VERSION"],
}
#: where the names were importable before the cut (kept for compatibility)
OLD_HOME = {"balpm.data.pool": "balpm.data", "balpm.data.records": "balpm.data", "balpm.data.sources": "balpm.data",
            "balpm.data.summary": "balpm.data", "balpm.report": "balpm.experiment", "balpm.metrics": "balpm.learner",
            "balpm.learner_state": "balpm.learner", "balpm.store_integrity": "balpm.store"}


@pytest.mark.parametrize("module", sorted(OWNERS))
def test_each_name_has_one_home_and_the_old_import_path_still_works(module: str) -> None:
    new = importlib.import_module(module)
    old = importlib.import_module(OLD_HOME[module])
    for name in OWNERS[module]:
        assert getattr(new, name) is getattr(old, name), f"{OLD_HOME[module]}.{name} is not {module}.{name}"


def test_every_public_name_of_balpm_data_is_still_there() -> None:
    import balpm.data

    for name in balpm.data.__all__:
        assert hasattr(balpm.data, name), name


#: every module of the package (issue 13 item 6: the largest under 600 lines, no function over 80)
ALL_MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", ALL_MODULES)
def test_modules_cut_by_job_stay_under_600_lines(path: str) -> None:
    lines = (PACKAGE / path).read_text(encoding="utf-8").count("\n")
    assert lines < 600, f"balpm/{path} has {lines} lines"


#: parameters that carry a collaborator (an engine object), by name
COLLABORATORS = {"pool", "test_pool", "embeddings", "test_embeddings", "learner", "knn_graph", "graph", "store",
                 "ensemble", "policy"}
ENGINE_MODULES = ["balpm.learner", "balpm.session", "balpm.experiment", "balpm.embed", "balpm.projection",
                  "balpm.distributed"]


def _type_checking_names(module: object) -> dict[str, object]:
    """What the module's ``if TYPE_CHECKING:`` block would import, so its annotations can be resolved."""
    import ast

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    ns: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            exec(compile(ast.Module(body=node.body, type_ignores=[]), module.__file__, "exec"), ns)  # noqa: S102
    return ns


@pytest.mark.parametrize("name", ENGINE_MODULES)
def test_collaborators_are_annotated_with_real_types_that_resolve(name: str) -> None:
    import inspect
    import typing

    module = importlib.import_module(name)
    globalns = {**vars(module), **_type_checking_names(module)}
    checked = 0
    for _, obj in inspect.getmembers(module):
        if getattr(obj, "__module__", None) != name:
            continue
        if inspect.isfunction(obj):
            functions = [obj]
        elif inspect.isclass(obj):
            functions = [f for f in vars(obj).values() if inspect.isfunction(getattr(f, "__func__", f))]
        else:
            continue
        for f in functions:
            f = getattr(f, "__func__", f)
            params = COLLABORATORS & set(inspect.signature(f).parameters)
            if not params:
                continue
            hints = typing.get_type_hints(f, globalns=globalns)  # NameError for a name nothing imports
            for param in params:
                assert hints.get(param, typing.Any) is not typing.Any, f"{name}.{f.__qualname__}({param}: Any)"
                checked += 1
    assert checked, f"{name}: no collaborator parameter found"


ARCHITECTURE = PACKAGE.parent / "docs" / "ARCHITECTURE.md"


def test_architecture_names_every_module() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    modules = [p.relative_to(PACKAGE.parent).with_suffix("") for p in PACKAGE.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") and "datasets" not in p.parts]
    missing = [".".join(m.parts) for m in modules if f"`{'.'.join(m.parts)}`" not in text]
    assert not missing, f"docs/ARCHITECTURE.md does not say what these modules are for: {missing}"


def test_every_balpm_name_in_architecture_still_imports() -> None:
    import re

    names = set(re.findall(r"`(balpm(?:\.\w+)+)`", ARCHITECTURE.read_text(encoding="utf-8")))
    names |= set(re.findall(r"help\((balpm(?:\.\w+)+)\)", ARCHITECTURE.read_text(encoding="utf-8")))
    assert names
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"docs/ARCHITECTURE.md names {name}, which does not exist"
            obj = getattr(obj, attr)


@pytest.mark.parametrize("path", ALL_MODULES)
def test_no_function_over_80_lines(path: str) -> None:
    import ast

    tree = ast.parse((PACKAGE / path).read_text(encoding="utf-8"))
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, f"balpm/{path}: {long}"
