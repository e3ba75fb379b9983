"""MNIST, Fashion-MNIST and CIFAR-10: loading, checksum verification and download.

Formats (facts in ``DATASETS.md`` of the project):

* MNIST and Fashion-MNIST: four IDX files (``train-images-idx3-ubyte`` ...),
  gzipped (``.gz``) or not, in one directory.  IDX: two zero bytes, a type
  code (``0x08`` = uint8, ...), the number of dimensions, then each dimension
  as a big-endian uint32, then the data.
* CIFAR-10: the python pickle batches ``data_batch_1..5`` and ``test_batch``,
  either in the directory itself or in its ``cifar-10-batches-py/`` subfolder.

Verification: a file is accepted when its md5 equals the published md5 of the
file as distributed, or when the md5 of its uncompressed content equals that
of the uncompressed original (so a re-compressed copy, such as Debian's
``dataset-fashion-mnist`` package, is recognised).  A wrong size, truncated
gzip stream, bad IDX header or wrong checksum raises :class:`DatasetError`
naming the file.  CIFAR-10 pickles are verified *before* they are unpickled,
and unpickled with a restricted unpickler that admits only NumPy arrays.

Download (:func:`download`) fetches from public mirrors to ``NAME.part``,
resumes a partial ``.part`` with an HTTP ``Range`` request, checks the md5,
and only then renames the file into place (``os.replace``: atomic).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnsym.errors import BnsymInputError


class DatasetError(BnsymInputError):
    """A dataset file is missing, truncated, corrupt or fails its checksum."""


@dataclass(frozen=True)
class FileFacts:
    """Published facts about one file: md5 and size as distributed, md5 and size uncompressed."""

    name: str
    md5: str
    size: int | None = None
    raw_md5: str | None = None
    raw_size: int | None = None


@dataclass(frozen=True, eq=False)
class Dataset:
    """Arrays of one dataset: ``x`` float32 ``(n, features)`` scaled to [0, 1], ``y`` int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    def subset(self, train=None, test=None) -> "Dataset":
        """The first ``train`` training and ``test`` test samples (``None``: all)."""
        for name, value in (("train_size", train), ("test_size", test)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise BnsymInputError(f"{name} must be a positive integer or None (all samples), got {value!r}")
        return Dataset(self.name, self.x_train[:train], self.y_train[:train], self.x_test[:test],
                       self.y_test[:test], self.num_classes)


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

#: name -> {file: FileFacts}.  MNIST gz facts from DATASETS.md; the uncompressed md5s
#: and the Fashion-MNIST md5s are those published with torchvision and other loaders.
FACTS = {
    "mnist": {
        f.name: f
        for f in (
            FileFacts("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422,
                      "6bbc9ace898e44ae57da46a324031adb", 47040016),
            FileFacts("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881,
                      "a25bea736e30d166cdddb491f175f624", 60008),
            FileFacts("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877,
                      "2646ac647ad5339dbf082846283269ea", 7840016),
            FileFacts("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542,
                      "27ae3e4e09519cfbb04c329615203637", 10008),
        )
    },
    "fashion-mnist": {
        f.name: f
        for f in (
            FileFacts("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", None,
                      "f4a8712d7a061bf5bd6d2ca38dc4d50a", 47040016),
            FileFacts("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", None,
                      "9018921c3c673c538a1fc5bad174d6f9", 60008),
            FileFacts("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", None,
                      "8181f5470baa50b63fa0f6fddb340f0a", 7840016),
            FileFacts("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", None,
                      "15d484375f8d13e6eb1aabb0c3f46965", 10008),
        )
    },
    "cifar10": {
        f.name: f
        for f in (
            FileFacts("data_batch_1", "c99cafc152244af753f735de768cd75f", 31035704),
            FileFacts("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec", 31035320),
            FileFacts("data_batch_3", "54ebc095f3ab1f0389bbae665268c751", 31035999),
            FileFacts("data_batch_4", "634d18415352ddfa80567beed471001a", 31035696),
            FileFacts("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb", 31035623),
            FileFacts("test_batch", "40351d587109b95175f43aff81a1287e", 31035526),
        )
    },
}

CIFAR_ARCHIVE = FileFacts("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170498071)

#: Public mirrors, tried in order.
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}

#: Where ``apt-get install dataset-fashion-mnist`` puts the files.
SYSTEM_DIRECTORIES = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}

