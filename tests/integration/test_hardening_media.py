"""Hardening of the worker and media (issue "Hardening", items 2 and 8), through
the real `shoebox serve` and its worker processes:

  - a worker renews its lease while it works: with --lease 2 a file that takes
    4 s (fault decode_slow) is processed once, not taken by a second worker;
  - a file over the per-file CPU limit (--file-cpu 1, fault decode_spin burns
    CPU) fails with a reason naming the limit, and the worker that took it is
    replaced, so the files after it are processed;
  - data without magic is no longer refused at intake: LibRaw identifies a raw
    dump by its size (AVT F-080C, 786432 bytes); other unknown data fails in
    the worker as "unsupported format: unknown data"; text is still refused;
  - a GIF whose later frame is damaged is kept with a warning, not silently.
"""
import struct
import unittest

import harness
import photos

USER, PASSWORD = "alice", "pw-alice"


def gif(frames=3, bad=None):
    """An animated 32x32 GIF, 128 colours, LZW with 8-bit codes and a clear code
    every 100 pixels (no compression); frame `bad` gets codes not in the table."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", 32, 32, 0xF6, 0, 0))
    for i in range(128):
        out += bytes(((i * 2) & 255, (i * 5) & 255, (255 - i * 2) & 255))
    out += b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00"
    for k in range(frames):
        pixels = bytes((x + y + 17 * k) % 128 for y in range(32) for x in range(32))
        codes = bytearray()
        for i in range(0, len(pixels), 100):
            codes += bytes([128]) + pixels[i:i + 100]
        codes.append(129)
        if k == bad:
            codes[50:210] = bytes(250 + i % 4 for i in range(160))
        out += b"\x21\xF9\x04\x00\x0A\x00\x00\x00\x2C" + struct.pack("<HHHHB", 0, 0, 32, 32, 0)
        out.append(7)
        for i in range(0, len(codes), 255):
            chunk = codes[i:i + 255]
            out.append(len(chunk))
            out += chunk
        out.append(0)
    out.append(0x3B)
    return bytes(out)


def raw_dump(size=786432):
    """1024x768 8-bit sensor data without a header (LibRaw: AVT F-080C by size)."""
    row = bytes(((x // 5) + (x & 1) * 20) & 255 for x in range(1024))
    data = bytearray(b"".join(row[y % 7:] + row[:y % 7] for y in range(768)))
    data[0] = 0x07
    return bytes(data[:size]) if size <= len(data) else bytes(data) + b"\x01" * (size - len(data))


class HardeningCase(unittest.TestCase):
    args = []

    def setUp(self):
        self.srv = harness.Server(users={USER: PASSWORD},
                                  args=["--batch-delay", "0.05"] + self.args)
        self.addCleanup(self.srv.cleanup)
        self.srv.start()
        self.c = self.srv.client()
        self.assertEqual(self.c.login(USER, PASSWORD).status, 303)
        self.images = photos.Images()
        self.addCleanup(self.images.cleanup)

    def send(self, parts):
        ctype, length, body = photos.multipart(parts)
        r = self.c.request("POST", "/photos/upload/", body=body,
                           headers={"Content-Type": ctype, "Content-Length": str(length),
                                    "X-CSRFToken": self.c.cookies.get("csrftoken", ""),
                                    "Accept": "application/json"})
        self.assertEqual(r.status, 202, r.text)
        return r.json()["upload_id"]

    def finished(self, uid, timeout=90):
        def done():
            r = self.c.get(f"/api/uploads/{uid}")
            self.assertEqual(r.status, 200, r.text)
            j = r.json()
            return j if j["finished_at"] else None
        j = harness.wait_until(done, timeout=timeout, interval=0.1, what=f"upload {uid}")
        return {f["file_name"]: f for f in j["files"]}

    def photo(self, uid, name):
        for p in self.c.get(f"/api/photos?upload={uid}").json()["photos"]:
            if p["file_name"] == name:
                return p
        self.fail(f"no photo named {name}")


class TestLeaseRenewal(HardeningCase):
    args = ["--workers", "2", "--lease", "2", "--faults", "worker:decode_slow@slow"]

    def test_slow_file_keeps_its_lease(self):
        uid = self.send([photos.data_part("slow.jpg", self.images.jpeg(1)),
                         photos.data_part("quick.jpg", self.images.jpeg(2))])
        files = self.finished(uid)
        slow = files["slow.jpg"]
        self.assertEqual(slow["state"], "done", slow)
        self.assertEqual(slow["attempts"], 1, "taken by a second worker")
        self.assertEqual(files["quick.jpg"]["state"], "done")
        self.assertNotIn("event=lease.expired", self.srv.log())


class TestCpuLimit(HardeningCase):
    args = ["--workers", "1", "--file-cpu", "1", "--faults", "worker:decode_spin@spin"]

    def test_file_over_the_cpu_limit_fails_and_the_worker_is_replaced(self):
        uid = self.send([photos.data_part("spin.jpg", self.images.jpeg(1)),
                         photos.data_part("after.jpg", self.images.jpeg(2))])
        files = self.finished(uid)
        spin = files["spin.jpg"]
        self.assertEqual(spin["state"], "failed")
        self.assertEqual(spin["stage"], "limits")
        self.assertIn("over the CPU time limit of 1 s", spin["error"])
        self.assertEqual(spin["attempts"], 1)
        # The only worker ended after failing the file; its replacement did the rest.
        self.assertEqual(files["after.jpg"]["state"], "done")
        self.assertIn("event=file.cpu_limit", self.srv.log())


class TestUnknownData(HardeningCase):
    args = ["--workers", "1"]

    def test_raw_known_by_size_and_other_unknown_data(self):
        junk = bytes([0x07, 0x00, 0x99]) * 2000
        uid = self.send([photos.data_part("IMG_0001.RAW", raw_dump()),
                         photos.data_part("junk.jpg", junk),
                         photos.data_part("notes.jpg", b"just some text\n" * 10)])
        files = self.finished(uid)
        self.assertEqual(files["IMG_0001.RAW"]["state"], "done", files["IMG_0001.RAW"])
        p = self.photo(uid, "IMG_0001.RAW")
        self.assertEqual((p["format"], p["width"], p["height"]), ("raw", 1024, 768))
        self.assertEqual(files["junk.jpg"]["state"], "failed")
        self.assertEqual(files["junk.jpg"]["error"], "unsupported format: unknown data")
        self.assertEqual(files["junk.jpg"]["attempts"], 1)  # decided by the worker
        self.assertEqual(files["notes.jpg"]["error"], "unsupported format: text")
        self.assertEqual(files["notes.jpg"]["attempts"], 0)  # refused at intake


class TestDamagedGif(HardeningCase):
    args = ["--workers", "1"]

    def test_damaged_later_frame_is_kept_with_a_warning(self):
        uid = self.send([photos.data_part("fine.gif", gif()),
                         photos.data_part("broken.gif", gif(bad=2))])
        files = self.finished(uid)
        self.assertEqual(files["fine.gif"]["state"], "done")
        self.assertEqual(files["broken.gif"]["state"], "done")
        self.assertEqual(self.photo(uid, "fine.gif")["warnings"], [])
        warnings = self.photo(uid, "broken.gif")["warnings"]
        self.assertTrue(any("later frames damaged" in w for w in warnings), warnings)


if __name__ == "__main__":
    unittest.main()
