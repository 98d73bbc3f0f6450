// Real tus clients against the real `shoebox serve`, and the upload page's tus transport
// in headless Chromium:
//   1. tus-js-client in Node uploads photos (the test data's, when SHOEBOX_TESTDATA has
//      them, plus generated ones) through a TCP proxy that drops the connection every few
//      MB at random offsets; it resumes until done. Every file is stored once, and the
//      request bodies re-sent per drop are at most one chunk (counted in the proxy).
//   2. Uppy (@uppy/core, @uppy/dashboard, @uppy/tus, bundled by esbuild) uploads 30 photos
//      from a test page. The page is served by Shoebox itself through --assets-dir (a copy
//      of web/ plus the page under js/), so it is same-origin: no CORS, and the real
//      pages' CSP and CSRF are unchanged (the test page obeys the same CSP).
//   3. The upload page: the connection dropped mid-upload (it shows "Reconnecting…",
//      resumes and finishes), the page reloaded mid-upload (the same files chosen again,
//      only the bytes the server lacks are sent), the server restarted mid-upload
//      (SIGKILL, where the page must show Reconnecting…; TUS_RESTART=term for SIGTERM).
//
//   node tests/e2e/tus.mjs            (from the repository root; `make test` runs it)
//   TUS_ONLY='restarted|console' node tests/e2e/tus.mjs   (only the tests whose name matches)
// Environment as run.mjs. The last line is "tus: N passed, N failed, N skipped".
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import {
  HERE, ROOT, TESTDATA, CHROMIUM, CHROMIUM_ARGS, BIN, USER, PASSWORD, tally, log, test as libTest, assert, eq,
  finish, waitFor, Server, installDeps, loadPlaywright, track, login,
} from "./lib.mjs";

const CHUNK = 1024 * 1024;            // the Node client's chunk size (PATCH body)
const PAGE_CHUNK = 8 * 1024 * 1024;   // web/js/upload/send.js CHUNK
const KILL = process.env.TUS_RESTART !== "term";   // the restart test: SIGKILL unless "term"
const ONLY = process.env.TUS_ONLY ? new RegExp(process.env.TUS_ONLY) : null;
const test = (name, fn, opts = {}) =>
  libTest(name, fn, ONLY && !ONLY.test(name) ? { skip: `not in TUS_ONLY=${ONLY.source}` } : opts);

