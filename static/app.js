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
