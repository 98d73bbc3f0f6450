// Upload page, rendering: schedule() asks for one render() in the next animation
// frame, however many changes came in; render() draws the progress panel (status
// badge, title, bar, percentages, network speed and time left, batch, counters,
// note, which buttons show), announces status changes to screen readers, draws
// the error table, and hands the file list to vlist.js. State is only read here,
// apart from what was drawn (st.lastStatus, st.errorsKey) and the speed estimate
// (net.speed, net.lastT, net.lastSent).

import { SB, ui, st, bySid, gone, net, plural, node, announce } from "./state.js";
import { sendRows, sentBytes } from "./send.js";
import { isDone } from "./follow.js";
import { refused } from "./rows.js";
import { retryFile, reupload } from "./retry.js";
import { renderList } from "./vlist.js";

const ERRORS_SHOWN = 300;             // rows of the error table

let frame = 0;
export function schedule() {
  if (frame) return;
  frame = window.requestAnimationFrame(function () { frame = 0; render(); });
}

let tick = 0;
function render() {
  renderProgress();
  if (!ui.progress.hidden) renderErrors();
  else ui.errors.hidden = true;
  renderList();
  // Keep speed and time left moving while sending, four times a second.
  if (st.sending && !tick) tick = window.setTimeout(function () { tick = 0; schedule(); }, 250);
}

function statusOf() {
  var p = st.progress;
  var unsent = st.rows.some(function (r) { return r.local === "unsent" && !r.sid && !r.missing; });
  if (st.sending) return net.waiting > 0 ? "reconnecting" : "uploading";
  if (st.ended) return "ended";
  if (st.rows.some(function (r) { return r.missing; })) return "paused";
  if (!p) return st.uploadId ? "processing" : (unsent ? "failed" : "uploading");
  if (p.status === "processing") {
    if (p.phase === "receiving" && unsent) return "failed";
    return p.phase === "receiving" ? "uploading" : "processing";
  }
  if (p.status === "completed") return p.failed > 0 || unsent ? "partial" : "completed";
  if (p.status === "failed") return "failed";
  return "uploading";
}
const LABELS = {
  uploading: "Uploading", reconnecting: "Reconnecting\u2026", paused: "Unfinished", processing: "Processing", completed: "Completed",
  partial: "Completed with errors", failed: "Failed", ended: "Nothing stored",
};

function titleOf(s, p) {
  var total = p ? p.total : 0;
  var sending = net.groups.reduce(function (a, g) { return a + g.rows.length; }, 0);
  switch (s) {
    case "uploading": case "reconnecting": return "Sending " + plural(Math.max(sending, total), "file", "files");
    case "paused": return plural(st.rows.filter(function (r) { return r.missing; }).length, "file", "files") + " still to send";
    case "processing": return "Processing " + plural(total, "file", "files");
    case "completed": return total === 1 ? "Your photo is in your library" : "All " + total + " files are in your library";
    case "partial": return (p.uploaded + p.duplicates) + " of " + plural(total, "file", "files") + " stored";
    case "ended": return "No file was stored";
    default:
      if (p && p.status === "processing") return "Some files could not be sent";
      return "The upload failed";
  }
}

