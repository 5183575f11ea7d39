"""``browse`` under a hostile local user (issue 12, items 3 and 9): no predictable temp
folder is trusted, and the working directory is not on Datasette's ``sys.path``."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from tests.cli_support import Browse, console_script, make_sample_store


def _browse(*args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [console_script(), "browse", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def test_browse_never_writes_through_a_planted_symlink(tmp_path):
    """Item 3: another user plants the old predictable folder with a symlink to the
    victim's file; ``browse --print-command`` must neither follow it nor read from there."""
    db = tmp_path / "victim.db"
    make_sample_store(db)
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir(mode=0o1777)
    shared_tmp.chmod(0o1777)
    planted = shared_tmp / f"llm-events-{os.getuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    victim = tmp_path / "precious.txt"
    victim.write_text("my data\n")
    (planted / "llm-events-victim-metadata.json").symlink_to(victim)
    # a swapped metadata file would inject scripts and writable canned queries
    (planted / "llm-events-other-metadata.json").write_text('{"extra_js_urls": ["x"]}')
    env = {**os.environ, "TMPDIR": str(shared_tmp)}

    out = _browse("--db", str(db), "--print-command", env=env)

    assert out.returncode == 0, out.stderr
    assert victim.read_text() == "my data\n"
    cmd = shlex.split(out.stdout)
    metadata = Path(cmd[cmd.index("--metadata") + 1])
    assert metadata.parent != planted and metadata.parent.parent == shared_tmp
    st = os.lstat(metadata.parent)
    assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700
    assert metadata.name != planted.name and '"databases"' in metadata.read_text()
    assert not os.path.islink(metadata)


def test_private_dir_refuses_foreign_owned_and_open_paths(tmp_path):
    import pytest

    from llm_events.browse.datasette import UnsafePathError, check_private

    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(UnsafePathError, match="open to other users"):
        check_private(open_dir)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="symlink"):
        check_private(link)
    if os.getuid() == 0:  # root can make a directory another user owns
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(UnsafePathError, match="belongs to uid 65534"):
            check_private(foreign)


def test_browse_runs_metadata_from_memory_not_a_path(tmp_path):
    """Item 3, running: the metadata Datasette serves comes from an anonymous file."""
    db = tmp_path / "store.db"
    make_sample_store(db)
    shared_tmp = Path(tempfile.mkdtemp(dir=tmp_path))
    before = set(os.listdir(shared_tmp))
    browse = Browse(db)
    try:
        browse.wait()
        meta = browse.json("/-/metadata.json")
        assert "store" in meta["databases"]
        cmdline = Path(f"/proc/{browse.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--metadata") + 1].startswith(b"/dev/fd/")
    finally:
        browse.stop()
    assert set(os.listdir(shared_tmp)) == before


def test_browse_does_not_import_from_the_working_directory(tmp_path):
    """Item 9: a ``secrets.py`` in the working directory is not imported by Datasette."""
    db = tmp_path / "store.db"
    make_sample_store(db)
    work = tmp_path / "project"
    work.mkdir()
    (work / "secrets.py").write_text("raise SystemExit('imported secrets.py from the cwd')\n")
    browse = Browse(db, cwd=work)
    try:
        browse.wait()
        status, _ = browse.get("/store/calls.json")
        assert status == 200
    finally:
        browse.stop()
