// Upload page, sending through tus 1.0 (tus-js-client, vendored as ../vendor/tus.min.js,
// which sets window.tus). The rows of one sendRows() call belong to one Shoebox upload,
// opened first with POST /api/uploads {"expected": N} (CSRF header) unless the page
// already has one (st.uploadId); then every file is its own tus upload at /photos/tus/,
// PARALLEL at a time, with Upload-Metadata filename, filetype and upload=<id>, sent in
// PATCHes of up to CHUNK bytes. A failed request is retried from the server's offset
// (HEAD) after RETRY_DELAYS (the count starts again once bytes move), and meanwhile the
// status says "Reconnecting…" (net.waiting counts the files waiting to retry).
//
// Resuming after a reload or a crash: tus-js-client keeps each file's upload URL in
// localStorage under its fingerprint (fingerprintOf: the Shoebox upload id, name, type,
// size, last modified), and the ledger (localStorage LEDGER: the upload id and each
// file's fingerprint, name, size and whether it is complete) says what the page was
// sending. main.js shows an unfinished ledger after a reload; the same files chosen
// again are matched to it (ledgerMatch): complete ones are skipped, the rest resume
// from the server's offset, so only the missing bytes are sent.
//
// The interface is the one the multipart transport had:
//   sendRows(rows)  send these rows (each has .file) into st.uploadId, or open an
//                   upload and adopt() its id. Along the way: r.local goes
//                   queued -> sending -> sent, or unsent with r.reason; st.sending
//                   counts the sendRows() calls running; net.groups (one per file:
//                   {rows, bytes, loaded, done}) and net.total feed the bar.
//   sentBytes()     bytes of net.total on the server so far.
// When a call ends it hands over to follow.js (startFollow, scheduleFiles).

import { SB, st, net, plural, announce, parseJSON } from "./state.js";
import { touch } from "./rows.js";
import { updateSelection } from "./choose.js";
import { adopt, startFollow, scheduleFiles } from "./follow.js";
import { showProgress } from "./retry.js";
import { schedule } from "./render.js";
import "../vendor/tus.min.js";

const ENDPOINT = "/photos/tus/";
const CHUNK = 8 * 1024 * 1024;        // bytes per PATCH: at most this much is sent again after a drop
const PARALLEL = 3;                   // files in flight
const OPEN_RETRIES = 3;               // extra attempts of POST /api/uploads
// Waits before each retry of a broken request (ms); reset once bytes move again.
const RETRY_DELAYS = [0, 1000, 2000, 4000, 8000, 15000, 30000, 30000, 30000, 30000];
export const LEDGER = "shoebox.tus";  // localStorage: the upload being sent, for a reload

// ---- the ledger ----
export function readLedger() {
  try {
    var l = JSON.parse(window.localStorage.getItem(LEDGER) || "null");
    return l && l.id && l.files ? l : null;
  } catch (e) { return null; }
}
function writeLedger(l) {
  try {
    if (l) window.localStorage.setItem(LEDGER, JSON.stringify(l));
    else window.localStorage.removeItem(LEDGER);
  } catch (e) { /* private mode or full: resuming after a reload is lost, sending is not */ }
}
// Forget the ledger and the tus URLs it left (when the upload is cleared or replaced).
export function dropLedger() {
  var l = readLedger();
  writeLedger(null);
  if (!l) return;
  try {
    var prefix = "tus::shoebox-" + l.id + "-";
    for (var i = window.localStorage.length - 1; i >= 0; i--) {
      var k = window.localStorage.key(i);
      if (k && k.indexOf(prefix) === 0) window.localStorage.removeItem(k);
    }
  } catch (e) { /* ignore */ }
}
function ledgerAdd(list) {
  var l = readLedger();
  if (!l || l.id !== st.uploadId) l = { id: st.uploadId, files: {} };
  list.forEach(function (r) {
    var fp = fingerprintOf(st.uploadId, r.file);
    if (!l.files[fp]) l.files[fp] = { name: r.name, size: r.size, done: false };
  });
  writeLedger(l);
}
function ledgerDone(fp) {
  var l = readLedger();
  if (!l || l.id !== st.uploadId || !l.files[fp]) return;
  l.files[fp].done = true;
  writeLedger(l);
}
// The ledger's word on a file chosen again: "done", "partial" (resume it) or "".
export function ledgerMatch(file) {
  var l = readLedger();
  if (!l || l.id !== st.uploadId) return "";
  var e = l.files[fingerprintOf(l.id, file)];
  return e ? (e.done ? "done" : "partial") : "";
}

export function fingerprintOf(uploadId, file) {
  return "shoebox-" + uploadId + "-" + [file.name, file.type, file.size, file.lastModified].join("/");
}

// ---- progress ----
export function sentBytes() {
  return net.groups.reduce(function (a, g) { return a + (g.done ? g.bytes : g.loaded); }, 0);
}
function setWaiting(g, on) {
  if (!!g.waiting === on) return;
  g.waiting = on;
  net.waiting += on ? 1 : -1;
  schedule();
}

