// Upload page, retry, re-upload and clear: a failed file is processed again while
// the server holds its bytes (retryFile; a 409 marks it gone), else its File is
// sent again, or a picker asks for it (reupload); "Retry all failed" does both
// for every failed or unsent file. resetUpload/clearProgress forget the upload;
// showProgress opens the progress panel.

import { SB, ui, st, KEY, bySid, thumbs, gone, net, plural, announce } from "./state.js";
import { newRow, touch, precheck, refused } from "./rows.js";
import { updateSelection } from "./choose.js";
import { sendRows, dropLedger } from "./send.js";
import { startFollow, stopFollow } from "./follow.js";
import { schedule } from "./render.js";

export function retryFile(fileId) {
  if (st.retrying.has(fileId)) return Promise.resolve();
  st.retrying.add(fileId);
  st.errorsKey = "";
  schedule();
  var url = "/photos/uploads/" + st.uploadId + "/files/" + fileId + "/retry";
  return SB.request(url, { method: "POST" }).then(function (res) {
    var r = bySid.get(fileId);
    if (res.status === 202) {
      if (r) { r.sstate = "queued"; r.stage = ""; r.error = ""; r.retryable = false; touch(r); }
      if (st.progress) {
        st.progress.errors = (st.progress.errors || []).filter(function (e) { return e.file_id !== fileId; });
      }
      // The retry committed a newer version. On several web nodes the stream may
      // first answer from a node that has not heard of it yet: that older, finished
      // state must not end the following.
      st.minVersion = Math.max(st.minVersion, (st.progress ? st.progress.version : 0) + 1);
      st.final = false;
      startFollow();
      return null;
    }
    return res.json().catch(function () { return {}; }).then(function (j) {
      if (r && res.status === 409) { r.retryable = false; r.error = j.error || r.error; touch(r); }
      announce("Cannot retry: " + (j.error || "the server answered " + res.status));
      if (res.status === 409) markGone(fileId, j.error);
    });
  }).catch(function () {
    announce("Retry failed: the connection failed");
  }).then(function () {
    st.retrying.delete(fileId);
    st.errorsKey = "";
    schedule();
  });
}

function markGone(fileId, msg) {
  gone.set(fileId, msg || "the file's bytes are no longer held; upload it again");
}

// Send a failed file again: its File when this page still has it, else a picker.
export function reupload(fileId) {
  var r = bySid.get(fileId);
  if (r && r.file) {
    var copy = newRow(r.name, r.size, r.file);
    r.replaced = true;
    touch(r);
    st.rows.push(copy);
    sendRows([copy]);
    return;
  }
  var pick = document.createElement("input");
  pick.type = "file";
  pick.multiple = true;
  pick.addEventListener("change", function () {
    var list = Array.prototype.slice.call(pick.files || []).map(function (f) {
      var nr = newRow(f.name, f.size, f);
      var why = precheck(f);
      nr.local = why ? "skipped" : "ready";
      nr.reason = why;
      st.rows.push(nr);
      return nr;
    }).filter(function (nr) { return nr.local === "ready"; });
    if (r) { r.replaced = true; touch(r); }
    sendRows(list);
  });
  pick.click();
}

export function retryAll() {
  var errs = (st.progress && st.progress.errors) || [];
  var retry = [], again = [];
  errs.forEach(function (e) {
    if (e.retryable && !gone.has(e.file_id)) retry.push(e.file_id);
    else {
      var r = bySid.get(e.file_id);
      if (r && r.file && !r.replaced && !refused(e.stage)) again.push(r);
    }
  });
  st.rows.forEach(function (r) { if (r.local === "unsent" && r.file && !r.sid) again.push(r); });
  announce("Retrying " + plural(retry.length + again.length, "file", "files"));
  var i = 0;
  function next() {
    if (i >= retry.length) return Promise.resolve();
    return retryFile(retry[i++]).then(next);
  }
  Promise.all([next(), next(), next()]);
  if (again.length) {
    var copies = again.map(function (r) {
      if (r.sid) { r.replaced = true; touch(r); var c = newRow(r.name, r.size, r.file); st.rows.push(c); return c; }
      return r;
    });
    sendRows(copies);
  }
}

// ---- clear / reset ----
export function resetUpload(forget) {
  stopFollow();
  if (forget) {
    try { window.sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ }
    dropLedger();
  }
  st.uploadId = 0;
  st.progress = null;
  st.minVersion = 0;
  st.final = false;
  st.ended = 0;
  st.resumeInto = false;
  st.lastStatus = "";
  st.errorsKey = "";
  bySid.clear();
  thumbs.clear();
  gone.clear();
  net.groups = [];
  net.total = 0;
  net.waiting = 0;
  st.skippedDone = 0;
  ui.progress.hidden = true;
  ui.form.classList.remove("compact");
  ui.errors.hidden = true;
  ui.note.hidden = true;
  ui.reportLink.hidden = true;
  ui.galleryLink.hidden = true;
  ui.retryAll.hidden = true;
}

export function clearProgress() {
  if (st.sending) return;
  var id = st.uploadId;
  var done = function () {
    resetUpload(true);
    st.rows = [];
    st.listDirty = true;
    ui.files.hidden = true;
    ui.input.value = "";
    updateSelection();
    announce("Cleared");
    schedule();
  };
  if (!id) { done(); return; }
  SB.request("/photos/clear-upload-progress/?upload=" + id, { method: "POST" }).then(done, done);
}

export function showProgress() {
  var first = ui.progress.hidden;
  ui.progress.hidden = false;
  ui.files.hidden = false;
  ui.form.classList.add("compact");
  updateSelection();
  // On a phone the panel starts below the fold: bring it up once.
  if (first && ui.progress.getBoundingClientRect().top > window.innerHeight * 0.7)
    ui.progress.scrollIntoView({ behavior: "smooth", block: "start" });
}
