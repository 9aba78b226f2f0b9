"""Every code block of the documentation pages and the README is tested, so a renamed flag,
function or key breaks this test rather than the reader:

* ``python`` blocks run, in order, one namespace per page (sybil); ``% skip: next`` before a
  block skips it (said on the page, e.g. for a block that needs a GPU), and
  ``% skip: next if(missing("torch"), reason="needs PyTorch")`` skips it only where an optional
  package is not installed (the page's other blocks still run);
* ``sh`` blocks: each ``xpmlp …`` command parses with the command's own parser, each ``make``
  target exists in the Makefile, each ``scripts/…`` file exists, each ``pip install '.[extra]'``
  names an extra of pyproject.toml;
* ``yaml`` blocks are sweep specs and pass ``check_spec``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import unittest
from pathlib import Path

import numpy as np
import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

sybil = pytest.importorskip("sybil", reason="sybil is not installed (the docs extra: pip install -e '.[docs]')")
from sybil.parsers.myst import CodeBlockParser, PythonCodeBlockParser, SkipParser  # noqa: E402


def _commands(source: str) -> list[list[str]]:
    """The command lines of a shell block: continuations joined, comments and blank lines dropped."""
    lines, current = [], ""
    for raw in source.splitlines():
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        words = shlex.split(current, comments=True)
        current = ""
        if words:
            lines.append(words)
    return lines


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.M))


def _extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def check_command(words: list[str]) -> None:
    """One shell command of a page: raise AssertionError when it names what does not exist."""
    from xpmlp.cli import build_parser

    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
        words = words[1:]
    if not words:
        return
    head = words[0]
    if head == "xpmlp":
        parser = build_parser()
        try:
            parser.parse_args(words[1:])
        except SystemExit as exc:
            raise AssertionError(f"{shlex.join(words)}: the parser refuses it (exit {exc.code})") from None
        # argparse takes an unambiguous prefix of a flag: the page must spell each one out
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        known = {flag for action in commands[words[1]]._actions for flag in action.option_strings}
        spelled = {w.split("=", 1)[0] for w in words[2:] if w.startswith("--")}
        assert spelled <= known, f"{shlex.join(words)}: the parser refuses it ({sorted(spelled - known)} abbreviated)"
    elif head == "make":
        targets = [w for w in words[1:] if "=" not in w]
        unknown = set(targets) - _make_targets()
        assert not unknown, f"{shlex.join(words)}: no such make target {sorted(unknown)}"
    elif head in ("python", "python3", "bash", "sh"):
        script = words[1] if len(words) > 1 and not words[1].startswith("-") else ""
        if script.startswith("scripts/") or script.startswith("docs/"):
            assert (ROOT / script).exists(), f"{shlex.join(words)}: {script} does not exist"
    elif head == "pip" and "install" in words:
        for word in words:
            match = re.fullmatch(r"\.\[([\w,-]+)\]", word)
            if match:
                unknown = set(match.group(1).split(",")) - _extras()
                assert not unknown, f"{shlex.join(words)}: no such extra {sorted(unknown)}"


def evaluate_shell(example) -> None:
    for words in _commands(example.parsed):
        check_command(words)


def evaluate_yaml(example) -> None:
    import yaml

    from xpmlp.studies import check_spec

    check_spec(yaml.safe_load(example.parsed), "the spec on the page")


def missing(module: str) -> bool:
    """Whether ``module`` cannot be imported here: the condition of a page's per-block skip."""
    try:
        importlib.import_module(module)
    except ImportError:
        return True
    return False


def _page_namespace() -> dict:
    """What every page's examples may use without defining: a small synthetic problem, a model, ``missing``."""
    from xpmlp.model import MLP
    from xpmlp.train import train

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 20))
    y = rng.integers(0, 3, 900)
    X = (centres[y] + rng.normal(0, 1.0, (900, 20))).astype(np.float32)
    return {"X_train": X[:600], "y_train": y[:600], "X_val": X[600:], "y_val": y[600:], "train": train,
            "model": MLP([20, 32, 3], activation="relu", backend="cpu", seed=0), "missing": missing}


PARSERS = [PythonCodeBlockParser(), SkipParser(), CodeBlockParser("sh", evaluate_shell),
           CodeBlockParser("yaml", evaluate_yaml)]


def _fashion_mnist_here() -> bool:
    try:
        from xpmlp.data.locate import locate

        locate("fashion-mnist", None, False, None, None, None, False)
    except Exception:
        return False
    return True


@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_code_blocks_of_page(path, monkeypatch, tmp_path):
    text = path.read_text(encoding="utf-8")
    if re.search(r'prepare\("fashion-mnist"|load_dataset\("fashion-mnist"', text) and not _fashion_mnist_here():
        pytest.skip("the page's examples read Fashion-MNIST, which is not on this machine (make data)")
    monkeypatch.chdir(tmp_path)  # whatever an example writes lands here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ran = run_page(path)
    assert ran or path.name in ("index.md", "cli.md"), f"{path.name} has no code block"


def run_page(path: Path) -> list[int]:
    """Evaluate every code block of the page at ``path`` in order; the lines of the code blocks that ran."""
    document = sybil.Document.parse(str(path), *PARSERS)
    document.namespace.update(_page_namespace())
    ran = []
    for example in document:
        try:
            example.evaluate()
        except unittest.SkipTest:  # a conditional skip of this one block; the rest of the page runs
            continue
        except Exception as exc:
            raise AssertionError(f"{path.name}, {example.line}: {exc}") from exc
        if not isinstance(example.parsed, tuple):  # a skip directive parses to (action, condition)
            ran.append(example.line)
    return ran


def test_a_conditional_skip_skips_its_block_only(tmp_path):
    block = "```python\n{}\n```\n\n"
    page = tmp_path / "page.md"
    page.write_text(block.format("seen = []") + '% skip: next if(missing("no_such_module_here"), reason="absent")\n\n'
                    + block.format("raise RuntimeError('a skipped block ran')")
                    + '% skip: next if(missing("json"), reason="json is always here")\n\n'
                    + block.format("seen.append('ran')") + block.format("assert seen == ['ran']"))
    assert len(run_page(page)) == 3


def test_a_renamed_flag_is_caught():
    with pytest.raises(AssertionError, match="parser refuses"):
        check_command(["xpmlp", "train", "--learning-rate", "0.1"])
    with pytest.raises(AssertionError, match="abbreviated"):
        check_command(["xpmlp", "train", "--lr-schedul", "cosine"])
    with pytest.raises(AssertionError, match="no such make target"):
        check_command(["make", "trian"])
    with pytest.raises(AssertionError, match="no such extra"):
        check_command(["pip", "install", ".[cuda11]"])
    check_command(["xpmlp", "train", "--dataset", "fashion-mnist", "--epochs", "1"])
