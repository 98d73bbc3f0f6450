// Upload page, sending: the files of the chosen rows go to POST /photos/upload/ in
// requests of up to REQ_FILES files / REQ_BYTES bytes, PARALLEL at a time, each
// retried alone (RETRIES more attempts, with backoff) on a network error or a 5xx,
// 408 or 429; XHR for the network progress. The first request starts the upload
// (with `expected`, the number of files it will have), the rest join it.
//
// The interface is deliberately narrow so another transport (tus) can replace
// this module:
//   sendRows(rows)  send these rows (each has .file) into st.uploadId, or start
//                   an upload and adopt() its id. Along the way: r.local goes
//                   queued -> sending -> sent, or unsent with r.reason; st.sending
//                   counts the sendRows() calls running; net.groups (each
//                   {rows, bytes, loaded, done}) and net.total feed the bar.
//   sentBytes()     bytes of net.total on the server so far.
// When a call ends it hands over to follow.js (startFollow, scheduleFiles).

import { SB, st, net, plural, announce, parseJSON } from "./state.js";
import { touch } from "./rows.js";
import { updateSelection } from "./choose.js";
import { adopt, startFollow, scheduleFiles } from "./follow.js";
import { showProgress } from "./retry.js";
import { schedule } from "./render.js";

const REQ_FILES = 10;                 // files per request
const REQ_BYTES = 8 * 1024 * 1024;    // bytes per request (one bigger file goes alone)
const PARALLEL = 3;                   // requests in flight
const RETRIES = 3;                    // extra attempts of a failed request

function makeGroups(list) {
  var groups = [], g = null;
  list.forEach(function (r) {
    if (!g || g.rows.length >= REQ_FILES || (g.rows.length && g.bytes + r.size > REQ_BYTES)) {
      g = { rows: [], bytes: 0, loaded: 0, attempts: 0, done: false };
      groups.push(g);
    }
    g.rows.push(r);
    g.bytes += r.size;
  });
  return groups;
}

export function sentBytes() {
  return net.groups.reduce(function (a, g) { return a + (g.done ? g.bytes : g.loaded); }, 0);
}

function sendGroup(g, expected) {
  return new Promise(function (resolve) {
    function fail(msg) {
      g.loaded = 0;
      g.failed = true;
      g.rows.forEach(function (r) { r.local = "unsent"; r.reason = msg; touch(r); });
      schedule();
      resolve(false);
    }
    function again(msg) {
      g.loaded = 0;
      if (g.attempts > RETRIES) { fail(msg); return; }
      g.rows.forEach(function (r) { r.local = "queued"; touch(r); });
      schedule();
      window.setTimeout(attempt, 800 * Math.pow(2, g.attempts - 1));
    }
    function attempt() {
      g.attempts++;
      g.rows.forEach(function (r) { r.local = "sending"; touch(r); });
      var q = [];
      if (st.uploadId) q.push("upload=" + st.uploadId);
      if (expected) q.push("expected=" + expected);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/photos/upload/" + (q.length ? "?" + q.join("&") : ""));
      xhr.setRequestHeader("X-CSRFToken", SB.csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable && e.total > 0) { g.loaded = g.bytes * e.loaded / e.total; schedule(); }
      };
      xhr.onload = function () {
        var body = parseJSON(xhr.responseText);
        if (xhr.status === 202 && body && body.upload_id) {
          g.done = true;
          g.loaded = g.bytes;
          if (!st.uploadId) adopt(body.upload_id);
          g.rows.forEach(function (r) { if (!r.sid) r.local = "sent"; touch(r); });
          scheduleFiles();
          schedule();
          resolve(true);
          return;
        }
        var msg = (body && body.error) || ("the server answered " + xhr.status);
        if (xhr.status === 401) fail("not sent: your session has ended; log in again");
        else if (xhr.status >= 500 || xhr.status === 429 || xhr.status === 408) again(msg);
        else fail("not sent: " + msg);
      };
      xhr.onerror = function () { again("not sent: the connection failed"); };
      xhr.ontimeout = xhr.onerror;
      var fd = new FormData();
      g.rows.forEach(function (r) { fd.append("photos", r.file, r.name); });
      xhr.send(fd);
    }
    attempt();
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

// Send rows: into the current upload, or a new one announced with `expected`.
export function sendRows(list) {
  if (!list.length) return;
  var expected = st.uploadId ? 0 : list.length;
  var groups = makeGroups(list);
  list.forEach(function (r) { r.local = "queued"; r.reason = ""; touch(r); });
  if (!st.sending) {
    net.groups = [];
    net.speed = 0;
    net.lastSent = 0;
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
  var queue = groups.slice();
  var first = st.uploadId ? Promise.resolve(true) : sendGroup(queue.shift(), expected);
  first.then(function (ok) {
    if (!ok && !st.uploadId) {
      queue.forEach(function (g) {
        g.rows.forEach(function (r) { r.local = "unsent"; r.reason = "not sent: the upload could not be started"; touch(r); });
      });
      return null;
    }
    return runPool(queue, PARALLEL, function (g) { return sendGroup(g, expected); });
  }).then(function () {
    st.sending--;
    if (!st.sending) net.doneT = performance.now();
    updateSelection();
    if (st.uploadId) { startFollow(); scheduleFiles(true); }
    schedule();
  });
}
