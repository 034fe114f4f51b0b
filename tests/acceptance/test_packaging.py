"""The SQL ships inside the wheel and an installed package finds it there."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_sql_and_installed_package_finds_it(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("pgqueue-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pgqueue/sql/migrations/0001_initial.sql" in names
    assert "pgqueue/sql/queries/jobs.sql" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                    "--target", str(target), str(wheel)], check=True, timeout=300)
    probe = ("import pgqueue.sql as s, pgqueue.migrate as m;"
             "print(s.sql_dir()); print(len(s.queries('pgqueue'))); print(len(m.available()))")
    out = subprocess.run([sys.executable, "-c", probe], env={"PYTHONPATH": str(target)},
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    where, n_queries, n_migrations = out.split()
    assert where.startswith(str(target))
    assert int(n_queries) > 5 and int(n_migrations) >= 1
