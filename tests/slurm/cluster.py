"""A real single-node SLURM cluster with all of its state in one directory.

Used by the SLURM integration tests (``tests/test_slurm.py``) and by hand::

    python tests/slurm/cluster.py start /tmp/slurm   # prints the env to export
    python tests/slurm/cluster.py stop /tmp/slurm

What it runs, all as the current user and in the foreground of their own sessions, so each
is stopped by its PID: ``munged`` with its own key, socket, pid, log and seed files;
``slurmctld``; ``slurmd -N localhost`` (the machine's hostname is not ``localhost``). The
daemons listen on free ports picked at start-up, so two clusters (two CI jobs) can run side
by side. Finished jobs stay visible to ``squeue --states=all`` for an hour (``MinJobAge``)
and are appended to a ``jobcomp/filetxt`` file. There is no ``slurmdbd``, so ``sacct`` has
no data: Snakemake must be told ``slurm-status-command: squeue``.

Pitfalls met on the way (snakemake-executor-plugin-slurm 2.8, SLURM 22.05):

1. the jobstep plugin strips every ``SLURM_*`` variable, SLURM_CONF included, before its
   inner ``srun``, which then fails with "Could not establish a configuration source". The
   env given to clients puts a tiny ``srun`` shim first on PATH that exports SLURM_CONF.
2. without slurmdbd, ``sacct`` (the plugin's default status command when installed) says
   accounting is disabled and exits 0, and Snakemake waits forever.
3. the plugin waits 40 s before its first status check unless told otherwise.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")
PARTITION = "debug"


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be started here (missing programs, or it did not come up)."""


def missing_programs() -> list[str]:
    """The SLURM and munge programs this module needs that are not on PATH (or in sbin)."""
    return [name for name in (*DAEMONS, "mungekey", *CLIENTS) if _which(name) is None]


def _which(name: str) -> str | None:
    extra = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/sbin"])
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + extra)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> tuple[str, int]:
    """The node's topology (``CPUs=... ThreadsPerCore=...``) and real memory, from slurmd -C."""
    out = subprocess.run(
        [_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30
    ).stdout
    line = out.splitlines()[0] if out else ""
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    topology = " ".join(f"{k}={fields[k]}" for k in keys if k in fields)
    if "CPUs" not in fields:
        topology = f"CPUs={os.cpu_count() or 1}"
    memory = int(fields.get("RealMemory", 2000))
    return topology, memory


@dataclass
class Job:
    """One SLURM job as squeue (live records) and the jobcomp file (finished jobs) see it."""

    id: str
    name: str
    rule: str  # from the plugin's --comment "rule_<rule>[_wildcards_<...>]"
    state: str
    time_limit_min: int | None
    memory_mb: int | None
    cpus: int
    completion: dict[str, str] = field(default_factory=dict)  # jobcomp fields, once finished


@dataclass
class Cluster:
    """A running cluster; ``env`` is what a client (snakemake, sbatch, ...) needs."""

    root: Path
    pids: dict[str, int]
    env: dict[str, str]

    @property
    def conf(self) -> Path:
        return self.root / "etc/slurm.conf"

    @property
    def jobcomp(self) -> Path:
        return self.root / "log/jobcomp.txt"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command (``squeue``, ``scancel``, ...) against this cluster."""
        return subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, timeout=60, check=check
        )

    def jobs(self) -> list[Job]:
        """Every job this cluster knows, oldest first (finished ones stay for MinJobAge)."""
        fmt = "%i|%j|%k|%T|%l|%m|%C"
        out = self.run("squeue", "--states=all", "--noheader", f"--format={fmt}").stdout
        finished = self.completions()
        jobs = []
        for line in out.splitlines():
            if not line.strip():
                continue
            job_id, name, comment, state, limit, memory, cpus = line.strip().split("|")
            jobs.append(
                Job(
                    id=job_id,
                    name=name,
                    rule=comment.removeprefix("rule_").split("_wildcards_")[0],
                    state=state,
                    time_limit_min=_minutes(limit),
                    memory_mb=_megabytes(memory),
                    cpus=int(cpus),
                    completion=finished.get(job_id, {}),
                )
            )
        return sorted(jobs, key=lambda j: int(j.id))

    def completions(self) -> dict[str, dict[str, str]]:
        """The jobcomp/filetxt records of finished jobs, by job id."""
        if not self.jobcomp.exists():
            return {}
        records = {}
        for line in self.jobcomp.read_text().splitlines():
            rec = dict(re.findall(r"(\w+)=(\S*)", line))
            if "JobId" in rec:
                records[rec["JobId"]] = rec
        return records

    def wait_idle(self, timeout: float = 60) -> bool:
        """Wait until no job is pending or running; True if that happened in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run("squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING").stdout
            if not out.strip():
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        stop(self.root)


def _minutes(text: str) -> int | None:
    """squeue's time limit (``7:00``, ``1:00:00``, ``1-00:00:00``) in minutes."""
    if not text or text in ("UNLIMITED", "INVALID", "NOT_SET"):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)


