// Upload page, the virtualised file list: only the rows on screen (plus a few
// either side) exist in the DOM, a pool of nodes moved with transforms over a
// spacer as tall as the whole list, so thousands of files stay smooth. Applies
// the filter (st.filter: all, or the rows of one view() kind: active, done,
// problem; main.js wires its buttons) and owns each row's action button (Retry,
// Upload again, Send again).

import { ui, st, thumbs, gone, node, extOf } from "./state.js";
import { view, refused } from "./rows.js";
import { sendRows } from "./send.js";
import { retryFile, reupload } from "./retry.js";

const ROW_H = 56;                     // .vrow height in px (3.5rem)

const pool = [];
let filtered = [];

function applyFilter() {
  filtered = st.filter === "all" ? st.rows.slice() : st.rows.filter(function (r) { return view(r).kind === st.filter; });
  ui.filesCount.textContent = String(st.rows.length);
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

export function renderList() {
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
