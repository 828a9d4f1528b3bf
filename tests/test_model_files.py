"""The files of a model directory come from its manifest (``persistence.model_files``): a classical directory is
still copied as exactly its three files, by the service's verified copy and by the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from chuishao.analysis.registry import Registry
from chuishao.errors import ModelLoadError
from chuishao.models.persistence import DATA_FILES, MANIFEST_FILE, copy_model, model_files, read_manifest
from chuishao.serve import verified_copy

CLASSICAL = {MANIFEST_FILE, *DATA_FILES}


def _files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def test_a_classical_directory_lists_its_two_data_files(tiny_model_dir) -> None:
    assert model_files(read_manifest(tiny_model_dir)) == DATA_FILES


def test_the_verified_copy_of_a_classical_model_is_its_three_files(tiny_model_dir, tmp_path) -> None:
    copy = verified_copy.keep_copy(tiny_model_dir, tmp_path / "copies")
    assert _files(copy) == CLASSICAL
    assert verified_copy.verify(copy) == verified_copy.verify(tiny_model_dir)
    for name in CLASSICAL:
        assert (copy / name).read_bytes() == (tiny_model_dir / name).read_bytes()


def test_the_registry_copies_a_classical_model_as_its_three_files(tiny_model_dir, tmp_path) -> None:
    reg = Registry(tmp_path / "reg")
    version, added = reg.add(tiny_model_dir)
    assert added and _files(reg.path_of(version)) == CLASSICAL


@pytest.mark.parametrize("name", ["../elsewhere.json", "/etc/passwd", MANIFEST_FILE, "./manifest.json"])
def test_a_manifest_naming_a_file_outside_the_directory_is_refused(name) -> None:
    with pytest.raises(ModelLoadError, match="not a file of a model directory"):
        model_files({"files": {"cascade.json": "0" * 64, name: "0" * 64}})


def test_a_copied_file_that_does_not_match_its_checksum_is_refused(tiny_model_dir, tmp_path) -> None:
    manifest = read_manifest(tiny_model_dir)
    manifest = {**manifest, "files": {**manifest["files"], DATA_FILES[0]: "0" * 64}}  # type: ignore[dict-item]
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        copy_model(tiny_model_dir, tmp_path / "copy", manifest)

