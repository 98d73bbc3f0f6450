// End-to-end tests of the Shoebox web pages in real headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core), against the real `shoebox serve`.
//
//   node tests/e2e/run.mjs            (from the repository root; `make test` runs it)
//
// SHOEBOX_BIN (default build/shoebox), SHOEBOX_TESTDATA (default ../shared/testdata),
// CHROMIUM (default /usr/bin/chromium). Screenshots go to build/screenshots/.
// SHOEBOX_E2E_CLUSTER=1: the same tests against two web nodes on PostgreSQL + S3 behind a
// load balancer (cluster.mjs; tests/run.py runs that pass when both servers are up).
// The last line is "e2e: N passed, N failed, N skipped" (tests/run.py parses it).
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import {
  ROOT, BIN, TESTDATA, CHROMIUM, CHROMIUM_ARGS, USER, PASSWORD, tally, log, test, assert, eq, finish,
  waitFor, Server, loadPlaywright, watch, track, login, serverJSON, RETRY_RESET,
} from "./lib.mjs";
import { Cluster } from "./cluster.mjs";

const SHOTS = path.join(ROOT, "build", "screenshots");
const CRASH_NAME = "crash-victim";     // --faults decode_crash@crash-victim
const HOSTILE = "<img src=x onerror=alert(1)>.jpg";
const SIZES = { phone: { width: 375, height: 812 }, desktop: { width: 1440, height: 900 } };

// The 20 files of the main upload: good photos, bad ones, and one that crashes the decoder.
const GOOD = [
  "jpeg/Apple iPhone 4.jpg", "jpeg/Canon_PowerShot_S50__IMG_1908.JPG",
  "jpeg/Canon_EOS_5D_Mark_III___K6A7946.JPG", "jpeg/Nikon_CoolPix_S3100__DSCN0138.JPG",
  "jpeg/Olympus_C-3000__PA250004.JPG", "jpeg/Pentax_istDL__IMGP6668.JPG",
  "jpeg/Sony_DSC-P5__DSC00002.JPG", "jpeg/Samsung GT-I9000 (Galaxy S).jpg",
  "jpeg/Epson_PhotoPC_3100Z__EPSN0011.JPG", "jpeg/FujiFilm FinePixS2Pro.jpg",
  "jpeg/HP_PhotoSmart_C200__DSC00001.JPG", "jpeg/Panasonic_PV-SD4090__P1000240.JPG",
  "jpeg/Polaroid_PDC_640M__POL_0136.JPG", "jpeg/Sony DSC-HX5V (2).jpg", "jpeg/cat_progressive.jpg",
];
const BAD = ["bad/README.jpg", "bad/empty.jpg", "bad/truncated.jpg", "bad/corrupt-header.jpg"];
const CRASH_SOURCE = "jpeg/Canon_PowerShot_SX150IS__IMG_1038.JPG";

// A viewport screenshot; on the phone, `focus` (a selector) is scrolled to the top.
async function shot(page, name, size, focus) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.setViewportSize(SIZES[size]);
  await page.evaluate((sel) => {
    const el = sel && document.querySelector(sel);
    const header = document.querySelector(".site-header");
    const under = header ? header.getBoundingClientRect().height : 0;
    if (el) window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - under - 8);
    else window.scrollTo(0, 0);
  }, size === "phone" ? focus : null);
  await page.waitForTimeout(200);
  await page.screenshot({ path: path.join(SHOTS, `${name}-${size}.png`) });
}
async function shotBoth(page, name, focus) {
  await shot(page, name, "phone", focus);
  await shot(page, name, "desktop", focus);
}


async function noHorizontalScroll(page, what) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  assert(w <= page.viewportSize().width + 1, `${what}: page is ${w}px wide at ${page.viewportSize().width}px`);
}

// ---- keyboard ----
// Presses `key` and describes where focus landed: `key` names the element ("#id", or
// "errors button[label]" / "list button[label]" for the per-file buttons), `outline` says
// whether a visible outline is drawn, `shadow` is its box-shadow, `seen` whether at least
// 4x4 px of it are on screen (not clipped away). It also reports the box-shadow of the
// element focus left (`prevShadow`), so a ring made of box-shadow can be told from a
// shadow the element always has. Transitions are let settle before anything is read.
async function pressKey(page, key) {
  await page.keyboard.press(key);
  return page.evaluate(async () => {
    const settle = (el) => Promise.race([
      Promise.all((el && el.getAnimations ? el.getAnimations() : []).map((a) => a.finished.catch(() => {}))),
      new Promise((r) => setTimeout(r, 600)),
    ]);
    const name = (el) => {
      if (!el || el === document.body || el === document.documentElement) return "(page)";
      if (el.id) return "#" + el.id;
      const where = el.closest("#errors") ? "errors " : el.closest("#vlist") ? "list " : "";
      const label = el.getAttribute("aria-label") || el.textContent.trim().replace(/\s+/g, " ");
      return where + el.tagName.toLowerCase() + "[" + label.slice(0, 60) + "]";
    };
    const el = document.activeElement;
    const prev = window.__e2eFocus;
    window.__e2eFocus = el;
    await Promise.all([settle(el), settle(prev)]);
    const prevShadow = prev && prev !== el && prev.isConnected ? getComputedStyle(prev).boxShadow : undefined;
    if (!el || el === document.body) return { key: "(page)", outline: false, shadow: "none", seen: false, prevShadow };
    const cs = getComputedStyle(el);
    const clear = (c) => c === "transparent" || /[,/]\s*0(\.0*)?\s*\)$/.test(c);
    const outline = cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0 && !clear(cs.outlineColor);
    // What is left of its box after every clipping ancestor.
    const r = el.getBoundingClientRect();
    let box = { l: r.left, t: r.top, r: r.right, b: r.bottom };
    for (let a = el; a && a !== document.documentElement; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.position === "absolute" && /^rect\(0px,? 0px,? 0px,? 0px\)$/.test(s.clip)) box = { l: 0, t: 0, r: 0, b: 0 };
      if (a !== el && (s.overflowX !== "visible" || s.overflowY !== "visible")) {
        const ar = a.getBoundingClientRect();
        box = { l: Math.max(box.l, ar.left), t: Math.max(box.t, ar.top), r: Math.min(box.r, ar.right), b: Math.min(box.b, ar.bottom) };
      }
    }
    const seen = box.r - box.l >= 4 && box.b - box.t >= 4 &&
      el.checkVisibility({ opacityProperty: true, visibilityProperty: true });
    return { key: name(el), outline, shadow: cs.boxShadow, seen, prevShadow };
  });
}