// ---- opening the Shoebox upload ----
function openUpload(expected) {
  var attempts = 0;
  return new Promise(function (resolve) {
    function attempt() {
      attempts++;
      SB.request("/api/uploads", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ expected: expected }),
      }).then(function (res) {
        return res.text().then(function (t) {
          var body = parseJSON(t) || {};
          var id = body.upload_id || body.id;
          if ((res.status === 200 || res.status === 201) && id) { resolve({ id: Number(id) }); return; }
          var msg = body.error || ("the server answered " + res.status);
          if (res.status === 401) resolve({ error: "not sent: your session has ended; log in again" });
          else if (res.status >= 500 || res.status === 429 || res.status === 408) again(msg);
          else resolve({ error: "not sent: " + msg });
        });
      }, function () { again("the connection failed"); });
    }
    function again(msg) {
      if (attempts > OPEN_RETRIES) { resolve({ error: "not sent: " + msg }); return; }
      window.setTimeout(attempt, 800 * Math.pow(2, attempts - 1));
    }
    attempt();
  });
}

// ---- one file ----
function sendFile(g) {
  var r = g.rows[0];
  var id = st.uploadId;
  var fp = fingerprintOf(id, r.file);
  return new Promise(function (resolve) {
    function finish(ok) { setWaiting(g, false); schedule(); resolve(ok); }
    r.local = "sending";
    touch(r);
    var up = new window.tus.Upload(r.file, {
      endpoint: ENDPOINT,
      chunkSize: CHUNK,
      retryDelays: RETRY_DELAYS,
      metadata: { filename: r.name, filetype: r.file.type || "application/octet-stream", upload: String(id) },
      headers: { "X-CSRFToken": SB.csrfToken() },
      fingerprint: function () { return Promise.resolve(fp); },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress: function (sent) {
        g.loaded = sent;
        if (g.waiting) setWaiting(g, false);   // bytes move again
        schedule();
      },
      onShouldRetry: function (err) {
        var s = err.originalResponse ? err.originalResponse.getStatus() : 0;
        var retry = !s || s >= 500 || s === 408 || s === 409 || s === 423 || s === 429;
        if (retry) setWaiting(g, true);
        return retry;
      },
      onSuccess: function () {
        g.done = true;
        g.loaded = g.bytes;
        ledgerDone(fp);
        if (!r.sid) r.local = "sent";
        touch(r);
        scheduleFiles();
        finish(true);
      },
      onError: function (err) {
        var res = err && err.originalResponse;
        var s = res ? res.getStatus() : 0;
        var text = res ? String(res.getBody() || "") : "";
        var body = parseJSON(text);
        // JSON {"error"} or a short plain-text reason (the tus answers' own)
        var why = (body && body.error) || (text && text.length < 200 && !/[<{]/.test(text) ? text.trim() : "");
        g.loaded = 0;
        g.failed = true;
        r.local = "unsent";
        r.reason = s === 401 ? "not sent: your session has ended; log in again" :
          "not sent: " + (why || (s ? "the server answered " + s : "the connection failed"));
        touch(r);
        finish(false);
      },
    });
    up.findPreviousUploads().then(function (prev) {
      if (prev.length) {
        // The newest stored URL of this file in this upload: HEAD asks where it stands.
        prev.sort(function (a, b) { return String(b.creationTime).localeCompare(String(a.creationTime)); });
        up.resumeFromPreviousUpload(prev[0]);
      }
      up.start();
    }, function () { up.start(); });
  });
}

function runPool(groups, n, fn) {
  var i = 0;
  function lane() {
    if (i >= groups.length) return Promise.resolve();
    var g = groups[i++];
    return fn(g).then(lane);
  }
  var lanes = [];
  for (var k = 0; k < Math.min(n, groups.length); k++) lanes.push(lane());
  return Promise.all(lanes);
}

// Send rows: into the current upload, or a new one opened for them.
export function sendRows(list) {
  if (!list.length) return;
  var groups = list.map(function (r) {
    return { rows: [r], bytes: r.size, loaded: 0, done: false, waiting: false };
  });
  list.forEach(function (r) { r.local = "queued"; r.reason = ""; touch(r); });
  if (!st.sending) {
    net.groups = [];
    net.speed = 0;
    net.lastSent = 0;
    net.waiting = 0;
    net.startT = net.lastT = performance.now();
    net.doneT = 0;
  }
  net.groups = net.groups.concat(groups);
  net.total = net.groups.reduce(function (a, g) { return a + g.bytes; }, 0);
  st.sending++;
  st.final = false;
  st.resumeInto = false;
  showProgress();
  announce("Uploading " + plural(list.length, "file", "files"));
  updateSelection();
  schedule();
  var opened = st.uploadId ? Promise.resolve({ id: st.uploadId }) : openUpload(list.length);
  opened.then(function (o) {
    if (o.error) {
      list.forEach(function (r) { r.local = "unsent"; r.reason = o.error; touch(r); });
      return null;
    }
    if (!st.uploadId) adopt(o.id);
    ledgerAdd(list);
    return runPool(groups, PARALLEL, sendFile);
  }).then(function () {
    st.sending--;
    if (!st.sending) net.doneT = performance.now();
    var l = readLedger();
    if (l && l.id === st.uploadId && Object.keys(l.files).every(function (k) { return l.files[k].done; }))
      writeLedger(null);
    updateSelection();
    if (st.uploadId) { startFollow(); scheduleFiles(true); }
    schedule();
  });
}
