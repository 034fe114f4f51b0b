"""What a newcomer installs works: the sdist and the wheel build, the wheel carries the
SQL, and the wheel with each extra installs into a fresh virtual environment whose
``pgq --help`` and ``pgq demo`` run from outside the checkout. Every ``pip install``
line in the docs installs this project, never the index's unrelated ``pgqueue``/``pgq``.

The extras' dependencies are fetched once into a wheelhouse (kept in pytest's cache
between runs); each environment then installs from it with ``--no-index``. The core
is installed once; each extra's environment is fresh, sees the core's packages and
installs only the extra's own dependencies (``embedded`` gets a whole environment of
its own, for the README's ``pip install ... && pgq demo``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import pgqueue

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NAME = "pgqueue-tasks"
# dev is the checkout's test tool set, installed editable (README, Development).
EXTRAS = sorted(set(PYPROJECT["project"]["optional-dependencies"]) - {"dev"})
# What each extra is for, imported in its environment (a new extra must be added here).
PROBES = {
    "embedded": "import pgserver",
    "metrics": "import prometheus_client, pgqueue.metrics",
    "opentelemetry": "import pgqueue.contrib.opentelemetry",
    "flask": "import pgqueue.contrib.flask",
    "examples": "import aiosmtpd, PIL, fpdf, zoneinfo; zoneinfo.ZoneInfo('Europe/Paris')",
    "django": "import django, pgqueue.contrib.django",
    "fastapi": "import pgqueue.contrib.fastapi",
    "dashboard": "import starlette, jinja2, uvicorn, pgqueue.dashboard.factory",
}


def _pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # The sdist first, then the wheel built from the unpacked sdist: both must work.
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("pgqueue_tasks-*.whl")
    (sdist,) = out.glob("pgqueue_tasks-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def wheelhouse(dist: dict[str, Path], request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of every extra's dependencies, fetched once (again only when they change)."""
    key = hashlib.sha256(repr(PYPROJECT["project"]["dependencies"]).encode() + repr(
        PYPROJECT["project"]["optional-dependencies"]).encode()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    house = (Path(cache.mkdir(f"wheelhouse-{key}")) if cache is not None
             else tmp_path_factory.mktemp("wheelhouse"))
    wanted = f"{dist['wheel']}[{','.join(EXTRAS)}]"
    offline = _pip("wheel", "-q", "--no-index", "--find-links", str(house),
                   "--wheel-dir", str(house), wanted)
    if offline.returncode != 0:
        online = _pip("wheel", "-q", "--wheel-dir", str(house), wanted, timeout=600)
        assert online.returncode == 0, online.stderr[-3000:]
    return house


def test_wheel_and_sdist_carry_the_sql_and_the_names(dist, tmp_path):
    wheel = zipfile.ZipFile(dist["wheel"])
    names = wheel.namelist()
    assert "pgqueue/sql/migrations/0001_initial.sql" in names
    assert "pgqueue/sql/queries/jobs.sql" in names
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = wheel.read(metadata).decode()
    assert f"Name: {NAME}\n" in text and f"Version: {pgqueue.__version__}\n" in text
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "pgq = pgqueue.cli:main" in wheel.read(entry_points).decode()
    assert {n.split("/")[0] for n in names if not n.startswith("pgqueue_tasks-")} == {"pgqueue"}
    with tarfile.open(dist["sdist"]) as sdist:
        members = sdist.getnames()
    top = members[0].split("/")[0]
    assert f"{top}/sql/migrations/0001_initial.sql" in members
    assert f"{top}/pyproject.toml" in members


def _venv(path: Path, dist: dict[str, Path], wheelhouse: Path, extra: str = "",
          core: Path | None = None) -> Path:
    """A fresh environment with the wheel (and ``extra``). With ``core``, that core
    environment's packages are on its path (a .pth file), so only the extra's own
    dependencies are installed here, and nothing another extra brought is seen."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=120)
    python = path / "bin" / "python"
    if core is not None:
        (_site(path) / "_pgqueue_core.pth").write_text(f"{_site(core)}\n")
    spec = f"{dist['wheel']}[{extra}]" if extra else str(dist["wheel"])
    done = _pip("--python", str(python), "install", "-q", "--no-compile", "--no-index",
                "--find-links", str(wheelhouse), spec)
    assert done.returncode == 0, done.stderr[-3000:]
    return path


def _site(venv: Path) -> Path:
    return Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())


def _outside(venv: Path, tmp_path: Path, *argv: str, **env: str) -> str:
    """Run a command of the venv from a folder outside the checkout, with nothing of the
    checkout on the path."""
    here = tmp_path / "elsewhere"
    here.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PGQ_", "PYTHON", "VIRTUAL_ENV"))}
    clean["PATH"] = f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}"
    done = subprocess.run(argv, cwd=here, env={**clean, **env}, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def core(dist, wheelhouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("core") / "venv", dist, wheelhouse)


def test_the_core_wheel_runs_pgq_and_finds_its_sql(core, tmp_path):
    probe = ("import pgqueue, pgqueue.sql as s, pgqueue.migrate as m; print(pgqueue.__file__);"
             "print(s.sql_dir()); print(len(s.queries('pgqueue'))); print(len(m.available()))")
    where, sql_dir, n_queries, n_migrations = _outside(
        core, tmp_path, str(core / "bin" / "python"), "-c", probe).split()
    assert where.startswith(str(core)) and sql_dir.startswith(str(core))
    assert int(n_queries) > 5 and int(n_migrations) >= 1
    assert "Commands:" in _outside(core, tmp_path, "pgq", "--help")
    assert pgqueue.__version__ in _outside(core, tmp_path, "pgq", "--version")


@pytest.fixture(scope="module")
def envs(dist, wheelhouse, core, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """{extra: its environment, or why it failed to install}, two installs at a time
    (they wait mostly on unpacking, and CI has two cores)."""
    base = tmp_path_factory.mktemp("extras")

    def build(extra: str) -> Path | str:
        try:
            if extra == "embedded":  # the README's first line exactly: a whole environment
                return _venv(base / extra, dist, wheelhouse, extra)
            return _venv(base / extra, dist, wheelhouse, extra, core=core)
        except (AssertionError, subprocess.SubprocessError) as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(EXTRAS, pool.map(build, EXTRAS), strict=True))


@pytest.mark.parametrize("extra", EXTRAS)
def test_the_wheel_with_each_extra_installs(extra, envs, tmp_path):
    assert extra in PROBES, f"extra {extra!r}: say in PROBES what it is for"
    venv = envs[extra]
    assert isinstance(venv, Path), venv
    python = str(venv / "bin" / "python")
    _outside(venv, tmp_path, python, "-c", PROBES[extra])
    assert "Commands:" in _outside(venv, tmp_path, python, "-m", "pgqueue.cli", "--help")
    if extra == "embedded":  # pgq demo with no server configured at all
        out = _outside(venv, tmp_path, "pgq", "demo", PGQ_HOME=str(tmp_path / "pgqueue"))
        assert "That's the whole flow." in out, out


# -- every install line in the docs -------------------------------------------------------

DOCS = ["README.md", "Dockerfile", *sorted(str(p.relative_to(ROOT)) for p in
                                           [*ROOT.glob("docs/*.md"),
                                            *ROOT.glob("examples/*/README.md")])]
_INSTALL = re.compile(r"pip install ([^`\n#&;]+)")
_LOCAL = re.compile(r"^(\.|\.\./\.\.)(?:\[([\w,]+)\])?$")


def install_lines() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for m in _INSTALL.finditer((ROOT / doc).read_text()):
            found.append((doc, m.group(1).strip()))
    return found


def test_docs_have_install_lines():
    assert len(install_lines()) > 10


@pytest.mark.parametrize("doc, line", install_lines())
def test_each_install_line_installs_this_project(doc, line):
    """From the checkout (``-e '.[extra]'`` at the root, ``'../..[extra]'`` from an example's
    folder), with extras that exist; third-party names only besides; never the index's
    unrelated ``pgqueue`` or ``pgq``, nor this project by a name not published yet."""
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    words = [w for w in shlex.split(line) if not w.startswith("-")]
    assert words, line
    for word in words:
        local = _LOCAL.match(word)
        if local:
            if local.group(1) == "../..":  # from the folder the doc is in
                assert ((ROOT / doc).parent / "../..").resolve() == ROOT, f"{doc}: {line}"
            assert set((local.group(2) or "").split(",")) - {""} <= extras, f"{doc}: {line}"
            continue
        name = re.split(r"[\[=<>~!;]", word)[0].lower().replace("_", "-")
        assert name not in {"pgqueue", "pgq", NAME, "pg-queue"}, \
            f"{doc}: {line!r} installs {name} from the index"
