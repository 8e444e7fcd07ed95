"""Every header of a patch that GNU patch acts on is read before a build (issue 29, item 6): git's extended headers,
its quoted file names and file modes. A patch may change regular files inside the source tree, and nothing else."""

import subprocess

import pytest

from ac_release.core.errors import ReleaseError
from ac_release.model.line import check_series

SHOWN = "patches/0001-fix.patch"
HUNK = """\
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -1,2 +1,2 @@
 def greet():
-    return "helo"
+    return "hello"
"""
# Line 5 is the first header line of the diff: `diff --git ...`.
PATCH = f"""\
From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
Subject: [PATCH] fix greeting

---
diff --git a/pkg/mod.py b/pkg/mod.py
index 1111111..2222222 100644
{HUNK}-- \n2.43.0
"""


def _series(tmp_path, text: str):
    patches = tmp_path / "patches"
    patches.mkdir(exist_ok=True)
    (patches / "0001-fix.patch").write_text(text)
    (patches / "0001-fix.check.py").write_text("print('ok: fix')\n")
    return patches


def _refusal(tmp_path, text: str) -> str:
    with pytest.raises(ReleaseError) as error:
        check_series(_series(tmp_path, text), tmp_path)
    return str(error.value)


def _with_section(section: str) -> str:
    """The patch with one more file section (git headers, maybe no hunk) before its valid one."""
    return PATCH.replace("diff --git a/pkg/mod.py", section + "diff --git a/pkg/mod.py", 1)


OUTSIDE = "outside the source tree: paths are relative to the sdist root"
REGULAR_ONLY = "a patch may change regular files only (100644 or 100755): leave that change out"


def test_a_git_format_patch_is_accepted(tmp_path):
    check_series(_series(tmp_path, PATCH), tmp_path)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (  # git's C-style quoting: \056 is "."
            'diff --git "a/\\056\\056/x" "b/\\056\\056/x"\nnew file mode 100644\n',
            f"{SHOWN}:5: patches ../x, outside the source tree: paths are relative to the sdist root",
        ),
        (
            "diff --git a/pkg/mod.py b/pkg/y.py\nsimilarity index 100%\nrename from pkg/mod.py\nrename to ../../y\n",
            f"{SHOWN}:8: patches ../../y, {OUTSIDE}",
        ),
        (
            "diff --git a/pkg/mod.py b/pkg/y.py\nsimilarity index 100%\ncopy from pkg/mod.py\ncopy to ../y\n",
            f"{SHOWN}:8: patches ../y, {OUTSIDE}",
        ),
        (
            "diff --git a/pkg/mod.py b/pkg/y.py\nrename from /etc/passwd\nrename to pkg/y.py\n",
            f"{SHOWN}:6: patches /etc/passwd, {OUTSIDE}",
        ),
        (
            'diff --git a/l b/l\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n+++ "b/l"\n'
            "@@ -0,0 +1 @@\n+../../outside\n\\ No newline at end of file\n",
            f"{SHOWN}:6: file mode 120000 (a symlink): {REGULAR_ONLY}",
        ),
        (
            "diff --git a/l b/l\nindex 1111111..2222222 120000\n",
            f"{SHOWN}:6: file mode 120000 (a symlink): {REGULAR_ONLY}",
        ),
        (
            "diff --git a/l b/l\ndeleted file mode 120000\n",
            f"{SHOWN}:6: file mode 120000 (a symlink): {REGULAR_ONLY}",
        ),
        (
            "diff --git a/sub b/sub\nnew file mode 160000\nindex 0000000..1111111\n",
            f"{SHOWN}:6: file mode 160000 (a gitlink, a submodule): {REGULAR_ONLY}",
        ),
        (
            "diff --git a/pkg/x b/pkg/x\nold mode 100644\nnew mode 104755\n",
            f"{SHOWN}:7: file mode 104755 (not a regular file's): {REGULAR_ONLY}",
        ),
        (
            "diff --git a/pkg/x.bin b/pkg/x.bin\nindex 1111111..2222222 100644\nGIT binary patch\nliteral 1\n"
            "IcmZPo000310RR91\n\nliteral 0\nHcmV?d00001\n\n",
            f"{SHOWN}:7: a binary patch: a patch may change text files only; leave binary files out",
        ),
        (
            "diff --git a/pkg/x.bin b/pkg/x.bin\nindex 1111111..2222222 100644\n"
            "Binary files a/pkg/x.bin and b/pkg/x.bin differ\n",
            f"{SHOWN}:7: a binary patch: a patch may change text files only; leave binary files out",
        ),
        (
            "diff --git a/pkg/a.py b/../a.py\n",
            f"{SHOWN}:5: patches ../a.py, {OUTSIDE}",
        ),
        (  # GNU patch reads an unquoted name up to white space: `b/..`
            "diff --git a/pkg/a.py b/.. x\n",
            f"{SHOWN}:5: patches .., {OUTSIDE}",
        ),
        (
            "diff --git a/pkg/a.py b/pkg/a.py\n--- a/pkg/a.py\n+++ pkg/a.py\n@@ -1 +1 @@\n-a\n+b\n",
            f"{SHOWN}:7: 'pkg/a.py' is not under b/: make the patch with git format-patch (a/ and b/ prefixes)",
        ),
        (
            'diff --git a/pkg/a.py b/pkg/a.py\n--- a/pkg/a.py\n+++ "b/pkg/a\\n.py"\n@@ -1 +1 @@\n-a\n+b\n',
            f"{SHOWN}:7: file name 'pkg/a\\n.py' has a control character: rename the file",
        ),
        (
            'diff --git a/pkg/a.py b/pkg/a.py\n--- a/pkg/a.py\n+++ "b/pkg/a.py\n@@ -1 +1 @@\n-a\n+b\n',
            f'{SHOWN}:7: malformed quoted file name "b/pkg/a.py: make the patch with git format-patch',
        ),
        (
            'diff --git a/pkg/a.py b/pkg/a.py\n--- a/pkg/a.py\n+++ "b/pkg/\\9a.py"\n@@ -1 +1 @@\n-a\n+b\n',
            f'{SHOWN}:7: malformed quoted file name "b/pkg/\\9a.py": make the patch with git format-patch',
        ),
        (
            "diff --git a/pkg/a.py b/pkg/a.py\n--- a/pkg/a.py\n+++ b//etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
            f"{SHOWN}:7: patches /etc/passwd, {OUTSIDE}",
        ),
    ],
    ids=[
        "quoted-dot-dot",
        "rename-to-outside",
        "copy-to-outside",
        "rename-from-absolute",
        "new-symlink",
        "index-symlink",
        "deleted-symlink",
        "gitlink",
        "setuid-mode",
        "git-binary-patch",
        "binary-files-differ",
        "diff-git-outside",
        "diff-git-white-space",
        "no-b-prefix",
        "control-character",
        "unterminated-quote",
        "unknown-escape",
        "absolute-after-prefix",
    ],
)
def test_headers_leaving_the_tree_or_regular_files_are_refused(tmp_path, section, message):
    assert _refusal(tmp_path, _with_section(section)) == message


