"""The HTTP foundation against the real binary: login, sessions, CSRF, security
headers, routing errors, static assets, restart, /healthz. Each test class
starts its own server with a fresh data dir."""
import os
import posixpath
import re
import time
import unittest

import harness
from harness import Server, wait_until

SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
LOGIN_ERROR = "Please enter a correct username and password."


class FoundationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(users={"alice": "correct horse", "bob": "battery staple"})
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    def client(self):
        return self.srv.client()

    def assert_security_headers(self, r):
        csp = r.header("Content-Security-Policy") or ""
        for part in ("default-src 'self'", "script-src 'self'", "style-src 'self'",
                     "object-src 'none'", "frame-ancestors 'none'", "form-action 'self'"):
            self.assertIn(part, csp)
        self.assertNotIn("unsafe-inline", csp)
        for k, v in SECURITY.items():
            self.assertEqual(r.header(k), v, k)

    # --- basics ---
    def test_healthz(self):
        r = self.client().get("/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["status"], "ok")
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        self.assert_security_headers(r)
        self.assertEqual(r.header("Cache-Control"), "no-store")

    def test_root_redirects_to_photos(self):
        r = self.client().get("/")
        self.assertEqual(r.status, 303)
        self.assertEqual(r.header("Location"), "/photos/")

    def test_404_html_and_json(self):
        c = self.client()
        r = c.get("/no/such/page")
        self.assertEqual(r.status, 404)
        self.assertIn("text/html", r.header("Content-Type"))
        self.assert_security_headers(r)
        r = c.get("/no/such/page", headers={"Accept": "application/json"})
        self.assertEqual(r.status, 404)
        self.assertIn("error", r.json())
        self.assert_security_headers(r)
        r = c.get("/api/nothing")
        self.assertEqual(r.status, 404)
        self.assertIn("error", r.json())

    def test_405_with_allow(self):
        c = self.client()
        r = c.request("DELETE", "/login")
        self.assertEqual(r.status, 405)
        allow = [m.strip() for m in r.header("Allow").split(",")]
        self.assertEqual(sorted(allow), ["GET", "HEAD", "POST"])
        self.assert_security_headers(r)
        r = c.get("/logout")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "POST")

    # --- login ---
    def test_login_page_sets_csrf_cookie_and_field(self):
        c = self.client()
        r = c.get("/login")
        self.assertEqual(r.status, 200)
        self.assert_security_headers(r)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        cookie = [h for h in r.header_all("Set-Cookie") if h.startswith("csrftoken=")][0]
        self.assertIn("SameSite=Lax", cookie)
        self.assertIn("Path=/", cookie)
        self.assertNotIn("HttpOnly", cookie)
        token = c.cookies["csrftoken"]
        self.assertRegex(token, r"^[0-9a-f]{64}$")
        self.assertEqual(c.csrf_field_in(r.text), token)
        self.assertNotIn("<script>", r.text)      # no inline script
        self.assertNotIn("style=", r.text)        # no inline style
        self.assertIn('href="/static/css/app.css"', r.text)
        self.assertIn('src="/static/js/app.js"', r.text)
        # a second visit keeps the cookie
        r = c.get("/login")
        self.assertFalse([h for h in r.header_all("Set-Cookie") if h.startswith("csrftoken=")])
        self.assertEqual(c.csrf_field_in(r.text), token)

    def test_login_success(self):
        c = self.client()
        r = c.login("alice", "correct horse")
        self.assertEqual(r.status, 303)
        self.assertEqual(r.header("Location"), "/photos/")
        cookie = [h for h in r.header_all("Set-Cookie") if h.startswith("sessionid=")][0]
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Lax", cookie)
        self.assertNotIn("Secure", cookie)
        r = c.get("/photos/")
        self.assertEqual(r.status, 200)
        self.assertIn("Your photos", r.text)
        self.assertIn("alice", r.text)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assert_security_headers(r)

    def test_login_rotates_session(self):
        c = self.client()
        c.login("alice", "correct horse")
        first = c.cookies["sessionid"]
        c.login("alice", "correct horse")
        second = c.cookies["sessionid"]
        self.assertNotEqual(first, second)
        other = self.client()
        other.cookies["sessionid"] = first
        self.assertEqual(other.get("/photos/").status, 302)   # the old one is gone
        self.assertEqual(c.get("/photos/").status, 200)

    def test_login_failure_same_for_unknown_user(self):
        c = self.client()
        wrong = c.login("alice", "wrong password")
        self.assertEqual(wrong.status, 200)
        self.assertIn(LOGIN_ERROR, wrong.text)
        self.assertNotIn("sessionid", c.cookies)
        unknown = c.login("nobody", "wrong password")
        self.assertEqual(unknown.status, 200)
        self.assertIn(LOGIN_ERROR, unknown.text)
        self.assertNotIn("sessionid", c.cookies)
        # the same page apart from the echoed user name
        self.assertEqual(wrong.text.replace("alice", "X"), unknown.text.replace("nobody", "X"))

    def test_redirect_to_login_with_next(self):
        c = self.client()
        r = c.get("/photos/")
        self.assertEqual(r.status, 302)
        self.assertEqual(r.header("Location"), "/login?next=/photos/")
        r = c.get("/login?next=/photos/")
        self.assertIn('name="next" value="/photos/"', r.text)
        r = c.login("bob", "battery staple", next_path="/photos/?x=1")
        self.assertEqual(r.status, 303)
        self.assertEqual(r.header("Location"), "/photos/?x=1")

    def test_next_must_be_local(self):
        for bad in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"):
            c = self.client()
            r = c.login("alice", "correct horse", next_path=bad)
            self.assertEqual(r.status, 303)
            self.assertEqual(r.header("Location"), "/photos/", bad)

    # --- CSRF ---
    def test_post_without_csrf_is_403(self):
        c = self.client()
        c.get("/login")
        r = c.post("/login", {"username": "alice", "password": "correct horse"}, csrf=False)
        self.assertEqual(r.status, 403)
        self.assertIn("CSRF token missing or incorrect", r.text)
        self.assert_security_headers(r)
        r = c.post("/login", {"username": "alice", "password": "correct horse",
                              "csrfmiddlewaretoken": "0" * 64}, csrf=False)
        self.assertEqual(r.status, 403)
        # no cookie at all
        fresh = self.client()
        r = fresh.post("/login", {"username": "alice", "password": "correct horse",
                                  "csrfmiddlewaretoken": "0" * 64}, csrf=False)
        self.assertEqual(r.status, 403)

    def test_csrf_header_path(self):
        c = self.client()
        c.login("alice", "correct horse")
        token = c.cookies["csrftoken"]
        r = c.request("POST", "/logout", headers={"X-CSRFToken": "f" * 64})
        self.assertEqual(r.status, 403)
        r = c.request("POST", "/logout", headers={"Accept": "application/json"})
        self.assertEqual(r.status, 403)
        self.assertIn("CSRF", r.json()["error"])
        self.assertEqual(c.get("/photos/").status, 200)     # still logged in
        r = c.request("POST", "/logout", headers={"X-CSRFToken": token})
        self.assertEqual(r.status, 303)
        self.assertEqual(c.get("/photos/").status, 302)

    # --- logout ---
    def test_logout(self):
        c = self.client()
        c.login("bob", "battery staple")
        sid = c.cookies["sessionid"]
        r = c.post("/logout")
        self.assertEqual(r.status, 303)
        self.assertEqual(r.header("Location"), "/login")
        self.assertTrue(any(h.startswith("sessionid=;") and "Max-Age=0" in h
                            for h in r.header_all("Set-Cookie")))
        self.assertNotIn("sessionid", c.cookies)
        replay = self.client()
        replay.cookies["sessionid"] = sid
        self.assertEqual(replay.get("/photos/").status, 302)

    # --- static ---
    def test_static_etag_and_304(self):
        c = self.client()
        r = c.get("/static/css/app.css")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/css"))
        etag = r.header("ETag")
        self.assertTrue(etag and etag.startswith('"'))
        # Revalidated on every use (a cheap 304): after an upgrade a browser must
        # never mix a cached old module of the upload page with a new one.
        self.assertEqual(r.header("Cache-Control"), "no-cache")
        self.assert_security_headers(r)
        r = c.get("/static/css/app.css", headers={"If-None-Match": etag})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")
        r = c.get("/static/js/app.js")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/javascript"))

    def test_static_js_modules(self):
        """Every script under web/js/ (subfolders too) is embedded and served as
        JavaScript, each relative import of a module resolves to one of them, and the
        upload page loads its entry module as an external module script."""
        web = os.path.join(harness.ROOT, "web")
        c = self.client()
        scripts = []
        for dirpath, _, files in os.walk(os.path.join(web, "js")):
            scripts += [os.path.relpath(os.path.join(dirpath, f), web).replace(os.sep, "/")
                        for f in files if f.endswith(".js")]
        self.assertIn("js/upload/main.js", scripts)
        for rel in scripts:
            r = c.get("/static/" + rel)
            self.assertEqual(r.status, 200, rel)
            self.assertTrue(r.header("Content-Type").startswith("text/javascript"), rel)
            with open(os.path.join(web, rel), "rb") as f:
                self.assertEqual(r.body, f.read(), rel + " is the embedded copy")
            for spec in re.findall(rb'^import [^;]*? from "([^"]+)";', r.body, re.M):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(rel),
                                                           spec.decode()))
                self.assertIn(target, scripts, rel + " imports " + spec.decode())
        c.login("alice", "correct horse")
        r = c.get("/photos/upload/")
        self.assertEqual(r.status, 200)
        self.assertIn('<script type="module" src="/static/js/upload/main.js"></script>', r.text)
        self.assertIn('src="/static/js/app.js" defer', r.text)

    def test_static_refuses_traversal_and_templates(self):
        c = self.client()
        for path in ("/static/templates/login.html", "/static/css/../templates/login.html",
                     "/static/css/%2e%2e/%2e%2e/etc/passwd", "/static/css/nope.css"):
            r = c.get(path)
            self.assertEqual(r.status, 404, path)
            self.assert_security_headers(r)

    def test_head(self):
        r = self.client().request("HEAD", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")


class SessionExpiryTest(unittest.TestCase):
    """--session-age 2: sessions die after 2 s without requests, requests extend them."""

    def setUp(self):
        self.srv = Server(users={"alice": "pw-alice"}, args=["--session-age", "2"])
        self.srv.start()

    def tearDown(self):
        self.srv.cleanup()

    def test_expiry(self):
        c = self.srv.client()
        self.assertEqual(c.login("alice", "pw-alice").status, 303)
        r = c.get("/photos/")
        self.assertEqual(r.status, 200)
        cookie = [h for h in r.header_all("Set-Cookie") if h.startswith("sessionid=")][0]
        self.assertIn("Max-Age=2", cookie)   # refreshed on every request
        # Any request with the cookie would extend the session, so wait on the clock
        # alone (past the 2 s age plus slack), then ask once.
        t0 = time.monotonic()
        wait_until(lambda: time.monotonic() > t0 + 2.5, timeout=5, interval=0.1,
                   what="the session age to pass")
        self.assertEqual(c.get("/photos/").status, 302)
        self.assertEqual(c.get("/login").status, 200)     # and the login page shows again

    def test_sliding_refresh(self):
        # Poll for 4 s (twice the age): the session stays alive because each request
        # moves the expiry. The server touches the row at most every quarter of the age
        # (0.5 s here), so the expiry can be as near as 1.5 s after a request: polls
        # every 0.2 s leave a loaded machine 1.3 s for one request, not the 1 s that
        # polls every 0.5 s left.
        c = self.srv.client()
        self.assertEqual(c.login("alice", "pw-alice").status, 303)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            self.assertEqual(c.get("/photos/").status, 200)
            time.sleep(0.2)


class RestartTest(unittest.TestCase):
    def test_restart_keeps_users_and_sessions(self):
        srv = Server(users={"alice": "pw-alice"})
        try:
            srv.start()
            c = srv.client()
            self.assertEqual(c.login("alice", "pw-alice").status, 303)
            self.assertEqual(c.get("/photos/").status, 200)
            self.assertEqual(srv.stop(), 0)
            srv.start()
            self.assertEqual(c.get("/photos/").status, 200)   # same cookie still valid
            fresh = srv.client()
            self.assertEqual(fresh.login("alice", "pw-alice").status, 303)
            self.assertIn("event=request", srv.log())
            self.assertNotIn(c.cookies["sessionid"], srv.log())   # tokens never logged
            self.assertNotIn("pw-alice", srv.log())
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
