// Two Shoebox web nodes behind a load balancer, for the browser tests (run.mjs with
// SHOEBOX_E2E_CLUSTER=1): the same face as lib.mjs's Server (addUser, start, stop, log,
// sanitizerReport, cleanup, base, tmp), but `start` runs two `shoebox serve` nodes that
// share only the run's PostgreSQL (SHOEBOX_TEST_PG, a fresh database) and S3 server
// (SHOEBOX_TEST_S3, a fresh prefix), each with its own data directory and workers, and
// `base` is a small HTTP load balancer on 127.0.0.1 that sends each request to the next
// node in turn. One rule, the one README gives for tus: a tus upload's requests go to the
// node named by the tag its id starts with (8 hex digits; the balancer learns which node
// has a tag from the Location of a creation, as a real one would be configured).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { BIN, waitFor, freePort, stopProcess, sanitizerReportIn } from "./lib.mjs";

function psql(url, sql) {
  const r = spawnSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                      { encoding: "utf8", timeout: 60000 });
  if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr}`);
}

// Round robin, except tus uploads (sticky to the node that created them).
class Balancer {
  constructor(ports) {
    this.ports = ports;
    this.next = 0;
    this.tus = new Map();   // node tag (first 8 hex digits of a tus id) -> port
    this.counts = new Map(ports.map((p) => [p, 0]));
  }
  pick(req) {
    const m = req.url.match(/^\/photos\/tus\/([0-9a-f]{8})/);
    if (m && this.tus.has(m[1])) return this.tus.get(m[1]);
    return this.ports[this.next++ % this.ports.length];
  }
  handle(req, res) {
    const port = this.pick(req);
    this.counts.set(port, this.counts.get(port) + 1);
    // A fresh connection to the node for each request: a pooled one could be the one the
    // node is closing for idleness just then (its guard shuts one down after 10 s without
    // a request, LIMIT_HEADER_MS: the same race, one hop further).
    const up = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url,
                              headers: req.headers, agent: false }, (r) => {
      const loc = r.headers.location || "";
      const m = req.method === "POST" && loc.match(/\/photos\/tus\/([0-9a-f]{8})/);
      if (m) this.tus.set(m[1], port);
      res.writeHead(r.statusCode, r.rawHeaders);
      r.pipe(res);
    });
    up.on("error", () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    res.on("close", () => up.destroy());
    req.pipe(up);
  }
  close() { this.server?.closeAllConnections?.(); this.server?.close(); }
}

export class Cluster {
  constructor(args) {
    const pg = process.env.SHOEBOX_TEST_PG, s3 = process.env.SHOEBOX_TEST_S3;
    if (!pg || !s3) throw new Error("SHOEBOX_E2E_CLUSTER needs SHOEBOX_TEST_PG and SHOEBOX_TEST_S3");
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shoebox-e2e-cluster-"));
    this.args = args;
    const name = `sbt_e2e_${process.pid}_${Date.now() % 100000}`;
    psql(`${pg}/postgres`, `CREATE DATABASE "${name}"`);
    this.pgBase = pg;
    this.dbName = name;
    this.db = `${pg}/${name}`;
    const u = new URL(s3.replace(/^s3:/, "http:"));
    this.blobs = `s3://${u.host}/e2e-${process.pid}-${Date.now() % 100000}${u.search}`;
    this.env = { ...process.env, SHOEBOX_S3_ACCESS_KEY: process.env.SHOEBOX_TEST_S3_ACCESS_KEY,
                 SHOEBOX_S3_SECRET_KEY: process.env.SHOEBOX_TEST_S3_SECRET_KEY };
    this.nodes = [0, 1].map((i) => ({ dir: path.join(this.tmp, `node${i}`), proc: null }));
    for (const n of this.nodes) fs.mkdirSync(path.join(n.dir, "data"), { recursive: true });
  }
  addUser(name, password) {
    const r = spawnSync(BIN, ["user", "add", name, "--password-stdin", "--db", this.db,
                              "--data", path.join(this.nodes[0].dir, "data")],
                        { input: password + "\n", encoding: "utf8", timeout: 60000, env: this.env });
    if (r.status !== 0) throw new Error(`user add failed: ${r.stdout}${r.stderr}`);
  }
  async start() {
    const ports = [];
    for (const n of this.nodes) {
      n.port = n.port || await freePort();
      ports.push(n.port);
      const logFd = fs.openSync(path.join(n.dir, "server.log"), "a");
      n.proc = spawn(BIN, ["serve", "--listen", `127.0.0.1:${n.port}`, "--data",
                           path.join(n.dir, "data"), "--db", this.db, "--blobs", this.blobs,
                           "--workers", "1", ...this.args],
                     { stdio: ["ignore", logFd, logFd], env: this.env });
      fs.closeSync(logFd);
      n.exited = new Promise((r) => n.proc.once("exit", r));
    }
    for (const n of this.nodes) {
      await waitFor(async () => {
        if (n.proc.exitCode !== null) throw new Error("node exited:\n" + this.log());
        try { return (await fetch(`http://127.0.0.1:${n.port}/healthz`)).ok; } catch { return false; }
      }, { timeout: 30000, what: "/healthz of a node" });
    }
    this.balancer?.close();
    this.balancer = new Balancer(ports);
    this.port = this.port || await freePort();
    this.balancer.server = http.createServer((q, s) => this.balancer.handle(q, s));
    // Node closes a client's idle connection after 5 s by default, and a client that sends
    // its next request on it at that moment reads ECONNRESET (the keep-alive race, which a
    // browser test must not stumble on): the balancer keeps idle connections open.
    this.balancer.server.keepAliveTimeout = 0;
    await new Promise((r) => this.balancer.server.listen(this.port, "127.0.0.1", r));
    this.base = `http://127.0.0.1:${this.port}`;
  }
  log() {
    return this.nodes.map((n, i) => {
      try { return `--- node ${i}\n` + fs.readFileSync(path.join(n.dir, "server.log"), "utf8"); }
      catch { return ""; }
    }).join("\n");
  }
  async stop() {
    this.balancer?.close();
    for (const n of this.nodes) await stopProcess(n.proc, n.exited);
  }
  sanitizerReport() { return sanitizerReportIn(this.log()); }
  // Requests each node answered: both must have served the page's traffic.
  requestsPerNode() { return [...this.balancer.counts.values()]; }
  cleanup() {
    try { psql(`${this.pgBase}/postgres`, `DROP DATABASE IF EXISTS "${this.dbName}" WITH (FORCE)`); }
    catch { /* the run's server is going away anyway */ }
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
