"""What the throwaway test servers (pgserver.py, rgwserver.py) share: where their
directories go, a free port, and whether a process still runs."""
import os
import socket
import tempfile


def tmp_parent(env_var):
    """Where temp dirs go: $env_var, else /dev/shm when it is a tmpfs with room (a copy or
    a sync there takes a fraction of what the loaded disk takes; a Docker container's
    64 MB /dev/shm is too small and not used), else the usual temp dir."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    try:
        st = os.statvfs("/dev/shm")
        if os.access("/dev/shm", os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= 2 << 30:
            return "/dev/shm"
    except OSError:
        pass
    return tempfile.gettempdir()


def free_port():
    """A free loopback port that stays ours until a server binds it. A port merely bound
    and closed is free for anyone: another job's bind(("", 0)) or outgoing connection
    could take it before our server does, which then cannot listen. So the port is left
    in TIME_WAIT (a connection to itself, closed on the listening side first): for 60 s
    the kernel hands it to no bind(0) and no connect(), while a server that sets
    SO_REUSEADDR (libmicrohttpd, Node, PostgreSQL, Ceph) binds it at once. The
    integration tests' servers take theirs from here too (harness.free_port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            a, _ = s.accept()
            a.close()        # the active close: the TIME_WAIT is on `port`
            c.recv(1)        # its FIN has arrived; closing c now ends the connection
        return port


def alive(pid):
    """pid runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