// ---- a seeded PRNG (mulberry32), so a failing run can be repeated with TUS_SEED ----
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- the proxy ----
// A TCP proxy on 127.0.0.1 in front of the server. It reads the HTTP requests going up
// (head, then Content-Length bytes of body) to count body bytes per method, and can drop
// every connection after `gap()` more body bytes went up (both sides destroyed mid-
// request), then refuse connections for `downMs`.
class DropProxy {
  constructor(targetPort, { gap = null, downMs = 0 } = {}) {
    this.targetPort = targetPort;
    this.gap = gap;
    this.downMs = downMs;
    this.body = {};            // method -> body bytes sent up
    this.requests = 0;
    this.drops = 0;
    this.downUntil = 0;
    this.sockets = new Set();
    this.untilDrop = gap ? gap() : Infinity;
  }
  start() {
    this.server = net.createServer((c) => this.accept(c));
    return new Promise((r) => this.server.listen(0, "127.0.0.1", () => {
      this.port = this.server.address().port;
      this.base = `http://127.0.0.1:${this.port}`;
      r();
    }));
  }
  bodyBytes(method) { return this.body[method] || 0; }
  reset() { this.body = {}; this.requests = 0; this.drops = 0; }
  dropAll() {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
  accept(c) {
    if (Date.now() < this.downUntil) { c.destroy(); return; }
    const u = net.connect(this.targetPort, "127.0.0.1");
    this.sockets.add(c);
    this.sockets.add(u);
    const gone = () => { this.sockets.delete(c); this.sockets.delete(u); c.destroy(); u.destroy(); };
    c.on("error", gone); u.on("error", gone); c.on("close", gone); u.on("close", gone);
    u.on("data", (d) => { if (!c.write(d)) { u.pause(); c.once("drain", () => u.resume()); } });
    // Request parser state: head text so far, or body bytes left of the current request.
    let head = "", left = 0, method = "";
    c.on("data", (d) => {
      let i = 0, bodyNow = 0;
      while (i < d.length) {
        if (left > 0) {
          const n = Math.min(left, d.length - i);
          left -= n; i += n; bodyNow += n;
          this.body[method] = (this.body[method] || 0) + n;
          continue;
        }
        const end = d.indexOf("\r\n\r\n", i);
        const take = end < 0 ? d.length : end + 4;
        head += d.toString("latin1", i, take);
        i = take;
        if (end < 0) break;
        method = head.split(" ", 1)[0];
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        left = m ? Number(m[1]) : 0;
        this.requests++;
        head = "";
      }
      if (!u.write(d)) { c.pause(); u.once("drain", () => c.resume()); }
      if (this.gap && bodyNow > 0) {
        this.untilDrop -= bodyNow;
        if (this.untilDrop <= 0) {
          this.drops++;
          this.untilDrop = this.gap();
          this.downUntil = Date.now() + this.downMs;
          this.dropAll();
        }
      }
    });
  }
  stop() { this.dropAll(); return new Promise((r) => this.server.close(() => r())); }
}

// ---- a logged-in HTTP session in Node (cookies by hand) ----
class Session {
  constructor(base) { this.base = base; this.cookies = {}; }
  cookieHeader() { return Object.entries(this.cookies).map(([k, v]) => `${k}=${v}`).join("; "); }
  async fetch(url, opts = {}) {
    const headers = { ...(opts.headers || {}), Cookie: this.cookieHeader() };
    const method = (opts.method || "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD" && this.cookies.csrftoken) headers["X-CSRFToken"] = this.cookies.csrftoken;
    // A GET or HEAD that meets a kept-alive connection the server has closed meanwhile (its
    // guard closes idle ones; files made between two requests under load take that long) is
    // sent once more on a new one, as browsers do.
    const send = () => fetch(this.base + url, { ...opts, headers, redirect: "manual" });
    const idempotent = method === "GET" || method === "HEAD";
    const res = await send().catch((e) => {
      if (idempotent && e.cause && e.cause.code === "UND_ERR_SOCKET") return send();
      throw e;
    }).catch((e) => { throw new Error(`${method} ${url}: ${e.message} (${e.cause && (e.cause.code || e.cause.message)})`); });
    for (const sc of res.headers.getSetCookie()) {
      const [kv] = sc.split(";");
      const eqAt = kv.indexOf("=");
      this.cookies[kv.slice(0, eqAt).trim()] = kv.slice(eqAt + 1).trim();
    }
    return res;
  }
  async login() {
    await this.fetch("/login");
    const body = new URLSearchParams({ username: USER, password: PASSWORD, csrfmiddlewaretoken: this.cookies.csrftoken });
    const r = await this.fetch("/login", { method: "POST", body, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    assert(r.status === 303 || r.status === 302, `login answered ${r.status}`);
  }
  async json(url, opts = {}) {
    const r = await this.fetch(url, { ...opts, headers: { Accept: "application/json", ...(opts.headers || {}) } });
    const text = await r.text();
    let j = null;
    try { j = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, body: j, text };
  }
  async openUpload(expected) {
    const r = await this.json("/api/uploads", { method: "POST", body: JSON.stringify({ expected }),
                                                headers: { "Content-Type": "application/json" } });
    assert(r.status === 201 || r.status === 200, `POST /api/uploads answered ${r.status}: ${r.text}`);
    const id = Number(r.body.upload_id || r.body.id);
    assert(id > 0, "upload id in " + r.text);
    return id;
  }
  async waitDone(id, timeout = 120000) {
    return waitFor(async () => {
      const r = await this.json(`/photos/upload-progress/?upload=${id}&files=1`);
      return r.status === 200 && r.body.status !== "processing" && r.body.status !== "idle" ? r.body : null;
    }, { timeout, interval: 300, what: `upload ${id} to finish` });
  }
}

// ---- files ----
// `n` distinct JPEGs of w x h noise (vips), written to dir; returns their paths.
function makeNoiseJpegs(dir, n, w, h, prefix) {
  fs.mkdirSync(dir, { recursive: true });
  const out = [];
  const noise = path.join(dir, "noise.v");
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `${prefix}-${String(i).padStart(2, "0")}.jpg`);
    const steps = [
      ["gaussnoise", noise, String(w + i), String(h), "--mean", "128", "--sigma", "60"],
      ["jpegsave", noise, f, "--Q", "92"],
    ];
    for (const s of steps) {
      const r = spawnSync("vips", s, { encoding: "utf8", timeout: 60000 });
      if (r.status !== 0) throw new Error(`vips ${s.join(" ")}: ${r.stderr}`);
    }
    out.push(f);
  }
  fs.rmSync(noise, { force: true });
  return out;
}
function testdataPhotos() {
  if (!fs.existsSync(path.join(TESTDATA, "jpeg"))) return [];
  const out = [];
  for (const d of ["jpeg", "png"]) {
    for (const f of fs.readdirSync(path.join(TESTDATA, d)).sort()) out.push(path.join(TESTDATA, d, f));
  }
  return out;
}
const sizeOf = (f) => fs.statSync(f).size;
const sum = (a) => a.reduce((x, y) => x + y, 0);

// ---- 1. tus-js-client in Node through the dropping proxy ----
async function nodeClient(srv, work) {
  const tus = await import("tus-js-client");
  const seed = Number(process.env.TUS_SEED) || (Date.now() % 100000);
  const rand = prng(seed);
  // At least ~10 MiB in all, so the 1-3 MB gaps below give 3 drops or more: without the
  // test data, more generated photos.
  const data = testdataPhotos();
  const files = data.concat(makeNoiseJpegs(path.join(work, "node"), data.length ? 4 : 8, 1600, 1400, "noise"));
  const fileBytes = sum(files.map(sizeOf));
  // A drop every 1-3 MB of request body, at a random offset; 300 ms without a connection.
  const proxy = new DropProxy(srv.port, { gap: () => Math.floor((1 + 2 * rand()) * 1024 * 1024), downMs: 300 });
  await proxy.start();
  try {
    const s = new Session(srv.base);
    await s.login();
    const id = await s.openUpload(files.length);
    let requests = 0, failures = 0;
    const sendOne = (f) => new Promise((resolve, reject) => {
      const up = new tus.Upload(fs.readFileSync(f), {
        endpoint: proxy.base + "/photos/tus/",
        chunkSize: CHUNK,
        retryDelays: [0, 100, 300, 600, 1000, 1000, 1000, 1000, 1000, 1000],
        metadata: { filename: path.basename(f), filetype: f.endsWith(".png") ? "image/png" : "image/jpeg", upload: String(id) },
        headers: { Cookie: s.cookieHeader(), "X-CSRFToken": s.cookies.csrftoken },
        onBeforeRequest: () => { requests++; },
        onShouldRetry: () => { failures++; return true; },
        onSuccess: resolve,
        onError: reject,
      });
      up.start();
    });
    const queue = files.slice();
    const lane = async () => { while (queue.length) await sendOne(queue.shift()); };
    await Promise.all([lane(), lane(), lane()]);
    const p = await s.waitDone(id);
    const sent = proxy.bodyBytes("PATCH") + proxy.bodyBytes("POST");
    const resent = sent - fileBytes;
    log(`     node tus-js-client: seed ${seed}, ${files.length} files, ${(fileBytes / 1048576).toFixed(1)} MiB, ` +
        `${proxy.drops} drops, ${failures} retried requests, ${proxy.requests} requests through the proxy, ` +
        `bodies ${sent} bytes = file bytes + ${resent} re-sent (${proxy.drops ? Math.round(resent / proxy.drops) : 0} per drop; chunk ${CHUNK})`);
    assert(proxy.drops >= 3, `the proxy dropped connections (${proxy.drops})`);
    assert(resent >= 0, "every byte went up at least once");
    assert(resent <= proxy.drops * CHUNK, `re-sent ${resent} bytes for ${proxy.drops} drops: more than one chunk per drop`);
    eq(p.total, files.length, "files in the upload");
    const names = (p.files || []).map((x) => x.file_name).sort();
    eq(JSON.stringify(names), JSON.stringify(files.map((f) => path.basename(f)).sort()), "each file once");
    for (const f of p.files) eq(f.byte_size, sizeOf(files.find((x) => path.basename(x) === f.file_name)), `size of ${f.file_name}`);
    eq(p.uploaded + p.duplicates + p.failed, files.length, "every file processed");
    eq(p.duplicates, 0, "no file stored twice");
  } finally {
    await proxy.stop();
  }
}

// ---- 2. Uppy in Chromium ----
// The test page and its bundle go into a copy of web/ served through --assets-dir.
async function buildUppyAssets(dir) {
  fs.cpSync(path.join(ROOT, "web"), dir, { recursive: true });
  const esbuild = await import("esbuild");
  const entry = path.join(dir, "uppy-entry.mjs");
  fs.writeFileSync(entry, `
import Uppy from "@uppy/core";
import Dashboard from "@uppy/dashboard";
import Tus from "@uppy/tus";
function cookie(name) {
  const m = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return m ? decodeURIComponent(m.slice(name.length + 1)) : "";
}
window.results = null;
window.startUppy = async function () {
  const r = await fetch("/api/uploads", { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": cookie("csrftoken"), Accept: "application/json" },
    body: JSON.stringify({ expected: 30 }) });
  const j = await r.json();
  const id = j.upload_id || j.id;
  const uppy = new Uppy({ autoProceed: false, meta: { upload: String(id) } })
    .use(Dashboard, { inline: true, target: "#uppy", proudlyDisplayPoweredByUppy: false })
    .use(Tus, { endpoint: "/photos/tus/", chunkSize: 5 * 1024 * 1024, retryDelays: [0, 500, 1000, 2000],
                headers: () => ({ "X-CSRFToken": cookie("csrftoken") }) });
  uppy.on("complete", (res) => { window.results = { id, ok: res.successful.length, failed: res.failed.length }; });
  window.uppy = uppy;
  return id;
};
`);
  await esbuild.build({ entryPoints: [entry], bundle: true, format: "iife", outfile: path.join(dir, "js", "uppy-test.js"),
                        nodePaths: [path.join(HERE, "node_modules")], logLevel: "warning", minify: true,
                        define: { "process.env.NODE_ENV": "\"production\"" } });
  fs.copyFileSync(path.join(HERE, "node_modules", "@uppy", "dashboard", "dist", "style.min.css"),
                  path.join(dir, "css", "uppy-test.css"));
  // A page under js/ (/static/ serves css/, js/ and img/ only): scripts and styles from 'self'.
  fs.writeFileSync(path.join(dir, "js", "uppy-test.html"), `<!doctype html>
<html><head><meta charset="utf-8"><title>Uppy test</title>
<link rel="stylesheet" href="/static/css/uppy-test.css"></head>
<body><div id="uppy"></div><script src="/static/js/uppy-test.js"></script></body></html>
`);
}

// ---- 3. helpers for the page ----
async function pageState(page) {
  return page.evaluate(() => ({
    state: document.getElementById("progress").getAttribute("data-state"),
    badge: document.getElementById("status-badge").textContent,
    net: document.getElementById("net-text").textContent,
  }));
}
// Records every text the status badge shows (a MutationObserver in the page).
async function recordBadge(page) {
  await page.evaluate(() => {
    window.__badges = [];
    const b = document.getElementById("status-badge");
    const note = () => { if (window.__badges[window.__badges.length - 1] !== b.textContent) window.__badges.push(b.textContent); };
    new MutationObserver(note).observe(b, { childList: true, characterData: true, subtree: true });
    note();
  });
}
async function waitFinished(page, timeout = 90000) {
  await page.waitForFunction(() => ["completed", "partial", "failed"].includes(
    document.getElementById("progress").getAttribute("data-state")), null, { timeout });
}

// ---- the run ----
async function main() {
  if (!fs.existsSync(BIN)) { log(`FAIL: ${BIN} is missing; build first`); tally.failed++; return; }
  if (!(await installDeps())) { log("SKIP all: the npm packages could not be installed"); tally.skipped += 6; return; }
  const haveData = testdataPhotos().length > 0;
  fs.mkdirSync(path.join(ROOT, "build", "screenshots"), { recursive: true });

  const srv = new Server(["--batch-delay", "0.1", "--workers", "2"]);
  let browser = null;
  try {
    srv.addUser(USER, PASSWORD);
    const work = path.join(srv.tmp, "files");
    const assets = path.join(srv.tmp, "assets");
    await buildUppyAssets(assets);
    srv.args.push("--assets-dir", assets);
    await srv.start();

    await test(`tus-js-client in Node: ${haveData ? "the test data's photos and " : ""}generated ones, cut every few MB, resume to the end`, async () => {
      await nodeClient(srv, work);
    });

    const chromium = fs.existsSync(CHROMIUM) ? await loadPlaywright() : null;
    const noBrowser = chromium ? "" : `no Chromium at ${CHROMIUM} or no playwright-core`;
    if (chromium) browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const errors = [];

    await test("Uppy (core, dashboard, tus) in Chromium uploads 30 photos from a same-origin test page", async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      track(page, errors);
      try {
        await login(page, srv.base);
        await page.goto(srv.base + "/static/js/uppy-test.html");
        const id = await page.evaluate(() => window.startUppy());
        const files = makeNoiseJpegs(path.join(work, "uppy"), 30, 320, 240, "uppy");
        await page.locator("#uppy input[type=file]:not([webkitdirectory])").first().setInputFiles(files);
        await page.waitForFunction(() => window.uppy.getFiles().length === 30, null, { timeout: 20000 });
        await page.click(".uppy-StatusBar-actionBtn--upload");
        await page.waitForFunction(() => window.results, null, { timeout: 90000 });
        const res = await page.evaluate(() => window.results);
        eq(res.ok, 30, "files Uppy reports as sent");
        eq(res.failed, 0, "files Uppy reports as failed");
        const s = new Session(srv.base);
        await s.login();
        const p = await s.waitDone(id);
        eq(p.total, 30, "files in the Shoebox upload");
        eq(p.uploaded, 30, "photos stored");
        const sizes = new Map(files.map((f) => [path.basename(f), sizeOf(f)]));
        for (const f of p.files) eq(f.byte_size, sizes.get(f.file_name), `size of ${f.file_name}`);
      } finally {
        await context.close();
      }
    }, { skip: noBrowser });

    // The page through the dropping proxy: Chromium talks to the proxy's port only.
    await test("upload page: the connection drops mid-upload; it shows Reconnecting…, resumes and finishes", async () => {
      const big = makeNoiseJpegs(path.join(work, "drop"), 3, 1500, 1300, "drop");
      const bytes = sum(big.map(sizeOf));
      let drops = 0;
      const proxy = new DropProxy(srv.port, { gap: () => (drops++ < 2 ? Math.floor(bytes / 3) : Infinity), downMs: 2500 });
      await proxy.start();
      const context = await browser.newContext();
      const page = await context.newPage();
      track(page, errors);
      try {
        await login(page, proxy.base);
        await page.goto(proxy.base + "/photos/upload/");
        await recordBadge(page);
        await page.setInputFiles("#photos-input", big);
        proxy.reset();
        await page.click("#upload-submit");
        await page.waitForFunction(() => document.getElementById("status-badge").textContent === "Reconnecting\u2026",
                                   null, { timeout: 30000 }).then(() => page.screenshot({
          path: path.join(ROOT, "build", "screenshots", "upload-reconnecting-desktop.png") }), () => {});
        await waitFinished(page);
        const seen = await page.evaluate(() => window.__badges);
        assert(seen.includes("Reconnecting\u2026"), "the badge said Reconnecting…: " + seen.join(" → "));
        const st = await pageState(page);
        eq(st.badge, "Completed", "finished: " + seen.join(" → "));
        const id = await page.evaluate(() => Number(sessionStorage.getItem("shoebox.upload")));
        const s = new Session(srv.base);
        await s.login();
        const p = await s.waitDone(id);
        eq(p.total, 3, "files in the upload");
        eq(p.uploaded, 3, "photos stored");
        const sent = proxy.bodyBytes("PATCH") + proxy.bodyBytes("POST");
        log(`     page through the proxy: ${proxy.drops} drops, bodies ${sent} bytes for ${bytes} file bytes`);
        assert(proxy.drops >= 1, "the proxy dropped the connection");
        assert(sent >= bytes && sent <= bytes + proxy.drops * PAGE_CHUNK, `bodies ${sent} bytes for ${bytes}`);
        const ledger = await page.evaluate(() => localStorage.getItem("shoebox.tus"));
        eq(ledger, null, "the ledger is gone once every file is complete");
      } finally {
        await context.close();
        await proxy.stop();
      }
    }, { skip: noBrowser });

    await test("upload page: reloaded mid-upload, the same files chosen again, only the missing bytes are sent", async () => {
      const small = makeNoiseJpegs(path.join(work, "reload-s"), 1, 200, 150, "small");
      const big = makeNoiseJpegs(path.join(work, "reload-b"), 2, 1500, 1300, "big");
      const all = small.concat(big);
      const proxy = new DropProxy(srv.port);
      await proxy.start();
      const context = await browser.newContext();
      const page = await context.newPage();
      track(page, errors);
      page.removeAllListeners("dialog");
      page.on("dialog", (d) => d.accept().catch(() => {}));   // "leave while sending?" yes
      try {
        await login(page, proxy.base);
        await page.goto(proxy.base + "/photos/upload/");
        const cdp = await context.newCDPSession(page);
        await cdp.send("Network.emulateNetworkConditions", {
          offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: 400 * 1024,
        });
        await page.setInputFiles("#photos-input", all);
        await page.click("#upload-submit");
        // The small file complete, the big ones part way.
        await page.waitForFunction(() => {
          const l = JSON.parse(localStorage.getItem("shoebox.tus") || "null");
          return l && Object.values(l.files).some((f) => f.done) &&
                 /^[1-9]/.test(document.getElementById("net-text").textContent) &&
                 parseFloat(document.getElementById("bar-sent").style.width) > 15;
        }, null, { timeout: 30000 });
        const id = await page.evaluate(() => Number(sessionStorage.getItem("shoebox.upload")));
        await page.reload();
        await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 }).catch(() => {});
        // The unfinished upload is shown, the two big files waiting to be chosen again.
        await page.waitForFunction(() => document.getElementById("progress").getAttribute("data-state") === "paused",
                                   null, { timeout: 15000 });
        await page.screenshot({ path: path.join(ROOT, "build", "screenshots", "upload-unfinished-desktop.png"), fullPage: true });
        const chips = await page.locator("#vlist .vrow:not([hidden]) .chip").allTextContents();
        eq(chips.filter((c) => c === "Choose again").length, 2, "rows waiting for their file: " + chips.join(", "));
        // What the server holds of each unfinished file (HEAD on the stored tus URLs).
        const urls = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("tus::"))
          .map((k) => JSON.parse(localStorage.getItem(k)).uploadUrl));
        eq(urls.length, 2, "tus URLs kept for the unfinished files");
        const s = new Session(srv.base);
        await s.login();
        const offsets = async () => Promise.all(urls.map(async (u) => {
          const r = await s.fetch(new URL(u, srv.base).pathname, { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } });
          eq(r.status, 200, "HEAD " + u);
          return { offset: Number(r.headers.get("upload-offset")), length: Number(r.headers.get("upload-length")) };
        }));
        // Settled: the broken PATCHes are over on the server.
        let held = await offsets();
        await waitFor(async () => { const again = await offsets(); const same = JSON.stringify(again) === JSON.stringify(held); held = again; return same; },
                      { timeout: 30000, interval: 500, what: "the server's offsets to settle" });
        const missing = sum(held.map((h) => h.length - h.offset));
        assert(held.every((h) => h.offset < h.length), "both big files unfinished: " + JSON.stringify(held));
        proxy.reset();
        await page.setInputFiles("#photos-input", all);
        const summary = await page.locator("#selection-summary").textContent();
        assert(summary.includes("2 files ready") && summary.includes("1 file already sent"), "summary: " + summary);
        await page.click("#upload-submit");
        await waitFinished(page);
        const p = await s.waitDone(id);
        eq(p.total, 3, "files in the upload");
        eq(p.uploaded, 3, "photos stored");
        const sent = proxy.bodyBytes("PATCH") + proxy.bodyBytes("POST");
        log(`     reload: the server held ${held.map((h) => h.offset).join(" and ")} bytes of the unfinished files; ` +
            `${sent} bytes sent after the reload for ${missing} missing (all three files: ${sum(all.map(sizeOf))})`);
        eq(sent, missing, "bytes sent after the reload: exactly the ones the server lacked");
        eq(await page.evaluate(() => localStorage.getItem("shoebox.tus")), null, "the ledger is gone once done");
      } finally {
        await context.close();
        await proxy.stop();
      }
    }, { skip: noBrowser });

    // Through the proxy (no drops) to count the bytes. The multipart page survived a restart
    // too, by sending its requests again whole; this one re-sends at most the PATCHes the
    // server had not confirmed (one chunk per file in flight; measured: see the log line).
    await test(`upload page: the server is ${KILL ? "killed" : "stopped"} and restarted mid-upload; the upload finishes`, async () => {
      const big = makeNoiseJpegs(path.join(work, "restart"), 3, 1500, 1300, "restart");
      const bytes = sum(big.map(sizeOf));
      const proxy = new DropProxy(srv.port);
      await proxy.start();
      const context = await browser.newContext();
      const page = await context.newPage();
      track(page, errors);
      try {
        await login(page, proxy.base);
        await page.goto(proxy.base + "/photos/upload/");
        await recordBadge(page);
        const cdp = await context.newCDPSession(page);
        await cdp.send("Network.emulateNetworkConditions", {
          offline: false, latency: 5, downloadThroughput: -1, uploadThroughput: 600 * 1024,
        });
        await page.setInputFiles("#photos-input", big);
        proxy.reset();
        await page.click("#upload-submit");
        await page.waitForFunction(() => parseFloat(document.getElementById("bar-sent").style.width) > 20, null, { timeout: 30000 });
        // SIGKILL, so the page sees its PATCHes break and reconnects (TUS_RESTART=term:
        // SIGTERM, which lets the server finish the PATCHes in flight first). It once
        // ended about 1 run in 5 with a file outside the page's upload: the restart
        // sweep dropped the upload (test_tus_restart.py has it deterministically).
        srv.proc.kill(KILL ? "SIGKILL" : "SIGTERM");
        await srv.exited;
        await srv.start();
        await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
        await waitFinished(page);
        const seen = await page.evaluate(() => window.__badges);
        eq((await pageState(page)).badge, "Completed", "finished: " + seen.join(" → "));
        if (KILL) assert(seen.includes("Reconnecting\u2026"), "the badge said Reconnecting…: " + seen.join(" → "));
        const id = await page.evaluate(() => Number(sessionStorage.getItem("shoebox.upload")));
        const s = new Session(srv.base);
        await s.login();
        const p = await s.waitDone(id);
        eq(p.total, 3, "files in the upload");
        eq(p.uploaded, 3, "photos stored");
        const sent = proxy.bodyBytes("PATCH") + proxy.bodyBytes("POST");
        log(`     restart (${KILL ? "SIGKILL" : "SIGTERM"}): bodies ${sent} bytes for ${bytes} file bytes (${sent - bytes} re-sent); badge ${seen.join(" → ")}`);
        assert(sent >= bytes && sent <= bytes + 3 * PAGE_CHUNK, `bodies ${sent} bytes for ${bytes}`);
      } finally {
        await context.close();
        await proxy.stop();
      }
    }, { skip: noBrowser });

    await test("no console errors on the pages", async () => {
      // A dropped connection is logged by Chromium; those are the test's, not the page's.
      const own = errors.filter((e) => !/ERR_CONNECTION|ERR_EMPTY_RESPONSE|net::|Failed to load resource/.test(e));
      assert(own.length === 0, "console errors:\n" + own.join("\n"));
    }, { skip: noBrowser });
  } finally {
    if (browser) await browser.close().catch(() => {});
    await srv.stop().catch(() => {});
    const san = srv.sanitizerReport();
    if (san) { tally.failed++; log("FAIL the server's sanitizer report:\n" + san); }
    if (tally.failed) log("server log (tail):\n" + srv.log().split("\n").slice(-40).join("\n"));
    srv.cleanup();
  }
}

main().catch((e) => { tally.failed++; log("FAIL run: " + (e && e.stack ? e.stack : e)); }).finally(() => finish("tus"));