function renderNet(s, p) {
  var sent = sentBytes();
  var now = performance.now();
  if (st.sending) {
    var dt = (now - net.lastT) / 1000;
    if (dt >= 0.5) {
      var rate = (sent - net.lastSent) / dt;
      net.speed = net.speed ? net.speed * 0.7 + rate * 0.3 : rate;
      net.lastT = now;
      net.lastSent = sent;
    }
    var left = net.speed > 1 ? (net.total - sent) / net.speed : NaN;
    ui.net.textContent = (s === "reconnecting" ? "Reconnecting\u2026 " + plural(net.waiting, "file waits", "files wait") +
      " for the connection; each goes on from where it broke off · " : "") + SB.formatBytes(sent) + " of " + SB.formatBytes(net.total) + " sent" +
      (net.speed > 1 ? " · " + SB.formatBytes(net.speed) + "/s" : "") +
      (isFinite(left) ? " · " + (SB.formatDuration(left) || "0 s") + " left" : "");
    return sent;
  }
  if (s === "processing" && p) {
    ui.net.textContent = (net.total ? "All " + SB.formatBytes(net.total) + " sent · " : "") +
      (p.eta_seconds != null ? "about " + (SB.formatDuration(p.eta_seconds) || "0 s") + " left" : "waiting for a worker");
  } else if (p && isDone(p)) {
    var secs = p.finished_at && p.started_at ? (Date.parse(p.finished_at) - Date.parse(p.started_at)) / 1000 : NaN;
    ui.net.textContent = SB.formatBytes(p.bytes_received || 0) + " received" +
      (isFinite(secs) ? " · finished in " + (SB.formatDuration(Math.max(secs, 1)) || "1 s") : "");
  } else {
    ui.net.textContent = "";
  }
  return sent;
}

function renderProgress() {
  if (ui.progress.hidden) return;
  var p = st.progress, s = statusOf();
  ui.progress.setAttribute("data-state", s);
  ui.badge.className = "badge badge-" + s;
  ui.badge.textContent = LABELS[s];
  ui.title.textContent = titleOf(s, p);
  var pct = p ? Math.max(0, Math.min(100, Number(p.percent) || 0)) : 0;
  if (p && isDone(p)) pct = 100;
  var sent = renderNet(s, p);
  var sentPct = net.total ? Math.min(100, 100 * sent / net.total) : (p ? 100 : 0);
  ui.barFill.style.width = pct + "%";
  ui.barSent.style.width = Math.max(sentPct, pct) + "%";
  var shown = Math.floor(pct);
  ui.bar.setAttribute("aria-valuenow", String(shown));
  ui.bar.setAttribute("aria-valuetext", shown + " % processed" +
    (st.sending ? ", " + Math.floor(sentPct) + " % sent" : ""));
  ui.percent.textContent = shown + " %";
  if (p && p.total_batches > 0) {
    var cur = Math.max(1, Math.min(p.current_batch, p.total_batches));
    ui.batch.textContent = "Batch " + cur + " of " + p.total_batches;
  } else {
    ui.batch.textContent = "";
  }
  // Until the server has answered, the total is what is being sent.
  var sending = net.groups.reduce(function (a, g) { return a + g.rows.length; }, 0);
  ["total", "processed", "uploaded", "duplicates", "failed"].forEach(function (k) {
    ui.counters[k].textContent = p ? String(p[k] || 0) : String(k === "total" ? sending : 0);
  });
  var unsent = st.rows.filter(function (r) { return r.local === "unsent" && !r.sid && !r.missing; }).length;
  var missing = st.rows.filter(function (r) { return r.missing; }).length;
  // "Retry all failed" only when something can be retried or sent again.
  var actionable = ((p && p.errors) || []).filter(function (e) {
    var r = bySid.get(e.file_id);
    if (r && r.replaced) return false;
    return (e.retryable && !gone.has(e.file_id)) || (r && r.file && !refused(e.stage));
  }).length;
  ui.retryAll.hidden = actionable + unsent === 0 || s === "uploading" || s === "reconnecting";
  ui.galleryLink.hidden = !p || !(p.uploaded > 0) || !isDone(p);
  ui.clear.disabled = st.sending > 0;
  if (st.ended && !st.sending) {
    ui.note.hidden = false;
    ui.note.textContent = "Upload #" + st.ended + " ended with no file in it (its files were cancelled, or none arrived in time), " +
      "so the server removed it." + (unsent ? " Files sent again go into a new upload." : "");
  } else if (missing && !st.sending) {
    ui.note.hidden = false;
    ui.note.textContent = "The page was left while " + plural(missing, "file was", "files were") +
      " being sent. Choose the same files again: only what is missing is sent" +
      (st.skippedDone ? " (" + plural(st.skippedDone, "file", "files") + " chosen again had arrived already)" : "") +
      ". Or clear this upload to start over.";
  } else if (unsent && !st.sending) {
    ui.note.hidden = false;
    ui.note.textContent = plural(unsent, "file was", "files were") +
      " not sent. Use \u201cRetry all failed\u201d to send them again.";
  } else if (st.resumeInto && !st.sending) {
    ui.note.hidden = false;
    ui.note.textContent = "The page was left while files were still being sent. Choose the missing " +
      "photos again to add them to this upload, or clear it to start over.";
  } else {
    ui.note.hidden = true;
  }
  if (s !== st.lastStatus) {
    if (st.lastStatus) announceStatus(s, p);
    st.lastStatus = s;
  }
}

