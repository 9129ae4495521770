"""Every kind of bad input we know of: one line, exit 2, nothing created, no password printed.

Each case names the input (the command line and what its folder holds) and the first words of
the message. The test runs it with the `vae` command in process, in a folder of its own, and
checks that afterwards the folder holds exactly what it held before. Issue 14 listed the kinds;
add a row for each new one.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_image_folder

from pipelines.cli import cli
from vae.redact import redact

# its module-scoped fixtures are built once: `make test` keeps the module on one test process
pytestmark = pytest.mark.xdist_group("bad_input")

SECRET = "PASSWORD"  # in every URL that carries a password below; never in any output
SPEC = """study: bad
dataset: digits
data_dir: {data}
limit: 64
width: 4
epochs: 1
batch_size: 32
iw_samples: 0
device: cpu
search:
  z_dim: [2]
  beta: [0.1]
"""
TRAIN = ["train", "--dataset", "digits", "--data-dir", "{data}", "--limit", "64", "--z-dim", "2", "--width", "4",
         "--epochs", "1", "--batch-size", "32", "--iw-samples", "0", "--no-progress", "--device", "cpu"]
SWEEP = ["sweep", "spec.yaml", "--no-progress"]
PG = "postgresql://vae:" + SECRET + "@127.0.0.1:{closed}/vae"  # a server that is not there


def write(path: str, data: bytes | str = b"") -> Callable:
    def setup(folder: Path, monkeypatch) -> None:
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data) if isinstance(data, bytes) else target.write_text(data)
    return setup


def checkpoint(z_dim=2, width=4, dataset="digits") -> Callable:
    """A run folder `run/` with the checkpoint of an untrained digits model (no training needed)."""
    def setup(folder: Path, monkeypatch) -> None:
        import torch

        from vae.checkpoint import save_checkpoint
        from vae.config import TrainConfig
        from vae.model import VAE

        model = VAE(1, 8, 8, z_dim=z_dim, base=width)
        (folder / "run").mkdir()
        save_checkpoint(folder / "run", model=model, optimizer=torch.optim.Adam(model.parameters()), epoch=1,
                        history=[], config=TrainConfig(dataset=dataset, data_dir="cache", z_dim=z_dim, width=width,
                                                        epochs=1))
    return setup


def corrupt_first_image(folder: Path, monkeypatch) -> None:
    make_image_folder(folder / "images", n_per_class=2)
    (folder / "images" / "train" / "a" / "0.png").write_bytes(b"\x89PNG broken")  # the first, sorted


def mixed_folder(folder: Path, monkeypatch) -> None:
    """train/ holds 16x16 RGB images, test/ 8x8 grey ones."""
    make_image_folder(folder / "images", n_per_class=2, size=(16, 16), splits=("train",))
    make_image_folder(folder / "images", n_per_class=2, size=(8, 8), mode="L", splits=("test",))


def changed_folder(folder: Path, monkeypatch) -> None:
    """A run trained on 8x8 grey images of folder:images, which now holds 16x16 RGB ones."""
    checkpoint(dataset="folder:images")(folder, monkeypatch)
    make_image_folder(folder / "images", n_per_class=2, size=(16, 16))


def runs_dir_is_a_file(folder: Path, monkeypatch) -> None:
    (folder / "afile").write_text("")
    monkeypatch.setenv("VAE_RUNS_DIR", "afile")


def offline(folder: Path, monkeypatch) -> None:
    from urllib.error import URLError

    import torchvision.datasets.mnist

    def no_network(*args, **kwargs):
        raise URLError("no network (test)")
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", no_network)


STORES: dict[str, Path] = {}  # "optuna.db" / "mlflow.db": real stores, made once (the `stores` fixture)


def swapped(folder: Path, monkeypatch) -> None:
    """mlruns/ holding a real Optuna storage and a real MLflow tracking store, as a sweep leaves them."""
    import shutil

    (folder / "mlruns").mkdir()
    for name, path in STORES.items():
        shutil.copyfile(path, folder / "mlruns" / name)


def link(name: str, target: str, make: bool = True) -> Callable:
    def setup(folder: Path, monkeypatch) -> None:
        if make:
            (folder / target).mkdir()
        (folder / name).symlink_to(folder / target)
    return setup


def unreadable(folder: Path, monkeypatch) -> None:
    """An image folder whose train/ cannot be listed (as a user without the permission; root reads all)."""
    import vae.data

    make_image_folder(folder / "imgs")
    real = os.walk

    def walk(top, onerror=None, **kw):
        if str(top).endswith("train") and onerror is not None:
            onerror(PermissionError(13, "Permission denied", str(top)))
            return
        yield from real(top, onerror=onerror, **kw)

    monkeypatch.setattr(vae.data.os, "walk", walk)


def one_image(folder: Path, monkeypatch) -> None:
    make_image_folder(folder / "one", n_per_class=1, splits=("",))
    (folder / "one" / "b" / "0.png").unlink()
    (folder / "dd").mkdir()


def pinned(folder: Path, monkeypatch) -> None:
    """An MLflow store whose experiment `bad` an earlier version created at foo://bar/bad."""
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{folder / 'pinned.db'}").create_experiment("bad", artifact_location="foo://bar/bad")


