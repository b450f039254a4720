"""Every shell command in the bash blocks of the README and of docs/*.md runs as written, in a copy of this
checkout (dry-run, ``-n``, where the real run takes minutes; real DR10 commands against a
mock sky written in the DR10 tree layout under ``$LEGACY_SURVEY_DIR``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.workflow


GUIDE = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def readme_commands(pages=GUIDE) -> list[str]:
    """The commands of ``pages``' bash blocks, in order, each once."""
    cmds: dict[str, str] = {}  # the command without its comment -> as first written
    for page in pages:
        blocks = re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", page.read_text(), re.S | re.M)
        for line in (line.strip() for block in blocks for line in block.splitlines()):
            if line and not line.startswith("#"):
                cmds.setdefault(" ".join(line.split(" #")[0].split()), line)
    return list(cmds.values())


# Commands whose real run takes minutes or more: executed with Snakemake's dry run.
LONG = ("make demo", "make check", "compare report", "--profile workflow/profiles/slurm-gh200", "real_lenses",
        "config/finder.yaml")


def as_run(cmd: str) -> str:
    """The command as the test runs it: as written, or as a dry run when it is long."""
    if not any(key in cmd for key in LONG):
        return cmd
    bare = cmd.split(" #")[0].rstrip()
    if bare.startswith("make check"):  # its tests run in `make test`; the target is checked with make's dry run
        return "make -n check"
    if bare.startswith("make demo"):
        return f"{bare} SNAKEMAKE_FLAGS=-n"
    return f"{bare} -n"


def test_the_readme_has_the_commands_we_run():
    cmds = readme_commands([REPO / "README.md"])
    assert cmds[:3] == ["make demo   # creates .venv, installs, runs `snakemake --cores all train_gen3` on the mock sky",
                        "make test   # same install, then the test suite (pytest)",
                        "make check  # between edits: the workflow lint and the fast tests (not marked slow or workflow)"]
    assert any("--configfile config/dr10.yaml" in c for c in cmds)
    assert len((REPO / "README.md").read_text().splitlines()) <= 250  # a guide; the detail lives in docs/


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, mock_sky):
    """A copy of the tracked (and new, not ignored) files, the installed .venv linked in,
    and a DR10 tree ($LEGACY_SURVEY_DIR/south/{sweep/10.1,coadd}) holding the mock sky."""
    root = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, root / f)  # keeps mtimes: make sees the install as up to date
    (root / ".venv").symlink_to(REPO / ".venv")
    # The .venv is shared: a `make` in the copy must never reinstall into it (an editable
    # install from the copy would point the suite's own package at this temporary tree).
    stamp = REPO / ".venv/.lensfinder-installed"
    if stamp.exists():
        for f in ("pyproject.toml", "envs/pip-constraints.txt"):
            t = min((root / f).stat().st_mtime, stamp.stat().st_mtime)
            os.utime(root / f, (t, t))
    dr10 = tmp_path_factory.mktemp("dr10")
    (dr10 / "south/sweep").mkdir(parents=True)
    shutil.copytree(mock_sky.sweep_dir, dr10 / "south/sweep/10.1")
    shutil.copytree(mock_sky.photoz[0].parent, dr10 / "south/sweep/10.1-photo-z")
    shutil.copytree(mock_sky.coadd_dir, dr10 / "south/coadd")
    return root, dr10


@pytest.mark.parametrize("cmd", readme_commands())
def test_readme_command_runs_as_written(cmd, checkout):
    root, dr10 = checkout
    if cmd.startswith("make test"):
        ci = (REPO / ".ci/run").read_text()
        assert "make test" in ci
        pytest.skip("`make test` is the command running this suite (CI runs it: .ci/run)")
    env = {**os.environ, "LEGACY_SURVEY_DIR": str(dr10)}
    proc = subprocess.run(["bash", "-c", as_run(cmd)], cwd=root, env=env, capture_output=True, text=True,
                          timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{as_run(cmd)}\n{out[-4000:]}"
    if "parent_lrg" in cmd and "dr10.yaml" in cmd:
        assert (root / "results/phase3/parent_lrg.parquet").exists()
