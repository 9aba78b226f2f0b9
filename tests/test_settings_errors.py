"""Every bad run setting is refused in one line whose prefix names the setting at fault, not another one."""

from __future__ import annotations

import pytest

from xpmlp.cli import main

# (flags, the words that must name the setting, a word that must not be the prefix)
BAD = [
    (["--lr", "nan"], "lr (the learning rate)"),
    (["--lr", "-1"], "lr (the learning rate)"),
    (["--reg", "-1"], "reg must be"),
    (["--seed", "-1"], "seed must be"),
    (["--dropout", "1.5"], "dropout probability"),
    (["--init", "bogus"], "unknown init"),
    (["--dataset", "nope"], "unknown dataset"),
    (["--activation", "nope"], "unknown activation"),
    (["--lr-schedule", "bogus"], "lr_schedule: bad learning-rate schedule"),
    (["--augment", "bogus"], "augment 'bogus'"),
    (["--preprocess", "bogus"], "unknown preprocess method"),
    (["--optimizer", "bogus"], "unknown optimizer"),
    (["--optimizer", "adamw", "--weight-decay", "-1"], "weight_decay must be"),
    (["--optimizer", "momentum", "--momentum", "2"], "momentum must be"),
    (["--train-eval-size", "-1"], "train_eval_size must be"),
]


@pytest.mark.parametrize("flags,names", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_a_bad_setting_is_named_by_its_own_prefix(flags, names, tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: settings: "), err
    assert err[0].removeprefix("error: settings: ").startswith(names), err[0]
    assert not (tmp_path / "run").exists()
