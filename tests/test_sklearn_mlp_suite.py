"""scikit-learn's own MLP tests, run against xpmlp's estimators.

The module ``sklearn/neural_network/tests/test_mlp.py`` of the *installed* scikit-learn (nothing of
it is copied here) is read, its import of ``MLPClassifier, MLPRegressor`` is pointed at xpmlp's,
and its test functions are defined in this module, so pytest collects and runs them as ours.
:data:`EXPECTED_FAILURES` lists the cases that cannot pass, each with its reason; they are marked
``xfail(strict=True)``, so one that starts passing fails the run until it is taken off the list.
"""

from __future__ import annotations

import pathlib

import pytest

sklearn = pytest.importorskip("sklearn")

SOURCE = pathlib.Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"

#: test name (or name[parameter id]) -> why xpmlp's estimator fails it
EXPECTED_FAILURES: dict[str, str] = {}


def _load() -> None:
    text = SOURCE.read_text(encoding="utf-8")
    if IMPORT not in text:
        raise RuntimeError(f"{SOURCE} no longer imports the estimators as {IMPORT!r}; update this runner")
    code = compile(text.replace(IMPORT, "from xpmlp import MLPClassifier, MLPRegressor"), str(SOURCE), "exec")
    exec(code, globals())  # noqa: S102 - scikit-learn's installed test module, defining test_* here


_load()


@pytest.fixture
def global_random_seed() -> int:
    """scikit-learn's fixture (from its conftest), at its default seed."""
    return 42


def pytest_collection_modifyitems(items: list) -> None:  # pragma: no cover - pytest calls it from conftest
    raise AssertionError("never called from a test module")
