"""The one atomic writer: whole or not at all, no temp file left, errors naming the path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from nbops.errors import InfraError
from nbops.storage import atomic
from nbops.storage.atomic import is_temp, replacing, temp_path, write_atomic

pytestmark = pytest.mark.unit


def test_writes_whole_creating_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.json"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["file.json"]  # no temp file left beside it


def test_a_failed_rename_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file.json"
    write_atomic(target, b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(InfraError, match=rf"{target}: cannot write \(No space left on device\)"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.json"]


def test_a_directory_that_cannot_be_made_is_an_infra_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(InfraError, match=f"{blocker / 'sub' / 'x'}: cannot write"):
        write_atomic(blocker / "sub" / "x", b"x")


def test_an_error_inside_replacing_propagates_and_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"intact")
    with pytest.raises(ValueError, match="checksum"), replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError("checksum mismatch")
    assert target.read_bytes() == b"intact"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_replacing_renames_what_the_caller_wrote(tmp_path: Path) -> None:
    target = tmp_path / "out" / "data.bin"
    with replacing(target) as tmp:
        assert tmp.parent == target.parent and is_temp(tmp.name)
        tmp.write_bytes(b"downloaded")
        assert not target.exists()  # nothing visible before the rename
    assert target.read_bytes() == b"downloaded"
    assert os.listdir(target.parent) == ["data.bin"]


def test_temp_names_are_private_and_recognised(tmp_path: Path) -> None:
    names = {temp_path(tmp_path / "manifest.json").name for _ in range(20)}
    assert len(names) == 20  # unique per call, not only per process
    assert all(is_temp(n) and n.startswith(".manifest.json.") for n in names)
    for ordinary in ("data.tmp", ".hidden.tmp", "manifest.json", f".x.{os.getpid()}.tmp"):
        assert not is_temp(ordinary), ordinary


def test_concurrent_writers_never_mix_their_bytes(tmp_path: Path) -> None:
    target = tmp_path / "shared.bin"
    bodies = [bytes([i]) * 200_000 for i in range(8)]
    barrier = threading.Barrier(len(bodies))

    def write(body: bytes) -> None:
        barrier.wait()
        for _ in range(5):
            write_atomic(target, body)

    threads = [threading.Thread(target=write, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in bodies
    assert os.listdir(tmp_path) == ["shared.bin"]
