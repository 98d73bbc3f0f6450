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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid):
    """pid runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
