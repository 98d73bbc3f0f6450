// Upload page, entry point (<script type="module" src="/static/js/upload/main.js">
// in upload.html; app.js, a classic deferred script in layout.html, has set up
// window.Shoebox before this runs). Wires the page: pickers, the drop zone, the
// form's submit, the buttons, the list's filter and scrolling, the warning before
// leaving while sending; then picks up an unfinished upload after a reload
// (resume). Without JavaScript the form posts normally to /photos/upload/.
//
// The modules, each with its own header: state.js (shared state, helpers),
// rows.js (rows, pre-checks), choose.js (choosing files), send.js (sending through tus),
// follow.js (following the server), retry.js (retry, re-upload, clear),
// render.js (the progress panel and error table), vlist.js (the file list).

import { root, SB, ui, st, KEY, announce, getJSON } from "./state.js";
import { readyRows, choose, updateSelection, clearSelection, filesFromDrop, AWAITED } from "./choose.js";
import { sendRows, readLedger, dropLedger } from "./send.js";
import { newRow } from "./rows.js";
import { startFollow, isDone, onProgress, fetchThumbs, applyFiles } from "./follow.js";
import { retryAll, resetUpload, clearProgress, showProgress } from "./retry.js";
import { schedule } from "./render.js";

// After a reload, follow the upload again: the one this tab remembered, else the one
// whose files were being sent (the ledger in localStorage, which outlives a crashed
// browser), else the session's current upload (data-current-upload); while it is
// still receiving, new files join it, and files the ledger names that are not
// complete wait as rows to be chosen again (only their missing bytes are sent).
function resume() {
  var saved = "";
  try { saved = window.sessionStorage.getItem(KEY) || ""; } catch (e) { /* ignore */ }
  var ledger = readLedger();
  saved = saved || (ledger ? String(ledger.id) : "") || root.getAttribute("data-current-upload") || "";
  var id = Number(saved);
  if (!id) return;
  if (ledger && ledger.id !== id) ledger = null;
  getJSON("/photos/upload-progress/?upload=" + id + "&files=1").then(function (p) {
    if (!p || !p.upload_id || st.uploadId || st.sending || st.rows.length) return;
    st.uploadId = id;
    ui.reportLink.href = "/photos/uploads/" + id + "/";
    ui.reportLink.hidden = false;
    showProgress();
    applyFiles(p.files || []);
    if (ledger && p.phase === "receiving") awaitMissing(ledger);
    else if (ledger) dropLedger();
    st.lastStatus = "";
    onProgress(p);
    if (!isDone(p)) {
      if (p.phase === "receiving") st.resumeInto = true;
      startFollow();
      announce("Following upload #" + id + ": " + p.processed + " of " + p.total + " processed");
    }
    // null when every stored photo's thumbnail is known already
    Promise.resolve(fetchThumbs(id, p)).then(function () { schedule(); }, function () {});
    updateSelection();
    schedule();
  }, function (err) {
    if (err && err.status === 404) {
      try { window.sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ }
      if (ledger) dropLedger();
    }
  });
}

// A row for each file of the ledger that is not complete and not on the server.
function awaitMissing(ledger) {
  Object.keys(ledger.files).forEach(function (fp) {
    var f = ledger.files[fp];
    if (f.done) return;
    var stored = st.rows.some(function (r) { return r.sid && r.name === f.name && r.size === f.size; });
    if (stored) return;
    var r = newRow(f.name, f.size, null);
    r.local = "unsent";
    r.missing = true;
    r.awaited = true;
    r.reason = AWAITED;
    st.rows.push(r);
  });
  st.listDirty = true;
}

// ---- wiring ----
function wire() {
  ui.pickFiles.addEventListener("click", function () { ui.input.click(); });
  // "Choose photos" stands in for the native input, which CSS hides: keep it out of
  // the Tab order, or focus vanishes into a 1 px box (it stays in the form).
  ui.input.tabIndex = -1;
  if ("webkitdirectory" in ui.folderInput) {
    ui.pickFolder.hidden = false;
    ui.pickFolder.addEventListener("click", function () { ui.folderInput.click(); });
  }
  ui.input.addEventListener("change", function () { choose(Array.prototype.slice.call(ui.input.files || [])); });
  ui.folderInput.addEventListener("change", function () { choose(Array.prototype.slice.call(ui.folderInput.files || [])); });

  var depth = 0;
  ui.dropzone.addEventListener("dragenter", function (e) { e.preventDefault(); depth++; ui.dropzone.classList.add("dragover"); });
  ui.dropzone.addEventListener("dragleave", function () { if (--depth <= 0) { depth = 0; ui.dropzone.classList.remove("dragover"); } });
  ui.dropzone.addEventListener("dragover", function (e) { e.preventDefault(); if (e.dataTransfer) e.dataTransfer.dropEffect = "copy"; });
  ui.dropzone.addEventListener("drop", function (e) {
    e.preventDefault();
    depth = 0;
    ui.dropzone.classList.remove("dragover");
    if (!e.dataTransfer || st.sending) return;
    filesFromDrop(e.dataTransfer).then(choose);
  });
  // A file dropped outside the zone must not navigate away from the page.
  window.addEventListener("dragover", function (e) { e.preventDefault(); });
  window.addEventListener("drop", function (e) { e.preventDefault(); });

  ui.form.addEventListener("submit", function (e) {
    e.preventDefault();
    var list = readyRows();
    if (!list.length || st.sending) return;
    if (!st.resumeInto) {
      var keep = st.rows.filter(function (r) { return r.local === "ready" || r.local === "skipped"; });
      resetUpload(true);
      st.rows = keep;
    }
    ui.input.value = "";
    ui.folderInput.value = "";
    sendRows(list);
  });
  ui.selClear.addEventListener("click", clearSelection);
  ui.clear.addEventListener("click", clearProgress);
  ui.retryAll.addEventListener("click", retryAll);

  document.querySelectorAll(".segmented .seg").forEach(function (b) {
    b.addEventListener("click", function () {
      st.filter = b.getAttribute("data-filter");
      document.querySelectorAll(".segmented .seg").forEach(function (o) {
        o.setAttribute("aria-pressed", String(o === b));
      });
      st.listDirty = true;
      ui.vlist.scrollTop = 0;
      schedule();
    });
  });
  ui.vlist.addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", schedule);

  window.addEventListener("beforeunload", function (e) {
    if (!st.sending) return undefined;
    e.preventDefault();
    e.returnValue = "Photos are still being sent. Leave anyway?";
    return e.returnValue;
  });
}

if (root && SB) {
  wire();
  updateSelection();
  resume();
}
