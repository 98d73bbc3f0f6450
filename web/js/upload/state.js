// Upload page, shared state: the page root, window.Shoebox (from app.js), the DOM
// elements (ui), the state more than one module reads or changes (st, the row
// maps, the network and follow bookkeeping) and small helpers. Imports are
// read-only bindings, so anything that is reassigned lives as a property of one
// of these objects (st.rows, st.uploadId, net.total, ...), never as a bare export;
// a module's own bookkeeping (render.js's frame, vlist.js's pool) stays in it.
//
// Text from files and the server only ever goes into the page through
// textContent and attribute setters, never innerHTML.

export const root = document.getElementById("uploader");
export const SB = window.Shoebox;
export const KEY = "shoebox.upload";  // sessionStorage: the upload to pick up after a reload

function $(id) { return document.getElementById(id); }
export const ui = {
  form: $("upload-form"), input: $("photos-input"), folderInput: $("folder-input"),
  pickFiles: $("pick-files"), pickFolder: $("pick-folder"), dropzone: $("dropzone"),
  selection: $("selection"), selSummary: $("selection-summary"), selWarn: $("selection-warn"),
  submit: $("upload-submit"), submitText: $("upload-submit-text"), selClear: $("selection-clear"),
  progress: $("progress"), badge: $("status-badge"), title: $("progress-title"),
  batch: $("batch-text"), bar: $("bar"), barFill: $("bar-fill"), barSent: $("bar-sent"),
  percent: $("percent-text"), net: $("net-text"), note: $("progress-note"),
  retryAll: $("retry-all"), reportLink: $("report-link"), galleryLink: $("gallery-link"),
  clear: $("clear-progress"), live: $("live"),
  errors: $("errors"), errorsBody: $("errors-body"), errorsCount: $("errors-count"),
  errorsMore: $("errors-more"),
  files: $("files"), filesCount: $("files-count"), vlist: $("vlist"), spacer: $("vlist-spacer"),
  counters: {
    total: $("c-total"), processed: $("c-processed"), uploaded: $("c-uploaded"),
    duplicates: $("c-duplicates"), failed: $("c-failed"),
  },
};

// ---- state ----
export const bySid = new Map();    // server file id -> row
export const thumbs = new Map();   // photo id -> thumbnail URL (only photos that have one)
export const gone = new Map();     // file id -> message, when the server no longer holds the bytes
export const st = {
  rows: [],               // every file shown in the list
  uploadId: 0,
  progress: null,         // the latest progress JSON
  sending: 0,             // sendRows() calls running
  final: false,
  ended: 0,               // the upload the server deleted, ended with no file in it (follow.js uploadGone)
  minVersion: 0,          // older progress is stale (a retry's 202 means the server moved on)
  resumeInto: false,      // after a reload mid-send: new files join this upload
  skippedDone: 0,         // files chosen again after a reload that were complete already
  filter: "all",
  lastStatus: "",
  errorsKey: "",
  listDirty: true,
  retrying: new Set(),    // server file ids with a retry request in flight
};
// What is being sent, for the bar and the speed: send.js keeps groups and total
// (each group: rows, bytes, loaded, done), render.js the speed.
// net.waiting: files whose connection broke, waiting to resume ("Reconnecting…").
export const net = { total: 0, groups: [], speed: 0, lastT: 0, lastSent: 0, startT: 0, doneT: 0, waiting: 0 };
export const follow = { es: null, timer: 0, id: 0 };
export const filesFetch = { busy: false, again: false, timer: 0, last: 0 };

// ---- small helpers ----
export function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }
export function node(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
export function extOf(name) {
  var i = name.lastIndexOf(".");
  return i > 0 ? name.slice(i + 1).toUpperCase().slice(0, 4) : "";
}
export function announce(text) {
  ui.live.textContent = "";
  window.setTimeout(function () { ui.live.textContent = text; }, 50);
}
export function parseJSON(text) {
  try { return JSON.parse(text); } catch (e) { return null; }
}
export function getJSON(url) {
  return SB.request(url).then(function (res) {
    if (!res.ok) { var e = new Error("HTTP " + res.status); e.status = res.status; throw e; }
    return res.json();
  });
}
