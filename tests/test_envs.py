"""The declared software environment can run every rule: each third-party module that a
rule script, the Snakefile or the package imports (at any depth) is provided by
envs/lensfinder.yaml, the one environment every rule names, and by pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys

import yaml

from conftest import REPO

# import name -> conda-forge / PyPI distribution name, where they differ
DISTRIBUTION = {"torch": "pytorch", "sklearn": "scikit-learn", "yaml": "pyyaml", "astropy_healpix": "astropy-healpix",
                "matplotlib": "matplotlib-base", "snakemake": "snakemake-minimal"}
PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib", "snakemake-minimal": "snakemake"}


def imported_modules() -> set[str]:
    files = [*REPO.glob("src/lensfinder/**/*.py"), *REPO.glob("workflow/scripts/*.py"), REPO / "Snakefile"]
    names = set()
    for f in files:
        source = f.read_text()
        if f.name == "Snakefile":  # Snakemake syntax: keep the Python import lines
            source = "\n".join(line for line in source.splitlines() if line.startswith(("import ", "from ")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("lensfinder", "__future__")}


def env_packages() -> set[str]:
    env = yaml.safe_load((REPO / "envs/lensfinder.yaml").read_text())
    return {re.split(r"[<>=!\s]", d)[0] for d in env["dependencies"] if isinstance(d, str)}


def test_every_rule_names_the_one_environment():
    for smk in REPO.glob("workflow/rules/*.smk"):
        envs = re.findall(r"conda:\s*\n\s*\"([^\"]+)\"", smk.read_text())
        assert set(envs) <= {"../../envs/lensfinder.yaml"}, smk.name
    assert sorted(p.name for p in REPO.glob("envs/*.yaml")) == ["lensfinder.yaml"]


def test_the_environment_provides_every_imported_module():
    mods = imported_modules()
    assert {"numpy", "torch", "timm", "astropy", "astropy_healpix", "matplotlib", "yaml"} <= mods  # the scan works
    missing = sorted(m for m in mods if DISTRIBUTION.get(m, m) not in env_packages())
    assert missing == [], f"imported but not in envs/lensfinder.yaml: {missing}"


def test_pyproject_and_the_conda_environment_list_the_same_runtime_dependencies():
    text = (REPO / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    pyproject = {re.split(r"[<>=!\[\s]", d)[0].lower() for d in re.findall(r'"([^"]+)"', deps)}
    conda = {PYPI.get(p, p) for p in env_packages() - {"python", "cuda-version"}}
    assert pyproject == conda
