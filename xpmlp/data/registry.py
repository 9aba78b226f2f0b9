"""What each data set is: its name and spellings, download URL, files and their SHA-256, classes, image shape."""

from __future__ import annotations

from ..errors import InputError

KNOWN_DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10")

# Spellings people type for the same data sets (torchvision, keras, tfds); mapped before lookup.
ALIASES: dict[str, str] = {
    "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar-10": "cifar10", "cifar_10": "cifar10",
}

# Where each data set is downloaded from; $XPMLP_DATA_URL or the base_url argument override it
# (tests point it at a server on 127.0.0.1). The MNIST entry is the widely used S3 mirror, since
# yann.lecun.com now refuses most automated downloads.
BASE_URLS: dict[str, str] = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
}

# File names and hashes of the official downloads, in pooch's "alg:hex" notation.
# - mnist: SHA-256 values published by many projects (torchvision, tfds) for the original files.
# - fashion-mnist: SHA-256 computed here from the official files. Debian's package ships the same
#   deflate streams re-wrapped without the file name in the gzip header, so its files hash
#   differently; we rebuilt the official headers, checked the result against the md5 sums in the
#   upstream README (8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...), then took the SHA-256.
# - cifar10: SHA-256 published widely for cifar-10-python.tar.gz (its md5 is
#   c58f30108f718f92721af3b95e74349a).
REGISTRY: dict[str, dict[str, str | None]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "sha256:6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
}

# Validation sizes of the classic experiments: 55,000/5,000 for the MNISTs, 49,000/1,000 for CIFAR-10.
DEFAULT_VAL_SIZE: dict[str, int] = {"mnist": 5000, "fashion-mnist": 5000, "cifar10": 1000}

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}

# (H, W, C) of one image.
IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (28, 28, 1), "fashion-mnist": (28, 28, 1), "cifar10": (32, 32, 3),
}

# The usual folder names a parent directory may hold for each data set (ours, torchvision's, keras').
FOLDERS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist", "MNIST/raw", "MNIST"),
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"),
    "cifar10": ("cifar-10-batches-py", "cifar10", "cifar-10"),
}

# The files on disk: the four IDX files of the MNISTs (base names, without .gz), CIFAR-10's batches and archive.
IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_TRAIN: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_META = "batches.meta"


def canonical_name(name: str) -> str:
    """Map a user-typed data set name onto one of KNOWN_DATASETS, or raise InputError."""
    if not isinstance(name, str):
        raise InputError(f"dataset name must be a string, got {type(name).__name__}; "
                         f"known datasets: {', '.join(KNOWN_DATASETS)}")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in KNOWN_DATASETS:
        raise InputError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}")
    return key