def test_a_header_in_the_commit_message_is_read_as_gnu_patch_would(tmp_path):
    """GNU patch looks for headers in all text outside hunks, the commit message included."""
    text = PATCH.replace("Subject: [PATCH] fix greeting\n", "Subject: [PATCH] fix greeting\n\nrename to ../x\n")
    assert _refusal(tmp_path, text) == f"{SHOWN}:4: patches ../x, {OUTSIDE}"


@pytest.mark.parametrize(
    "section",
    [
        'diff --git "a/pkg/\\"q\\\\t\\303\\251.py" "b/pkg/\\"q\\\\t\\303\\251.py"\nnew file mode 100644\n',
        "diff --git a/pkg/tool b/pkg/tool\nold mode 100644\nnew mode 100755\n",
        "diff --git a/pkg/old.py b/pkg/old.py\ndeleted file mode 100644\nindex 1111111..0000000\n",
        "diff --git a/pkg/a.py b/pkg/b.py\nsimilarity index 90%\nrename from pkg/a.py\nrename to pkg/b.py\n",
        "diff --git a/my file.py b/my file.py\nnew file mode 100755\n",
    ],
    ids=["quoted-name", "mode-644-to-755", "deletion", "rename-inside", "name-with-space"],
)
def test_headers_inside_the_tree_are_accepted(tmp_path, section):
    check_series(_series(tmp_path, _with_section(section)), tmp_path)


def test_hunk_lines_that_look_like_headers_are_content(tmp_path):
    """A hunk is read by its line counts, as GNU patch reads it: an added `++ b/../x` is content, not a header."""
    text = PATCH.replace('+    return "hello"\n', '+    return "hello"\n+++ b/../x\n').replace("+1,2", "+1,3")
    check_series(_series(tmp_path, text), tmp_path)


def test_gnu_patch_makes_the_symlink_the_check_refuses(tmp_path):
    """Why mode 120000 is refused: GNU patch creates the link, pointing wherever the patch says."""
    tree = tmp_path / "tree"
    tree.mkdir()
    patch = tmp_path / "link.patch"
    patch.write_text(
        "diff --git a/l b/l\nnew file mode 120000\nindex 0000000..1111111\n--- /dev/null\n+++ b/l\n"
        "@@ -0,0 +1 @@\n+../../outside\n\\ No newline at end of file\n"
    )
    subprocess.run(["patch", "-p1", "--batch", "-i", str(patch)], cwd=tree, check=True, capture_output=True)
    assert (tree / "l").is_symlink() and str((tree / "l").readlink()) == "../../outside"


def test_prose_in_the_commit_message_is_not_a_header(tmp_path):
    message = "new mode of operation, see below\nrename to the new name\n--- /dev/null\t2020-01-01\n"
    check_series(_series(tmp_path, PATCH.replace("\n---\n", "\n" + message + "---\n", 1)), tmp_path)
