"""put/get against a real node: bytes and SHA-256 exact, directories, modes, streams, resume from a
part file (both ways), and clear errors."""
import hashlib
import io
import os
import stat

import pytest

from pythond import RemoteFileError, UsageError
from pythond._files_receive import part_name


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def test_put_get_file_exact(hub_client, fleet, tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(21 << 20))
    os.chmod(src, 0o640)
    s = hub_client.put("n1", str(src), "blob.bin")
    remote = os.path.join(fleet.n1.home, "blob.bin")
    assert s["target"] == remote and s["files"] == 1 and s["bytes"] == 21 << 20 and s["resumed"] == 0
    assert sha(remote) == sha(src) and stat.S_IMODE(os.stat(remote).st_mode) == 0o640
    back = tmp_path / "back.bin"
    g = hub_client.get("n1", "blob.bin", str(back))
    assert g["target"] == str(back) and g["bytes"] == 21 << 20
    assert sha(back) == sha(src) and stat.S_IMODE(os.stat(back).st_mode) == 0o640
    d = tmp_path / "into"
    d.mkdir()
    hub_client.get("n1", "~/blob.bin", str(d))  # into an existing directory under the source's name, as cp
    assert sha(d / "blob.bin") == sha(src)
    assert not [p for p in os.listdir(fleet.n1.home) if p.endswith(".pysh-part")]


def test_bytes_and_streams(hub_client, fleet):
    hub_client.write_file("n1", "note.txt", "héllo\n")
    assert hub_client.read_file("n1", "note.txt") == "héllo\n".encode()
    hub_client.put("n1", io.BytesIO(b"\x00\xff" * 1000), "stream.bin")
    buf = io.BytesIO()
    hub_client.get("n1", "stream.bin", buf)
    assert buf.getvalue() == b"\x00\xff" * 1000


def test_directories_recursive(hub_client, fleet, tmp_path):
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "x.txt").write_bytes(b"x" * 1000)
    (tree / "top.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(tree / "top.sh", 0o755)
    os.symlink("a/b/x.txt", str(tree / "link"))
    with pytest.raises(RemoteFileError) as ei:
        hub_client.put("n1", str(tree), "tree")
    assert ei.value.code == "is_directory" and "recursive=True" in str(ei.value)
    s = hub_client.put("n1", str(tree), "tree", recursive=True)
    assert s["files"] == 2
    remote = os.path.join(fleet.n1.home, "tree")
    assert open(os.path.join(remote, "a", "b", "x.txt"), "rb").read() == b"x" * 1000
    assert os.readlink(os.path.join(remote, "link")) == "a/b/x.txt"
    assert stat.S_IMODE(os.stat(os.path.join(remote, "top.sh")).st_mode) == 0o755
    out = tmp_path / "copy"
    g = hub_client.get("n1", "tree", str(out), recursive=True)
    assert g["files"] == 2 and (out / "a" / "b" / "x.txt").read_bytes() == b"x" * 1000
    assert os.readlink(str(out / "link")) == "a/b/x.txt" and os.access(str(out / "top.sh"), os.X_OK)
    with pytest.raises(RemoteFileError) as ei:
        hub_client.get("n1", "tree", str(tmp_path / "nr"))
    assert ei.value.code == "is_directory"


def test_get_resumes_from_a_part_file(hub_client, fleet, tmp_path):
    data = os.urandom(3 << 20)
    remote = os.path.join(fleet.n1.home, "resume.bin")
    with open(remote, "wb") as f:
        f.write(data)
    st = os.stat(remote)
    entry = {"size": st.st_size, "mtime": st.st_mtime_ns // 1000000, "mode": st.st_mode & 0o7777}
    local = str(tmp_path / "resume.bin")
    with open(part_name(local, entry), "wb") as f:
        f.write(data[:1 << 20])  # what an interrupted get left behind
    g = hub_client.get("n1", "resume.bin", local)
    assert g["resumed"] == 1 << 20 and g["bytes"] == 2 << 20 and g["resumed_files"] == [local]
    assert open(local, "rb").read() == data and not os.path.exists(part_name(local, entry))


def test_put_cut_off_then_resumed(hub_client, fleet, tmp_path):
    src = tmp_path / "cut.bin"
    src.write_bytes(os.urandom(12 << 20))

    class Stop(Exception):
        pass

    def stop_half_way(path, done, size):
        if done >= 6 << 20:
            raise Stop()

    with pytest.raises(Stop):
        hub_client.put("n1", str(src), "cut.bin", progress=stop_half_way)
    # the node keeps the part file once it has seen the tunnel end
    parts = []
    for _ in range(200):
        parts = [p for p in os.listdir(fleet.n1.home) if p.startswith(".cut.bin.") and p.endswith(".pysh-part")]
        if parts:
            break
        hub_client.sh("n1", "true")  # a round trip to the node: its side has settled by then
    assert parts
    s = hub_client.put("n1", str(src), "cut.bin")
    assert s["resumed"] > 0 and s["resumed"] + s["bytes"] == 12 << 20
    assert sha(os.path.join(fleet.n1.home, "cut.bin")) == sha(src)


def test_transfer_errors(hub_client, fleet, tmp_path):
    with pytest.raises(RemoteFileError) as ei:
        hub_client.get("n1", "no/such/file", str(tmp_path / "x"))
    assert ei.value.code == "not_found" and "no such file or directory" in str(ei.value)
    with pytest.raises(RemoteFileError) as ei:
        hub_client.put("n1", str(tmp_path / "missing"), "x")
    assert ei.value.code == "not_found"
    with pytest.raises(RemoteFileError) as ei:
        hub_client.put("n1", __file__, "no-such-dir/sub/x")
    assert ei.value.code == "not_found" and "no such directory" in str(ei.value)
    with pytest.raises(RemoteFileError) as ei:
        hub_client.get("n1", "note.txt" if os.path.exists(os.path.join(fleet.n1.home, "note.txt")) else "/etc/hostname",
                       str(tmp_path / "nodir" / "x"))
    assert ei.value.code == "not_found"
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.geteuid() != 0:
            with pytest.raises(RemoteFileError) as ei:
                hub_client.get("n1", "/etc/hostname", str(ro / "x"))
            assert ei.value.code == "permission_denied"
    finally:
        os.chmod(ro, 0o700)
    os.makedirs(os.path.join(fleet.n1.home, "adir"), exist_ok=True)
    with pytest.raises(UsageError) as ei:
        hub_client.get("n1", "adir", io.BytesIO(), recursive=True)
    assert "a directory cannot be written to a stream" in str(ei.value)
