"""skopeo helpers: pulling, verifying a dir: pull, and mirror drop-ins."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.images import BuiltImage, PushedImage, push_image
from tests.support.registry import RegistryServer
from tests.support.skopeo import (
    dropin_text,
    mirror_dropin,
    skopeo_copy,
    unique_registry_name,
    verify_dir_blobs,
)


@pytest.fixture
def pushed(registry: RegistryServer, small_image: BuiltImage) -> PushedImage:
    return push_image(small_image, registry.url, "test/app", "v1")


@pytest.fixture
def pulled(pushed: PushedImage, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    skopeo_copy(pushed.ref, out, timeout=60)
    verify_dir_blobs(out, pushed)
    return out


def test_verify_detects_corrupt_blob(pushed: PushedImage, pulled: Path) -> None:
    layer = pulled / pushed.layers[0][0].removeprefix("sha256:")
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="hashes to"):
        verify_dir_blobs(pulled, pushed)


def test_verify_detects_missing_blob(pushed: PushedImage, pulled: Path) -> None:
    (pulled / pushed.layers[-1][0].removeprefix("sha256:")).unlink()
    with pytest.raises(AssertionError, match="missing blob"):
        verify_dir_blobs(pulled, pushed)


def test_verify_detects_other_manifest(pushed: PushedImage, pulled: Path) -> None:
    (pulled / "manifest.json").write_text("{}")
    with pytest.raises(AssertionError, match=r"manifest\.json"):
        verify_dir_blobs(pulled, pushed)
    verify_dir_blobs(pulled, pushed, check_manifest=False)


def test_dropin_text_and_cleanup(tmp_path: Path) -> None:
    text = dropin_text("registry.example.test", "127.0.0.1:65001/registry.example.test")
    assert text == (
        '[[registry]]\nprefix = "registry.example.test"\nlocation = "registry.example.test"\n\n'
        '[[registry.mirror]]\nlocation = "127.0.0.1:65001/registry.example.test"\n'
        "insecure = true\n"
    )
    with pytest.raises(ValueError):
        dropin_text('bad"\nname', "127.0.0.1:1")
    dropins = tmp_path / "registries.conf.d"
    with (
        pytest.raises(RuntimeError),
        mirror_dropin("r.example.test", "127.0.0.1:1", dropin_dir=dropins) as path,
    ):
        assert path.read_text() == dropin_text("r.example.test", "127.0.0.1:1")
        raise RuntimeError("test failed inside")
    assert list(dropins.iterdir()) == []


@pytest.mark.root
@pytest.mark.usefixtures("require_root")
def test_pull_through_dropin_mirror(registry: RegistryServer, pushed: PushedImage, tmp_path: Path) -> None:
    name = unique_registry_name()
    registry.reset_counts()
    with mirror_dropin(name, registry.host) as path:
        assert path.exists()
        skopeo_copy(f"{name}/{pushed.repo}:{pushed.tag}", tmp_path / "out", timeout=60)
    assert not path.exists()
    verify_dir_blobs(tmp_path / "out", pushed)
    # The made-up name cannot resolve, so every byte came from the mirror.
    assert registry.served_bytes() == pushed.total_blob_bytes

    # Without the drop-in the same pull fails: no silent fallback hides a broken mirror.
    shutil.rmtree(tmp_path / "out")
    result = skopeo_copy(f"{name}/{pushed.repo}:{pushed.tag}", tmp_path / "out", check=False, timeout=60)
    assert result.returncode != 0
