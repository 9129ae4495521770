"""A one-node SLURM cluster for tests, from Debian's packages (slurm-wlm, munge), in a temporary folder.

    with slurm_cluster(tmp, cpus=4) as env:        # env: SLURM_CONF for sbatch, squeue, scancel
        subprocess.run(["sbatch", "job.sbatch"], env=env)

Everything is its own: a munge key and socket, a slurm.conf naming them, slurmctld and slurmd in
the foreground on 127.0.0.1 at free ports; nothing under /etc is read or changed, and the daemons
are stopped at the end. As root (a container, CI) a one-node cluster needs `munged --force`,
proctrack/linuxproc and task/none (no cgroups), and NoInAddrAny with 127.0.0.1 addresses.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from servers import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")


def available() -> bool:
    return all(shutil.which(d) or Path(f"/usr/sbin/{d}").exists() for d in DAEMONS) and bool(shutil.which("sbatch"))


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


CONF = """ClusterName=vaetest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
CommunicationParameters=NoInAddrAny
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait={kill_wait}
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=300
NodeName=vaenode NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@contextmanager
def slurm_cluster(cpus: int = 4, kill_wait: int = 30):
    """Yield the environment (SLURM_CONF set) in which sbatch, squeue and scancel use the cluster."""
    import pwd

    # a folder of its own under /tmp: munged checks that no one else may write to the socket's folder
    root = Path(tempfile.mkdtemp(prefix="vae-slurm-"))
    os.chmod(root, 0o700)
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = root / "slurm.conf"
    conf.write_text(CONF.format(host=socket.gethostname().split(".")[0], ctld_port=free_port(),
                                slurmd_port=free_port(), user=pwd.getpwuid(os.getuid()).pw_name, root=root,
                                cpus=cpus, kill_wait=kill_wait))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs = []
    try:
        def start(*cmd):
            log = open(root / f"{Path(cmd[0]).name}.out", "w")
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

        start(_bin("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={root}/munge.sock",
              f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log", f"--seed-file={root}/munged.seed")
        _wait(lambda: (root / "munge.sock").exists(), procs, root, "munged")
        start(_bin("slurmctld"), "-D", "-c", "-i", "-f", str(conf))
        start(_bin("slurmd"), "-D", "-N", "vaenode", "-f", str(conf))
        _wait(lambda: "idle" in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                                               text=True).stdout, procs, root, "the node")
        yield env
    finally:
        if procs:  # the jobs first (their steps outlive slurmd otherwise), then the daemons
            subprocess.run(["scancel", "--full", "-u", pwd.getpwuid(os.getuid()).pw_name], env=env,
                           capture_output=True, timeout=60)
            deadline = time.monotonic() + kill_wait + 15
            while time.monotonic() < deadline and subprocess.run(
                    ["squeue", "-h"], env=env, capture_output=True, text=True, timeout=60).stdout.strip():
                time.sleep(1)
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        for pid in _started_by(conf):  # a job step still running: it was started by this cluster's slurmd
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)


def _started_by(conf: Path) -> list[int]:
    """Processes whose environment names this cluster's slurm.conf (the daemons' job steps)."""
    mark = f"SLURM_CONF={conf}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        try:
            if pid != os.getpid() and mark in environ.read_bytes().split(b"\0"):
                found.append(pid)
        except OSError:
            pass
    return found


def _wait(ready, procs, root: Path, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(f"{f.name}: {f.read_text()[-1500:]}" for f in sorted(root.glob("*.log")) + sorted(root.glob("*.out")))
            raise RuntimeError(f"SLURM test cluster: {what} did not come up\n{logs}")
        time.sleep(0.5)
