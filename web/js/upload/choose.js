// Upload page, choosing files: what the pickers and the drop zone hand over
// becomes rows (choose), the selection summary and the submit button
// (updateSelection), "Clear" of the selection, and walking dropped folders.

import { SB, ui, st, plural } from "./state.js";
import { newRow, precheck } from "./rows.js";
import { resetUpload } from "./retry.js";
import { ledgerMatch } from "./send.js";
import { schedule } from "./render.js";

export const AWAITED = "Not finished when the page was left: choose this file again to send the rest";

export function readyRows() { return st.rows.filter(function (r) { return r.local === "ready"; }); }

export function choose(files) {
  if (st.sending || !files.length) return;
  if (st.resumeInto) {
    // Joining the unfinished upload: keep its rows, replace an earlier choice.
    st.rows = st.rows.filter(function (r) {
      if (r.awaited && !r.sid && (r.local === "ready" || r.local === "skipped")) {
        r.file = null; r.missing = true; r.local = "unsent"; r.reason = AWAITED;
        return true;
      }
      return r.sid || (r.local !== "ready" && r.local !== "skipped");
    });
  } else {
    resetUpload(true);
    st.rows = [];
  }
  st.skippedDone = 0;
  for (var i = 0; i < files.length; i++) {
    var f = files[i];
    var again = st.resumeInto ? resumed(f) : null;
    if (again === "done") { st.skippedDone++; continue; }
    var r = again || newRow(f.name, f.size, f);
    var why = precheck(f);
    r.local = why ? "skipped" : "ready";
    r.reason = why;
    if (!again) st.rows.push(r);
  }
  st.listDirty = true;
  ui.files.hidden = false;
  updateSelection();
  schedule();
}

// A file chosen again after a reload: "done" when it arrived already (the ledger says
// so, or the server lists a file of its name and size), else the row that waits for it
// (its File attached: sending resumes at the server's offset), else null (a new file).
function resumed(f) {
  var m = ledgerMatch(f);
  if (m === "done") return "done";
  var wait = null, stored = false;
  st.rows.forEach(function (r) {
    if (r.missing && !r.file && r.name === f.name && r.size === f.size && !wait) wait = r;
    if (r.sid && r.name === f.name && r.size === f.size) stored = true;
  });
  if (wait) { wait.file = f; wait.missing = false; return wait; }
  return stored && m !== "partial" ? "done" : null;
}

export function updateSelection() {
  var ready = readyRows(), skipped = st.rows.filter(function (r) { return r.local === "skipped" && !r.sid; });
  var bytes = ready.reduce(function (a, r) { return a + r.size; }, 0);
  var any = ready.length + skipped.length > 0;
  ui.selection.hidden = !any;
  ui.selClear.hidden = !any || st.sending > 0;
  ui.submit.disabled = ready.length === 0 || st.sending > 0;
  ui.submit.parentNode.hidden = ui.form.classList.contains("compact") && ready.length === 0;
  ui.submitText.textContent = ready.length ? "Upload " + plural(ready.length, "photo", "photos") : "Upload";
  ui.selSummary.textContent = ready.length ?
    plural(ready.length, "file", "files") + " ready · " + SB.formatBytes(bytes) +
    (st.resumeInto ? " · they join upload #" + st.uploadId : "") +
    (st.skippedDone ? " · " + plural(st.skippedDone, "file", "files") + " already sent, skipped" : "") :
    (st.skippedDone ? "All " + plural(st.skippedDone, "chosen file", "chosen files") + " arrived already" : "No files to send");
  ui.selWarn.hidden = skipped.length === 0;
  ui.selWarn.textContent = skipped.length ?
    plural(skipped.length, "file", "files") + " will be skipped (too large or not a photo); see the list below." : "";
}

export function clearSelection() {
  if (st.sending) return;
  st.rows = st.rows.filter(function (r) { return r.local !== "ready" && r.local !== "skipped"; });
  ui.input.value = "";
  ui.folderInput.value = "";
  st.listDirty = true;
  ui.files.hidden = st.rows.length === 0;
  updateSelection();
  schedule();
}

// Walk dropped folders (webkitGetAsEntry); plain files come through as they are.
export function filesFromDrop(dt) {
  var items = dt.items ? Array.prototype.slice.call(dt.items) : [];
  var entries = items.map(function (it) { return it.webkitGetAsEntry ? it.webkitGetAsEntry() : null; });
  if (!entries.length || entries.some(function (e) { return !e; }))
    return Promise.resolve(Array.prototype.slice.call(dt.files || []));
  var out = [];
  function walk(entry) {
    if (entry.isFile)
      return new Promise(function (res) { entry.file(function (f) { out.push(f); res(); }, function () { res(); }); });
    if (!entry.isDirectory) return Promise.resolve();
    var reader = entry.createReader();
    return new Promise(function (res) {
      var all = [];
      (function more() {
        reader.readEntries(function (batch) {
          if (!batch.length) { Promise.all(all.map(walk)).then(function () { res(); }); return; }
          all = all.concat(Array.prototype.slice.call(batch));
          more();
        }, function () { res(); });
      })();
    });
  }
  return Promise.all(entries.map(walk)).then(function () { return out; });
}
