// Upload page, following the server: adopt() takes an upload id (remembered in
// sessionStorage for a reload, linked as the report), then its progress comes from
// the SSE stream, or by polling once a second when there is no stream or it
// breaks (onProgress keeps the newest version in st.progress). The file list with
// states and photo ids is fetched apart (scheduleFiles/fetchFiles -> applyFiles,
// which matches server files to rows), and which photos have a thumbnail
// (fetchThumbs). An upload the server deleted while followed (it ended with no file
// in it: every file it expected was cancelled) ends its stream, and the next read of
// it is a 404: uploadGone() stops following it and the panel says nothing was stored.

import { ui, st, KEY, bySid, thumbs, follow, filesFetch, parseJSON, getJSON, announce } from "./state.js";
import { newRow, touch } from "./rows.js";
import { schedule } from "./render.js";

export function adopt(id) {
  if (st.uploadId !== Number(id)) st.minVersion = 0;
  st.uploadId = Number(id);
  st.ended = 0;
  try { window.sessionStorage.setItem(KEY, String(id)); } catch (e) { /* private mode */ }
  ui.reportLink.href = "/photos/uploads/" + st.uploadId + "/";
  ui.reportLink.hidden = false;
  startFollow();
}

export function stopFollow() {
  if (follow.es) { follow.es.close(); follow.es = null; }
  if (follow.timer) { window.clearTimeout(follow.timer); follow.timer = 0; }
  follow.id = 0;
}

export function startFollow() {
  if (!st.uploadId) return;
  if (follow.id === st.uploadId && (follow.es || follow.timer)) return;
  stopFollow();
  follow.id = st.uploadId;
  if (!window.EventSource) { poll(); return; }
  var es = new EventSource("/photos/upload-progress/stream?upload=" + st.uploadId);
  follow.es = es;
  es.addEventListener("progress", function (ev) {
    onProgress(parseJSON(ev.data));
  });
  es.onerror = function () {
    // Closed by the server after the final state, or broken: poll instead.
    if (follow.es !== es) return;
    es.close();
    follow.es = null;
    if (!st.final) poll();
  };
}

function poll() {
  var id = st.uploadId;
  follow.timer = window.setTimeout(function tick() {
    getJSON("/photos/upload-progress/?upload=" + id).then(onProgress, function (err) {
      if (err && err.status === 404) uploadGone(id);
    }).then(function () {
      if (st.uploadId === id && !st.final && follow.id === id && !follow.es)
        follow.timer = window.setTimeout(tick, 1000);
      else follow.timer = 0;
    });
  }, 0);
}

// The followed upload is gone from the server (404). Files sent later (a retry of one
// not sent) open a new upload: st.uploadId is 0 again.
export function uploadGone(id) {
  if (st.uploadId !== id) return;
  stopFollow();
  st.ended = id;
  st.uploadId = 0;
  st.final = true;
  st.resumeInto = false;
  try { window.sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ }
  ui.reportLink.hidden = true;
  announce("Upload #" + id + " ended with no file in it: nothing was stored");
  schedule();
}

export function isDone(p) { return p && p.status !== "processing" && p.status !== "idle"; }

export function onProgress(p) {
  if (!p || !p.upload_id || Number(p.upload_id) !== st.uploadId) return;
  if (st.progress && st.progress.upload_id === p.upload_id && p.version < st.progress.version) return;
  if (p.version < st.minVersion) return;
  var changed = !st.progress || st.progress.version !== p.version;
  st.progress = p;
  if (isDone(p) && !st.sending) {
    if (!st.final) {
      st.final = true;
      stopFollow();
      scheduleFiles(true);
    }
  } else {
    // Processing again (a retry from another tab, say) after the page saw it done.
    if (st.final && !isDone(p)) { st.final = false; startFollow(); }
    if (changed) scheduleFiles(false);
  }
  schedule();
}

// The file list (with states and photo ids) is fetched apart from the stream,
// at most once a second (every 3 s for big uploads), and once at the end.
export function scheduleFiles(now) {
  if (!st.uploadId) return;
  if (filesFetch.busy) { filesFetch.again = true; return; }
  if (filesFetch.timer && !now) return;
  window.clearTimeout(filesFetch.timer);
  var gap = st.rows.length > 1000 ? 3000 : 1000;
  var wait = now ? 0 : Math.max(0, filesFetch.last + gap - Date.now());
  filesFetch.timer = window.setTimeout(fetchFiles, wait);
}

function fetchFiles() {
  var id = st.uploadId;
  filesFetch.timer = 0;
  filesFetch.busy = true;
  filesFetch.last = Date.now();
  getJSON("/photos/upload-progress/?upload=" + id + "&files=1").then(function (p) {
    if (st.uploadId !== id) return null;
    applyFiles(p.files || []);
    onProgress(p);
    return fetchThumbs(id, p);
  }).catch(function (err) {
    if (err && err.status === 404) uploadGone(id);
  }).then(function () {
    filesFetch.busy = false;
    if (filesFetch.again) { filesFetch.again = false; scheduleFiles(st.final); }
    schedule();
  });
}

// Which of the upload's photos have a thumbnail (so no image is asked for in vain).
export function fetchThumbs(id, p) {
  var want = (p.uploaded || 0);
  if (thumbs.size >= want && !st.final) return null;
  var offset = 0, seen = 0;
  function page() {
    return getJSON("/api/photos?upload=" + id + "&limit=500&offset=" + offset).then(function (j) {
      if (st.uploadId !== id) return null;
      (j.photos || []).forEach(function (ph) {
        if (ph.thumbnail_url) thumbs.set(ph.id, ph.thumbnail_url);
      });
      seen += (j.photos || []).length;
      offset += 500;
      st.listDirty = true;
      st.rows.forEach(function (r) { if (r.photoId && thumbs.has(r.photoId)) r.ver++; });
      return seen < j.total && (j.photos || []).length ? page() : null;
    });
  }
  return page();
}

export function applyFiles(list) {
  var byName = new Map();
  st.rows.forEach(function (r) {
    if (r.sid || !r.file || (r.local !== "sent" && r.local !== "sending" && r.local !== "queued")) return;
    var q = byName.get(r.name);
    if (!q) { q = []; byName.set(r.name, q); }
    q.push(r);
  });
  list.forEach(function (f) {
    var r = bySid.get(f.id);
    if (!r) {
      var q = byName.get(f.file_name);
      r = q && q.length ? q.shift() : null;
      if (!r) { r = newRow(f.file_name, f.byte_size, null); st.rows.push(r); }
      r.sid = f.id;
      bySid.set(f.id, r);
    }
    var before = r.sstate + r.stage + r.error + r.photoId + r.retryable + r.batch + r.thumb;
    r.sstate = f.state;
    r.stage = f.stage || "";
    r.error = f.error || "";
    r.retryable = !!f.retryable;
    r.photoId = f.photo_id || 0;
    r.thumb = f.thumbnail_url || "";  // a duplicate's photo is from an earlier upload
    r.batch = f.batch || 0;
    r.local = "sent";
    if (before !== r.sstate + r.stage + r.error + r.photoId + r.retryable + r.batch + r.thumb) touch(r);
  });
  // Once every request is over, rows the server never named were renamed by it.
  if (!st.sending && st.final)
    st.rows = st.rows.filter(function (r) { return r.sid || r.local !== "sent"; });
  st.listDirty = true;
}
