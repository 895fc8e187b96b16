"""extract(): tar and zip archives, with unsafe members refused before anything is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from topogen.io.archives import ArchiveError, UnsafeArchiveError, extract

GOOD = {
    "pkg/README": b"hello\n",
    "pkg/data/a.upf": b"A" * 1000,
    "pkg/data/sub/b.upf": b"B" * 10,
    "pkg/other.py": b"print(1)\n",
}


def make_tar(path: Path, files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> Path:
    mode = {".gz": "w:gz", ".tgz": "w:gz", ".bz2": "w:bz2", ".xz": "w:xz"}.get(path.suffix, "w")
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return path


def make_zip(path: Path, files: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", ["a.tar", "a.tar.gz", "a.tgz", "a.tar.bz2", "a.tar.xz", "a.zip"])
def test_good_archive_extracts(tmp_path, name):
    make = make_zip if name.endswith(".zip") else make_tar
    archive = make(tmp_path / name, GOOD)
    dest = tmp_path / "out"
    written = extract(archive, dest)
    assert tree(dest) == GOOD
    assert sorted(written) == sorted(dest / n for n in GOOD)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "out"])  # no temp left


def test_extract_replaces_previous_content(tmp_path):
    dest = tmp_path / "out"
    (dest / "stale").mkdir(parents=True)
    (dest / "stale" / "old.txt").write_text("old")
    extract(make_tar(tmp_path / "a.tar", GOOD), dest)
    assert tree(dest) == GOOD


def test_members_prefix_filter_on_a_zip(tmp_path):
    archive = make_zip(tmp_path / "pkg-1.0-py3-none-any.whl", GOOD)
    dest = tmp_path / "pseudo"
    written = extract(archive, dest, members="pkg/data/")
    assert tree(dest) == {k: v for k, v in GOOD.items() if k.startswith("pkg/data/")}
    assert len(written) == 2
    with pytest.raises(ArchiveError, match="no member under 'pkg/nothing/'"):
        extract(archive, tmp_path / "none", members="pkg/nothing/")
    assert not (tmp_path / "none").exists()


def _link(name: str, kind: bytes, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


UNSAFE_TAR = {
    "dotdot": ({"pkg/../../evil": b"x"}, [], "pkg/../../evil"),
    "absolute": ({"/tmp/abs-evil": b"x"}, [], "/tmp/abs-evil"),
    "symlink": ({}, [_link("pkg/link", tarfile.SYMTYPE, "/etc/passwd")], "pkg/link"),
    "hardlink": ({}, [_link("pkg/hard", tarfile.LNKTYPE, "/etc/passwd")], "pkg/hard"),
    "fifo": ({}, [_special("pkg/fifo", tarfile.FIFOTYPE)], "pkg/fifo"),
    "device": ({}, [_special("pkg/dev", tarfile.CHRTYPE)], "pkg/dev"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TAR))
def test_unsafe_tar_member_is_refused_and_nothing_written(tmp_path, case):
    files, extra, member = UNSAFE_TAR[case]
    work = tmp_path / "work"
    work.mkdir()
    # good members first: they must not be written either
    archive = make_tar(tmp_path / "bad.tar.gz", {**GOOD, **files}, extra)
    dest = work / "out"
    with pytest.raises(UnsafeArchiveError) as err:
        extract(archive, dest)
    msg = str(err.value)
    assert str(archive) in msg and repr(member) in msg and "\n" not in msg
    assert list(work.iterdir()) == []  # neither dest nor a temp folder
    assert not (tmp_path / "evil").exists() and not Path("/tmp/abs-evil").exists()


@pytest.mark.parametrize(
    ("files", "symlink", "member"),
    [
        ({"../evil": b"x"}, None, "../evil"),
        ({"/abs-evil": b"x"}, None, "/abs-evil"),
        ({}, "pkg/link", "pkg/link"),
    ],
)
def test_unsafe_zip_member_is_refused_even_outside_the_filter(tmp_path, files, symlink, member):
    work = tmp_path / "work"
    work.mkdir()
    archive = make_zip(tmp_path / "bad.zip", {**GOOD, **files}, symlink)
    with pytest.raises(UnsafeArchiveError, match=f"refusing member {member!r}"):
        extract(archive, work / "out", members="pkg/data/")
    assert list(work.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_harmless_dotdot_inside_dest_is_allowed(tmp_path):
    archive = make_tar(tmp_path / "ok.tar", {"pkg/x/../y.txt": b"y", "./top.txt": b"t"})
    extract(archive, tmp_path / "out")
    assert tree(tmp_path / "out") == {"pkg/y.txt": b"y", "top.txt": b"t"}


def test_unreadable_or_missing_archive(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(ArchiveError, match=r"junk\.tar\.gz: cannot extract"):
        extract(junk, tmp_path / "out")
    with pytest.raises(ArchiveError, match="does not exist"):
        extract(tmp_path / "nope.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()
