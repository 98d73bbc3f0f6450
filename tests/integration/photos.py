"""Helpers for pipeline tests: multipart bodies streamed from memory or disk, generated
images (so tests without ../shared/testdata still have real photos), the MANIFEST."""
import csv
import io
import os
import shutil
import subprocess
import tempfile
import threading
import uuid

TESTDATA = os.environ.get("SHOEBOX_TESTDATA", os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "testdata"))


def have_testdata():
    return os.path.isfile(os.path.join(TESTDATA, "MANIFEST.tsv"))


def manifest():
    with open(os.path.join(TESTDATA, "MANIFEST.tsv"), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


class Part:
    """A form part: a field (value) or a file (name + data bytes or path)."""

    def __init__(self, field, value=None, filename=None, data=None, path=None,
                 content_type="application/octet-stream"):
        self.field, self.value, self.filename = field, value, filename
        self.data, self.path, self.content_type = data, path, content_type

    def head(self, boundary):
        if self.filename is None:
            return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{self.field}\"\r\n\r\n"
                    ).encode()
        name = self.filename.replace("\\", "\\\\").replace('"', '\\"')
        return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{self.field}\"; "
                f"filename=\"{name}\"\r\nContent-Type: {self.content_type}\r\n\r\n").encode("utf-8")

    def size(self):
        if self.filename is None:
            return len(self.value.encode())
        return len(self.data) if self.data is not None else os.path.getsize(self.path)

    def chunks(self):
        if self.filename is None:
            yield self.value.encode()
        elif self.data is not None:
            yield self.data
        else:
            with open(self.path, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    yield b


def multipart(parts):
    """Returns (content_type, content_length, iterator of body chunks)."""
    boundary = "----shoebox" + uuid.uuid4().hex
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(p.head(boundary)) + p.size() + 2 for p in parts) + len(tail)

    def body():
        for p in parts:
            yield p.head(boundary)
            yield from p.chunks()
            yield b"\r\n"
        yield tail
    return f"multipart/form-data; boundary={boundary}", length, body()


def file_part(path, name=None):
    return Part("photos", filename=name or os.path.basename(path), path=path,
                content_type="image/jpeg")


def data_part(name, data):
    return Part("photos", filename=name, data=data, content_type="image/jpeg")


class Images:
    """Real images made with the vips command line in a temp dir; variants of one image
    get distinct bytes (and so distinct SHA-256) by data appended after the end marker."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="shoebox-img-")
        self._base = {}
        # Tests share one Images between client threads: without the lock a second
        # thread would rewrite a base image while the first reads it (an empty or
        # half-written file, which the server rightly calls "empty file" or "text").
        self._lock = threading.Lock()

    def base(self, w=640, h=480, fmt="jpg"):
        with self._lock:
            return self._make_base(w, h, fmt)

    def _make_base(self, w, h, fmt):
        key = (w, h, fmt)
        if key not in self._base:
            path = os.path.join(self.dir, f"base-{w}x{h}.{fmt}")
            subprocess.run(["vips", "gaussnoise", path, str(w), str(h)], check=True,
                           capture_output=True)
            self._base[key] = path
        return self._base[key]

    def jpeg(self, i=0, w=640, h=480):
        with open(self.base(w, h), "rb") as f:
            data = f.read()
        return data + b"shoebox-variant-%d" % i if i else data

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
