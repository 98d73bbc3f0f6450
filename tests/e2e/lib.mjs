// Helpers shared by the browser tests (run.mjs) and the tus client tests (tus.mjs):
// a tiny test runner whose last line tests/run.py parses, the real `shoebox serve` on
// a free loopback port (Server), playwright-core (installed by `npm ci` when a
// dependency of package.json is missing), and logging in.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = process.env.SHOEBOX_ROOT || path.resolve(HERE, "..", "..");
export const BIN = process.env.SHOEBOX_BIN || path.join(ROOT, "build", "shoebox");
export const TESTDATA = process.env.SHOEBOX_TESTDATA || path.resolve(ROOT, "..", "shared", "testdata");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
export const USER = "alice";
export const PASSWORD = "correct horse battery";

// ---- tiny test runner ----
export const tally = { passed: 0, failed: 0, skipped: 0 };
export function log(...a) { console.log(...a); }
export async function test(name, fn, { skip = "" } = {}) {
  if (skip) {
    tally.skipped++;
    log(`SKIP ${name}: ${skip}`);
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
    tally.passed++;
    log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    tally.failed++;
    log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
export function assert(cond, msg) { if (!cond) throw new Error("assertion failed: " + msg); }
export function eq(a, b, msg) {
  if (a !== b) throw new Error(`${msg}: expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
}
export function finish(label = "e2e") {
  log(`${label}: ${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
  process.exitCode = tally.failed ? 1 : 0;
}
export async function waitFor(pred, { timeout = 20000, interval = 100, what = "condition" } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

// ---- the server ----
// A free loopback port that stays ours until a server binds it (as tests/throwaway.py free_port()):
// a port merely bound and closed could go to another job's bind(0) or outgoing connection
// first. Left in TIME_WAIT by a connection to itself that the listening side closes first,
// the kernel gives it to no bind(0) or connect() for 60 s, while a server that sets
// SO_REUSEADDR (libmicrohttpd; Node's listen) binds it at once.
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer((a) => { a.on("error", () => {}); a.end(); });   // the active close: TIME_WAIT on the port
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = s.address().port;
      const c = net.connect(port, "127.0.0.1");
      c.once("error", reject);
      c.resume();                                  // its 'end' answers the FIN with ours
      c.once("close", () => s.close(() => resolve(port)));
    });
  });
}

// SIGTERM, then SIGKILL after 20 s; resolves once proc has exited (exited: its promise).
export async function stopProcess(proc, exited) {
  if (!proc || proc.exitCode !== null) return;
  proc.kill("SIGTERM");
  const t = setTimeout(() => proc.kill("SIGKILL"), 20000);
  await exited;
  clearTimeout(t);
}

// The first sanitizer report in a server log, or "".
export function sanitizerReportIn(text) {
  const at = text.search(/ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error: /);
  return at < 0 ? "" : text.slice(at, at + 4000);
}

export class Server {
  constructor(args) {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shoebox-e2e-"));
    this.data = path.join(this.tmp, "data");
    fs.mkdirSync(this.data);
    this.args = args;
    this.proc = null;
  }
  addUser(name, password) {
    const r = spawnSync(BIN, ["user", "add", name, "--password-stdin", "--data", this.data],
                        { input: password + "\n", encoding: "utf8", timeout: 60000 });
    if (r.status !== 0) throw new Error(`user add failed: ${r.stdout}${r.stderr}`);
  }
  async start() {
    this.port = this.port || await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    const logFd = fs.openSync(path.join(this.tmp, "server.log"), "a");
    this.proc = spawn(BIN, ["serve", "--listen", `127.0.0.1:${this.port}`, "--data", this.data,
                            ...this.args], { stdio: ["ignore", logFd, logFd] });
    fs.closeSync(logFd);
    this.exited = new Promise((r) => this.proc.once("exit", r));
    await waitFor(async () => {
      if (this.proc.exitCode !== null) throw new Error("server exited:\n" + this.log());
      try { return (await fetch(this.base + "/healthz")).ok; } catch { return false; }
    }, { timeout: 20000, what: "/healthz" });
  }
  log() {
    try { return fs.readFileSync(path.join(this.tmp, "server.log"), "utf8"); } catch { return ""; }
  }
  async stop() { await stopProcess(this.proc, this.exited); }
  // A sanitizer's report in the server's log (a build with -Db_sanitize), or "".
  sanitizerReport() { return sanitizerReportIn(this.log()); }
  cleanup() { fs.rmSync(this.tmp, { recursive: true, force: true }); }
}

