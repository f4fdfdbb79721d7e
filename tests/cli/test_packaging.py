"""The wheel installs everything under the `toccata` namespace and works outside the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]  # tests/cli/test_packaging.py


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a clean copy of the sources: setuptools leaves a build/ folder whose stale files could leak in.
    source = tmp_path_factory.mktemp("src") / "toccata"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "out", "*.egg-info"))
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
        cwd=out,
    )
    (out / "build.log").write_text(built.stdout + built.stderr)
    (path,) = out.glob("toccata-*.whl")
    return path


@pytest.mark.slow
def test_the_build_warns_about_nothing_of_ours(wheel):
    """setuptools warned six times on every install that the checkpoint folders (data with .py copies) "would be
    ignored" as packages; `make run` printed them all."""
    log = (wheel.parent / "build.log").read_text()
    assert "would be ignored" not in log and "BuildBackendWarning" not in log, log[-3000:]


@pytest.mark.slow
def test_wheel_has_one_top_level_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"toccata", next(t for t in top_level if t.endswith(".dist-info"))}
    modules = ["tokenization/tokenization_notewise.py", "tokenization/midi_io.py", "modeling/__init__.py", "rendering/audio.py"]
    for module in modules:
        assert f"toccata/{module}" in names
    assert not any(name.startswith(("tests/", "benchmarks/", "modeling/", "demo/")) for name in names)
    root = REPO
    embedded = {  # every file of the embedded checkpoints travels (a critic's evaluation/ folder once did not)
        f"toccata/{path.relative_to(root / 'toccata').as_posix()}"
        for path in (root / "toccata" / "checkpoints").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "toccata/checkpoints/default/evaluation/composer_control/guidance-3.md" in embedded  # two folders deep
    assert embedded <= set(names), sorted(embedded - set(names))


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_imports_from_outside_the_repo(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The heavy dependencies (torch, transformers ...) come from this environment's site-packages as a plain path:
    # a .pth path entry does not run that environment's own .pth files, so its editable `toccata` stays invisible.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "parent_env_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import toccata.tokenization as t, importlib.util;"
        "print(t.__file__);"
        "print(importlib.util.find_spec('modeling'), importlib.util.find_spec('tokenization'));"
        "tok = t.NotewiseTokenizer();"
        "print(' '.join(tok.midi_to_tokens(tok.tokens_to_midi('p60 wait12 endp60').dumps_midi())))"
    )
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    module_file, specs, tokens = result.stdout.strip().splitlines()
    assert Path(module_file).is_relative_to(venv), module_file
    assert specs == "None None"
    assert tokens == "p60 wait12 endp60"
    cli = subprocess.run([str(venv / "bin" / "toccata"), "--help"], capture_output=True, text=True, cwd=elsewhere)
    assert cli.returncode == 0 and "tokenize" in cli.stdout
    piece = elsewhere / "piece.mid"
    command = [str(venv / "bin" / "toccata"), "generate", "--beats", "4", "--no-audio", "-o", str(piece)]
    composed = subprocess.run(command, capture_output=True, text=True, cwd=elsewhere)
    assert composed.returncode == 0 and piece.stat().st_size > 0, composed.stderr  # the default checkpoint, installed


@pytest.mark.parametrize("where", ["beside a clone named toccata", "the repository root", "the toccata/ folder"])
def test_the_installed_package_imports_the_same_from_the_working_directory(where, tmp_path):
    """A folder named toccata in the working directory (the clone, seen from its parent; the package folder, seen
    from the repository root) must not hide the installed package: with setuptools' default editable install it did
    (`cannot import name 'default_checkpoint' from 'toccata' (unknown location)`)."""
    if where == "beside a clone named toccata":
        (tmp_path / "toccata").symlink_to(REPO, target_is_directory=True)  # what `git clone .../toccata` leaves
        cwd = tmp_path
    else:
        cwd = REPO if where == "the repository root" else REPO / "toccata"
    script = "import toccata.modeling, toccata.look; from toccata import default_checkpoint; print('ok')"
    imported = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd)
    assert imported.returncode == 0 and imported.stdout.strip() == "ok", imported.stderr[-2000:]
    cli = subprocess.run([sys.executable, "-m", "toccata", "--help"], capture_output=True, text=True, cwd=cwd)
    assert cli.returncode == 0 and "tokenize" in cli.stdout, cli.stderr[-2000:]
    look = subprocess.run(
        [sys.executable, "-m", "toccata", "look", "--help"], capture_output=True, text=True, cwd=cwd
    )
    assert look.returncode == 0 and "--dataset" in look.stdout, look.stderr[-2000:]