MLFLOW_DB, OPTUNA_DB = "sqlite:///mlruns/mlflow.db", "sqlite:///mlruns/optuna.db"
AS_STORAGE = f"{MLFLOW_DB} is an MLflow tracking store, not an Optuna storage: pass it as --tracking-uri"
AS_TRACKING = f"{OPTUNA_DB} is an Optuna storage, not an MLflow tracking store: pass it as --storage"


@dataclass
class Case:
    name: str
    argv: list[str]   # {data}: a data folder with digits cached; {closed}: a port nobody listens on
    message: str      # the first words after "error: "
    setup: Callable | None = None
    usage: bool = False  # click's own usage error, as one line too


UNWRITABLE = "/proc/vae-bad-input"  # even root cannot create files in /proc

CASES = [
    # --- data -----------------------------------------------------------------------------
    Case("corrupt first image, train", [*TRAIN, "--dataset", "folder:images"], "cannot decode image images/train/a/0.png",
         corrupt_first_image),
    Case("corrupt first image, sweep", [*SWEEP, "--set", "dataset=folder:images"], "cannot decode image", corrupt_first_image),
    Case("--data-dir is a file, train", [*TRAIN, "--data-dir", "afile"], "--data-dir afile is a file", write("afile")),
    Case("data_dir is a file, sweep", [*SWEEP, "--set", "data_dir=afile"], "--data-dir afile is a file", write("afile")),
    Case("offline download", [*TRAIN, "--dataset", "mnist", "--data-dir", "downloads"], "could not download mnist", offline),
    Case("train/ RGB 16x16, test/ grey 8x8, train", [*TRAIN, "--dataset", "folder:images"],
         "image folder 'images': train/ holds 16×16 RGB images, test/ 8×8 grey", mixed_folder),
    Case("train/ RGB 16x16, test/ grey 8x8, sweep", [*SWEEP, "--set", "dataset=folder:images"],
         "image folder 'images': train/ holds 16×16 RGB images, test/ 8×8 grey", mixed_folder),
    Case("evaluate after the folder changed format", ["evaluate", "run"],
         "run was trained on images of shape (1, 8, 8) (channels, height, width); --dataset folder:images now holds "
         "(3, 16, 16)", changed_folder),
    # --- rejected before the data is decoded: no decoded-data cache left in a fresh data_dir ----------
    Case("unreachable storage, fresh data_dir", [*SWEEP, "--set", "data_dir=fresh", "--storage", PG],
         "cannot use Optuna storage postgresql://vae:***@"),
    Case("unreachable tracking store, fresh data_dir", [*SWEEP, "--set", "data_dir=fresh", "--tracking-uri", PG],
         "cannot use tracking store postgresql://vae:***@"),
    Case("malformed tracking URI, fresh data_dir", [*SWEEP, "--set", "data_dir=fresh", "--tracking-uri", "foo://x"],
         "cannot use tracking store foo://x"),
    Case("unusable device, fresh data_dir", [*SWEEP, "--set", "data_dir=fresh", "--set", "device=cuda:99"],
         "device 'cuda:99' is not usable here"),
    Case("VAE_RUNS_DIR is a file", [*SWEEP], "VAE_RUNS_DIR afile is a file", runs_dir_is_a_file),
    Case("300-character study name", [*SWEEP, "--set", "study=" + "s" * 300],
         "--set study=" + "s" * 34 + "...: study name " + "s" * 20 + "... is 300 characters long; at most 120"),
    # --- run and report folders -----------------------------------------------------------
    Case("train --out is a file", [*TRAIN, "--out", "afile"], "--out afile is a file", write("afile")),
    Case("train --out below a file", [*TRAIN, "--out", "afile/run"], "--out afile/run lies below afile", write("afile")),
    # a folder of yours that shares names a run writes (metrics.json, recon.png): refused, every file untouched
    Case("train --out holds your files", [*TRAIN, "--out", "mine"],
         "--out mine holds files a run did not write (.env, metrics.json, photo.jpg)",
         lambda tmp, mp: [write(f"mine/{name}", b"yours")(tmp, mp) for name in (".env", "metrics.json", "photo.jpg")]),
    Case("train --out unwritable", [*TRAIN, "--out", f"{UNWRITABLE}/run"], f"--out {UNWRITABLE}/run: cannot write"),
    Case("report --out is a file", ["report", "--study", "bad", "--out", "afile"], "--out afile is a file", write("afile")),
    Case("report --out unwritable", ["report", "--study", "bad", "--out", UNWRITABLE], f"--out {UNWRITABLE}: cannot write"),
    Case("report --out holds other files", ["report", "--study", "bad", "--out", "full"],
         "--out full holds files a report did not write (mine.txt)", write("full/mine.txt", "keep")),
    Case("export OUT is a file", ["export", "--study", "bad", "afile"], "OUT afile is a file", write("afile")),
    Case("export OUT is a folder with files", ["export", "--study", "bad", "full"], "OUT full is a folder that is not empty",
         write("full/mine.txt", "keep")),
    # --- checkpoints ----------------------------------------------------------------------
    Case("resume with another --z-dim", [*TRAIN, "--out", "run", "--resume", "--z-dim", "3"],
         "cannot resume run: its checkpoint has z_dim 2, --z-dim asks for 3", checkpoint()),
    Case("resume with another --width", [*TRAIN, "--out", "run", "--resume", "--width", "8"],
         "cannot resume run: its checkpoint has width 4, --width asks for 8", checkpoint()),
    Case("evaluate a random-bytes checkpoint", ["evaluate", "run"], "cannot read checkpoint run/checkpoint.pt",
         write("run/checkpoint.pt", os.urandom(4096))),
    Case("evaluate --iw-samples -1", ["evaluate", "run", "--iw-samples", "-1"], "iw_samples must be >= 0", checkpoint()),
    # --- specs and settings ---------------------------------------------------------------
    Case("binary spec file", ["sweep", "binary.yaml"], "binary.yaml: not a text file", write("binary.yaml", b"\xff\xfe\x00\x81" * 64)),
    Case("NaN in a grid", [*SWEEP, "--set", "search.beta=[.nan]"], "--set search.beta=[.nan]: Input should be a finite number"),
    Case("inf in a range", [*SWEEP, "--set", "search.beta={low: 0.1, high: .inf}", "--set", "sampler=random",
                            "--set", "n_trials=2"], "--set search.beta={low: 0.1, high: .inf}: search.beta.high: Input should be a finite number"),
    Case("inf learning rate in a spec", [*SWEEP, "--set", "lr=.inf"], "--set lr=.inf: lr must be a finite number"),
    Case("train --beta inf", [*TRAIN, "--beta", "inf"], "beta must be a finite number"),
    Case("train --beta nan", [*TRAIN, "--beta", "nan"], "beta must be a finite number"),
    Case("train --lr inf", [*TRAIN, "--lr", "inf"], "lr must be a finite number"),
    Case("train --conditioning without --betas", [*TRAIN, "--conditioning", "mrvae"],
         "conditioning applies to a conditional model only: it needs betas"),
    Case("train --beta-span narrower than --betas", [*TRAIN, "--betas", "0.1,0.001", "--beta-span", "10"],
         "beta_span 10.0 is narrower than betas (max / min = 100)"),
    Case("conditioning in an independent spec", [*SWEEP, "--set", "conditioning=mrvae"],
         "spec.yaml: spec: conditioning is a setting of mode 'conditional'; set mode: conditional"),
    Case("epochs=true", [*SWEEP, "--set", "epochs=true"], "--set epochs=true: epochs must be of type int, got True"),
    Case("z_dim=[true]", [*SWEEP, "--set", "search.z_dim=[true]"], "--set search.z_dim=[true]: Input should be a valid integer"),
    Case("duplicate grid values", [*SWEEP, "--set", "search.z_dim=[2,2]"], "--set search.z_dim=[2,2]: lists 2 more than once"),
    Case("sweep --threads 0", [*SWEEP, "--threads", "0"], "threads must be >= 1"),
    Case("study name ..", [*SWEEP, "--set", "study=.."], "--set study=..: study name '..' must be"),
    Case("study name .", [*SWEEP, "--set", "study=."], "--set study=.: study name '.' must be"),
    Case("report --study ..", ["report", "--study", ".."], "study name '..' must be"),
    Case("status --study ..", ["status", "--study", ".."], "study name '..' must be"),
    Case("export --study ..", ["export", "--study", "..", "out"], "study name '..' must be"),
    Case("device not on this machine", [*SWEEP, "--set", "device=cuda:99"], "device 'cuda:99' is not usable here"),
    Case("ui --port -5", ["ui", "--port", "-5"], "Invalid value for '--port'", usage=True),
    # --- stores: unusable, unreachable, corrupt, absent -----------------------------------
    Case("tracking scheme foo://, sweep", [*SWEEP, "--tracking-uri", "foo://bar"], "cannot use tracking store foo://bar: unknown scheme"),
    Case("tracking scheme foo://, report", ["report", "--study", "bad", "--tracking-uri", "foo://bar"],
         "cannot use tracking store foo://bar: unknown scheme"),
    Case("tracking scheme foo://, ui", ["ui", "--tracking-uri", "foo://bar"], "cannot use tracking store foo://bar"),
    Case("tracking store PostgreSQL not there", [*SWEEP, "--tracking-uri", PG],
         "cannot use tracking store postgresql://vae:***@127.0.0.1"),
    Case("Optuna storage foo://", [*SWEEP, "--storage", "foo://bar"], "cannot use Optuna storage foo://bar"),
    Case("Optuna storage PostgreSQL not there", [*SWEEP, "--storage", PG], "cannot use Optuna storage postgresql://vae:***@"),
    Case("corrupt mlflow.db, report", ["report", "--study", "bad"], "cannot use tracking store sqlite:///mlruns/mlflow.db",
         write("mlruns/mlflow.db", os.urandom(4096))),
    Case("corrupt optuna.db, sweep", [*SWEEP], "cannot use Optuna storage sqlite:///mlruns/optuna.db",
         write("mlruns/optuna.db", os.urandom(4096))),
    Case("report, no store here", ["report", "--study", "nope"], "no tracking store at sqlite:///mlruns/mlflow.db"),
    Case("status, no store here", ["status", "--study", "nope"], "no Optuna storage at sqlite:///mlruns/optuna.db"),
    Case("export, no store here", ["export", "--study", "nope", "out"], "no Optuna storage at sqlite:///mlruns/optuna.db"),
    # --- swapped stores: refused before either library opens them (the files stay byte-identical) --
    Case("status --storage an MLflow store", ["status", "--storage", MLFLOW_DB], AS_STORAGE, swapped),
    Case("status --study, --storage an MLflow store", ["status", "--study", "bad", "--storage", MLFLOW_DB],
         AS_STORAGE, swapped),
    Case("sweep --storage an MLflow store", [*SWEEP, "--storage", MLFLOW_DB], AS_STORAGE, swapped),
    Case("sweep --tracking-uri an Optuna storage", [*SWEEP, "--tracking-uri", OPTUNA_DB], AS_TRACKING, swapped),
    Case("sweep, one database for both", [*SWEEP, "--storage", "sqlite:///one.db", "--tracking-uri", "sqlite:///one.db"],
         "--storage and --tracking-uri name the same database sqlite:///one.db"),
    Case("report --tracking-uri an Optuna storage", ["report", "--study", "bad", "--tracking-uri", OPTUNA_DB],
         AS_TRACKING, swapped),
    Case("report --storage an MLflow store", ["report", "--study", "bad", "--storage", MLFLOW_DB], AS_STORAGE, swapped),
    Case("export --storage an MLflow store", ["export", "--study", "bad", "out", "--storage", MLFLOW_DB],
         AS_STORAGE, swapped),
    Case("ui --tracking-uri an Optuna storage", ["ui", "--tracking-uri", OPTUNA_DB], AS_TRACKING, swapped),
    Case("ui --study unknown (a typo, or make ui before its sweep)", ["ui", "--study", "typo"],
         f"no study named 'typo' in {MLFLOW_DB} (studies: none yet; run `vae sweep` first)", swapped),
    # --- passwords ------------------------------------------------------------------------
    Case("password in an http tracking URI", [*SWEEP, "--tracking-uri", "http://alice:" + SECRET + "@127.0.0.1:{closed}"],
         "cannot use tracking store http://alice:***@127.0.0.1"),
    Case("password in report's tracking URI", ["report", "--study", "nope", "--tracking-uri", PG],
         "cannot use tracking store postgresql://vae:***@"),
    # --- the smaller ones of issue 32 ------------------------------------------------------
    Case("export OUT a symlink to an empty folder", ["export", "--study", "bad", "lnk"],
         "OUT lnk is a symbolic link: name a new folder", link("lnk", "empty")),
    Case("export OUT a dangling symlink", ["export", "--study", "bad", "lnk"],
         "OUT lnk is a symbolic link: name a new folder", link("lnk", "nowhere", make=False)),
    Case("beta_span so wide it overflows", [*TRAIN, "--betas", "0.1,0.01", "--beta-span", "1e300", "--out", "run"],
         "the training range 3.16e-152–3.16e+148 reaches beyond 1e-08–10000"),
    Case("an image folder that cannot be read", [*TRAIN, "--dataset", "folder:imgs", "--out", "run"],
         "cannot read image folder imgs/train: Permission denied", unreadable),
    Case("a single-image folder (no cache left)", [*TRAIN[:-2], "--dataset", "folder:one", "--data-dir", "dd",
                                                   "--out", "run", "--device", "cpu"],
         "folder-", one_image),
    # --- artifact locations: checked before any store, study or experiment exists -----------
    Case("artifact location of an unknown scheme", [*SWEEP, "--artifact-location", "foo://bar"],
         "--artifact-location foo://bar: MLflow has no artifact store for 'foo'://"),
    Case("artifact location with credentials", [*SWEEP, "--artifact-location", "s3://AKIA:" + SECRET + "@bucket/x"],
         "--artifact-location s3://AKIA:***@bucket/x: carries credentials, which MLflow would store in clear"),
    *([Case("artifact location whose client is missing", [*SWEEP, "--artifact-location", "s3://bucket/x"],
            "--artifact-location s3://bucket/x: needs the boto3 package for s3:// (pip install boto3)")]
      if importlib.util.find_spec("boto3") is None else []),
    Case("a study whose experiment keeps its artifacts where MLflow cannot write",
         [*SWEEP, "--tracking-uri", "sqlite:///pinned.db"],
         "study 'bad' keeps its artifacts at foo://bar/bad: MLflow has no artifact store for 'foo'://", pinned),
    Case("password as a query parameter", [*SWEEP, "--storage", "postgresql://127.0.0.1:{closed}/o?user=vae&password=" + SECRET],
         "cannot use Optuna storage postgresql://127.0.0.1:{closed}/o?user=vae&password=***"),
    Case("password in status's storage", ["status", "--study", "nope", "--storage", PG], "cannot use Optuna storage postgresql://vae:***@"),
    Case("password in export's storage", ["export", "--study", "nope", "out", "--storage", PG],
         "cannot use Optuna storage postgresql://vae:***@"),
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """digits decoded and cached once, outside the cases' folders"""
    from vae.data import load_dataset

    path = tmp_path_factory.mktemp("data")
    load_dataset("digits", path)
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A real Optuna storage (study `bad`) and a real MLflow tracking store, made once."""
    import optuna
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("stores")
    optuna.create_study(study_name="bad", storage=f"sqlite:///{path / 'optuna.db'}")
    MlflowClient(tracking_uri=f"sqlite:///{path / 'mlflow.db'}").search_experiments(max_results=1)
    STORES.update({"optuna.db": path / "optuna.db", "mlflow.db": path / "mlflow.db"})
    return STORES


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill(text: str, data_dir: Path, port: int) -> str:
    return text.replace("{data}", str(data_dir)).replace("{closed}", str(port))


def files(folder: Path) -> dict[str, str]:
    """Every path under `folder` with its content's hash: a store written into (tables added) shows."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, data_dir, stores, tmp_path, monkeypatch):
    if UNWRITABLE in " ".join(case.argv) and not sys.platform.startswith("linux"):
        pytest.skip("needs /proc")
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "VAE_STORAGE", "VAE_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "spec.yaml").write_text(SPEC.format(data=data_dir))
    if case.setup:
        case.setup(tmp_path, monkeypatch)
    port = closed_port()
    argv = [fill(a, data_dir, port) for a in case.argv]
    before = files(tmp_path)

    result = CliRunner().invoke(cli, argv)

    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output and SECRET not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"error: {fill(case.message, data_dir, port)}"), output
    assert files(tmp_path) == before  # nothing created, nothing half-written, no store written into
    assert not Path(UNWRITABLE).exists()


