"""Data augmentation (xpmlp/augment.py): the transforms, their draws on the device, exact resume, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from xpmlp.augment import Augmenter, AugmentSpec, check_augment, index_maps, parse_augment
from xpmlp.errors import InputError
from xpmlp.model import MLP
from xpmlp.runs import make_config, restore_trainer, trainer_state
from xpmlp.studies.checks import check_values
from xpmlp.train import TrainConfig, Trainer


def _apply(maps: np.ndarray, image: np.ndarray, k: int) -> np.ndarray:
    """Transform k of ``maps`` applied to one (H, W, C) image, on the host."""
    return np.append(image.reshape(-1), 0.0)[maps[k]].reshape(image.shape)


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The image moved dy rows down and dx columns right, zero fill (written independently of index_maps)."""
    h, w, _ = image.shape
    out = np.zeros_like(image)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0),
                                                                       max(-dx, 0):w - max(dx, 0)]
    return out


@pytest.mark.parametrize("text, want", [
    ("none", AugmentSpec()), ("flip", AugmentSpec(True, 0)), ("shift:2", AugmentSpec(False, 2)),
    ("flip,shift:3", AugmentSpec(True, 3)), ("shift:1, flip", AugmentSpec(True, 1)), ("FLIP", AugmentSpec(True, 0)),
])
def test_parse_augment_reads_every_form(text, want):
    assert parse_augment(text) == want


@pytest.mark.parametrize("text, words", [
    ("", "not understood"), ("rotate", "rotate"), ("flip,flip", "flip"), ("shift:0", "1 to 8"),
    ("shift:9", "1 to 8"), ("shift:x", "shift"), ("shift:-1", "1 to 8"), ("flip;shift:2", "not understood"),
    ("none,flip", "none"),
])
def test_parse_augment_refuses_what_it_cannot_read_in_one_line(text, words):
    with pytest.raises(InputError) as exc:
        parse_augment(text)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_flips_are_refused_for_digits_and_allowed_for_clothes_and_photos():
    with pytest.raises(InputError, match="mnist"):
        check_augment("flip,shift:2", "mnist")
    assert check_augment("shift:2", "mnist") == AugmentSpec(False, 2)
    assert check_augment("flip", "fashion-mnist").flip and check_augment("flip", "cifar10").flip


def test_index_maps_are_every_mirror_and_shift_of_an_image():
    image = np.random.default_rng(0).random((5, 6, 3)) + 1.0  # +1: no pixel is 0 like the fill
    maps = index_maps((5, 6, 3), AugmentSpec(True, 2))
    assert maps.shape == (2 * 25, 90)
    want = [_shifted(base, dy, dx) for base in (image, image[:, ::-1]) for dy in range(-2, 3) for dx in range(-2, 3)]
    for k, expected in enumerate(want):
        np.testing.assert_array_equal(_apply(maps, image, k), expected)
    assert np.array_equal(_apply(maps, image, 12), image)  # (no flip, 0, 0) is the identity


def test_augmenter_gives_each_row_one_transform_of_itself(backend_any):
    rng = np.random.default_rng(1)
    images = rng.random((400, 4, 4, 2)) + 1.0
    spec, shape = AugmentSpec(True, 1), (4, 4, 2)
    augmenter = Augmenter(spec, shape, backend_any, seed=3)
    out = backend_any.to_numpy(augmenter(backend_any.asarray(images.reshape(400, -1)), step=7))
    maps = index_maps(shape, spec)
    tol = 0 if backend_any.dtype == "float64" else 1e-6
    chosen = []
    for row, image in zip(out, images):
        hits = [k for k in range(len(maps)) if np.allclose(row, _apply(maps, image, k).reshape(-1), rtol=0, atol=tol)]
        assert hits, "a row is not a transform of its image"
        chosen.append(hits[0])
    # 400 draws over 18 transforms: every transform turns up, none takes over
    counts = np.bincount(chosen, minlength=len(maps))
    assert counts.min() > 0 and counts.max() < 60


def test_augmenter_draws_are_a_function_of_seed_and_step(backend):
    X = backend.asarray(np.random.default_rng(2).random((64, 16)))
    augment = Augmenter(AugmentSpec(True, 1), (4, 4, 1), backend, seed=0)
    first, again = backend.to_numpy(augment(X, 5)), backend.to_numpy(augment(X, 5))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, backend.to_numpy(augment(X, 6)))
    other_seed = Augmenter(AugmentSpec(True, 1), (4, 4, 1), backend, seed=1)
    assert not np.array_equal(first, backend.to_numpy(other_seed(X, 5)))


def test_numpy_and_strict_draw_the_same_transforms():
    from xpmlp.backend import get_backend

    X = np.random.default_rng(3).random((50, 36))
    outs = [get_backend(spec, "float64") for spec in ("cpu", "strict")]
    a, b = (be.to_numpy(Augmenter(AugmentSpec(True, 2), (6, 6, 1), be, 9)(be.asarray(X), 11)) for be in outs)
    np.testing.assert_array_equal(a, b)