DATASETS = tuple(FACTS)

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def dataset_name(name) -> str:
    key = str(name).strip().lower().replace("_", "-")
    key = {"fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10"}.get(key, key)
    if key not in FACTS:
        raise BnsymInputError(f"dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    return key


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_file(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------- IDX
def parse_idx(data: bytes, *, source="IDX data") -> np.ndarray:
    """The array stored in the (uncompressed) IDX bytes ``data``."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise DatasetError(f"{source} is not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{source} is truncated: its IDX header needs {header} bytes, the file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DatasetError(
            f"{source} is {'truncated' if len(data) < expected else 'too long'}: its header promises shape "
            f"{shape} ({expected} bytes), the file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array, *, compress=None) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``compress`` or the name ends in ``.gz``)."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder(">").str: k for k, v in _IDX_TYPES.items()}
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    code = codes.get(big.str) or codes.get(np.dtype(big).str.replace("|", ">"))
    if code is None or not 1 <= array.ndim <= 255:
        raise BnsymInputError(f"array must have 1..255 dimensions and an IDX dtype, got {array.dtype} {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    data = header + array.astype(big).tobytes()
    path = Path(path)
    if compress or (compress is None and path.suffix == ".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _read_maybe_gzip(path: Path) -> tuple[bytes, bytes]:
    """``(file bytes, uncompressed bytes)``; gzip is recognised by its magic bytes."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data, data
    try:
        return data, gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path} is a corrupt or truncated gzip file ({exc})") from None


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{stem}.gz (or {stem}) not found in {directory}")


def _verify(path: Path, data: bytes, raw: bytes, facts: FileFacts | None) -> None:
    if facts is None:
        return
    if md5_bytes(data) == facts.md5:
        return
    if facts.raw_md5 is not None:
        if md5_bytes(raw) == facts.raw_md5:
            return
        raise DatasetError(
            f"{path} failed its checksum: md5 {md5_bytes(data)} (uncompressed {md5_bytes(raw)}), expected "
            f"{facts.md5} (uncompressed {facts.raw_md5}); the file is corrupt or not the published one"
        )
    raise DatasetError(f"{path} failed its checksum: md5 {md5_bytes(data)}, expected {facts.md5}")


def load_idx_dataset(directory, name="fashion-mnist", *, verify=True, facts=None) -> Dataset:
    """MNIST or Fashion-MNIST from the four IDX files in ``directory``.

    ``verify`` checks every file against :data:`FACTS` (or against ``facts``,
    a mapping ``file name -> FileFacts`` with ``.gz`` names).  Images are
    flattened and scaled to [0, 1] as float32.  Cost: reading and
    decompressing ~30 MB, about a second.
    """
    key = dataset_name(name)
    if key == "cifar10":
        raise BnsymInputError("load_idx_dataset reads MNIST-style IDX files; use load_cifar10 for CIFAR-10")
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"dataset directory {directory} does not exist")
    table = FACTS[key] if facts is None else facts
    arrays = {}
    for stem in _IDX_FILES:
        path = _find(directory, stem)
        data, raw = _read_maybe_gzip(path)
        if verify:
            _verify(path, data, raw, table.get(f"{stem}.gz"))
        arrays[stem] = parse_idx(raw, source=str(path))
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DatasetError(
                f"{directory}: {split} images of shape {images.shape} do not match labels of shape {labels.shape}"
            )
        if images.shape[0] == 0:
            raise DatasetError(f"{directory}: the {split} split holds 0 samples ({prefix}-images-idx3-ubyte)")
        out[f"x_{split}"] = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
        out[f"y_{split}"] = labels.astype(np.int64)
    num_classes = 10 if facts is None else int(max(out["y_train"].max(initial=0), out["y_test"].max(initial=0)) + 1)
    return Dataset(key, num_classes=num_classes, **out)


