"""A real single-node Slurm cluster on this machine, for the Slurm test and for trying the Slurm
profile on a laptop (README, "Running on a cluster").

Debian's packages (slurmctld, slurmd, slurmdbd, munge, MariaDB) are installed with apt when a
daemon is missing; everything the daemons write (munge key and socket, MariaDB data, spool and
state folders, logs, configs) lives under one folder, and they listen on free loopback ports
only. Accounting is on (slurmdbd on a private MariaDB), because the Snakemake executor plugin
polls job states with `sacct`. The daemons run as root (`SlurmUser=root`): the set-up needs root,
and says so instead of trying.

    python tests/slurm_cluster.py start /tmp/affectflow-slurm   # prints the `source` line
    python tests/slurm_cluster.py stop /tmp/affectflow-slurm
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

# Debian bookworm: slurm-wlm brings slurmctld, slurmd and the client tools (sbatch, sacct, ...).
PACKAGES = ("slurm-wlm", "slurmdbd", "munge", "mariadb-server")
DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "mariadb-install-db")
CLUSTER = "affectflow"
ACCOUNT = "affectflow"
PARTITIONS = ("cpu", "gpu")  # the Slurm profile's default partition names; both on this node
# Where job steps look for the config: the executor plugin's jobstep part runs each rule with
# `srun` after removing SLURM_* variables (SLURM_CONF too), so srun reads the default path. The
# cluster links it to its own slurm.conf while it runs (never over a real cluster's file).
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
DB_USER, DB_PASS, DB_NAME = "slurm", "affectflow-test", "slurm_acct_db"


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the single-node cluster; the message says exactly why."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"


def missing_programs() -> list[str]:
    """The daemons and set-up programs not on PATH (or in /usr/sbin)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [d for d in DAEMONS if shutil.which(d, path=path) is None]


def install_packages(timeout_s: float = 900) -> float:
    """apt-get install the Slurm, munge and MariaDB packages unless already there; the seconds
    it took (0 when nothing was missing). Raises SlurmUnavailable with apt's own words."""
    if not missing_programs():
        return 0.0
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"Slurm daemons missing ({', '.join(missing_programs())}) and not root: "
                               f"cannot apt-get install {' '.join(PACKAGES)}")
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable("Slurm daemons missing and no apt-get (the set-up is for Debian/Ubuntu)")
    start = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    with _no_service_starts():
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout_s)
        if result.returncode != 0:  # a stale package index: update once and retry
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=timeout_s)
            result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0 or missing_programs():
        raise SlurmUnavailable(f"apt-get install {' '.join(PACKAGES)} failed (exit {result.returncode}): "
                               f"{(result.stdout + result.stderr).strip()[-1500:]}")
    return time.monotonic() - start


@contextlib.contextmanager
def _no_service_starts() -> Iterator[None]:
    """Keep the packages' install scripts from starting the system's own munged, MariaDB and
    Slurm daemons (Debian's policy-rc.d; one already there is left as it is)."""
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\n# affectflow tests/slurm_cluster.py: no service starts during apt-get\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


