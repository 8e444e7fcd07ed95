"""The pieces of the wheel stage that need no Docker: patching, stamping, reproducible archives, sdist pinning."""

import gzip
import hashlib
import io
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ac_release.building.patches import apply_series
from ac_release.building.reproducible import clamp_tree_mtimes, normalize_sdist
from ac_release.building.sdist import fetch_sdist
from ac_release.building.stamp import stamp_version
from ac_release.core.errors import ReleaseError
from ac_release.model.line import Sdist

PATCH = """\
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
Subject: [PATCH] [astro] fix greeting

---
 pkg/mod.py | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -1,3 +1,3 @@
 def greet():
-    return "helo"
+    return "hello"
 # end
"""


def _tree(tmp_path, body='    return "helo"'):
    tree = tmp_path / "src"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "mod.py").write_text(f"def greet():\n{body}\n# end\n")
    return tree


def test_patch_series_applies_in_order(tmp_path):
    tree = _tree(tmp_path)
    patch = tmp_path / "0001-fix-greeting.patch"
    patch.write_text(PATCH)
    apply_series((patch,), tree)
    assert (tree / "pkg" / "mod.py").read_text() == 'def greet():\n    return "hello"\n# end\n'


def test_patch_that_does_not_apply_names_patch_and_hunk(tmp_path):
    tree = _tree(tmp_path, body='    return "bonjour"')
    patch = tmp_path / "0001-fix-greeting.patch"
    patch.write_text(PATCH)
    with pytest.raises(ReleaseError) as error:
        apply_series((patch,), tree)
    rejects = tmp_path / "0001-fix-greeting.rej"
    assert str(error.value) == (
        "patch 0001-fix-greeting.patch does not apply: pkg/mod.py: hunk #1 FAILED at line 1, "
        f"rejected hunk @@ -1,3 +1,3 @@ (full reject: {rejects})"
    )
    assert '-    return "helo"' in rejects.read_text()
    assert (tree / "pkg" / "mod.py").read_text() == 'def greet():\n    return "bonjour"\n# end\n'


def test_patch_applied_twice_is_refused(tmp_path):
    tree = _tree(tmp_path)
    patch = tmp_path / "0001-fix-greeting.patch"
    patch.write_text(PATCH)
    apply_series((patch,), tree)
    with pytest.raises(
        ReleaseError, match=r"^patch 0001-fix-greeting.patch does not apply: pkg/mod.py: already applied"
    ):
        apply_series((patch,), tree)


SYMLINK_PATCH = """\
diff --git a/pkg/link b/pkg/link
new file mode 120000
index 0000000..1111111
--- /dev/null
+++ b/pkg/link
@@ -0,0 +1 @@
+../../outside
\\ No newline at end of file
"""


def test_a_patch_the_series_check_refuses_is_never_applied(tmp_path):
    """apply_series reads each patch's headers itself, whoever calls it: GNU patch would make the symlink."""
    tree = _tree(tmp_path)
    patch = tmp_path / "0001-link.patch"
    patch.write_text(SYMLINK_PATCH)
    with pytest.raises(ReleaseError) as error:
        apply_series((patch,), tree)
    assert str(error.value) == (
        "0001-link.patch:2: file mode 120000 (a symlink): a patch may change regular files only (100644 or 100755): "
        "leave that change out"
    )
    assert not (tree / "pkg" / "link").is_symlink()


def test_stamp_sets_the_local_version_and_keeps_git_version(tmp_path):
    setup_py = tmp_path / "setup.py"
    setup_py.write_text(
        "version = '2.2.4'\n\ndef write_version():\n    text = f\"{git_version(version)}\"\n"
        "    open('x', 'w').write(text)\n"
    )
    stamp_version(tmp_path, "2.2.4", "2.2.4+astro.1")
    assert setup_py.read_text() == (
        "version = '2.2.4+astro.1'\n\ndef write_version():\n"
        '    text = f"{git_version(version)}"\n    if not text:\n        return\n'
        "    open('x', 'w').write(text)\n"
    )


