"""Real PostgreSQL and MLflow servers for tests: loopback only, in a temporary folder, stopped after."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _as_postgres_user(folder: Path) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the `postgres` user then."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam("postgres")
    shutil.chown(folder, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def postgres(tmp: Path, databases=("optuna", "mlflow")):
    """Yield {name: URL} for fresh databases on a PostgreSQL server at 127.0.0.1:<free port>."""
    import psycopg

    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    # a folder of its own under /tmp: the postgres user cannot enter pytest's private tmp folders
    root = Path(tempfile.mkdtemp(prefix="vae-pg-"))
    prefix = _as_postgres_user(root)
    data, port = root / "data", free_port()
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "vae", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    opts = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60", "start"],
                   check=True, capture_output=True, timeout=90)
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="vae", dbname="postgres", autocommit=True) as conn:
            for name in databases:
                conn.execute(f"CREATE DATABASE {name}")
        yield {name: f"postgresql://vae@127.0.0.1:{port}/{name}" for name in databases}
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def mlflow_server(backend_uri: str, tmp: Path):
    """Yield the URL of `mlflow server` on 127.0.0.1:<free port>, artifacts served from tmp."""
    port = free_port()
    log = open(tmp / "mlflow-server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
         "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start: " + (tmp / "mlflow-server.log").read_text()[-2000:])
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        log.close()
