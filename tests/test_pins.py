"""Dependency pins: upper bounds where we rely on a library's internals, the torch trio pinned by constraints.txt
(which setup.sh installs with), and the installed environment inside both."""

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
TORCH_TRIO = ("torch", "torchvision", "torchaudio")
# libraries whose internals or behaviour the code relies on: each needs an upper bound
RELIED_ON = ("lightning", "torchmetrics", "jsonargparse", "webdataset", "torchdata", "transformers", "tokenizers",
             "safetensors", "numpy", "open-clip-torch", "jiwer", "whisper-normalizer", "pycocoevalcap", "resemblyzer",
             "encodec", "gradio", "torch-fidelity", *TORCH_TRIO)


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name: Requirement(r) for r in project["dependencies"]}


def constraints() -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()]
    return {Requirement(line).name: Requirement(line) for line in lines if line}


def has_upper_bound(req: Requirement) -> bool:
    return any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier)


@pytest.mark.parametrize("name", RELIED_ON)
def test_relied_on_libraries_are_bounded_above(name):
    assert has_upper_bound(requirements()[name]), f"{name}: give pyproject.toml an upper bound"


def test_torch_trio_is_a_range_in_the_package_and_exact_in_constraints():
    deps, pins = requirements(), constraints()
    for name in TORCH_TRIO:
        assert not any(s.operator == "==" for s in deps[name].specifier), f"{name}: exact pins go in constraints.txt"
        (pin,) = pins[name].specifier
        assert pin.operator == "==" and pin.version in deps[name].specifier, (name, pin, deps[name])
        installed = Version(version(name)).base_version  # a local build tag (+cu130) is the same release
        assert installed == pin.version, f"{name} {installed} is installed, constraints.txt pins {pin.version}"


def test_setup_and_ci_install_with_the_constraints_and_key_their_caches_on_them():
    setup = (ROOT / "setup.sh").read_text()
    assert re.search(r"pip install .*-c constraints\.txt .*-e '\.\[dev\]'", setup)
    for script in (setup, (ROOT / ".ci/run").read_text()):
        assert "cat pyproject.toml constraints.txt | sha256sum" in script
