"""Dataset loaders, checksum verification and download of bnsym.train.datasets (on small files)."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from bnsym.errors import BnsymInputError
from bnsym.train.datasets import (
    FACTS, SYSTEM_DIRECTORIES, DatasetError, FileFacts, download, fetch, load_cifar10, load_dataset,
    load_idx_dataset, md5_file, parse_idx, write_idx,
)

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def make_idx_dir(directory: Path, *, compress=True, n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        STEMS[0]: rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
        STEMS[1]: rng.integers(0, 10, n_train).astype(np.uint8),
        STEMS[2]: rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
        STEMS[3]: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        write_idx(directory / (stem + (".gz" if compress else "")), a, compress=compress)
    return arrays


def facts_of(directory: Path):
    out = {}
    for stem in STEMS:
        path = directory / f"{stem}.gz"
        if path.exists():
            out[f"{stem}.gz"] = FileFacts(f"{stem}.gz", md5_file(path), path.stat().st_size,
                                          __import__("hashlib").md5(gzip.decompress(path.read_bytes())).hexdigest())
        else:
            path = directory / stem
            out[f"{stem}.gz"] = FileFacts(f"{stem}.gz", "0" * 32, None, md5_file(path))
    return out


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_load_gzipped_or_raw(tmp_path, compress):
    arrays = make_idx_dir(tmp_path, compress=compress)
    data = load_idx_dataset(tmp_path, "mnist", facts=facts_of(tmp_path))
    np.testing.assert_array_equal(data.x_train, arrays[STEMS[0]].reshape(12, -1) / np.float32(255))
    np.testing.assert_array_equal(data.y_test, arrays[STEMS[3]])
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.input_dim == 12
    assert data.subset(train=3, test=2).x_train.shape == (3, 12)


def test_recompressed_file_is_recognised_by_its_content(tmp_path):
    make_idx_dir(tmp_path)
    facts = facts_of(tmp_path)
    path = tmp_path / f"{STEMS[0]}.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=12345))
    assert md5_file(path) != facts[path.name].md5
    load_idx_dataset(tmp_path, "mnist", facts=facts)  # accepted: same content


def test_checksum_mismatch_missing_and_corrupt_files_are_clear_errors(tmp_path):
    make_idx_dir(tmp_path)
    facts = facts_of(tmp_path)
    # wrong content (one label changed) with a valid structure
    labels = tmp_path / f"{STEMS[1]}.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DatasetError, match="checksum"):
        load_idx_dataset(tmp_path, "mnist", facts=facts)
    load_idx_dataset(tmp_path, "mnist", verify=False)  # structure is fine
    # truncated gzip
    images = tmp_path / f"{STEMS[0]}.gz"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        load_idx_dataset(tmp_path, "mnist", verify=False)
    # truncated IDX payload
    images.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + np.array([12, 4, 3], ">u4").tobytes() + b"\x00" * 10))
    with pytest.raises(DatasetError, match="truncated"):
        load_idx_dataset(tmp_path, "mnist", verify=False)
    images.unlink()
    with pytest.raises(DatasetError, match="not found"):
        load_idx_dataset(tmp_path, "mnist", verify=False)
    with pytest.raises(DatasetError, match="does not exist"):
        load_idx_dataset(tmp_path / "nowhere", "mnist")
    with pytest.raises(BnsymInputError, match="dataset must be one of"):
        load_dataset("imagenet", tmp_path)


def test_parse_idx_refuses_garbage():
    with pytest.raises(DatasetError, match="not an IDX file"):
        parse_idx(b"hello world")
    with pytest.raises(DatasetError, match="not an IDX file"):
        parse_idx(b"")
    with pytest.raises(DatasetError, match="too long"):
        parse_idx(b"\x00\x00\x08\x01" + np.array([2], ">u4").tobytes() + b"abc")
    np.testing.assert_array_equal(parse_idx(b"\x00\x00\x0c\x01" + np.array([2], ">u4").tobytes()
                                            + np.array([1, -2], ">i4").tobytes()), [1, -2])


def test_mismatched_image_and_label_counts(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / f"{STEMS[1]}.gz", np.zeros(7, np.uint8))
    with pytest.raises(DatasetError, match="do not match"):
        load_idx_dataset(tmp_path, "mnist", verify=False)


# ---------------------------------------------------------------------- CIFAR-10
def make_cifar_dir(directory: Path, n=4, seed=0):
    rng = np.random.default_rng(seed)
    directory = directory / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    facts = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n)),
                 b"batch_label": b"x"}
        (directory / name).write_bytes(pickle.dumps(batch))
        facts[name] = FileFacts(name, md5_file(directory / name))
    return facts


def test_cifar_batches_load_and_verify(tmp_path):
    facts = make_cifar_dir(tmp_path)
    data = load_cifar10(tmp_path, facts=facts)
    assert data.x_train.shape == (20, 3072) and data.x_test.shape == (4, 3072)
    assert data.num_classes == 10 and data.x_train.max() <= 1
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetError, match="checksum"):
        load_cifar10(tmp_path, facts=facts)
    with pytest.raises(DatasetError, match="not a readable CIFAR-10 batch"):
        load_cifar10(tmp_path, verify=False)
    path.unlink()
    with pytest.raises(DatasetError, match="data_batch_3 not found"):
        load_cifar10(tmp_path, verify=False)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_cifar_unpickler_refuses_code(tmp_path):
    make_cifar_dir(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        load_cifar10(tmp_path, verify=False)


# ---------------------------------------------------------------------- download
def test_download_from_a_file_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    make_idx_dir(mirror)
    facts = {f"{s}.gz": FileFacts(f"{s}.gz", md5_file(mirror / f"{s}.gz")) for s in STEMS}
    target = tmp_path / "data"
    bad_mirror = (tmp_path / "empty").as_uri() + "/"
    out = download("mnist", target, mirrors=[bad_mirror, mirror.as_uri() + "/"], facts=facts)
    assert sorted(p.name for p in out.iterdir()) == sorted(facts)
    load_idx_dataset(out, "mnist", verify=False)
    # everything valid: nothing is fetched again
    download("mnist", target, mirrors=["file:///nonexistent/"], facts=facts)


class _RangeServer:
    """An opener serving ``payload`` that honours ``Range: bytes=n-`` (HTTP 206)."""

    def __init__(self, payload, fail_after=None):
        self.payload, self.fail_after, self.ranges = payload, fail_after, []

    def __call__(self, request):
        header = request.get_header("Range")
        self.ranges.append(header)
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        body = self.payload[start:]
        server = self

        class Response(io.BytesIO):
            status = 206 if header else 200

            def getcode(self):
                return self.status

            def read(self, n=-1):
                if server.fail_after is not None and self.tell() >= server.fail_after:
                    raise urllib.error.URLError("connection reset")
                return super().read(n)

        return Response(body)


def test_interrupted_download_resumes_with_a_range_request(tmp_path):
    payload = os.urandom(5000)
    facts = FileFacts("blob.bin", __import__("hashlib").md5(payload).hexdigest(), len(payload))
    target = tmp_path / "blob.bin"
    broken = _RangeServer(payload, fail_after=2048)
    with pytest.raises(urllib.error.URLError):
        fetch("http://example/blob.bin", target, facts, opener=broken, chunk=1024)
    part = tmp_path / "blob.bin.part"
    assert not target.exists() and part.stat().st_size == 2048
    server = _RangeServer(payload)
    fetch("http://example/blob.bin", target, facts, opener=server, chunk=1024)
    assert server.ranges == ["bytes=2048-"]
    assert target.read_bytes() == payload and not part.exists()


def test_download_with_a_wrong_checksum_leaves_nothing_behind(tmp_path):
    facts = FileFacts("blob.bin", "0" * 32, 10)
    with pytest.raises(DatasetError, match="checksum"):
        fetch("http://example/blob.bin", tmp_path / "blob.bin", facts, opener=_RangeServer(b"0123456789"))
    assert list(tmp_path.iterdir()) == []


def test_a_server_ignoring_range_restarts_the_file(tmp_path):
    payload = b"abcdefghij"
    (tmp_path / "f.part").write_bytes(b"XYZ")
    src = tmp_path / "src"
    src.write_bytes(payload)
    fetch(src.as_uri(), tmp_path / "f", FileFacts("f", __import__("hashlib").md5(payload).hexdigest()))
    assert (tmp_path / "f").read_bytes() == payload


def test_cifar_archive_download_is_extracted(tmp_path):
    make_cifar_dir(tmp_path / "src")
    archive = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    facts = {archive.name: FileFacts(archive.name, md5_file(archive))}
    out = download("cifar10", tmp_path / "data", mirrors=[archive.parent.as_uri() + "/"], facts=facts)
    assert load_cifar10(out, verify=False).x_train.shape == (20, 3072)


@pytest.mark.skipif(not Path(SYSTEM_DIRECTORIES["fashion-mnist"]).is_dir(),
                    reason="apt-get install dataset-fashion-mnist")
def test_system_fashion_mnist_passes_its_checksums():
    data = load_dataset("fashion-mnist")  # Debian re-compressed the files: verified by content md5
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert set(FACTS["fashion-mnist"]) == {f"{s}.gz" for s in STEMS}