// ---- playwright-core ----
export async function loadPlaywright() {
  await installDeps();
  const mod = path.join(HERE, "node_modules", "playwright-core");
  if (!fs.existsSync(mod)) return null;
  const pw = await import(pathToFileURL(path.join(mod, "index.mjs")).href);
  return pw.chromium || (pw.default && pw.default.chromium);
}

// npm ci when a dependency of package.json is missing from node_modules. npm ci
// first deletes node_modules, so concurrent scripts take turns: the first makes the
// lock directory and installs, the others wait for it and then find the packages.
export async function installDeps() {
  const deps = Object.keys(JSON.parse(fs.readFileSync(path.join(HERE, "package.json"), "utf8")).dependencies);
  const missing = () => deps.some((d) => !fs.existsSync(path.join(HERE, "node_modules", d, "package.json")));
  if (!missing()) return true;
  const lock = path.join(HERE, ".npm-install.lock");
  for (const began = Date.now(); ;) {
    try { fs.mkdirSync(lock); break; } catch (e) { if (e.code !== "EEXIST") throw e; }
    let age = 0;
    try { age = Date.now() - fs.statSync(lock).mtimeMs; } catch { continue; }
    if (age > 600000) fs.rmSync(lock, { recursive: true, force: true }); // its owner died
    if (Date.now() - began > 600000) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
  try {
    if (!missing()) return true;
    log("installing the test's npm packages (npm ci --prefix tests/e2e)");
    const r = spawnSync("npm", ["ci", "--prefix", HERE, "--no-audit", "--no-fund"],
                        { encoding: "utf8", stdio: "inherit", timeout: 300000 });
    return r.status === 0;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

// Collects console errors and page errors of every page of a context.
export function watch(context, bucket) {
  context.on("page", (page) => track(page, bucket));
}
export function track(page, bucket) {
  page.on("console", (m) => { if (m.type() === "error") bucket.push(`${page.url()}: ${m.text()}`); });
  page.on("pageerror", (e) => bucket.push(`${page.url()}: ${e.message}`));
  page.on("dialog", (d) => { bucket.dialogs = (bucket.dialogs || []).concat(d.message()); d.dismiss().catch(() => {}); });
}


export async function login(page, base) {
  await page.goto(base + "/photos/");
  await page.waitForURL(/\/login/);
  await page.fill("#username", USER);
  await page.fill("#password", PASSWORD);
  await Promise.all([page.waitForURL(base + "/photos/"), page.click("button[type=submit]")]);
}

// page.request and route.fetch() go through the context's APIRequestContext, which pools
// keep-alive connections with no idle limit of its own (http.Agent({ keepAlive: true })).
// The server shuts a connection that sent no request for LIMIT_HEADER_MS (10 s, its guard)
// down, a balancer or proxy may close idle ones too: a GET sent on a pooled connection
// just as it is cut reads ECONNRESET ("socket hang up"). A GET is idempotent: Playwright
// asks it again once then (maxRetries retries on ECONNRESET only). Pass to every GET.
export const RETRY_RESET = Object.freeze({ maxRetries: 1 });

export async function serverJSON(page, base, url) {
  const r = await page.request.get(base + url, { headers: { Accept: "application/json" }, ...RETRY_RESET });
  assert(r.ok(), `${url} answered ${r.status()}`);
  return r.json();
}