def _run(spec, epochs, state=None, augment="flip,shift:1"):
    rng = np.random.default_rng(0)
    X, y = rng.random((120, 16)), rng.integers(0, 3, 120)
    model = MLP([16, 12, 3], backend=spec, dtype="float64", seed=4)
    trainer = Trainer(model, TrainConfig(epochs=epochs, batch_size=20, lr=0.1, optimizer="momentum",
                                         train_eval_size=0, augment=augment),
                      log=None, progress="none", image_shape=(4, 4, 1))
    if state is not None:
        restore_trainer(trainer, state)
    trainer.fit(X, y)
    return trainer


def test_a_resumed_run_with_augmentation_equals_an_uninterrupted_one(backend):
    whole = _run(backend.spec, 3)
    first = _run(backend.spec, 1)
    state = trainer_state(first)
    resumed = _run(backend.spec, 3, state)
    plain = _run(backend.spec, 3, augment="none")
    for name, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value)
    assert any(not np.array_equal(plain.model.state_dict()[k], v) for k, v in whole.model.state_dict().items())


def test_the_trainer_needs_the_image_shape_to_augment():
    model = MLP([16, 4, 3], backend="cpu", dtype="float64")
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=10, augment="flip"), log=None, progress="none")
    with pytest.raises(InputError, match="image_shape"):
        trainer.fit(np.zeros((20, 16)), np.zeros(20, dtype=int))
    with pytest.raises(InputError, match="augment"):
        TrainConfig(epochs=1, augment="rotate").validate()


def test_a_sweep_refuses_flips_on_mnist_before_any_run():
    cfg = make_config(dataset="mnist", augment="flip", epochs=1, device="cpu")
    with pytest.raises(InputError) as exc:
        check_values(cfg, "configuration 1 of 1")
    assert "configuration 1 of 1" in str(exc.value) and "mnist" in str(exc.value)
    check_values(make_config(dataset="mnist", augment="shift:2", epochs=1, device="cpu"), "configuration 1 of 1")


def test_a_bad_augment_is_named_as_augment_not_as_another_setting():
    with pytest.raises(InputError) as exc:
        check_values(make_config(dataset="fashion-mnist", augment="rotate", epochs=1, device="cpu"), "settings")
    assert str(exc.value).startswith("settings: augment 'rotate'") and "epochs" not in str(exc.value)


def test_a_checkpoint_from_before_augment_existed_resumes_with_its_default():
    from xpmlp.runs import resume_settings

    saved = make_config(dataset="fashion-mnist", epochs=2)
    del saved["augment"], saved["dropout"]  # a config.json written before these settings existed
    cfg = resume_settings({"augment": "none", "dropout": 0.0, "epochs": 3}, saved, lambda line: None)
    assert (cfg["augment"], cfg["dropout"], cfg["epochs"]) == ("none", 0.0, 3)
    with pytest.raises(InputError, match="augment"):
        resume_settings({"augment": "flip"}, saved, lambda line: None)  # the run had none: not changeable


class _NoClip:
    """A namespace that refuses ``clip``: array-api-compat's clip assigns through boolean masks, one
    host round trip each on CuPy, so the augmentation step must choose its transform without it."""

    def __init__(self, xp) -> None:
        self._xp = xp

    def __getattr__(self, name: str):
        if name == "clip":
            raise AssertionError("xp.clip in the training step (host round trips on CuPy)")
        return getattr(self._xp, name)


def test_the_augmenter_chooses_on_the_device_without_clip(monkeypatch):
    from xpmlp.backend import get_backend

    backend = get_backend("cpu", "float64")
    aug = Augmenter(AugmentSpec(flip=True, shift=1), (4, 5, 1), backend, seed=3)
    X = backend.asarray(np.arange(8 * 20, dtype=float).reshape(8, 20))
    want = aug(X, step=5)
    monkeypatch.setattr(backend, "xp", _NoClip(backend.xp))
    np.testing.assert_array_equal(aug(X, step=5), want)  # the same transforms, chosen without clip


def test_a_draw_of_one_minus_an_ulp_still_chooses_the_last_map(monkeypatch):
    from xpmlp.backend import get_backend

    backend = get_backend("cpu", "float32")
    aug = Augmenter(AugmentSpec(flip=True, shift=1), (4, 5, 1), backend, seed=3)
    top = np.nextafter(np.float32(1.0), np.float32(0.0))
    monkeypatch.setattr(backend, "uniform", lambda shape, key, dtype=None: np.full(shape, top, np.float32))
    X = backend.asarray(np.arange(2 * 20, dtype=float).reshape(2, 20))
    maps = index_maps((4, 5, 1), AugmentSpec(flip=True, shift=1))
    np.testing.assert_array_equal(aug(X, step=0)[0], _apply(maps, np.arange(20.0), len(maps) - 1))
