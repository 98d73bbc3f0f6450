// Upload page, rows and pre-checks: one row per file in the list (newRow; touch()
// marks it changed for the list), the check made before a file is sent (precheck:
// over the size limit, clearly not a photo) and how a row is shown (view: chip,
// class, meta line and kind for the filters).

import { root, SB, st, extOf } from "./state.js";

const MAX_BYTES = Number(root && root.getAttribute("data-max-file-size")) || 100 * 1024 * 1024;
const MAX_TEXT = (root && root.getAttribute("data-max-file-text")) || (SB ? SB.formatBytes(MAX_BYTES) : "");

const IMAGE_EXT = /\.(jpe?g|jpe|jfif|png|webp|gif|tiff?|heic|heif|avif|dng|cr2|cr3|crw|nef|nrw|arw|srf|sr2|orf|rw2|raf|pef|srw|x3f|3fr|erf|kdc|dcr|mrw|mos|iiq|rwl|raw)$/i;
const OTHER_EXT = /\.(txt|md|rtf|pdf|docx?|xlsx?|pptx?|odt|ods|csv|json|xml|html?|js|css|zip|rar|7z|gz|tgz|bz2|xz|tar|exe|msi|dmg|pkg|apk|iso|mp3|wav|flac|aac|m4a|ogg|opus|mp4|mov|avi|mkv|webm|m4v|3gp|wmv|mpe?g|db|ini|lnk|url|ds_store)$/i;
const OTHER_NAMES = { ".ds_store": 1, "thumbs.db": 1, "desktop.ini": 1 };

export function newRow(name, size, file) {
  return {
    name: name, size: size, file: file || null,
    local: "", reason: "",               // local: ready skipped queued sending sent unsent
    sid: 0, sstate: "", stage: "", error: "", retryable: false,
    photoId: 0, thumb: "", batch: 0, replaced: false, ver: 0,
    missing: false,                      // after a reload: unfinished, its File to be chosen again
  };
}
export function touch(r) { r.ver++; st.listDirty = true; }

export function precheck(file) {
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
export function view(r) {
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
    case "unsent": if (r.missing) return { chip: "Choose again", cls: "unsent", kind: "problem", meta: r.reason };
      return { chip: "Not sent", cls: "unsent", kind: "problem", meta: r.reason };
    case "sending": return { chip: "Sending", cls: "sending", kind: "active", meta: SB.formatBytes(r.size) };
    case "sent": return { chip: "Sent", cls: "sending", kind: "active", meta: "Received by the server" };
    case "queued": return { chip: "Waiting", cls: "queued", kind: "active", meta: SB.formatBytes(r.size) };
    default: return { chip: "Ready", cls: "ready", kind: "active", meta: SB.formatBytes(r.size) };
  }
}

// A file refused for its format or a limit (pixels, sides) would be refused again:
// neither Retry (the server holds no bytes) nor "Upload again" is offered.
export function refused(stage) { return stage === "sniff" || stage === "limits"; }
