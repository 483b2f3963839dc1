"""The GitHub contract files here are verbatim copies of the shared contract set.

CI may not have `../shared`; there the copies are checked against their own manifest only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
SHARED = REPO_ROOT.parent / "shared" / "contracts" / "github"
COPIED = sorted(p.name for p in HERE.iterdir() if p.suffix in (".json", ".md"))


def test_the_copy_holds_every_manifest_file_with_its_recorded_hashes() -> None:
    manifest = json.loads((HERE / "manifest.json").read_text())["files"]
    assert {e["file"] for e in manifest} | {"manifest.json", "README.md"} == set(COPIED)
    for entry in manifest:
        data = (HERE / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert blob == entry["git_blob_sha1"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/contracts/github here")
def test_copies_are_byte_identical_to_the_shared_contracts() -> None:
    shared = sorted(p.name for p in SHARED.iterdir() if p.is_file())
    assert shared == COPIED
    for name in shared:
        assert (HERE / name).read_bytes() == (SHARED / name).read_bytes(), name
