// Shoebox upload page: drop zone, pre-checks, sending in several requests with
// network progress, then processing progress from the SSE stream (polling as the
// fallback), a virtualised file list, the error report with retries, and resume
// after a reload. Without this script the form posts normally to /photos/upload/.
//
// Text from files and the server only ever goes into the page through
// textContent and attribute setters, never innerHTML.
(function () {
  "use strict";

  var root = document.getElementById("uploader");
  if (!root || !window.Shoebox) return;
  var SB = window.Shoebox;

  var MAX_BYTES = Number(root.getAttribute("data-max-file-size")) || 100 * 1024 * 1024;
  var MAX_TEXT = root.getAttribute("data-max-file-text") || SB.formatBytes(MAX_BYTES);
  var REQ_FILES = 10;                 // files per request
  var REQ_BYTES = 8 * 1024 * 1024;    // bytes per request (one bigger file goes alone)
  var PARALLEL = 3;                   // requests in flight
  var RETRIES = 3;                    // extra attempts of a failed request
  var ROW_H = 56;                     // .vrow height in px (3.5rem)
  var ERRORS_SHOWN = 300;             // rows of the error table
  var KEY = "shoebox.upload";

  var IMAGE_EXT = /\.(jpe?g|jpe|jfif|png|webp|gif|tiff?|heic|heif|avif|dng|cr2|cr3|crw|nef|nrw|arw|srf|sr2|orf|rw2|raf|pef|srw|x3f|3fr|erf|kdc|dcr|mrw|mos|iiq|rwl|raw)$/i;
  var OTHER_EXT = /\.(txt|md|rtf|pdf|docx?|xlsx?|pptx?|odt|ods|csv|json|xml|html?|js|css|zip|rar|7z|gz|tgz|bz2|xz|tar|exe|msi|dmg|pkg|apk|iso|mp3|wav|flac|aac|m4a|ogg|opus|mp4|mov|avi|mkv|webm|m4v|3gp|wmv|mpe?g|db|ini|lnk|url|ds_store)$/i;
  var OTHER_NAMES = { ".ds_store": 1, "thumbs.db": 1, "desktop.ini": 1 };

  function $(id) { return document.getElementById(id); }
  var ui = {
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
  var rows = [];            // every file shown in the list
  var bySid = new Map();    // server file id -> row
  var thumbs = new Map();   // photo id -> thumbnail URL (only photos that have one)
  var st = {
    uploadId: 0,
    progress: null,         // the latest progress JSON
    sending: 0,             // sendFiles() calls running
    final: false,
    resumeInto: false,      // after a reload mid-send: new files join this upload
    filter: "all",
    lastStatus: "",
    errorsKey: "",
    listDirty: true,
    retrying: new Set(),    // server file ids with a retry request in flight
  };
  var net = { total: 0, groups: [], speed: 0, lastT: 0, lastSent: 0, startT: 0, doneT: 0 };
  var follow = { es: null, timer: 0, id: 0 };
  var filesFetch = { busy: false, again: false, timer: 0, last: 0 };

  // ---- small helpers ----
  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }
  function node(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function extOf(name) {
    var i = name.lastIndexOf(".");
    return i > 0 ? name.slice(i + 1).toUpperCase().slice(0, 4) : "";
  }
  function announce(text) {
    ui.live.textContent = "";
    window.setTimeout(function () { ui.live.textContent = text; }, 50);
  }
  function parseJSON(text) {
    try { return JSON.parse(text); } catch (e) { return null; }
  }
  function getJSON(url) {
    return SB.request(url).then(function (res) {
      if (!res.ok) { var e = new Error("HTTP " + res.status); e.status = res.status; throw e; }
      return res.json();
    });
  }

  var frame = 0;
  function schedule() {
    if (frame) return;
    frame = window.requestAnimationFrame(function () { frame = 0; render(); });
  }

  // ---- rows ----
  function newRow(name, size, file) {
    return {
      name: name, size: size, file: file || null,
      local: "", reason: "",               // local: ready skipped queued sending sent unsent
      sid: 0, sstate: "", stage: "", error: "", retryable: false,
      photoId: 0, thumb: "", batch: 0, replaced: false, ver: 0,
    };
  }
  function touch(r) { r.ver++; st.listDirty = true; }

  function precheck(file) {
    var name = file.name || "", type = file.type || "";
    if (file.size > MAX_BYTES)
      return "Too large: " + SB.formatBytes(file.size) + "; the limit is " + MAX_TEXT;
    if (IMAGE_EXT.test(name) || type.indexOf("image/") === 0) return "";
    if (OTHER_NAMES[name.toLowerCase()] || OTHER_EXT.test(name) ||
        /^(video|audio|text)\//.test(type) || /^application\/(pdf|zip|json|msword|vnd\.)/.test(type))
      return "Unsupported type: " + (extOf(name) || type || "this file") + " is not a photo";
    return "";   // unknown: the server decides by content
  }

  // kind of a row for filters and styling: active, done, problem
  function view(r) {
    if (r.sstate) {
      switch (r.sstate) {
        case "done": return { chip: "Done", cls: "done", kind: "done",
          meta: SB.formatBytes(r.size) + (r.batch ? " · batch " + r.batch : "") };
        case "duplicate": return { chip: "Duplicate", cls: "duplicate", kind: "done",
          meta: "Already in your library" };
        case "failed": return { chip: r.replaced ? "Replaced" : "Failed", cls: "failed",
          kind: r.replaced ? "done" : "problem",
          meta: (r.stage ? r.stage + ": " : "") + (r.error || "failed") };
        case "processing": return { chip: "Processing", cls: "processing", kind: "active",
          meta: "Making thumbnails and reading EXIF" + (r.batch ? " · batch " + r.batch : "") };
        default: return { chip: "Queued", cls: "queued", kind: "active",
          meta: r.batch ? "In batch " + r.batch : "Waiting for a batch" };
      }
    }
    switch (r.local) {
      case "skipped": return { chip: "Skipped", cls: "skipped", kind: "problem", meta: r.reason };
      case "unsent": return { chip: "Not sent", cls: "unsent", kind: "problem", meta: r.reason };
      case "sending": return { chip: "Sending", cls: "sending", kind: "active", meta: SB.formatBytes(r.size) };
      case "sent": return { chip: "Sent", cls: "sending", kind: "active", meta: "Received by the server" };
      case "queued": return { chip: "Waiting", cls: "queued", kind: "active", meta: SB.formatBytes(r.size) };
      default: return { chip: "Ready", cls: "ready", kind: "active", meta: SB.formatBytes(r.size) };
    }
  }

  // ---- choosing files ----
  function readyRows() { return rows.filter(function (r) { return r.local === "ready"; }); }

  function choose(files) {
    if (st.sending || !files.length) return;
    if (st.resumeInto) {
      // Joining the unfinished upload: keep its rows, replace an earlier choice.
      rows = rows.filter(function (r) { return r.sid || (r.local !== "ready" && r.local !== "skipped"); });
    } else {
      resetUpload(true);
      rows = [];
    }
    for (var i = 0; i < files.length; i++) {
      var f = files[i];
      var r = newRow(f.name, f.size, f);
      var why = precheck(f);
      r.local = why ? "skipped" : "ready";
      r.reason = why;
      rows.push(r);
    }
    st.listDirty = true;
    ui.files.hidden = false;
    updateSelection();
    schedule();
  }

  function updateSelection() {
    var ready = readyRows(), skipped = rows.filter(function (r) { return r.local === "skipped" && !r.sid; });
    var bytes = ready.reduce(function (a, r) { return a + r.size; }, 0);
    var any = ready.length + skipped.length > 0;
    ui.selection.hidden = !any;
    ui.selClear.hidden = !any || st.sending > 0;
    ui.submit.disabled = ready.length === 0 || st.sending > 0;
    ui.submit.parentNode.hidden = ui.form.classList.contains("compact") && ready.length === 0;
    ui.submitText.textContent = ready.length ? "Upload " + plural(ready.length, "photo", "photos") : "Upload";
    ui.selSummary.textContent = ready.length ?
      plural(ready.length, "file", "files") + " ready · " + SB.formatBytes(bytes) +
      (st.resumeInto ? " · they join upload #" + st.uploadId : "") :
      "No files to send";
    ui.selWarn.hidden = skipped.length === 0;
    ui.selWarn.textContent = skipped.length ?
      plural(skipped.length, "file", "files") + " will be skipped (too large or not a photo); see the list below." : "";
  }

  function clearSelection() {
    if (st.sending) return;
    rows = rows.filter(function (r) { return r.local !== "ready" && r.local !== "skipped"; });
    ui.input.value = "";
    ui.folderInput.value = "";
    st.listDirty = true;
    ui.files.hidden = rows.length === 0;
    updateSelection();
    schedule();
  }

  // Walk dropped folders (webkitGetAsEntry); plain files come through as they are.
  function filesFromDrop(dt) {
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

  // ---- sending ----
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

  function sentBytes() {
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
  function sendRows(list) {
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

  function adopt(id) {
    st.uploadId = Number(id);
    try { window.sessionStorage.setItem(KEY, String(id)); } catch (e) { /* private mode */ }
    ui.reportLink.href = "/photos/uploads/" + st.uploadId + "/";
    ui.reportLink.hidden = false;
    startFollow();
  }

  // ---- following the server ----
  function stopFollow() {
    if (follow.es) { follow.es.close(); follow.es = null; }
    if (follow.timer) { window.clearTimeout(follow.timer); follow.timer = 0; }
    follow.id = 0;
  }

  function startFollow() {
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
      getJSON("/photos/upload-progress/?upload=" + id).then(onProgress, function () {}).then(function () {
        if (st.uploadId === id && !st.final && follow.id === id && !follow.es)
          follow.timer = window.setTimeout(tick, 1000);
        else follow.timer = 0;
      });
    }, 0);
  }

  function isDone(p) { return p && p.status !== "processing" && p.status !== "idle"; }

  function onProgress(p) {
    if (!p || !p.upload_id || Number(p.upload_id) !== st.uploadId) return;
    if (st.progress && st.progress.upload_id === p.upload_id && p.version < st.progress.version) return;
    var changed = !st.progress || st.progress.version !== p.version;
    st.progress = p;
    if (isDone(p) && !st.sending) {
      if (!st.final) {
        st.final = true;
        stopFollow();
        scheduleFiles(true);
      }
    } else if (changed) {
      scheduleFiles(false);
    }
    schedule();
  }

  // The file list (with states and photo ids) is fetched apart from the stream,
  // at most once a second (every 3 s for big uploads), and once at the end.
  function scheduleFiles(now) {
    if (!st.uploadId) return;
    if (filesFetch.busy) { filesFetch.again = true; return; }
    if (filesFetch.timer && !now) return;
    window.clearTimeout(filesFetch.timer);
    var gap = rows.length > 1000 ? 3000 : 1000;
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
    }).catch(function () {}).then(function () {
      filesFetch.busy = false;
      if (filesFetch.again) { filesFetch.again = false; scheduleFiles(st.final); }
      schedule();
    });
  }

  // Which of the upload's photos have a thumbnail (so no image is asked for in vain).
  function fetchThumbs(id, p) {
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
        rows.forEach(function (r) { if (r.photoId && thumbs.has(r.photoId)) r.ver++; });
        return seen < j.total && (j.photos || []).length ? page() : null;
      });
    }
    return page();
  }

  function applyFiles(list) {
    var byName = new Map();
    rows.forEach(function (r) {
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
        if (!r) { r = newRow(f.file_name, f.byte_size, null); rows.push(r); }
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
      rows = rows.filter(function (r) { return r.sid || r.local !== "sent"; });
    st.listDirty = true;
  }

  // ---- retry and re-upload ----
  // A file refused for its format or a limit (pixels, sides) would be refused again:
  // neither Retry (the server holds no bytes) nor "Upload again" is offered.
  function refused(stage) { return stage === "sniff" || stage === "limits"; }

  function retryFile(fileId) {
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

  var gone = new Map();    // file id -> message, when the server no longer holds the bytes
  function markGone(fileId, msg) {
    gone.set(fileId, msg || "the file's bytes are no longer held; upload it again");
  }

  // Send a failed file again: its File when this page still has it, else a picker.
  function reupload(fileId) {
    var r = bySid.get(fileId);
    if (r && r.file) {
      var copy = newRow(r.name, r.size, r.file);
      r.replaced = true;
      touch(r);
      rows.push(copy);
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
        rows.push(nr);
        return nr;
      }).filter(function (nr) { return nr.local === "ready"; });
      if (r) { r.replaced = true; touch(r); }
      sendRows(list);
    });
    pick.click();
  }

  function retryAll() {
    var errs = (st.progress && st.progress.errors) || [];
    var retry = [], again = [];
    errs.forEach(function (e) {
      if (e.retryable && !gone.has(e.file_id)) retry.push(e.file_id);
      else {
        var r = bySid.get(e.file_id);
        if (r && r.file && !r.replaced && e.stage !== "sniff") again.push(r);
      }
    });
    rows.forEach(function (r) { if (r.local === "unsent" && r.file && !r.sid) again.push(r); });
    announce("Retrying " + plural(retry.length + again.length, "file", "files"));
    var i = 0;
    function next() {
      if (i >= retry.length) return Promise.resolve();
      return retryFile(retry[i++]).then(next);
    }
    Promise.all([next(), next(), next()]);
    if (again.length) {
      var copies = again.map(function (r) {
        if (r.sid) { r.replaced = true; touch(r); var c = newRow(r.name, r.size, r.file); rows.push(c); return c; }
        return r;
      });
      sendRows(copies);
    }
  }

  // ---- clear / reset ----
  function resetUpload(forget) {
    stopFollow();
    if (forget) {
      try { window.sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ }
    }
    st.uploadId = 0;
    st.progress = null;
    st.final = false;
    st.resumeInto = false;
    st.lastStatus = "";
    st.errorsKey = "";
    bySid.clear();
    thumbs.clear();
    gone.clear();
    net.groups = [];
    net.total = 0;
    ui.progress.hidden = true;
    ui.form.classList.remove("compact");
    ui.errors.hidden = true;
    ui.note.hidden = true;
    ui.reportLink.hidden = true;
    ui.galleryLink.hidden = true;
    ui.retryAll.hidden = true;
  }

  function clearProgress() {
    if (st.sending) return;
    var id = st.uploadId;
    var done = function () {
      resetUpload(true);
      rows = [];
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

  function showProgress() {
    var first = ui.progress.hidden;
    ui.progress.hidden = false;
    ui.files.hidden = false;
    ui.form.classList.add("compact");
    updateSelection();
    // On a phone the panel starts below the fold: bring it up once.
    if (first && ui.progress.getBoundingClientRect().top > window.innerHeight * 0.7)
      ui.progress.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // ---- rendering ----
  function statusOf() {
    var p = st.progress;
    var unsent = rows.some(function (r) { return r.local === "unsent" && !r.sid; });
    if (st.sending) return "uploading";
    if (!p) return st.uploadId ? "processing" : (unsent ? "failed" : "uploading");
    if (p.status === "processing") {
      if (p.phase === "receiving" && unsent) return "failed";
      return p.phase === "receiving" ? "uploading" : "processing";
    }
    if (p.status === "completed") return p.failed > 0 || unsent ? "partial" : "completed";
    if (p.status === "failed") return "failed";
    return "uploading";
  }
  var LABELS = {
    uploading: "Uploading", processing: "Processing", completed: "Completed",
    partial: "Completed with errors", failed: "Failed",
  };

  function titleOf(s, p) {
    var total = p ? p.total : 0;
    var sending = net.groups.reduce(function (a, g) { return a + g.rows.length; }, 0);
    switch (s) {
      case "uploading": return "Sending " + plural(Math.max(sending, total), "file", "files");
      case "processing": return "Processing " + plural(total, "file", "files");
      case "completed": return total === 1 ? "Your photo is in your library" : "All " + total + " files are in your library";
      case "partial": return (p.uploaded + p.duplicates) + " of " + plural(total, "file", "files") + " stored";
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
      ui.net.textContent = SB.formatBytes(sent) + " of " + SB.formatBytes(net.total) + " sent" +
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
    var unsent = rows.filter(function (r) { return r.local === "unsent" && !r.sid; }).length;
    // "Retry all failed" only when something can be retried or sent again.
    var actionable = ((p && p.errors) || []).filter(function (e) {
      var r = bySid.get(e.file_id);
      if (r && r.replaced) return false;
      return (e.retryable && !gone.has(e.file_id)) || (r && r.file && e.stage !== "sniff");
    }).length;
    ui.retryAll.hidden = actionable + unsent === 0 || s === "uploading";
    ui.galleryLink.hidden = !p || !(p.uploaded > 0) || !isDone(p);
    ui.clear.disabled = st.sending > 0;
    if (unsent && !st.sending) {
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
    if (s === "processing") announce("All files sent. Processing" + (p && p.total_batches ? " in " + plural(p.total_batches, "batch", "batches") : "") + ".");
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
    rows.forEach(function (r) {
      if (r.sid || (r.local !== "skipped" && r.local !== "unsent")) return;
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

  // ---- the virtualised list: only rows on screen exist in the DOM ----
  var pool = [];
  var filtered = [];

  function applyFilter() {
    filtered = st.filter === "all" ? rows.slice() : rows.filter(function (r) { return view(r).kind === st.filter; });
    ui.filesCount.textContent = String(rows.length);
  }

  function makeRowNode() {
    var n = node("div", "vrow");
    n.setAttribute("role", "listitem");
    n._img = node("img", "vthumb");
    n._img.alt = "";
    n._img.decoding = "async";
    n._img.width = 42;
    n._img.height = 42;
    n._ph = node("span", "vthumb ph");
    n._ph.setAttribute("aria-hidden", "true");
    var main = node("div", "vmain");
    n._name = node("div", "vname");
    n._meta = node("div", "vmeta");
    main.appendChild(n._name);
    main.appendChild(n._meta);
    var side = node("div", "vside");
    n._chip = node("span", "chip");
    n._btn = node("button", "button small");
    n._btn.type = "button";
    n._btn.addEventListener("click", function () {
      var r = n._row;
      if (!r) return;
      if (r.sstate === "failed" && r.retryable && !gone.has(r.sid)) retryFile(r.sid);
      else if (r.sstate === "failed") reupload(r.sid);
      else if (r.local === "unsent") sendRows([r]);
    });
    side.appendChild(n._chip);
    side.appendChild(n._btn);
    n.appendChild(n._img);
    n.appendChild(n._ph);
    n.appendChild(main);
    n.appendChild(side);
    return n;
  }

  function fillRow(n, r, index) {
    n.hidden = false;
    n.style.transform = "translateY(" + index * ROW_H + "px)";
    if (n._row === r && n._ver === r.ver) return;
    n._row = r;
    n._ver = r.ver;
    var v = view(r);
    n.setAttribute("data-kind", v.kind);
    n._name.textContent = r.name;
    n._name.title = r.name;
    n._meta.textContent = v.meta || "";
    n._chip.className = "chip chip-" + v.cls;
    n._chip.textContent = v.chip;
    var url = r.sstate === "done" || r.sstate === "duplicate" ?
      (thumbs.get(r.photoId) || r.thumb) : "";
    if (url) {
      if (n._img.getAttribute("src") !== url) n._img.src = url;
      n._img.hidden = false;
      n._ph.hidden = true;
    } else {
      n._img.hidden = true;
      if (n._img.getAttribute("src")) n._img.removeAttribute("src");
      n._ph.hidden = false;
      n._ph.textContent = extOf(r.name) || "?";
    }
    var label = "";
    if (r.sstate === "failed" && !r.replaced && r.retryable && !gone.has(r.sid)) label = "Retry";
    else if (r.sstate === "failed" && !r.replaced && !refused(r.stage)) label = "Upload again";
    else if (!r.sid && r.local === "unsent" && r.file) label = "Send again";
    if (st.retrying.has(r.sid)) label = "";
    n._btn.hidden = !label;
    n._btn.textContent = label;
    n._btn.setAttribute("aria-label", label + " " + r.name);
  }

  function renderList() {
    if (ui.files.hidden) {
      pool.forEach(function (n) { n.hidden = true; n._row = null; });
      return;
    }
    if (st.listDirty) { applyFilter(); st.listDirty = false; }
    ui.spacer.style.height = filtered.length * ROW_H + "px";
    var top = ui.vlist.scrollTop, h = ui.vlist.clientHeight || 400;
    var first = Math.max(0, Math.floor(top / ROW_H) - 3);
    var last = Math.min(filtered.length, Math.ceil((top + h) / ROW_H) + 3);
    var count = Math.max(0, last - first);
    while (pool.length < count) {
      var n = makeRowNode();
      ui.vlist.appendChild(n);
      pool.push(n);
    }
    for (var i = 0; i < pool.length; i++) {
      if (i < count) fillRow(pool[i], filtered[first + i], first + i);
      else { pool[i].hidden = true; pool[i]._row = null; }
    }
  }

  var tick = 0;
  function render() {
    renderProgress();
    if (!ui.progress.hidden) renderErrors();
    else ui.errors.hidden = true;
    renderList();
    // Keep speed and time left moving while sending, four times a second.
    if (st.sending && !tick) tick = window.setTimeout(function () { tick = 0; schedule(); }, 250);
  }

  // ---- resume after a reload ----
  function resume() {
    var saved = "";
    try { saved = window.sessionStorage.getItem(KEY) || ""; } catch (e) { /* ignore */ }
    saved = saved || root.getAttribute("data-current-upload") || "";
    var id = Number(saved);
    if (!id) return;
    getJSON("/photos/upload-progress/?upload=" + id + "&files=1").then(function (p) {
      if (!p || !p.upload_id || st.uploadId || st.sending || rows.length) return;
      st.uploadId = id;
      ui.reportLink.href = "/photos/uploads/" + id + "/";
      ui.reportLink.hidden = false;
      showProgress();
      applyFiles(p.files || []);
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
      }
    });
  }

  // ---- wiring ----
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
      var keep = rows.filter(function (r) { return r.local === "ready" || r.local === "skipped"; });
      resetUpload(true);
      rows = keep;
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

  updateSelection();
  resume();
})();