@dataclass
class SingleNodeSlurm:
    """The cluster's folder, ports and daemon process ids (saved as state.json in the folder,
    so `stop` works from another process)."""

    root: Path
    node: str = field(default_factory=socket.gethostname)
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    slurm_version: str = ""
    cpus: int = 1
    memory_mb: int = 1000

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client (sbatch, sacct, snakemake's plugin) needs to reach this cluster,
        and profiles/slurm's variables for it: its account, no GPUs, one node's cores and
        memory as the caps, and a quick first poll (sacct is cheap here)."""
        return {"SLURM_CONF": str(self.conf), "AFFECTFLOW_SLURM_ACCOUNT": ACCOUNT,
                "AFFECTFLOW_SLURM_GPUS": "0", "AFFECTFLOW_SLURM_MAX_GPUS": "0",
                "AFFECTFLOW_SLURM_CORES": str(self.cpus), "AFFECTFLOW_SLURM_MAX_MEM_MB": str(self.memory_mb),
                "AFFECTFLOW_SLURM_FIRST_CHECK_S": "2"}

    def client(self, *args: str, check: bool = True, timeout_s: float = 60) -> str:
        """Run a Slurm client command (sinfo, sacct, sacctmgr, scancel, ...) on this cluster."""
        result = subprocess.run(list(args), env={**os.environ, **self.env}, capture_output=True,
                                text=True, timeout=timeout_s)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def sacct(self) -> list[dict[str, str]]:
        """Every job of the cluster's accounting (allocations only, no steps): id, name,
        Snakemake's comment (rule and wildcards), state, elapsed time."""
        fields = ["JobID", "JobName", "Comment", "State", "Elapsed", "ExitCode"]
        out = self.client("sacct", "-a", "-X", "-P", "-n", "-S", "now-1days", "-o", ",".join(fields))
        return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]

    def squeue(self) -> list[dict[str, str]]:
        """The queued and running jobs: id, state, Snakemake's comment."""
        out = self.client("squeue", "-h", "-o", "%i|%T|%k")
        return [dict(zip(("JobID", "State", "Comment"), line.split("|")))
                for line in out.splitlines() if line.strip()]

    # -- start ---------------------------------------------------------------------------------

    def start(self, timeout_s: float = 120) -> None:
        """Write the configs and start munged, MariaDB, slurmdbd, slurmctld and slurmd; returns
        once the node is idle. Raises SlurmUnavailable (with the daemon's log) otherwise."""
        if os.geteuid() != 0:
            raise SlurmUnavailable("the single-node Slurm runs its daemons as root (SlurmUser=root); "
                                   f"this process is uid {os.geteuid()}")
        for sub in ("etc", "munge", "db", "run", "log", "spool/ctld", "spool/d"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        self.ports = {name: free_port() for name in ("mysql", "slurmdbd", "slurmctld", "slurmd")}
        self.slurm_version = subprocess.run(["slurmd", "-V"], capture_output=True, text=True).stdout.strip()
        deadline = time.monotonic() + timeout_s
        try:
            self._start_munge()
            self._start_mariadb(deadline)
            self._write_configs()
            self._link_default_conf()
            self._start_daemon("slurmdbd", ["slurmdbd", "-D"], deadline)
            self._register_accounts()
            self._start_daemon("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)], deadline)
            self._start_daemon("slurmd", ["slurmd", "-D", "-N", self.node, "-f", str(self.conf)], deadline)
            self._wait_idle(deadline)
        except BaseException:
            self.stop()
            raise
        self._save()

    def _popen(self, name: str, args: list[str]) -> subprocess.Popen:
        """Start a daemon in its own session (it outlives this process until `stop`)."""
        log = open(self.root / "log" / f"{name}.out", "ab")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "SLURM_CONF": str(self.conf)},
                                   start_new_session=True)
        log.close()
        self.pids[name] = process.pid
        self._save()
        return process

    def _fail(self, name: str, what: str) -> SlurmUnavailable:
        logs = "\n".join(f"--- {p.name}\n{_tail(p)}" for p in sorted((self.root / "log").glob(f"{name}*")))
        return SlurmUnavailable(f"{name} {what}; its log:\n{logs}")

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        made = subprocess.run(["mungekey", "--create", "--force", "--keyfile", str(key)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise SlurmUnavailable(f"mungekey --create failed: {made.stderr.strip()}")
        key.chmod(0o600)
        munge = self.root / "munge"
        process = self._popen("munged", [
            "munged", "--foreground", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
            f"--log-file={self.root / 'log' / 'munged.log'}"])
        for _ in range(50):
            if self.munge_socket.exists():
                return
            if process.poll() is not None:
                break
            time.sleep(0.1)
        raise self._fail("munged", "did not open its socket")

    def _start_mariadb(self, deadline: float) -> None:
        data = self.root / "db"
        made = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                               "--auth-root-authentication-method=socket", "--skip-test-db"],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise SlurmUnavailable(f"mariadb-install-db failed: {(made.stdout + made.stderr).strip()[-1500:]}")
        sock = self.root / "run" / "mysqld.sock"
        self._popen("mariadbd", [
            "mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={sock}", "--user=root",
            f"--port={self.ports['mysql']}", "--bind-address=127.0.0.1", "--skip-name-resolve",
            f"--pid-file={self.root / 'run' / 'mariadbd.pid'}", f"--log-error={self.root / 'log' / 'mariadbd.log'}",
            "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--innodb-lock-wait-timeout=900"])
        if not _wait_port(self.ports["mysql"], max(deadline - time.monotonic(), 1)):
            raise self._fail("mariadbd", "did not listen")
        sql = (f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASS}'; "
               f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1'; FLUSH PRIVILEGES;")
        made = subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "-e", sql],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise SlurmUnavailable(f"creating the accounting database user failed: {made.stderr.strip()}")

    def _write_configs(self) -> None:
        probe = subprocess.run(["slurmd", "-C"], capture_output=True, text=True)
        if probe.returncode != 0 or not probe.stdout.startswith("NodeName="):
            raise SlurmUnavailable(f"slurmd -C could not describe this machine: {probe.stderr.strip()}")
        node = probe.stdout.splitlines()[0]
        # `slurmd -C` says what this machine has: NodeName=<host> CPUs=... RealMemory=...
        node = re.sub(r"^NodeName=\S+", f"NodeName={self.node} NodeAddr=127.0.0.1", node.strip())
        self.cpus = int(re.search(r"\bCPUs=(\d+)", node).group(1))
        self.memory_mb = int(re.search(r"\bRealMemory=(\d+)", node).group(1))
        run, log, spool = self.root / "run", self.root / "log", self.root / "spool"
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        self.conf.write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost={self.node}(127.0.0.1)\n"
            f"SlurmctldPort={self.ports['slurmctld']}\nSlurmdPort={self.ports['slurmd']}\n"
            f"SlurmUser=root\nSlurmdUser=root\n{auth}CredType=cred/munge\n"
            f"StateSaveLocation={spool / 'ctld'}\nSlurmdSpoolDir={spool / 'd'}\n"
            f"SlurmctldPidFile={run / 'slurmctld.pid'}\nSlurmdPidFile={run / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={log / 'slurmctld.log'}\nSlurmdLogFile={log / 'slurmd.log'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
            "SchedulerType=sched/backfill\nMpiDefault=none\nReturnToService=2\n"
            "JobAcctGatherType=jobacct_gather/none\nJobCompType=jobcomp/none\n"
            "AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
            f"AccountingStoragePort={self.ports['slurmdbd']}\nAccountingStoreFlags=job_comment\n"
            # the munge socket for talking to slurmdbd (AuthInfo is only the cluster's own)
            f"AccountingStoragePass={self.munge_socket}\n"
            "MinJobAge=300\nKillWait=5\nInactiveLimit=0\nSlurmdTimeout=60\nSlurmctldTimeout=60\n"
            f"{node} State=UNKNOWN\n"
            + "".join(f"PartitionName={p} Nodes=ALL MaxTime=INFINITE State=UP"
                      f"{' Default=YES' if p == PARTITIONS[0] else ''}\n" for p in PARTITIONS))
        dbd = self.conf.with_name("slurmdbd.conf")
        dbd.write_text(
            f"{auth}DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={self.ports['slurmdbd']}\n"
            f"SlurmUser=root\nPidFile={run / 'slurmdbd.pid'}\nLogFile={log / 'slurmdbd.log'}\n"
            "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            f"StoragePort={self.ports['mysql']}\nStorageUser={DB_USER}\nStoragePass={DB_PASS}\n"
            f"StorageLoc={DB_NAME}\n")
        dbd.chmod(0o600)  # slurmdbd refuses a config others can read (it holds the password)

    def _link_default_conf(self) -> None:
        if DEFAULT_CONF.exists() and not DEFAULT_CONF.is_symlink():
            raise SlurmUnavailable(f"{DEFAULT_CONF} exists: this machine has a Slurm configured already, "
                                   "and the single-node test cluster does not replace it")
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        if DEFAULT_CONF.is_symlink():  # left by an earlier single-node cluster
            DEFAULT_CONF.unlink()
        DEFAULT_CONF.symlink_to(self.conf)

    def _start_daemon(self, name: str, args: list[str], deadline: float) -> None:
        """Start a Slurm daemon; returns once it listens on its port."""
        process, port = self._popen(name, args), self.ports[name]
        while time.monotonic() < deadline:
            if _wait_port(port, 0.5):
                return
            if process.poll() is not None:
                raise self._fail(name, f"exited with code {process.returncode}")
        raise self._fail(name, f"did not listen on 127.0.0.1:{port}")

    def _register_accounts(self) -> None:
        """The cluster, an account and root in it (the plugin checks a given account with
        sacctmgr), in the accounting database."""
        for args in (("add", "cluster", CLUSTER), ("add", "account", ACCOUNT, f"Cluster={CLUSTER}"),
                     ("add", "user", "root", f"Account={ACCOUNT}", f"Cluster={CLUSTER}")):
            self.client("sacctmgr", "-i", *args)

    def _wait_idle(self, deadline: float) -> None:
        state = ""
        while time.monotonic() < deadline:
            state = self.client("sinfo", "-h", "-N", "-o", "%t", check=False).strip()
            if state.split() and state.split()[0] in ("idle", "mix", "alloc"):
                return
            if state.startswith(("drain", "down")):
                self.client("scontrol", "update", f"NodeName={self.node}", "State=RESUME", check=False)
            time.sleep(0.5)
        raise self._fail("slurm", f"node {self.node} not idle (sinfo state {state!r})")

    # -- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel every job, stop the daemons (newest first) and any job step left behind."""
        try:
            if self.pids.get("slurmctld"):
                self.client("scancel", "--full", "-u", "root", check=False, timeout_s=20)
                for _ in range(20):
                    if not self.client("squeue", "-h", "-o", "%i", check=False, timeout_s=10).strip():
                        break  # the queue is empty (or slurmctld gone)
                    time.sleep(0.5)
        except (subprocess.TimeoutExpired, OSError):
            pass  # slurmctld does not answer: the daemons and job processes are killed below
        for name, pid in reversed(list(self.pids.items())):
            if _runs(pid, name):  # still our daemon, not a later process that got its id
                _terminate(pid)
        for pid in _job_processes(self.conf):  # slurmstepd and its children outlive slurmd
            _terminate(pid)
        if DEFAULT_CONF.is_symlink() and DEFAULT_CONF.resolve() == self.conf.resolve():
            DEFAULT_CONF.unlink()
        self.pids = {}
        self._save()

    def _save(self) -> None:
        state = {**asdict(self), "root": str(self.root)}
        (self.root / "state.json").write_text(json.dumps(state, indent=1))

    @classmethod
    def load(cls, root: Path) -> "SingleNodeSlurm":
        state = json.loads((root / "state.json").read_text())
        return cls(**{**state, "root": Path(state["root"])})


def _terminate(pid: int, wait_s: float = 10) -> None:
    """SIGTERM a process we started (and its session), then SIGKILL if it is still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                return
            time.sleep(0.1)


def _runs(pid: int, program: str) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(program.encode())
    except OSError:
        return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _job_processes(conf: Path) -> list[int]:
    """Processes started by this cluster's slurmd (their environment names its slurm.conf)."""
    marker = f"SLURM_CONF={conf}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("root", type=Path, help="folder for the cluster's state (created)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.action == "stop":
        SingleNodeSlurm.load(root).stop()
        print(f"stopped the cluster in {root}")
        return
    try:
        seconds = install_packages()
        cluster = SingleNodeSlurm(root)
        cluster.start()
    except SlurmUnavailable as error:
        sys.exit(f"cannot start a single-node Slurm here: {error}")
    env_file = root / "env.sh"
    env_file.write_text("".join(f"export {k}={v}\n" for k, v in cluster.env.items()))
    print(f"{cluster.slurm_version} running in {root} (packages: {seconds:.0f} s); now:\n"
          f"  source {env_file}")


if __name__ == "__main__":
    main()
