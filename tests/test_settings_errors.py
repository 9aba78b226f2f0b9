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
    (["--momentum", "0.5"], "momentum 0.5 has no effect with --optimizer sgd"),
    (["--optimizer", "adam", "--momentum", "0.95"], "momentum 0.95 has no effect with --optimizer adam"),
]


@pytest.mark.parametrize("flags,names", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_a_bad_setting_is_named_by_its_own_prefix(flags, names, tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: settings: "), err
    assert err[0].removeprefix("error: settings: ").startswith(names), err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov"])
def test_momentum_is_taken_by_the_optimizers_that_use_it(optimizer):
    from xpmlp.cli import _check_momentum_used

    _check_momentum_used({"momentum": 0.5}, {"optimizer": optimizer})  # no error
    _check_momentum_used({}, {"optimizer": "adam"})  # the default momentum, not given: no error


# -- a run that completes with finite losses but has gone wrong says so ----------------------------------

def _history(losses, evals):
    from xpmlp.train import History

    return History(iteration_loss=list(losses),
                   eval=[{"train_loss": loss, "val_acc": acc} for loss, acc in evals])


@pytest.mark.parametrize("losses,evals,words", [
    ([2.3, 5e3], [(2.3, 0.5), (1e3, 0.4)], "the loss grew from 2.3 to 5000, over 1000x"),
    ([2.3, 50.0], [(2.3, 0.10), (40.0, 0.11)], "accuracy 0.110 is at chance (1/10)"),
    ([2.3, 0.5], [(2.3, 0.5), (0.5, 0.85)], None),  # a run that learns
    ([2.3, 2.4], [(2.3, 0.10), (2.2, 0.10)], None),  # at chance but the loss falls: slow, not diverging
    ([2.3, 2.0e3], [(2.3, 0.3)], None),  # 870x the first loss: not yet over 1,000x
])
def test_divergence_is_told_from_slow_learning(losses, evals, words):
    from xpmlp.runs import divergence

    got = divergence(_history(losses, evals), 10)
    assert (got is None) if words is None else (got is not None and got.startswith(words)), got


def test_a_finite_but_diverged_run_warns_and_its_metrics_say_diverged(tmp_path, capsys):
    import json

    from test_studies import write_idx_dataset

    data = write_idx_dataset(tmp_path / "mnist")
    out = tmp_path / "run"
    # tanh keeps every activation bounded, so the loss explodes without becoming NaN
    assert main(["train", "--dataset", "mnist", "--data-dir", str(data), "--no-download", "--hidden", "16",
                 "--activation", "tanh", "--lr", "1e6", "--epochs", "3", "--val-size", "50", "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: the run diverged: the loss grew" in err and "lower --lr" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["diverged"] is True and metrics["stopped"].startswith("diverged: the loss grew")
    assert json.loads((out / "history.json").read_text())["stopped"] == metrics["stopped"]
