#!/usr/bin/env python3
"""Test hosts in Linux network namespaces (Python 3 standard library + iproute2).

    import netns
    net = netns.Net()                     # a private /24 behind one bridge, torn down at exit
    db = net.host("db")                   # namespace sbx<ID>-db, address 10.X.Y.2
    db.addr                               # "10.X.Y.2"
    p = db.popen(["postgres", ...])       # a process inside db's namespace (subprocess.Popen)
    db.run(["ip", "addr"])                # subprocess.run inside it
    net.close()                           # kills what popen started, removes every namespace

Topology: a hub namespace holds a bridge; each host is a namespace joined to it by a veth
pair, with its own address and loopback up. The test process itself (the root namespace)
is joined too, at .1 of the subnet, so a test reaches every host directly and the hosts
reach each other; nothing leaves the machine (no route beyond the subnet, no forwarding).

The subnet 10.<200 + run % 50>.<run % 250>.0/24 and the names carry an id of this run so
several runs can coexist. Namespaces left by a run that died (its pid is gone) are
removed at the next Net(). Needs root (CAP_NET_ADMIN): Net() raises NetError otherwise,
and tests turn that into a skip only where the machine cannot do it at all.

cpu_quota(name, fraction) makes a cgroup v1 cpu group (or v2 cpu.max where present)
that holds its processes to a fraction of a core: pass its .procs path to add a pid.
"""
import atexit
import os
import re
import signal
import subprocess
import time

PREFIX = "sbx"
_NAME_RE = re.compile(r"^sbx(\d+)x\d+-")


class NetError(RuntimeError):
    pass


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale():
    """Remove the namespaces of runs whose process is gone."""
    r = _ip("netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NAME_RE.match(name)
        if m and not _alive(int(m.group(1))):
            _ip("netns", "del", name, check=False)


def available():
    """None when namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        return "iproute2 (ip) is not installed"
    return None


class Host:
    def __init__(self, net, name, ns, addr):
        self.net, self.name, self.ns, self.addr = net, name, ns, addr

    def argv(self, cmd):
        return ["ip", "netns", "exec", self.ns, *cmd]

    def popen(self, cmd, **kw):
        """Start cmd in this host's namespace, in its own process group (killed by close)."""
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(self.argv(cmd), **kw)
        self.net.procs.append(p)
        return p

    def run(self, cmd, **kw):
        return subprocess.run(self.argv(cmd), **kw)

    def url(self, port, path=""):
        return f"http://{self.addr}:{port}{path}"


class Net:
    _serial = 0

    def __init__(self):
        why = available()
        if why:
            raise NetError(why)
        sweep_stale()
        Net._serial += 1
        self.id = f"{os.getpid()}x{Net._serial}"
        n = (os.getpid() * 7 + Net._serial) % 12500
        self.subnet = f"10.{200 + n // 250}.{n % 250}"
        self.hub = f"{PREFIX}{self.id}-hub"
        self.root_if = f"sb{os.getpid() % 100000}r{Net._serial}"[:15]
        self.hosts, self.procs, self.closed = {}, [], False
        atexit.register(self.close)
        try:
            self._make_hub()
        except Exception:
            self.close()
            raise

    def _make_hub(self):
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        self.root_addr = f"{self.subnet}.1"
        _ip("link", "add", self.root_if, "type", "veth", "peer", "name", "p1",
            "netns", self.hub)
        self._plug("p1")
        _ip("addr", "add", f"{self.root_addr}/24", "dev", self.root_if)
        _ip("link", "set", self.root_if, "up")

    def _plug(self, port):
        _ip("-n", self.hub, "link", "set", port, "master", "br0")
        _ip("-n", self.hub, "link", "set", port, "up")

    def host(self, name):
        """A new host namespace on the bridge at the next free address."""
        if name in self.hosts:
            return self.hosts[name]
        index = len(self.hosts) + 2
        if index > 250:
            raise NetError("too many hosts in one Net")
        ns = f"{PREFIX}{self.id}-{name}"
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        port = f"p{index}"
        _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port,
            "netns", self.hub)
        self._plug(port)
        addr = f"{self.subnet}.{index}"
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        h = self.hosts[name] = Host(self, name, ns, addr)
        return h

    def cut(self, host, down=True):
        """Unplug (or plug back) a host's cable at the bridge: its connections stall."""
        index = int(host.addr.rsplit(".", 1)[1])
        _ip("-n", self.hub, "link", "set", f"p{index}", "down" if down else "up")

    def close(self):
        if self.closed:
            return
        self.closed = True
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for h in self.hosts.values():
            _ip("netns", "del", h.ns, check=False)
        _ip("link", "del", self.root_if, check=False)
        _ip("netns", "del", self.hub, check=False)


# --- CPU quotas (the scale-out benchmark) ---------------------------------------------------

CGROUP_V1 = "/sys/fs/cgroup/cpu"
CGROUP_V2 = "/sys/fs/cgroup"
PERIOD_US = 100000


class CpuQuota:
    """A cgroup holding its processes to `fraction` of one core."""

    def __init__(self, name, fraction):
        quota = max(1000, int(PERIOD_US * fraction))
        if os.path.exists(os.path.join(CGROUP_V1, "cpu.cfs_quota_us")):
            self.path = os.path.join(CGROUP_V1, f"shoebox-{os.getpid()}-{name}")
            os.makedirs(self.path, exist_ok=True)
            self._write("cpu.cfs_period_us", PERIOD_US)
            self._write("cpu.cfs_quota_us", quota)
        elif "cpu" in _read(os.path.join(CGROUP_V2, "cgroup.controllers")).split():
            self.path = os.path.join(CGROUP_V2, f"shoebox-{os.getpid()}-{name}")
            os.makedirs(self.path, exist_ok=True)
            self._write("cpu.max", f"{quota} {PERIOD_US}")
        else:
            raise NetError("no cgroup cpu controller (v1 cpu or v2 cpu.max) on this machine")
        self.procs = os.path.join(self.path, "cgroup.procs")
        atexit.register(self.close)

    def _write(self, f, v):
        with open(os.path.join(self.path, f), "w") as fh:
            fh.write(str(v))

    def add(self, pid):
        self._write("cgroup.procs", pid)

    def close(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)   # processes still inside: they are being killed


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