def test_train_diverging_in_epoch_1_leaves_no_run_folder(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [fill(a, data_dir, 0) for a in TRAIN] + ["--lr", "1e30", "--out", "run"])
    assert result.exit_code == 2 and result.output.startswith("error: training diverged in epoch 1"), result.output
    assert not (tmp_path / "run").exists()


def test_threads_reach_every_worker(tmp_path, monkeypatch):
    """`--threads` with `--workers 2` used to be dropped; each worker process now gets it."""
    import pipelines.usecases.sweep

    seen = {}

    def fake_workers(spec, argv, workers, *args, **kwargs):
        seen["threads"] = spec.train.threads
        return 0, "done"
    monkeypatch.setattr(pipelines.usecases.sweep, "run_workers", fake_workers)
    (tmp_path / "spec.yaml").write_text(SPEC.format(data=tmp_path))
    result = CliRunner().invoke(cli, ["sweep", str(tmp_path / "spec.yaml"), "--workers", "2", "--threads", "3"])
    assert result.exit_code == 0, result.output
    assert seen == {"threads": 3}


def test_n_trials_counts_before_the_spec_is_checked_and_a_grid_says_it_ignores_it(tmp_path, monkeypatch):
    """`--set sampler=tpe --n-trials 3` was refused ("needs n_trials"); a grid ignored --n-trials silently."""
    import pipelines.engine.sweep
    import pipelines.usecases.sweep

    seen = []

    def fake_sweep(spec, *args, **kwargs):
        seen.append((spec.sampler, spec.n_trials))
        return pipelines.engine.sweep.Summary(study=spec.study, already_complete=True, progress={"started": 0})
    monkeypatch.setattr(pipelines.usecases.sweep, "run_sweep", fake_sweep)
    monkeypatch.setattr(pipelines.usecases.sweep, "already_complete", lambda *a: "done")
    import pipelines.usecases.publish

    monkeypatch.setattr(pipelines.usecases.publish, "state_verdict", lambda *a: None)  # no study: no verdict
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC.format(data=tmp_path))
    tpe = CliRunner().invoke(cli, ["sweep", str(tmp_path / "spec.yaml"), "--set", "sampler=tpe", "--set",
                                   "search.beta={low: 0.001, high: 0.1}", "--n-trials", "3"])
    assert tpe.exit_code == 0 and "note:" not in tpe.output, tpe.output
    grid = CliRunner().invoke(cli, ["sweep", str(tmp_path / "spec.yaml"), "--n-trials", "1000"])
    assert grid.exit_code == 0, grid.output
    assert grid.output.count("note: a grid runs each of its 1 points once; --n-trials 1000 is ignored") == 1
    assert seen == [("tpe", 3), ("grid", 1000)]
    # an absurd count is refused, for any sampler (a sampler would retrain until killed)
    absurd = CliRunner().invoke(cli, ["sweep", str(tmp_path / "spec.yaml"), "--n-trials", "100000000000000000000"])
    assert absurd.exit_code == 2 and "must be between 1 and 1,000,000" in absurd.output and len(seen) == 2
    # a sampler over fewer points than its trials says so
    small = CliRunner().invoke(cli, ["sweep", str(tmp_path / "spec.yaml"), "--set", "sampler=tpe", "--n-trials", "5"])
    assert small.exit_code == 0 and "note: the search space has 1 point(s), fewer than n_trials 5" in small.output