// Presses `key` until `until(stop)` holds (or `max` presses); returns every stop, each
// with `shadowOff`: its box-shadow once focus had moved on (when it did).
async function tabWalk(page, { key = "Tab", until = () => false, max = 60 } = {}) {
  const stops = [];
  for (let i = 0; i < max; i++) {
    const s = await pressKey(page, key);
    if (stops.length) stops[stops.length - 1].shadowOff = s.prevShadow;
    stops.push(s);
    if (until(s)) break;
  }
  return stops;
}

// A focus indicator: an outline, or a box-shadow the element does not have unfocused.
function hasRing(s) {
  return s.outline || (s.shadow !== "none" && s.shadowOff !== undefined && s.shadow !== s.shadowOff);
}
function stopList(stops) { return stops.map((s) => s.key).join(" → "); }


// ---- the run ----
async function main() {
  const haveData = fs.existsSync(TESTDATA) && fs.existsSync(path.join(TESTDATA, "jpeg"));
  const noData = haveData ? "" : `no test data at ${TESTDATA} (set SHOEBOX_TESTDATA)`;
  if (!fs.existsSync(CHROMIUM)) {
    log(`SKIP all: ${CHROMIUM} is missing (apt-get install chromium)`);
    tally.skipped += 21; // every test below
    return;
  }
  if (!fs.existsSync(BIN)) {
    log(`FAIL: ${BIN} is missing; build first`);
    tally.failed++;
    return;
  }
  const chromium = await loadPlaywright();
  if (!chromium) {
    log("SKIP all: playwright-core could not be installed");
    tally.skipped += 21; // every test below
    return;
  }

  const cluster = process.env.SHOEBOX_E2E_CLUSTER === "1";
  const args = ["--batch-delay", "0.1", "--faults", `decode_crash@${CRASH_NAME}`];
  const srv = cluster ? new Cluster(args) : new Server([...args, "--workers", "2"]);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
  });
  const errors = [];
  try {
    srv.addUser(USER, PASSWORD);
    await srv.start();
    const base = srv.base;
    const context = await browser.newContext({ viewport: SIZES.desktop });
    watch(context, errors);
    const page = await context.newPage();

    // Files for the upload: real test data plus a copy named to trip the crash fault.
    const work = path.join(srv.tmp, "files");
    fs.mkdirSync(work);
    let uploadFiles = [];
    if (haveData) {
      uploadFiles = GOOD.concat(BAD).map((f) => path.join(TESTDATA, f));
      const victim = path.join(work, CRASH_NAME + ".jpg");
      fs.copyFileSync(path.join(TESTDATA, CRASH_SOURCE), victim);
      uploadFiles.push(victim);
    }
    const state = { uploadId: 0, final: null };

    await test("log in through the form", async () => {
      await login(page, base);
      await page.waitForSelector("h1:has-text('Your photos')");
      eq(await page.locator(".site-nav .user").textContent(), USER, "user shown in the header");
    });

    // The keep-alive race, made certain: a server that answers a connection's first request
    // and resets the connection when the next one arrives on it (what the server's guard
    // does to a pooled connection idle 10 s, at the moment a request is sent).
    await test("a GET on a pooled connection that is reset as it goes out is asked again (RETRY_RESET)", async () => {
      let requests = 0, conns = 0;
      const socks = new Set();
      const cutter = net.createServer((sock) => {
        conns++;
        socks.add(sock);
        let mine = 0, head = "";
        sock.on("error", () => {});
        sock.on("data", (d) => {
          head += d.toString("latin1");
          for (let at; (at = head.indexOf("\r\n\r\n")) >= 0; head = head.slice(at + 4)) {
            requests++;
            if (mine++ === 0) sock.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=300\r\n\r\nok");
            else return sock.resetAndDestroy();
          }
        });
      });
      await new Promise((r) => cutter.listen(0, "127.0.0.1", r));
      try {
        const url = `http://127.0.0.1:${cutter.address().port}/`;
        eq(await (await page.request.get(url, RETRY_RESET)).text(), "ok", "first GET");
        const again = await page.request.get(url, RETRY_RESET);
        eq(await again.text(), "ok", "second GET, asked again on a new connection");
        eq(`${requests} requests on ${conns} connections`, "3 requests on 2 connections", "what the server saw");
      } finally {
        cutter.close();
        for (const c of socks) c.destroy();
      }
    });

    await test("upload page renders the form, tips and limits", async () => {
      await page.goto(base + "/photos/upload/");
      eq(await page.locator("#uploader").getAttribute("data-max-file-size"), String(100 * 1024 * 1024),
         "limit from --max-file-size");
      const tips = await page.locator(".tips").textContent();
      for (const t of ["Batches of 15", "100 MB per file", "RAW takes longer"])
        assert(tips.includes(t), `tip '${t}' missing`);
      assert(await page.locator("#pick-folder").isVisible(), "folder picker offered in Chromium");
      await noHorizontalScroll(page, "upload page (desktop)");
      await page.setViewportSize(SIZES.phone);
      await noHorizontalScroll(page, "upload page (phone)");
      await page.setViewportSize(SIZES.desktop);
    });

    await test("dropping files on the drop zone selects them as the file input does", async () => {
      const notes = path.join(work, "notes.txt");
      fs.writeFileSync(notes, "not a photo\n");
      const files = ["jpeg/Apple iPhone 4.jpg", "jpeg/cat_progressive.jpg", "bad/README.jpg"]
        .map((f) => path.join(TESTDATA, f)).concat([notes]);
      // What the page shows for a selection: submit label, summary, warning, list rows.
      const selection = async () => {
        await page.waitForFunction((n) => document.querySelectorAll("#vlist .vrow:not([hidden])").length === n,
                                   files.length, { timeout: 5000 });
        return page.evaluate(() => ({
          label: document.getElementById("upload-submit-text").textContent,
          enabled: !document.getElementById("upload-submit").disabled,
          summary: document.getElementById("selection-summary").textContent,
          warn: document.getElementById("selection-warn").hidden ? "" : document.getElementById("selection-warn").textContent,
          rows: [...document.querySelectorAll("#vlist .vrow:not([hidden])")].map((r) =>
            [".vname", ".chip", ".vmeta"].map((c) => r.querySelector(c).textContent).join(" | ")),
        }));
      };
      await page.goto(base + "/photos/upload/");
      await page.setInputFiles("#photos-input", files);
      const picked = await selection();
      eq(picked.label, "Upload 3 photos", "submit label after the file input");

      // The same files, dropped: File objects made in the page from the bytes on disk.
      await page.goto(base + "/photos/upload/");
      const dt = await page.evaluateHandle((list) => {
        const d = new DataTransfer();
        for (const f of list) {
          const bin = atob(f.b64);
          const bytes = new Uint8Array(bin.length);
          for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
          d.items.add(new File([bytes], f.name, { type: f.type }));
        }
        // Chromium lets only its own drag data take a drop effect: keep what the page sets.
        let effect = "none";
        Object.defineProperty(d, "dropEffect", { configurable: true, get: () => effect, set: (v) => { effect = v; } });
        return d;
      }, files.map((f) => ({ name: path.basename(f), type: f.endsWith(".txt") ? "text/plain" : "image/jpeg",
                             b64: fs.readFileSync(f).toString("base64") })));
      eq(await dt.evaluate((d) => d.files.length), files.length, "files in the DataTransfer");
      // Fires a drag event at the middle of `sel`, as the browser would; reports whether
      // the page took it (preventDefault: only then does Chromium allow the drop).
      const fire = (sel, type) => page.evaluate(([sel, type, d]) => {
        const el = document.querySelector(sel);
        const r = el.getBoundingClientRect();
        const ev = new DragEvent(type, { bubbles: true, cancelable: true, composed: true, dataTransfer: d,
                                         clientX: r.left + r.width / 2, clientY: r.top + r.height / 2 });
        el.dispatchEvent(ev);
        return { taken: ev.defaultPrevented, effect: d.dropEffect };
      }, [sel, type, dt]);
      const zone = page.locator("#dropzone");
      const look = () => zone.evaluate((z) => { const s = getComputedStyle(z); return s.borderTopColor + " " + s.backgroundColor; });
      const idle = await look();
      const dragover = () => zone.evaluate((z) => z.classList.contains("dragover"));

      assert((await fire("#dropzone", "dragenter")).taken, "dragenter taken");
      assert(await dragover(), "drag-over state while a drag is over the zone");
      await page.waitForFunction(([idle]) => { const s = getComputedStyle(document.getElementById("dropzone"));
        return s.borderTopColor + " " + s.backgroundColor !== idle; }, [idle], { timeout: 3000 })
        .catch(() => { throw new Error("the drop zone looks the same while dragged over: " + idle); });
      await fire("#dropzone", "dragleave");
      assert(!(await dragover()), "drag-over state gone once the drag leaves");
      await page.waitForFunction(([idle]) => { const s = getComputedStyle(document.getElementById("dropzone"));
        return s.borderTopColor + " " + s.backgroundColor === idle; }, [idle], { timeout: 3000 });
      // In again, across a child element (enter the child, then leave the zone for it):
      // the state stays on, and a dragover there accepts a copy.
      await fire("#dropzone", "dragenter");
      await fire(".dz-title", "dragenter");
      await fire("#dropzone", "dragleave");
      assert(await dragover(), "drag-over state kept over a child of the zone");
      const over = await fire(".dz-title", "dragover");
      assert(over.taken, "dragover taken (else the browser refuses the drop)");
      eq(over.effect, "copy", "drop effect");
      // A drop outside the zone must not make the browser open the file instead.
      assert((await fire(".tips", "dragover")).taken && (await fire(".tips", "drop")).taken, "drop outside the zone held");
      assert(await page.locator("#selection").isHidden(), "a drop outside the zone selects nothing");
      assert((await fire(".dz-title", "drop")).taken, "drop taken");
      assert(!(await dragover()), "drag-over state gone after the drop");
      const dropped = await selection();
      eq(JSON.stringify(dropped), JSON.stringify(picked), "dropped selection matches the file input's");
      await page.click("#selection-clear");
      await dt.dispose();
    }, { skip: noData });

    await test("pre-checks and a 5,000-file selection stay responsive", async () => {
      await page.goto(base + "/photos/upload/");
      const t = await page.evaluate(async () => {
        const dt = new DataTransfer();
        for (let i = 0; i < 5000; i++)
          dt.items.add(new File([new Uint8Array(16)], `IMG_${String(i).padStart(4, "0")}.jpg`, { type: "image/jpeg" }));
        dt.items.add(new File(["x"], "notes.txt", { type: "text/plain" }));
        dt.items.add(new File([new ArrayBuffer(101 * 1024 * 1024)], "huge.jpg", { type: "image/jpeg" }));
        const input = document.getElementById("photos-input");
        const t0 = performance.now();
        input.files = dt.files;
        input.dispatchEvent(new Event("change"));
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        return performance.now() - t0;
      });
      log(`     5,001 files shown in ${Math.round(t)} ms`);
      assert(t < 1500, `5,001 files took ${Math.round(t)} ms to show`);
      const rowsInDom = await page.locator("#vlist .vrow:not([hidden])").count();
      assert(rowsInDom > 3 && rowsInDom < 60, `virtual list renders ${rowsInDom} rows`);
      const summary = await page.locator("#selection-summary").textContent();
      assert(summary.includes("5000 files ready"), `summary: ${summary}`);
      assert((await page.locator("#selection-warn").textContent()).includes("2 files will be skipped"),
             "unsupported type and size flagged");
      await page.click('.seg[data-filter="problem"]');
      const probs = await page.locator("#vlist .vrow:not([hidden]) .vmeta").allTextContents();
      assert(probs.some((p) => p.includes("Unsupported type")), "notes.txt flagged: " + probs);
      assert(probs.some((p) => p.includes("Too large") && p.includes("100 MB")), "huge.jpg flagged: " + probs);
      await page.locator("#vlist").evaluate((el) => { el.scrollTop = 1e6; });
      await page.click('.seg[data-filter="all"]');
      // The list grows back on the next animation frame; scrolling before that is clamped.
      await page.waitForFunction(() => document.getElementById("vlist-spacer").offsetHeight > 56 * 4000,
                                 null, { timeout: 5000 });
      await page.locator("#vlist").evaluate((el) => { el.scrollTop = 56 * 4000; el.dispatchEvent(new Event("scroll")); });
      await page.waitForFunction(() => [...document.querySelectorAll("#vlist .vrow:not([hidden]) .vname")]
        .some((n) => n.textContent === "IMG_4000.jpg"));
      await page.click("#selection-clear");
      // The list re-renders on the next animation frame: wait for it, with a deadline.
      await page.waitForFunction(() => document.querySelectorAll("#vlist .vrow:not([hidden])").length === 0,
        null, { timeout: 5000 }).catch(() => {});
      eq(await page.locator("#vlist .vrow:not([hidden])").count(), 0, "cleared selection");
    });

    await test("upload 20 files: the bar reaches 100 % and the counters match the server", async () => {
      await page.goto(base + "/photos/upload/");
      // Slow the network down so the sending phase is visible (and photographed).
      const cdp = await context.newCDPSession(page);
      await cdp.send("Network.emulateNetworkConditions", {
        offline: false, latency: 20, downloadThroughput: 50 * 1024 * 1024, uploadThroughput: 250 * 1024,
      });
      await page.setInputFiles("#photos-input", uploadFiles);
      eq(await page.locator("#upload-submit-text").textContent(), "Upload 20 photos", "submit label");
      await page.click("#upload-submit");
      await page.waitForSelector("#progress:not([hidden])");
      await page.waitForFunction(() => /sent/.test(document.getElementById("net-text").textContent) &&
                                       /\/s/.test(document.getElementById("net-text").textContent), null, { timeout: 30000 });
      eq(await page.locator("#bar").getAttribute("role"), "progressbar", "progressbar role");
      // For the picture: wait (briefly) until processing has started while files still arrive.
      await page.waitForFunction(() => Number(document.getElementById("bar").getAttribute("aria-valuenow")) > 0 &&
        ["uploading", "processing"].includes(document.getElementById("progress").getAttribute("data-state")),
        null, { timeout: 10000 }).catch(() => log("note: processing did not start while sending"));
      await shotBoth(page, "upload-progress", "#progress");
      await cdp.send("Network.emulateNetworkConditions", {
        offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
      });
      await page.waitForFunction(() => {
        const p = document.getElementById("progress");
        return ["completed", "partial", "failed"].includes(p.getAttribute("data-state"));
      }, null, { timeout: 60000 });
      await page.waitForFunction(() => document.getElementById("bar").getAttribute("aria-valuenow") === "100");
      eq(await page.locator("#percent-text").textContent(), "100 %", "percent text");
      state.uploadId = await page.evaluate(() => Number(sessionStorage.getItem("shoebox.upload")));
      assert(state.uploadId > 0, "upload id remembered");
      const p = await serverJSON(page, base, `/photos/upload-progress/?upload=${state.uploadId}`);
      state.final = p;
      eq(p.total, 20, "server total");
      for (const k of ["total", "processed", "uploaded", "failed", "duplicates"])
        eq(Number(await page.locator(`#c-${k}`).textContent()), p[k], `counter ${k}`);
      eq(await page.locator("#status-badge").textContent(), p.failed ? "Completed with errors" : "Completed", "status");
      assert((await page.locator("#live").textContent()).length > 0, "live region announced");
      await page.waitForFunction((n) => document.querySelectorAll("#vlist img.vthumb:not([hidden])").length >= n,
                                 Math.min(5, p.uploaded), { timeout: 30000 });
      await shotBoth(page, "upload-finished", "#progress");
      await page.locator("#files").screenshot({ path: path.join(SHOTS, "upload-files-desktop.png") });
    }, { skip: noData });

    await test("failed files are listed with their reasons", async () => {
      const p = state.final;
      assert(p && p.errors.length >= 3, "server reported failures");
      const names = p.errors.map((e) => e.file);
      for (const f of ["README.jpg", "empty.jpg", CRASH_NAME + ".jpg"]) assert(names.includes(f), `${f} failed`);
      const rows = await page.locator("#errors-body tr").evaluateAll((trs) => trs.map((tr) =>
        [...tr.querySelectorAll("td")].map((td) => td.textContent)));
      for (const e of p.errors) {
        const row = rows.find((r) => r[0] === e.file);
        assert(row, `error row for ${e.file}`);
        eq(row[1], e.stage, `stage of ${e.file}`);
        eq(row[2], e.message, `reason of ${e.file}`);
      }
      const crash = p.errors.find((e) => e.file === CRASH_NAME + ".jpg");
      eq(crash.message, "decoder crashed", "crash reason");
      assert(crash.retryable, "crashed file is retryable");
    }, { skip: noData });

    await test("retry a failed file: accepted, processed again", async () => {
      const before = await serverJSON(page, base, `/photos/upload-progress/?upload=${state.uploadId}`);
      const crash = before.errors.find((e) => e.file === CRASH_NAME + ".jpg");
      const row = page.locator("#errors-body tr", { hasText: CRASH_NAME });
      const [resp] = await Promise.all([
        page.waitForResponse((r) => r.url().includes(`/files/${crash.file_id}/retry`)),
        row.locator("button", { hasText: "Retry" }).click(),
      ]);
      eq(resp.status(), 202, "retry answer");
      // The fault persists, so the file fails again after going back through processing.
      const after = await waitFor(async () => {
        const p = await serverJSON(page, base, `/photos/upload-progress/?upload=${state.uploadId}`);
        return p.status !== "processing" && p.finished_at !== before.finished_at ? p : null;
      }, { timeout: 60000, what: "the retried file to be processed" });
      assert(after.version > before.version, "the upload changed");
      assert(Date.parse(after.finished_at) > Date.parse(before.finished_at), "finished again later");
      eq(after.errors.find((e) => e.file_id === crash.file_id).message, "decoder crashed", "failed again");
      await page.waitForFunction((v) => {
        const p = document.getElementById("progress");
        return ["completed", "partial", "failed"].includes(p.getAttribute("data-state")) &&
               document.getElementById("c-failed").textContent === String(v);
      }, after.failed, { timeout: 20000 });
      eq(Number(await page.locator("#c-processed").textContent()), after.processed, "processed after retry");
    }, { skip: noData });

    await test("a broken request is retried alone (tus: that file resumes) and the upload still completes", async () => {
      await page.goto(base + "/photos/upload/");
      const seen = [];
      let aborted = "";
      // Every tus request of the page; the first PATCH is broken off once.
      await page.route("**/photos/tus/**", async (route) => {
        const req = route.request();
        seen.push(req.method() + " " + new URL(req.url()).pathname);
        if (req.method() === "PATCH" && !aborted) {
          aborted = new URL(req.url()).pathname;
          return route.abort("connectionreset");
        }
        return route.continue();
      });
      const files = GOOD.slice(0, 12).map((f) => path.join(TESTDATA, f));
      await page.setInputFiles("#photos-input", files);
      await page.click("#upload-submit");
      await page.waitForFunction(() => ["completed", "partial", "failed"].includes(
        document.getElementById("progress").getAttribute("data-state")), null, { timeout: 60000 });
      await page.unroute("**/photos/tus/**");
      // The broken request is logged by Chromium; that one is ours, not the page's.
      for (let i = errors.length - 1; i >= 0; i--)
        if (errors[i].includes("ERR_CONNECTION_RESET")) errors.splice(i, 1);
      assert(aborted, "one PATCH broken");
      eq(seen.filter((r) => r.startsWith("POST ")).length, 12, "one tus upload created per file (" + seen.join(", ") + ")");
      const mine = seen.filter((r) => r.endsWith(" " + aborted));
      assert(mine.includes("HEAD " + aborted), "the broken file asked the server for its offset: " + mine.join(", "));
      eq(mine.filter((r) => r.startsWith("PATCH ")).length, 2, "its PATCH sent again, once: " + mine.join(", "));
      for (const u of new Set(seen.filter((r) => r.startsWith("PATCH ")).map((r) => r.slice(6))))
        if (u !== aborted) eq(seen.filter((r) => r === "PATCH " + u).length, 1, "other files sent once (" + u + ")");
      const id = await page.evaluate(() => Number(sessionStorage.getItem("shoebox.upload")));
      const p = await serverJSON(page, base, `/photos/upload-progress/?upload=${id}`);
      eq(p.total, 12, "every file arrived once");
      eq(p.status, "completed", "server status");
      for (const k of ["total", "processed", "uploaded", "failed", "duplicates"])
        eq(Number(await page.locator(`#c-${k}`).textContent()), p[k], `counter ${k}`);
      // These files were all stored by the first upload: duplicates, each row showing the
      // earlier photo's thumbnail (this upload made no photo of its own to take it from).
      eq(p.duplicates, 12 - p.failed, "duplicates of the first upload");
      await page.waitForFunction(() => {
        const rows = [...document.querySelectorAll("#vlist .vrow:not([hidden])")]
          .filter((r) => r.querySelector(".chip-duplicate"));
        return rows.length > 0 && rows.every((r) => {
          const img = r.querySelector("img.vthumb");
          return img && !img.hidden && /\/photos\/\d+\/thumb\.jpg$/.test(img.getAttribute("src") || "");
        });
      }, null, { timeout: 30000 });
    }, { skip: noData });

    await test("reload picks the upload up again", async () => {
      await page.evaluate((id) => sessionStorage.setItem("shoebox.upload", String(id)), state.uploadId);
      await page.reload();
      await page.waitForSelector("#progress:not([hidden])");
      await page.waitForFunction((n) => document.getElementById("c-total").textContent === String(n),
                                 state.final.total);
      assert((await page.locator("#report-link").getAttribute("href")).endsWith(`/uploads/${state.uploadId}/`), "report link");
    }, { skip: noData });

    await test("reload while processing, before any photo is stored, picks the upload up without a script error", async () => {
      const problems = [];
      const onError = (e) => problems.push(e.message);
      page.on("pageerror", onError);
      const url = `**/photos/upload-progress/?upload=${state.uploadId}&files=1`;
      try {
        await page.evaluate((id) => sessionStorage.setItem("shoebox.upload", String(id)), state.uploadId);
        // The first answer after the reload is what the server says early on: still
        // processing, nothing stored yet. (The stream then brings the real, final state.)
        await page.route(url, async (route) => {
          const r = await route.fetch(RETRY_RESET);
          const body = Object.assign(await r.json(), { status: "processing", phase: "processing", processed: 0,
            uploaded: 0, duplicates: 0, failed: 0, percent: 0, finished_at: null, errors: [] });
          await route.fulfill({ response: r, json: body });
        }, { times: 1 });
        await page.reload();
        await page.waitForSelector("#progress:not([hidden])");
        await page.waitForFunction((n) => document.getElementById("c-total").textContent === String(n) &&
          ["completed", "partial", "failed"].includes(document.getElementById("progress").getAttribute("data-state")),
          state.final.total, { timeout: 15000 });
        eq(problems.join("; "), "", "script errors");
      } finally {
        page.off("pageerror", onError);
        await page.unroute(url).catch(() => {});
      }
    }, { skip: noData });

    await test("an upload whose only file is cancelled ends on the page: nothing stored, no script error", async () => {
      // Another client (tus-js-client's abort(true), Uppy's cancel) opens an upload of one
      // file, starts it and terminates it; the page follows that upload (as after a reload).
      // The server deletes the upload (no file, none to come) and ends its stream; the
      // page's next read is a 404, which it takes as the upload's end.
      const problems = [];
      const onError = (e) => problems.push(e.message);
      page.on("pageerror", onError);
      try {
        await page.goto(base + "/photos/upload/");
        const t = await page.evaluate(async () => {
          const h = { "X-CSRFToken": window.Shoebox.csrfToken(), "Tus-Resumable": "1.0.0" };
          const r = await fetch("/api/uploads", { method: "POST", body: JSON.stringify({ expected: 1 }),
            headers: Object.assign({ "Content-Type": "application/json" }, h) });
          const id = (await r.json()).upload_id;
          const c = await fetch("/photos/tus/", { method: "POST", headers: Object.assign({ "Upload-Length": "1000",
            "Upload-Metadata": "filename " + btoa("cancelled.jpg") + ",upload " + btoa(String(id)) }, h) });
          const url = c.headers.get("Location");
          const p = await fetch(url, { method: "PATCH", body: new Uint8Array(100),
            headers: Object.assign({ "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0" }, h) });
          sessionStorage.setItem("shoebox.upload", String(id));
          return { id, url, created: c.status, patched: p.status };
        });
        eq([t.created, t.patched].join(" "), "201 204", "creation and PATCH");
        await page.reload();
        await page.waitForFunction(() => document.getElementById("progress").getAttribute("data-state") === "uploading",
                                   null, { timeout: 10000 });
        const before = errors.length;
        const status = await page.evaluate(async (url) => (await fetch(url, { method: "DELETE",
          headers: { "X-CSRFToken": window.Shoebox.csrfToken(), "Tus-Resumable": "1.0.0" } })).status, t.url);
        eq(status, 204, "DELETE");
        await page.waitForFunction(() => document.getElementById("progress").getAttribute("data-state") === "ended",
                                   null, { timeout: 15000 });
        eq(await page.locator("#status-badge").textContent(), "Nothing stored", "badge");
        eq(await page.locator("#progress-title").textContent(), "No file was stored", "title");
        assert((await page.locator("#progress-note").textContent()).includes(`Upload #${t.id} ended with no file in it`),
               "the note says why");
        assert(await page.locator("#report-link").isHidden(), "no link to the removed upload's report");
        eq(await page.evaluate(() => sessionStorage.getItem("shoebox.upload")), null, "forgotten for a reload");
        eq(problems.join("; "), "", "script errors");
        // The 404s that told the page are the signal, not errors: Chromium logs them.
        const added = errors.splice(before);
        errors.push(...added.filter((e) => !/status of 404/.test(e)));
      } finally {
        page.off("pageerror", onError);
      }
    });

    await test("gallery shows the new thumbnails", async () => {
      await page.goto(base + "/photos/");
      const tiles = page.locator("#gallery-grid .tile");
      assert(await tiles.count() >= state.final.uploaded, "a tile per stored photo");
      const imgs = page.locator("#gallery-grid img.tile-img");
      eq(await imgs.first().getAttribute("loading"), "lazy", "lazy loading");
      const n = await imgs.count();
      for (let i = 0; i < n; i++) await imgs.nth(i).scrollIntoViewIfNeeded();
      await page.waitForFunction(() => [...document.querySelectorAll("#gallery-grid img.tile-img")]
        .every((img) => img.complete && img.naturalWidth > 0), null, { timeout: 30000 });
      await page.evaluate(() => window.scrollTo(0, 0));
      await noHorizontalScroll(page, "gallery (desktop)");
      await shot(page, "gallery", "desktop");
      await shot(page, "gallery", "phone");
      await noHorizontalScroll(page, "gallery (phone)");
      await page.setViewportSize(SIZES.desktop);
    }, { skip: noData });

    await test("detail page shows camera, date, map link and download", async () => {
      const list = await serverJSON(page, base, `/api/photos?upload=${state.uploadId}&limit=100`);
      const ph = list.photos.find((p) => p.file_name === "Apple iPhone 4.jpg");
      assert(ph, "photo stored");
      await page.goto(base + "/photos/");
      await page.click(`a.tile-link[href="/photos/${ph.id}/"]`);
      await page.waitForURL(base + `/photos/${ph.id}/`);
      const meta = await page.locator("dl.meta").textContent();
      assert(meta.includes("Apple iPhone 4"), "camera: " + meta);
      assert(meta.includes("13 Jan 2011"), "date taken: " + meta);
      assert(await page.locator("a.map-link[href*='openstreetmap.org']").count() === 1, "map link");
      eq(await page.locator("a[download]").getAttribute("href"), `/photos/${ph.id}/original`, "download link");
      await page.waitForFunction(() => { const i = document.querySelector(".preview-img"); return i && i.complete && i.naturalWidth > 0; });
      await shot(page, "detail", "phone");
      await noHorizontalScroll(page, "detail (phone)");
      await shot(page, "detail", "desktop");
    }, { skip: noData });

    await test("delete asks first, then removes the photo", async () => {
      const list = await serverJSON(page, base, `/api/photos?upload=${state.uploadId}&limit=100`);
      const ph = list.photos.find((p) => p.file_name === "cat_progressive.jpg") || list.photos[0];
      await page.goto(base + `/photos/${ph.id}/`);
      let asked = "";
      const onDialog = async (d) => { asked = d.message(); };
      page.removeAllListeners("dialog");
      page.once("dialog", async (d) => { await onDialog(d); await d.dismiss(); });
      await page.click("a.js-delete");
      assert(asked.includes(ph.file_name), "confirm() names the photo: " + asked);
      eq(page.url(), base + `/photos/${ph.id}/`, "dismissed: still on the page");
      page.once("dialog", (d) => d.accept());
      await Promise.all([page.waitForURL(base + "/photos/"), page.click("a.js-delete")]);
      const r = await page.request.get(base + `/api/photos/${ph.id}`, RETRY_RESET);
      eq(r.status(), 404, "photo gone");
      page.on("dialog", (d) => { errors.dialogs = (errors.dialogs || []).concat(d.message()); d.dismiss().catch(() => {}); });
    }, { skip: noData });

    await test("the hostile file name stays text", async () => {
      const hostile = path.join(work, HOSTILE);
      const bytes = fs.readFileSync(path.join(TESTDATA, "jpeg/Olympus_C-3000__P1010006.JPG"));
      fs.writeFileSync(hostile, Buffer.concat([bytes, Buffer.from("unique tail " + Date.now())]));
      const dialogsBefore = (errors.dialogs || []).length;
      await page.goto(base + "/photos/upload/");
      await page.setInputFiles("#photos-input", [hostile]);
      await page.click("#upload-submit");
      await page.waitForFunction(() => ["completed", "partial", "failed"].includes(
        document.getElementById("progress").getAttribute("data-state")), null, { timeout: 60000 });
      await page.waitForFunction((n) => [...document.querySelectorAll("#vlist .vname")].some((e) => e.textContent === n), HOSTILE);
      eq(await page.locator("#vlist img:not(.vthumb)").count(), 0, "no injected image in the list");
      // Clear: the session's progress is forgotten (the photos stay).
      const [cleared] = await Promise.all([
        page.waitForResponse((r) => r.url().includes("/photos/clear-upload-progress/")),
        page.click("#clear-progress"),
      ]);
      eq(cleared.status(), 200, "clear answer");
      assert(await page.locator("#progress").isHidden(), "progress panel gone");
      // Behind a balancer the next request may reach the other node, which may use its
      // copy of the session for up to 1 s (SESSION_CACHE_MS, README "Several machines").
      let idle = await serverJSON(page, base, "/photos/upload-progress/");
      for (let t = 0; idle.status !== "idle" && t < 15; t++) {
        await new Promise((r) => setTimeout(r, 100));
        idle = await serverJSON(page, base, "/photos/upload-progress/");
      }
      eq(idle.status, "idle", "session progress idle (within the 1 s session cache)");
      const list = await serverJSON(page, base, "/api/photos?limit=5");
      const ph = list.photos.find((p) => p.file_name === HOSTILE);
      assert(ph, "stored under its name");
      await page.goto(base + `/photos/${ph.id}/`);
      eq(await page.locator("h1.photo-title").textContent(), HOSTILE, "title is the literal name");
      await page.goto(base + "/photos/");
      assert(await page.locator(".tile-name", { hasText: HOSTILE }).count() === 1, "gallery caption is text");
      eq(await page.locator("img[src='x']").count(), 0, "no injected element");
      eq((errors.dialogs || []).length, dialogsBefore, "no dialog fired");
    }, { skip: noData });

    await test("without JavaScript the form posts and the report refreshes until done", async () => {
      const ctx = await browser.newContext({ javaScriptEnabled: false, viewport: SIZES.desktop });
      watch(ctx, errors);
      const p2 = await ctx.newPage();
      await login(p2, base);
      await p2.goto(base + "/photos/upload/");
      assert(await p2.locator("#photos-input").isVisible(), "native file input shown");
      const files = ["jpeg/Nikon_D3100__DSC_0008.JPG", "jpeg/Olympus_C-3000__P1010006.JPG", "bad/README.jpg"]
        .map((f) => path.join(TESTDATA, f));
      await p2.setInputFiles("#photos-input", files);
      await Promise.all([p2.waitForURL(/\/photos\/uploads\/\d+\/$/), p2.click("#upload-submit")]);
      await p2.waitForSelector("#count-total");
      eq(await p2.locator("#count-total").textContent(), "3", "total on the report");
      // The page reloads itself (meta refresh) until the upload is done.
      await waitFor(async () => (await p2.locator(".report").getAttribute("data-status").catch(() => "")) === "done",
                    { timeout: 60000, interval: 250, what: "the report to refresh to done" });
      eq(await p2.locator("meta[http-equiv=refresh]").count(), 0, "no refresh once done");
      const failedRow = p2.locator(".errors-table tbody tr", { hasText: "README.jpg" });
      assert(await failedRow.count() === 1, "failed file on the report");
      assert((await failedRow.textContent()).includes("unsupported format"), "reason on the report");
      await ctx.close();
    }, { skip: noData });

    await test("uploads list links each report", async () => {
      await page.goto(base + "/photos/uploads/");
      const rows = page.locator(".uploads-table tbody tr");
      assert(await rows.count() >= 1, "uploads listed");
      await shotBoth(page, "uploads");
      await page.click(`a[href="/photos/uploads/${state.uploadId}/"]`);
      await page.waitForSelector("#count-total");
      eq(Number(await page.locator("#count-total").textContent()), state.final.total, "report total");
      await shotBoth(page, "report");
      await page.setViewportSize(SIZES.desktop);
    }, { skip: noData });

    // Opens the upload page with nothing in progress (an earlier test's upload would
    // otherwise be picked up again and change what is on the page).
    const freshUploadPage = async (pg) => {
      await pg.goto(base + "/photos/upload/");
      if (await pg.locator("#progress").isVisible()) {
        await pg.click("#clear-progress");
        await pg.waitForSelector("#progress", { state: "hidden" });
        await pg.goto(base + "/photos/upload/");
      }
    };

    await test("keyboard only: every Tab stop on the upload page can be seen, with a focus ring", async () => {
      await freshUploadPage(page);
      await page.setInputFiles("#photos-input", [{ name: "a.jpg", mimeType: "image/jpeg", buffer: Buffer.alloc(64) }]);
      await page.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
      const stops = await tabWalk(page, { max: 40, until: (s) => s.key === "(page)" });
      const walk = stops.filter((s) => s.key !== "(page)");
      for (const k of ["#pick-files", "#pick-folder", "#upload-submit", "#selection-clear"])
        assert(walk.some((s) => s.key === k), `${k} is a Tab stop: ${stopList(stops)}`);
      const unseen = walk.filter((s) => !s.seen).map((s) => s.key);
      eq(unseen.join(", "), "", "Tab stops that cannot be seen");
      const noRing = walk.filter((s) => !hasRing(s)).map((s) => s.key);
      eq(noRing.join(", "), "", "Tab stops without a focus indicator");
    });

    await test("keyboard only: choose photos, send them, then reach Retry and the report", async () => {
      const files = [path.join(work, CRASH_NAME + ".jpg"), path.join(TESTDATA, "jpeg/Polaroid_PDC_640M__POL_0136.JPG")];
      await freshUploadPage(page);
      await page.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
      // Listening now has Playwright intercept the chooser well before Enter is pressed.
      const chooserOpened = page.waitForEvent("filechooser", { timeout: 20000 });
      chooserOpened.catch(() => {});   // awaited below; not an unhandled rejection if a step before fails
      // Tab from the top of the page to "Choose photos"; Enter opens the file chooser.
      const toPick = await tabWalk(page, { max: 30, until: (s) => s.key === "#pick-files" });
      const pick = toPick[toPick.length - 1];
      eq(pick.key, "#pick-files", `'Choose photos' reached by Tab (${stopList(toPick)})`);
      assert(toPick.some((s) => s.key === "a[Past uploads]"), "the page's own links come first: " + stopList(toPick));
      assert(pick.seen, "'Choose photos' can be seen while focused");
      await page.keyboard.press("Enter");
      const chooser = await chooserOpened;
      assert(chooser.isMultiple(), "the chooser takes several files");
      await chooser.setFiles(files);
      await page.waitForFunction(() => document.getElementById("upload-submit-text").textContent === "Upload 2 photos",
                                 null, { timeout: 5000 });
      // Onwards to the submit button: only the folder picker lies between.
      const toSubmit = await tabWalk(page, { max: 6, until: (s) => s.key === "#upload-submit" });
      const submit = toSubmit[toSubmit.length - 1];
      eq(submit.key, "#upload-submit", `submit reached by Tab after 'Choose photos' (${stopList(toSubmit)})`);
      assert(toSubmit.slice(0, -1).every((s) => s.key === "#pick-folder"), "stops in between: " + stopList(toSubmit));
      assert(submit.seen, "the submit button can be seen while focused");
      // Shift+Tab goes back the same way, Tab forward again; then "Clear selection" follows.
      eq((await pressKey(page, "Shift+Tab")).key, toSubmit.length > 1 ? toSubmit[toSubmit.length - 2].key : "#pick-files",
         "Shift+Tab from the submit button");
      eq((await pressKey(page, "Tab")).key, "#upload-submit", "Tab back to the submit button");
      eq((await pressKey(page, "Tab")).key, "#selection-clear", "after the submit button");
      eq((await pressKey(page, "Shift+Tab")).key, "#upload-submit", "Shift+Tab back to the submit button");
      for (const s of [...toPick, ...toSubmit]) assert(hasRing(s), `${s.key} shows no focus indicator`);
      // Space sends.
      await page.keyboard.press("Space");
      await page.waitForFunction(() => ["completed", "partial", "failed"].includes(
        document.getElementById("progress").getAttribute("data-state")), null, { timeout: 60000 });
      const id = await page.evaluate(() => Number(sessionStorage.getItem("shoebox.upload")));
      const p = await serverJSON(page, base, `/photos/upload-progress/?upload=${id}`);
      eq(p.total, 2, "both files sent");
      assert(p.errors.some((e) => e.file === CRASH_NAME + ".jpg" && e.retryable), "the crash is retryable");
      const retryLabel = `button[Retry ${CRASH_NAME}.jpg]`;
      await page.waitForFunction((n) => [...document.querySelectorAll("#vlist button")]
        .some((b) => !b.hidden && b.getAttribute("aria-label") === "Retry " + n), CRASH_NAME + ".jpg", { timeout: 30000 });
      // Tab on from wherever focus is now: the report link, then the Retry in the problems
      // table, then the one in the file list.
      const after = await tabWalk(page, { max: 80, until: (s) => s.key === "list " + retryLabel });
      const at = (k) => after.findIndex((s) => s.key === k);
      for (const k of ["#report-link", "errors " + retryLabel, "list " + retryLabel])
        assert(at(k) >= 0, `${k} reached by Tab: ${stopList(after)}`);
      assert(at("#report-link") < at("errors " + retryLabel) && at("errors " + retryLabel) < at("list " + retryLabel),
             "order: report link, problems table, file list: " + stopList(after));
      for (const s of after) {
        if (s.key === "(page)") continue;
        assert(hasRing(s), `${s.key} shows no focus indicator`);
        if (s.key === "#report-link" || s.key.endsWith(retryLabel)) assert(s.seen, `${s.key} can be seen while focused`);
      }
      // Back to the problems table's Retry with Shift+Tab, and Enter retries the file.
      const back = await tabWalk(page, { key: "Shift+Tab", max: 20, until: (s) => s.key === "errors " + retryLabel });
      eq(back[back.length - 1].key, "errors " + retryLabel, "Shift+Tab back to Retry: " + stopList(back));
      const [resp] = await Promise.all([
        page.waitForResponse((r) => r.url().includes(`/uploads/${id}/files/`) && r.url().endsWith("/retry")),
        page.keyboard.press("Enter"),
      ]);
      eq(resp.status(), 202, "retry answer");
      await waitFor(async () => {
        const q = await serverJSON(page, base, `/photos/upload-progress/?upload=${id}`);
        return q.status !== "processing" && q.finished_at !== p.finished_at;
      }, { timeout: 60000, what: "the retried file to be processed" });
      await page.waitForFunction(() => ["completed", "partial", "failed"].includes(
        document.getElementById("progress").getAttribute("data-state")), null, { timeout: 60000 });
      // And Enter on the report link opens the report.
      const toReport = await tabWalk(page, { max: 80, until: (s) => s.key === "#report-link" });
      eq(toReport[toReport.length - 1].key, "#report-link", "report link reached again: " + stopList(toReport));
      await Promise.all([page.waitForURL(base + `/photos/uploads/${id}/`), page.keyboard.press("Enter")]);
    }, { skip: noData });

    await test("leaving while photos are being sent asks first; once the upload is done it does not", async () => {
      const files = ["jpeg/Nikon_D3100__DSC_0008.JPG", "jpeg/Olympus_C-3000__P1010006.JPG", "jpeg/Sony_SLT-A57___DSC8833.JPG"]
        .map((f) => path.join(TESTDATA, f));
      const p3 = await context.newPage();
      p3.removeAllListeners("dialog");
      const dialogs = [];
      p3.on("dialog", (d) => { dialogs.push(d.type()); d.dismiss().catch(() => {}); });
      try {
        await freshUploadPage(p3);
        const cdp = await context.newCDPSession(p3);
        await cdp.send("Network.emulateNetworkConditions", {
          offline: false, latency: 20, downloadThroughput: 50 * 1024 * 1024, uploadThroughput: 100 * 1024,
        });
        await p3.setInputFiles("#photos-input", files);
        // A real click: Chromium only asks before unload on a page the user has interacted with.
        await p3.click("#upload-submit");
        await p3.waitForFunction(() => document.getElementById("progress").getAttribute("data-state") === "uploading" &&
          /sent/.test(document.getElementById("net-text").textContent), null, { timeout: 30000 });
        const sentWidth = () => p3.evaluate(() => parseFloat(document.getElementById("bar-sent").style.width) || 0);
        const before = await sentWidth();
        assert(before < 90, `still sending (${before} % sent)`);
        await p3.close({ runBeforeUnload: true });
        await waitFor(() => dialogs.length > 0, { timeout: 5000, what: "a dialog before leaving" });
        eq(dialogs.join(","), "beforeunload", "dialogs while sending");
        // Dismissed: the page stays and the sending goes on.
        await p3.waitForTimeout(300);
        assert(!p3.isClosed(), "the page stayed open");
        await p3.waitForFunction((w) => parseFloat(document.getElementById("bar-sent").style.width) > w,
                                 before, { timeout: 15000 });
        await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
        await p3.waitForFunction(() => ["completed", "partial", "failed"].includes(
          document.getElementById("progress").getAttribute("data-state")), null, { timeout: 60000 });
        const id = await p3.evaluate(() => Number(sessionStorage.getItem("shoebox.upload")));
        const p = await serverJSON(p3, base, `/photos/upload-progress/?upload=${id}`);
        eq(p.total, files.length, "every file arrived");
        eq(p.status, "completed", "server status");
        eq(p.failed, 0, "none failed");
        // Done: leaving does not ask (a dialog would be dismissed and keep the page open).
        const closed = p3.waitForEvent("close", { timeout: 15000 });
        closed.catch(() => {});
        await p3.close({ runBeforeUnload: true });
        await closed.catch(() => { throw new Error("the page did not close once the upload was done"); });
        eq(dialogs.join(","), "beforeunload", "no dialog once the upload is done");
      } finally {
        if (!p3.isClosed()) await p3.close().catch(() => {});
      }
    }, { skip: noData });

    await test("no console errors on any page", async () => {
      for (const u of ["/photos/", "/photos/upload/", "/photos/uploads/"]) await page.goto(base + u);
      assert(errors.length === 0, "console errors:\n" + errors.join("\n"));
    });
    if (cluster) {
      await test("both web nodes served the pages", async () => {
        // Each node a fair share of the requests (the balancer alternates), whether or
        // not the tests that need the test data ran.
        const counts = srv.requestsPerNode();
        const total = counts.reduce((a, b) => a + b, 0);
        assert(total > 40 && counts.every((n) => n > total / 4), "requests per node: " + counts.join(", "));
      });
    }
    await context.close();
  } finally {
    await browser.close().catch(() => {});
    await srv.stop().catch(() => {});
    if (tally.failed) log("server log (tail):\n" + srv.log().split("\n").slice(-40).join("\n"));
    srv.cleanup();
  }
}

main().catch((e) => { tally.failed++; log("FAIL run: " + (e && e.stack ? e.stack : e)); }).finally(finish);
