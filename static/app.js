/* htmx helpers, ES5 for old WebViews: show 4xx pages (validation errors, refusals), say so when the network fails. */
(function () {
  var offline = function (show) { var el = document.getElementById("offline"); if (el) { el.hidden = !show; } };
  document.addEventListener("htmx:beforeSwap", function (e) {
    var s = e.detail.xhr.status;
    if (s >= 400 && s < 500) { e.detail.shouldSwap = true; e.detail.isError = false; }
  });
  document.addEventListener("htmx:sendError", function () { offline(true); });
  document.addEventListener("htmx:timeout", function () { offline(true); });
  document.addEventListener("htmx:afterRequest", function (e) { if (e.detail.successful) { offline(false); } });
})();
/* resident journey (issue 13): after htmx swaps in a day's windows, move focus (and the screen) to them. */
(function () {
  var fromDayStrip = function (el) {
    for (; el && el.className !== undefined; el = el.parentNode) {
      if ((" " + el.className + " ").indexOf(" days ") >= 0) { return true; }
    }
    return false;
  };
  document.addEventListener("htmx:afterSettle", function (e) {
    var h = document.getElementById("windows");
    if (!e.detail || !e.detail.requestConfig || !fromDayStrip(e.detail.requestConfig.elt)) { return; }
    if (!h || !h.focus) { return; }
    h.focus();
    if (h.scrollIntoView) { h.scrollIntoView(true); }
  });
})();
