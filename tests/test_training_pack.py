"""The training pack (engines/training/pack.py): the aligned Training and PublicTest faces, lossless, small enough
for the device tool (64 MiB with the repository), and never PrivateTest. Needs no torch: runs in CI."""
from __future__ import annotations

import numpy as np
import pytest

from engines.ferplus import FaceSet
from engines.training.pack import read_pack, write_pack

DEVICE_CARRY_LIMIT = 64 * 2**20  # the device tool's working tree, repository included
REPOSITORY_ROOM = 8 * 2**20  # the tracked files are about 6 MiB


def test_the_whole_pack_is_lossless_leaves_out_private_test_and_fits_the_device_tool(
        training_faces, public_test_faces, tmp_path):
    private = FaceSet(np.full((3, 48, 48), 7, np.uint8), np.ones((3, 10), np.int16), np.zeros(3, np.int64))
    out = write_pack({"Training": training_faces, "PublicTest": public_test_faces, "PrivateTest": private},
                     tmp_path / "kit" / "pack.npz")
    assert out.stat().st_size <= DEVICE_CARRY_LIMIT - REPOSITORY_ROOM, f"{out.stat().st_size / 2**20:.1f} MiB"
    splits = read_pack(out)
    assert sorted(splits) == ["PublicTest", "Training"]
    for name, faces in (("Training", training_faces), ("PublicTest", public_test_faces)):
        np.testing.assert_array_equal(splits[name].pixels, faces.pixels)
        np.testing.assert_array_equal(splits[name].votes, faces.votes)
        np.testing.assert_array_equal(splits[name].fer2013_label, faces.fer2013_label)


def test_a_file_that_is_not_a_pack_is_refused_by_name(tmp_path):
    other = tmp_path / "cache.npz"
    np.savez(other, aligned=np.zeros((1, 48, 48), np.uint8))
    with pytest.raises(ValueError, match=r"cache\.npz: not a training pack \(no Training, PublicTest\)"):
        read_pack(other)


def test_a_damaged_face_is_refused(training_faces, public_test_faces, tmp_path):
    out = write_pack({"Training": training_faces.subset(np.arange(len(training_faces)) < 4),
                      "PublicTest": public_test_faces.subset(np.arange(len(public_test_faces)) < 2)},
                     tmp_path / "pack.npz")
    with np.load(out) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["Training_png"][: arrays["Training_offsets"][1]] = 0  # the first face's PNG bytes zeroed
    np.savez(out, **arrays)
    with pytest.raises(ValueError, match="not a readable PNG"):
        read_pack(out)


def test_a_split_without_faces_is_refused_when_written_and_when_read(training_faces, public_test_faces, tmp_path):
    nothing = public_test_faces.subset(np.zeros(len(public_test_faces), bool))
    with pytest.raises(ValueError, match="PublicTest has no faces"):
        write_pack({"Training": training_faces, "PublicTest": nothing}, tmp_path / "empty.npz")
    out = write_pack({"Training": training_faces.subset(np.arange(len(training_faces)) < 4),
                      "PublicTest": public_test_faces.subset(np.arange(len(public_test_faces)) < 2)},
                     tmp_path / "pack.npz")
    with np.load(out) as data:
        arrays = {key: data[key] for key in data.files}
    arrays |= {"PublicTest_png": np.zeros(0, np.uint8), "PublicTest_offsets": np.zeros(1, np.int64),
               "PublicTest_votes": arrays["PublicTest_votes"][:0], "PublicTest_labels": arrays["PublicTest_labels"][:0]}
    np.savez(out, **arrays)
    with pytest.raises(ValueError, match=r"pack\.npz: PublicTest has no faces"):
        read_pack(out)