def _megabytes(text: str) -> int | None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text.strip())
    if not match:
        return None
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2)]
    return round(float(match.group(1)) * scale)


def _write_config(root: Path) -> Path:
    user = pwd.getpwuid(os.getuid()).pw_name
    topology, memory = _node_hardware()
    # leave headroom: slurmd drains a node whose configured memory exceeds what it finds
    real_memory = max(500, int(memory * 0.8))
    conf = root / "etc/slurm.conf"
    conf.write_text(
        f"""# Single-node test cluster written by tests/slurm/cluster.py
ClusterName=topogen-test
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket.2
SlurmUser={user}
SlurmdUser={user}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/slurmd-%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
PlugStackConfig={root}/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=3600
DefMemPerCPU=1000
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 {topology} RealMemory={real_memory} State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
    )
    (root / "etc/plugstack.conf").write_text("")
    return conf


def _client_env(root: Path, conf: Path) -> dict[str, str]:
    """os.environ plus SLURM_CONF, with an ``srun`` shim first on PATH (pitfall 1)."""
    shim_dir = root / "bin"
    shim = shim_dir / "srun"
    shim.write_text(
        "#!/bin/sh\n"
        "# The slurm-jobstep plugin drops SLURM_CONF before its inner srun; put it back.\n"
        f"export SLURM_CONF='{conf}'\n"
        f"exec '{_which('srun')}' \"$@\"\n"
    )
    shim.chmod(0o755)
    env = dict(os.environ)
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"
    for var in list(env):  # a caller inside a SLURM job must not leak its allocation
        if var.startswith(("SLURM_", "SBATCH_", "SRUN_")) and var != "SLURM_CONF":
            del env[var]
    return env


def _spawn(name: str, args: list[str], root: Path, env: dict[str, str]) -> int:
    out = open(root / f"log/{name}.stdout", "ab")  # noqa: SIM115 (the child keeps it)
    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # survives the starting script; not hit by Ctrl-C in pytest
    )
    out.close()
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return f"({path.name}: missing)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {path.name}\n" + "\n".join(text)


def start(root: str | os.PathLike[str], timeout: float = 60) -> Cluster:
    """Start munged, slurmctld and slurmd with all state under ``root``; wait for the node.

    Raises ClusterUnavailable (after stopping what it started) when programs are missing or
    the node is not idle within ``timeout`` seconds.
    """
    missing = missing_programs()
    if missing:
        raise ClusterUnavailable(f"not installed: {', '.join(missing)}")
    root = Path(root).resolve()
    for sub in ("etc", "bin", "munge", "state", "spool", "run", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # munged refuses key and socket dirs that others can write to
    for sub in ("munge", "etc"):
        (root / sub).chmod(0o700)
    conf = _write_config(root)
    env = _client_env(root, conf)
    daemon_env = {**env, "SLURM_CONF": str(conf)}
    pids: dict[str, int] = {}
    (root / "pids.json").write_text("{}")

    def record(name: str, pid: int) -> None:
        pids[name] = pid
        (root / "pids.json").write_text(json.dumps(pids))

    try:
        key = root / "munge/munge.key"
        subprocess.run(
            [_which("mungekey"), "--create", f"--keyfile={key}"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        key.chmod(0o600)
        munge_socket = root / "munge/munge.socket.2"
        record(
            "munged",
            _spawn(
                "munged",
                [
                    _which("munged"),
                    "--foreground",
                    "--force",
                    f"--key-file={key}",
                    f"--socket={munge_socket}",
                    f"--pid-file={root}/munge/munged.pid",
                    f"--log-file={root}/log/munged.log",
                    f"--seed-file={root}/munge/munged.seed",
                ],
                root,
                daemon_env,
            ),
        )
        _wait_for(lambda: munge_socket.exists(), 15, "munged did not create its socket", root)
        record(
            "slurmctld", _spawn("slurmctld", [_which("slurmctld"), "-D", "-i"], root, daemon_env)
        )
        _wait_for(
            lambda: (
                subprocess.run(
                    [_which("scontrol"), "ping"], env=env, capture_output=True, timeout=10
                ).returncode
                == 0
            ),
            timeout,
            "slurmctld did not answer `scontrol ping`",
            root,
        )
        record(
            "slurmd",
            _spawn("slurmd", [_which("slurmd"), "-D", "-N", "localhost"], root, daemon_env),
        )
        deadline = time.monotonic() + timeout

        def node_idle() -> bool:
            out = subprocess.run(
                [_which("sinfo"), "--noheader", "--Node", "--format=%T"],
                env=env,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            return out == "idle"

        _wait_for(node_idle, max(1.0, deadline - time.monotonic()), "node not idle", root)
    except BaseException as exc:
        stop(root)
        if isinstance(exc, ClusterUnavailable | subprocess.SubprocessError | OSError):
            raise ClusterUnavailable(str(exc)) from exc
        raise
    cluster = Cluster(root=root, pids=pids, env=env)
    (root / "env.sh").write_text(
        f"export SLURM_CONF='{conf}'\nexport PATH='{root / 'bin'}':\"$PATH\"\n"
    )
    write_profile(root / "profile")
    return cluster


def _wait_for(predicate, timeout: float, what: str, root: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (subprocess.SubprocessError, OSError):
            pass
        pids = json.loads((root / "pids.json").read_text())
        dead = [name for name, pid in pids.items() if not _alive(pid)]
        if dead:
            break
        time.sleep(0.3)
    else:
        dead = []
    names = ("munged.stdout", "slurmctld.log", "slurmd.log", "slurmd.stdout")
    logs = "\n".join(_tail(root / "log" / name) for name in names)
    died = f" ({', '.join(dead)} exited)" if dead else ""
    raise ClusterUnavailable(f"{what} within {timeout:.0f} s{died}\n{logs}")


def stop(root: str | os.PathLike[str], grace: float = 10) -> None:
    """Cancel the cluster's jobs, then stop slurmd, slurmctld and munged by their PIDs."""
    root = Path(root).resolve()
    pids_file = root / "pids.json"
    if not pids_file.exists():
        return
    pids: dict[str, int] = json.loads(pids_file.read_text())
    conf = root / "etc/slurm.conf"
    if pids.get("slurmctld") and _alive(pids["slurmctld"]):
        env = {**os.environ, "SLURM_CONF": str(conf)}
        scancel = _which("scancel")
        if scancel:
            subprocess.run(
                [scancel, "--full", f"--user={os.getuid()}"],
                env=env,
                capture_output=True,
                timeout=30,
            )
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                out = subprocess.run(
                    [_which("squeue"), "--noheader", "--states=RUNNING,COMPLETING,PENDING"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=30,
                ).stdout
                if not out.strip():
                    break
                time.sleep(0.5)
    for name in reversed(DAEMONS):  # slurmd, slurmctld, munged
        pid = pids.get(name)
        if not pid or not _alive(pid):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pids_file.unlink()


def write_profile(
    dest: str | os.PathLike[str],
    *,
    runtime_min: int = 7,
    mem_mb: int = 1234,
    retries: int = 1,
    jobs: int = 2,
) -> Path:
    """A Snakemake profile for this cluster; returns its directory.

    ``runtime_min`` and ``mem_mb`` are unusual on purpose: the tests look for them in
    SLURM's records of the jobs.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(
        f"""# Snakemake profile for the single-node test cluster (tests/slurm/cluster.py).
executor: slurm
jobs: {jobs}
retries: {retries}
latency-wait: 5
rerun-incomplete: true
printshellcmds: true
show-failed-logs: true
default-resources:
  slurm_partition: {PARTITION}
  runtime: {runtime_min}
  mem_mb: {mem_mb}
  cpus_per_task: 1
# no slurmdbd: sacct has no data, squeue keeps finished jobs for MinJobAge (1 h)
slurm-status-command: squeue
slurm-init-seconds-before-status-checks: 1
slurm-no-account: true
slurm-keep-successful-logs: true
"""
    )
    return dest


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        print("usage: cluster.py start|stop DIR", file=sys.stderr)
        return 2
    command, root = argv
    if command == "stop":
        stop(root)
        return 0
    try:
        cluster = start(root)
    except ClusterUnavailable as exc:
        print(f"cluster did not start: {exc}", file=sys.stderr)
        return 1
    print(f"# SLURM test cluster up; pids {cluster.pids}")
    print(f"# profile: {cluster.root / 'profile'}")
    print(f". {cluster.root / 'env.sh'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