def test_resume_without_a_checkpoint_says_so(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [fill(a, data_dir, 0) for a in TRAIN] + ["--resume", "--out", "run"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "note: no checkpoint in run: starting from epoch 1"


@pytest.mark.parametrize("text, shown", [
    ("postgresql://vae:" + SECRET + "@db/optuna", "postgresql://vae:***@db/optuna"),
    ("no study named 'nope' in postgresql://vae:" + SECRET + "@db:5432/m (studies: a)",
     "no study named 'nope' in postgresql://vae:***@db:5432/m (studies: a)"),
    ("http://alice:" + SECRET + "@host/api: failed", "http://alice:***@host/api: failed"),
    ("postgresql://h/db?user=vae&password=" + SECRET + "&sslmode=require", "postgresql://h/db?user=vae&password=***&sslmode=require"),
    ("https://h/x?token=" + SECRET + ";api_key=" + SECRET, "https://h/x?token=***;api_key=***"),
    ("mysql://u:p@ss" + SECRET + "@h/d", "mysql://u:***@h/d"),
    ("host=db password=" + SECRET + " user=vae", "host=db password=*** user=vae"),
    ("sqlite:///mlruns/mlflow.db and postgresql://vae@db/optuna", "sqlite:///mlruns/mlflow.db and postgresql://vae@db/optuna"),
    ("--set needs KEY=VALUE", "--set needs KEY=VALUE"),
])
def test_redact(text, shown):
    assert redact(text) == shown


def test_a_shared_storage_with_a_host_local_tracking_store_gets_one_note():
    from pipelines.engine.accept import stores_note

    note = stores_note("postgresql://vae:" + SECRET + "@db/optuna", "sqlite:///mlruns/mlflow.db")
    assert note.startswith("note: the Optuna storage postgresql://vae:***@db/optuna is shared, but the tracking store "
                           "sqlite:///mlruns/mlflow.db is on this host") and SECRET not in note
    assert stores_note("postgresql://vae@db/optuna", "http://tracking:5000") is None  # a server: shared
    assert stores_note("sqlite:///mlruns/optuna.db", "sqlite:///mlruns/mlflow.db") is None  # one host by nature


def test_the_slurm_script_says_what_is_missing_in_one_line(tmp_path):
    import subprocess

    script = Path(__file__).resolve().parents[1] / "deploy" / "slurm" / "sweep.sbatch"
    bare = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert bare.returncode == 2 and bare.stderr == (
        "error: usage: sbatch [--array=0-N] deploy/slurm/sweep.sbatch SPEC [vae sweep options]\n")
    novae = subprocess.run(["bash", str(script), "s.yaml"], capture_output=True, text=True, cwd=tmp_path,
                           env={"PATH": "/usr/bin:/bin", "VAE_STORAGE": "x", "MLFLOW_TRACKING_URI": "y"})
    assert novae.returncode == 2 and novae.stderr.startswith("error: vae is not on PATH on ")
    assert len(novae.stderr.splitlines()) == 1