def test_stamp_refuses_an_unknown_layout(tmp_path):
    (tmp_path / "setup.py").write_text("VERSION = '2.2.4'\n")
    with pytest.raises(ReleaseError, match=r"^setup.py: expected exactly one \"version = '2.2.4'\""):
        stamp_version(tmp_path, "2.2.4", "2.2.4+astro.1")


def _sdist(path, mtime):
    with tarfile.open(path, "w:gz") as archive:
        for name in ("pkg-1.0/setup.py", "pkg-1.0/PKG-INFO"):
            info = tarfile.TarInfo(name)
            data = name.encode()
            info.size, info.mtime, info.uid, info.uname = len(data), mtime, 1000, "builder"
            archive.addfile(info, io.BytesIO(data))


def test_normalized_sdists_are_byte_identical_whenever_built(tmp_path):
    epoch = 1645488000
    _sdist(tmp_path / "a.tar.gz", epoch + 5000)
    _sdist(tmp_path / "b.tar.gz", epoch + 9999)
    a, b = normalize_sdist(tmp_path / "a.tar.gz", epoch), normalize_sdist(tmp_path / "b.tar.gz", epoch)
    assert a == b
    assert int.from_bytes(a[4:8], "little") == epoch  # gzip header time
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(a))) as archive:
        assert [(m.name, m.mtime, m.uid, m.uname) for m in archive.getmembers()] == [
            ("pkg-1.0/PKG-INFO", epoch, 0, "root"),
            ("pkg-1.0/setup.py", epoch, 0, "root"),
        ]


def test_clamp_tree_mtimes(tmp_path):
    tree = _tree(tmp_path)
    clamp_tree_mtimes(tree, 1645488000)
    assert {int(p.stat().st_mtime) for p in [tree, *tree.rglob("*")]} == {1645488000}


@pytest.fixture
def http_dir(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_sdist_is_downloaded_once_and_checked(tmp_path, http_dir):
    served, url = http_dir
    (served / "pkg-1.0.tar.gz").write_bytes(b"upstream bytes")
    sdist = Sdist("pkg-1.0.tar.gz", f"{url}/pkg-1.0.tar.gz", hashlib.sha256(b"upstream bytes").hexdigest())
    path = fetch_sdist(sdist, tmp_path / "cache")
    assert path.read_bytes() == b"upstream bytes"
    (served / "pkg-1.0.tar.gz").unlink()
    assert fetch_sdist(sdist, tmp_path / "cache") == path  # from the cache now


def test_sdist_with_another_hash_is_refused_and_not_cached(tmp_path, http_dir):
    served, url = http_dir
    (served / "pkg-1.0.tar.gz").write_bytes(b"tampered bytes")
    pinned = hashlib.sha256(b"upstream bytes").hexdigest()
    with pytest.raises(ReleaseError) as error:
        fetch_sdist(Sdist("pkg-1.0.tar.gz", f"{url}/pkg-1.0.tar.gz", pinned), tmp_path / "cache")
    assert str(error.value) == (
        f"pkg-1.0.tar.gz from {url}/pkg-1.0.tar.gz has sha256 {hashlib.sha256(b'tampered bytes').hexdigest()}, "
        f"the line pins {pinned}: refusing to build from unpinned source"
    )
    assert not (tmp_path / "cache" / "sdists" / "pkg-1.0.tar.gz").exists()


def test_cached_sdist_changed_on_disk_is_refused(tmp_path):
    cached = tmp_path / "cache" / "sdists" / "pkg-1.0.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"changed")
    pinned = hashlib.sha256(b"upstream bytes").hexdigest()
    with pytest.raises(ReleaseError, match="^cached .* has sha256 .*, the line pins .*: delete it and re-run$"):
        fetch_sdist(Sdist("pkg-1.0.tar.gz", "http://127.0.0.1:9/none", pinned), tmp_path / "cache")