# ---------------------------------------------------------------------- CIFAR-10
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and NumPy arrays, nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _cifar_batch(path: Path, facts, verify):
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 batch {path.name} not found in {path.parent}")
    data = path.read_bytes()
    if verify:
        _verify(path, data, data, facts.get(path.name))
    try:
        batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
        x = np.asarray(batch[b"data"], dtype=np.uint8)
        y = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as exc:  # any failure to decode is a corrupt file
        raise DatasetError(f"{path} is not a readable CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if x.ndim != 2 or x.shape[1] != 3072 or y.shape != (x.shape[0],):
        raise DatasetError(f"{path}: expected data of shape (n, 3072) and n labels, got {x.shape} and {y.shape}")
    return x, y


def load_cifar10(directory, *, verify=True, facts=None) -> Dataset:
    """CIFAR-10 from the python batches in ``directory`` (or its ``cifar-10-batches-py``).

    Images are flattened channel-major (3072 features) and scaled to [0, 1].
    """
    directory = Path(directory)
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    if not directory.is_dir():
        raise DatasetError(f"dataset directory {directory} does not exist")
    table = FACTS["cifar10"] if facts is None else facts
    train = [_cifar_batch(directory / f"data_batch_{i}", table, verify) for i in range(1, 6)]
    x_test, y_test = _cifar_batch(directory / "test_batch", table, verify)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    scale = np.float32(255)
    return Dataset("cifar10", x_train.astype(np.float32) / scale, y_train, x_test.astype(np.float32) / scale, y_test, 10)


def load_dataset(name, directory=None, *, verify=True) -> Dataset:
    """Load ``name`` (``mnist``, ``fashion-mnist``, ``cifar10``) from ``directory``.

    Without ``directory`` the system location (:data:`SYSTEM_DIRECTORIES`) is used.
    """
    key = dataset_name(name)
    if directory is None:
        if key not in SYSTEM_DIRECTORIES:
            raise BnsymInputError(f"data directory is required for {key} (no system copy is known)")
        directory = SYSTEM_DIRECTORIES[key]
        if not Path(directory).is_dir():
            raise DatasetError(
                f"{directory} does not exist: install it with 'apt-get install dataset-fashion-mnist' "
                "or pass the data directory"
            )
    if key == "cifar10":
        return load_cifar10(directory, verify=verify)
    return load_idx_dataset(directory, key, verify=verify)


# ---------------------------------------------------------------------- download
def fetch(url: str, target, facts: FileFacts | None = None, *, opener=urllib.request.urlopen, chunk=1 << 16):
    """Download ``url`` to ``target`` atomically, resuming ``target.part`` if present.

    A ``.part`` file of ``n`` bytes is continued with ``Range: bytes=n-``; a
    server that answers 200 instead of 206 sends the whole file, which then
    replaces the partial one.  The finished ``.part`` is checked against
    ``facts`` (md5 and size) and renamed to ``target`` with ``os.replace``.
    A failed checksum deletes the ``.part`` and raises :class:`DatasetError`.
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url)
    if have:
        request.add_header("Range", f"bytes={have}-")
    with opener(request) as response:
        status = getattr(response, "status", None) or response.getcode()
        append = have > 0 and status == 206
        with open(part, "ab" if append else "wb") as out:
            for block in iter(lambda: response.read(chunk), b""):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    if facts is not None:
        size = part.stat().st_size
        digest = md5_file(part)
        if digest != facts.md5 or (facts.size is not None and size != facts.size):
            part.unlink()
            raise DatasetError(
                f"download of {url} failed its checksum (md5 {digest}, {size} bytes; expected {facts.md5}"
                f"{'' if facts.size is None else f', {facts.size} bytes'}); the partial file was removed"
            )
    os.replace(part, target)
    return target


def download(name, directory, *, mirrors=None, opener=urllib.request.urlopen, facts=None) -> Path:
    """Download dataset ``name`` into ``directory`` (files already present and valid are kept).

    Tries each mirror in turn for each file.  CIFAR-10 is fetched as
    ``cifar-10-python.tar.gz`` and extracted (data members only).  Returns
    the directory to pass to :func:`load_dataset`.
    """
    key = dataset_name(name)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mirrors = MIRRORS[key] if mirrors is None else tuple(mirrors)
    if key == "cifar10":
        files = {CIFAR_ARCHIVE.name: CIFAR_ARCHIVE} if facts is None else facts
    else:
        files = FACTS[key] if facts is None else facts
    for file_name, file_facts in files.items():
        target = directory / file_name
        if target.is_file() and md5_file(target) == file_facts.md5:
            continue
        errors = []
        for mirror in mirrors:
            try:
                fetch(mirror + file_name, target, file_facts, opener=opener)
                break
            except (OSError, DatasetError) as exc:
                errors.append(f"{mirror}: {exc}")
        else:
            raise DatasetError(f"could not download {file_name}: " + "; ".join(errors))
    if key == "cifar10":
        archive = directory / CIFAR_ARCHIVE.name
        with tarfile.open(archive) as tar:
            tar.extractall(directory, filter="data")
    return directory
