"""Every public class and function has a numpydoc docstring.

*Public* means the names of the API reference, as ``docs/_ext/xpmlp_apiref.py`` (``API``) lists
them. For each: a one-line summary; a ``Parameters`` section naming every parameter of the
function (of ``__init__`` for a class; a dataclass may list its fields under ``Attributes``);
a ``Returns`` (or ``Yields``) section unless the function is annotated ``-> None``. Each public
method of a public class has at least a summary.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

from xpmlp_apiref import public_objects  # noqa: E402

SECTION = re.compile(r"^([A-Z][A-Za-z ]+)\n(-{3,})$", re.M)


def sections(doc: str) -> dict[str, str]:
    """numpydoc sections of a docstring: ``{"Parameters": body, ...}`` (the summary under '')."""
    found: dict[str, str] = {}
    marks = list(SECTION.finditer(doc))
    found[""] = doc[: marks[0].start()] if marks else doc
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(doc)
        found[mark.group(1).strip()] = doc[mark.end():end]
    return found


def documented_names(body: str) -> set[str]:
    """The names a Parameters/Attributes section documents (``a, b : int`` documents both)."""
    names = set()
    for line in body.splitlines():
        if line and not line[0].isspace():
            for name in line.split(" : ")[0].split(","):
                names.add(name.strip().lstrip("*"))
    return names


def _parameters(func) -> list[str]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values() if p.name not in ("self", "cls")]


def _returns_something(func) -> bool:
    annotation = inspect.signature(func).return_annotation
    return annotation not in (None, "None", inspect.Signature.empty) or annotation is inspect.Signature.empty


def problems(obj) -> list[str]:
    """What ``obj``'s docstring lacks ([] when it is complete)."""
    doc = inspect.getdoc(obj) if obj.__doc__ else None
    if inspect.isclass(obj) and obj.__doc__ is None:
        doc = None
    if not doc or not doc.strip():
        return ["no docstring"]
    parts = sections(doc)
    found = []
    if not parts[""].strip():
        found.append("no summary line")
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return found
        init = obj.__init__ if "__init__" in vars(obj) or dataclasses.is_dataclass(obj) else None
        wanted = _parameters(init) if init is not None else []
        given = documented_names(parts.get("Parameters", "")) | documented_names(parts.get("Attributes", ""))
    else:
        wanted = _parameters(obj)
        given = documented_names(parts.get("Parameters", ""))
        if _returns_something(obj) and not ("Returns" in parts or "Yields" in parts):
            found.append("no Returns section")
    missing = [name for name in wanted if name not in given]
    if missing:
        found.append(f"parameters not documented: {', '.join(missing)}")
    return found


def _methods(cls) -> list[tuple[str, object]]:
    return [(name, member) for name, member in vars(cls).items() if not name.startswith("_")
            and (inspect.isfunction(member) or isinstance(member, (property, classmethod, staticmethod)))]


def _method_doc(cls, name: str) -> str:
    """A method's docstring, or that of the method it overrides (autodoc shows the inherited one)."""
    for klass in cls.__mro__:
        member = vars(klass).get(name)
        if member is not None:
            func = getattr(member, "__func__", member)
            doc = member.__doc__ if isinstance(member, property) else inspect.getdoc(func)
            if doc:
                return doc
    return ""


PUBLIC = public_objects()


@pytest.mark.parametrize("module,name,obj", PUBLIC, ids=[f"{m}.{n}" for m, n, _ in PUBLIC])
def test_public_name_has_a_numpydoc_docstring(module, name, obj):
    assert problems(obj) == [], f"{module}.{name}"
    if inspect.isclass(obj):
        undocumented = [m for m, _ in _methods(obj) if not _method_doc(obj, m)]
        assert undocumented == [], f"{module}.{name}: methods without a docstring"


def test_the_check_catches_a_missing_parameter():
    def f(a: int, b: int) -> int:
        """Add.

        Parameters
        ----------
        a : int
            One.

        Returns
        -------
        int
            The sum.
        """
        return a + b

    assert problems(f) == ["parameters not documented: b"]

    def g(a: int) -> int:
        """Nothing documented."""
        return a

    assert problems(g) == ["no Returns section", "parameters not documented: a"]
    assert problems(lambda: None) == ["no docstring"]


def test_public_names_exist():
    assert len(PUBLIC) > 50


def _modules_with_examples() -> list[str]:
    """The modules that define the public names (``xpmlp.data.load`` for ``xpmlp.data.load_dataset``)."""
    return sorted({obj.__module__ for _, _, obj in PUBLIC})


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples_run(module, monkeypatch, tmp_path):
    """The ``Examples`` sections of the public modules' docstrings run and print what they show."""
    import doctest
    import importlib
    import warnings

    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder(exclude_empty=True).find(mod, module):
        if test.filename and Path(test.filename).resolve().is_relative_to(ROOT / "xpmlp"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{module}: {result.failed} of {result.attempted} docstring examples failed"
