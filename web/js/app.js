// Shoebox front end, shared by every page. External file only: the CSP forbids
// inline script. Provides window.Shoebox (CSRF token, fetch helper, formatters)
// and small page enhancements: the current nav link, local times, and the
// confirm() step of "Delete…" on the photo page.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  // fetch() wrapper that sends the CSRF header on state-changing requests.
  function request(url, options) {
    options = options || {};
    var method = (options.method || "GET").toUpperCase();
    var headers = new Headers(options.headers || {});
    if (method !== "GET" && method !== "HEAD") headers.set("X-CSRFToken", cookie("csrftoken"));
    if (!headers.has("Accept")) headers.set("Accept", "application/json");
    options.headers = headers;
    options.credentials = "same-origin";
    return fetch(url, options);
  }

  function formatBytes(n) {
    if (!isFinite(n) || n < 0) return "–";
    if (n < 1024) return n + (n === 1 ? " byte" : " bytes");
    var units = ["KB", "MB", "GB", "TB"], u = -1;
    do { n /= 1024; u++; } while (n >= 1024 && u < units.length - 1);
    return (n < 10 ? n.toFixed(1) : Math.round(n)) + " " + units[u];
  }

  function formatDuration(s) {
    if (!isFinite(s) || s < 0) return "";
    s = Math.round(s);
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60 ? (s % 60) + " s" : "");
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function markNav() {
    var path = location.pathname, key = "gallery";
    if (path.indexOf("/photos/upload/") === 0) key = "upload";
    else if (path.indexOf("/photos/uploads/") === 0) key = "uploads";
    var link = document.querySelector('.site-links a[data-nav="' + key + '"]');
    if (link) link.setAttribute("aria-current", "page");
  }

  function localTimes() {
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    } catch (e) {
      return;
    }
    document.querySelectorAll("time.js-local-time").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d.getTime())) t.textContent = fmt.format(d);
    });
  }

  // "Delete…" is a link to the no-JS confirmation page; with JS, ask here instead.
  function deleteConfirm() {
    document.querySelectorAll("a.js-delete").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        var form = document.getElementById(a.getAttribute("data-form"));
        if (!form) return;
        ev.preventDefault();
        var name = a.getAttribute("data-name") || "this photo";
        if (window.confirm("Delete \u201c" + name + "\u201d? This cannot be undone.")) form.submit();
      });
    });
  }

  window.Shoebox = {
    cookie: cookie,
    csrfToken: function () { return cookie("csrftoken"); },
    request: request,
    formatBytes: formatBytes,
    formatDuration: formatDuration,
  };

  function init() {
    markNav();
    localTimes();
    deleteConfirm();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
