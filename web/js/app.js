// Shoebox front end. External file only: the CSP forbids inline script.
// Helpers other scripts use: the CSRF token for fetch() calls.
(function () {
  "use strict";

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

  window.Shoebox = { cookie: cookie, csrfToken: function () { return cookie("csrftoken"); },
                     request: request };
})();