function announceStatus(s, p) {
  if (s === "reconnecting") announce("Connection lost. Reconnecting\u2026");
  else if (s === "processing") announce("All files sent. Processing" + (p && p.total_batches ? " in " + plural(p.total_batches, "batch", "batches") : "") + ".");
  else if (s === "completed" || s === "partial" || s === "failed") {
    announce(LABELS[s] + ": " + (p ? p.uploaded + " uploaded, " + p.duplicates + " duplicates, " + p.failed + " failed." : ""));
  }
}

function errorItems() {
  var p = st.progress, list = [];
  ((p && p.errors) || []).forEach(function (e) {
    var r = bySid.get(e.file_id);
    if (r && r.replaced) return;
    list.push({ id: e.file_id, file: e.file, stage: e.stage, message: gone.get(e.file_id) || e.message,
                retryable: e.retryable && !gone.has(e.file_id), local: false, row: r });
  });
  st.rows.forEach(function (r) {
    // (a row waiting to be chosen again after a reload is no problem: the note says so)
    if (r.sid || r.missing || (r.local !== "skipped" && r.local !== "unsent")) return;
    list.push({ id: 0, file: r.name, stage: r.local === "skipped" ? "check" : "send",
                message: r.reason, retryable: false, local: r.local, row: r });
  });
  return list;
}

function renderErrors() {
  var items = errorItems();
  var key = items.map(function (e) { return (e.id || e.file) + ":" + e.retryable + ":" + (e.local || "") + ":" + st.retrying.has(e.id); }).join("|");
  ui.errors.hidden = items.length === 0;
  if (key === st.errorsKey) return;
  st.errorsKey = key;
  ui.errorsCount.textContent = String(items.length);
  var frag = document.createDocumentFragment();
  items.slice(0, ERRORS_SHOWN).forEach(function (e) {
    var tr = node("tr");
    tr.appendChild(node("td", "file-name", e.file));
    var stage = node("td");
    stage.appendChild(node("span", "stage", e.stage || "–"));
    tr.appendChild(stage);
    tr.appendChild(node("td", "", e.message));
    var act = node("td", "actions");
    var btn = null;
    if (e.retryable) {
      btn = node("button", "button small", st.retrying.has(e.id) ? "Retrying…" : "Retry");
      btn.disabled = st.retrying.has(e.id);
      btn.addEventListener("click", retryFile.bind(null, e.id));
    } else if (e.id && !refused(e.stage)) {
      btn = node("button", "button small", "Upload again");
      btn.addEventListener("click", reupload.bind(null, e.id));
    } else if (e.local === "unsent" && e.row.file) {
      btn = node("button", "button small", "Send again");
      btn.addEventListener("click", function () { sendRows([e.row]); });
    }
    if (btn) {
      btn.type = "button";
      btn.setAttribute("aria-label", btn.textContent + " " + e.file);
      act.appendChild(btn);
    }
    tr.appendChild(act);
    frag.appendChild(tr);
  });
  ui.errorsBody.textContent = "";
  ui.errorsBody.appendChild(frag);
  ui.errorsMore.hidden = items.length <= ERRORS_SHOWN;
  ui.errorsMore.textContent = items.length > ERRORS_SHOWN ?
    "And " + (items.length - ERRORS_SHOWN) + " more — the upload's report lists them all." : "";
}
