// mcpgate console: the only script, loaded from the gateway (the Content-Security-Policy
// allows no inline script). It keeps the approvals inbox live: when the gateway's event
// stream says the approvals changed, it fetches the list again and swaps it in, unless the
// same calls are listed (so a reason being typed is not lost).
"use strict";

(function () {
  var inbox = document.getElementById("inbox");
  if (!inbox || !window.EventSource || !window.fetch) {
    return;
  }
  var busy = false;
  var again = false;

  function ids(el) {
    return Array.prototype.map
      .call(el.querySelectorAll("[data-id]"), function (a) {
        return a.getAttribute("data-id");
      })
      .join(",");
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch("/console/approvals", { credentials: "same-origin" })
      .then(function (r) {
        return r.ok ? r.text() : null;
      })
      .then(function (text) {
        if (text === null) {
          return;
        }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("inbox");
        var current = document.getElementById("inbox");
        if (fresh && current && ids(fresh) !== ids(current)) {
          current.replaceWith(document.importNode(fresh, true));
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var events = new EventSource("/console/events");
  events.addEventListener("changed", refresh);
  document.documentElement.setAttribute("data-live", "1");
})();
