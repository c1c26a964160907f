"""No pickle anywhere: nothing in the repository's Python can unpickle, and Celery speaks JSON only.

Unpickling runs code chosen by whoever wrote the bytes, so a model file, a broker message or a cache
entry must never reach a pickle loader. The scan reads every Python file of the repository (not
.venv, node_modules or var) as a syntax tree and resolves imports, so `from pickle import loads as
l; l(x)` is caught as surely as `pickle.loads(x)`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.celery import app
from tests.conftest import REPO_ROOT

SKIPPED_FOLDERS = {".venv", "node_modules", "var", ".git", "__pycache__"}

# Calls that unpickle (or run marshal/shelve, which are as unsafe) whatever their arguments.
UNPICKLING_CALLS = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "_pickle.load",
    "_pickle.loads",
    "_pickle.Unpickler",
    "cPickle.load",
    "cPickle.loads",
    "dill.load",
    "dill.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "joblib.load",
    "shelve.open",
    "shelve.Shelf",
    "shelve.DbfilenameShelf",
    "marshal.load",
    "marshal.loads",
    "pandas.read_pickle",
    "numpy.lib.format.read_array",
    "torch.serialization.load",
}
# Modules that exist to unpickle: importing them at all is refused.
UNPICKLING_MODULES = {"dill", "cloudpickle", "joblib", "shelve", "cPickle", "_pickle"}


def python_files() -> Iterator[Path]:
    for path in sorted(REPO_ROOT.rglob("*.py")):
        if not SKIPPED_FOLDERS.intersection(path.relative_to(REPO_ROOT).parts):
            yield path


class _Scanner(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # local name -> dotted origin ("np" -> "numpy")
        self.findings: list[tuple[int, str]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._imported(node, alias.name)
            local = alias.asname or alias.name.split(".")[0]
            self.aliases[local] = alias.name if alias.asname else alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        self._imported(node, module)
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            self._imported(node, f"{module}.{alias.name}")

    def _imported(self, node: ast.stmt, name: str) -> None:
        if name.split(".")[0] in UNPICKLING_MODULES:
            self.findings.append((node.lineno, f"imports {name}"))

    def _dotted(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def visit_Call(self, node: ast.Call) -> None:
        name = self._dotted(node.func)
        keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        if name in UNPICKLING_CALLS:
            self.findings.append((node.lineno, f"calls {name}"))
        elif name == "torch.load" and not _is_true(keywords.get("weights_only")):
            self.findings.append((node.lineno, "calls torch.load without weights_only=True"))
        elif name in {"numpy.load", "numpy.lib.npyio.load"} and not _is_false_or_absent(
            keywords.get("allow_pickle")
        ):
            self.findings.append((node.lineno, "calls numpy.load with allow_pickle"))
        elif name is not None and name.endswith(".read_pickle"):
            self.findings.append((node.lineno, f"calls {name}"))
        for keyword in ("accept_content", "result_accept_content", "serializer", "task_serializer"):
            if keyword in keywords and not _is_json_only(keywords[keyword]):
                self.findings.append((node.lineno, f"passes {keyword} other than JSON"))
        self.generic_visit(node)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _is_false_or_absent(node: ast.expr | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is False)


def _is_json_only(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value == "json"
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return all(isinstance(e, ast.Constant) and e.value in {"json", "application/json"} for e in node.elts)
    return False


def scan(source: str) -> list[tuple[int, str]]:
    scanner = _Scanner()
    scanner.visit(ast.parse(source))
    return scanner.findings


def test_nothing_in_the_repository_can_unpickle() -> None:
    files = list(python_files())
    assert len(files) > 200  # the whole repository was read, tests and benchmarks included
    findings = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {what}"
        for path in files
        for line, what in scan(path.read_text(encoding="utf-8"))
    ]
    assert findings == []


@pytest.mark.parametrize(
    "source",
    [
        "import pickle\npickle.loads(b'')",
        "from pickle import loads as l\nl(b'')",
        "import pickle as p\np.Unpickler(f).load()",
        "import torch\ntorch.load('m.pth')",
        "import torch\ntorch.load('m.pth', weights_only=False)",
        "from torch import load\nload('m.pth', map_location='cpu')",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
        "import joblib",
        "import shelve\nshelve.open('state')",
        "import pandas as pd\npd.read_pickle('x.pkl')",
        "import marshal\nmarshal.loads(b'')",
        "app.conf.update(accept_content=['json', 'pickle'])",
        "task = app.task(serializer='pickle')(f)",
    ],
)
def test_the_scan_catches_each_way_of_unpickling(source: str) -> None:
    assert scan(source) != []


@pytest.mark.parametrize(
    "source",
    [
        # the exception class only (inference/ml/pretrained.py catches it from torch.load)
        "import pickle\ntry:\n    x = 1\nexcept pickle.UnpicklingError:\n    pass",
        "import pickle\ndata = pickle.dumps({'w': 1})",  # writing a test fixture is not unpickling
        "import torch\ntorch.load('m.pth', map_location='cpu', weights_only=True)",
        "import numpy as np\nnp.load('a.npy')",
        "app.conf.update(accept_content=['json'], task_serializer='json')",
    ],
)
def test_the_scan_lets_safe_uses_through(source: str) -> None:
    assert scan(source) == []


def test_celery_sends_and_accepts_json_only() -> None:
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert conf.event_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.result_accept_content in (None, ["json"])  # None: falls back to accept_content
    assert conf.beat_scheduler == "celery.beat:Scheduler"  # the default one keeps a shelve (pickle) file
    app.loader.import_default_modules()  # what a worker does at start: every app's tasks module
    clear_tasks = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert "records.import_job" in clear_tasks  # the project's tasks were discovered
    assert {name: task.serializer for name, task in clear_tasks.items()} == dict.fromkeys(clear_tasks, "json")
