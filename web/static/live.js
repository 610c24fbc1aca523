/* trackcache pages: progressive enhancement only; every page works without this file.
   - [data-live-src] regions poll their URL with If-None-Match and swap in the new HTML when it
     changed (the tracking result, the dashboard's recent refreshes); a region stops when it
     contains [data-live-stop] or the server answers 401/410. Polling pauses in hidden tabs and
     backs off on network errors.
   - [data-ago] times keep saying "N minutes ago" correctly while the page stays open.
   - A form's error summary takes the focus, so keyboard and screen-reader users land on it. */
(function () {
  "use strict";
  document.documentElement.classList.add("has-js");

  var MAX_BACKOFF = 300;

  function timeAgo(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) { return "just now"; }
    var units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) {
        var count = Math.floor(seconds / units[i][1]);
        return count + " " + units[i][0] + (count === 1 ? "" : "s") + " ago";
      }
    }
    return "just now";
  }

  function refreshAges(root) {
    var nodes = (root || document).querySelectorAll("time[data-ago]");
    for (var i = 0; i < nodes.length; i++) {
      var moment = Date.parse(nodes[i].getAttribute("datetime"));
      if (!isNaN(moment)) { nodes[i].textContent = timeAgo((Date.now() - moment) / 1000); }
    }
  }

  function statusesOf(root) {
    var found = {};
    var nodes = root.querySelectorAll("[data-status]");
    for (var i = 0; i < nodes.length; i++) { found[nodes[i].id] = nodes[i].textContent.trim(); }
    return found;
  }

  function announce(text) {
    var status = document.getElementById("live-status");
    if (status) { status.textContent = text; }
  }

  function stopWith(region, message) {
    region.setAttribute("data-live-stopped", "");
    if (!message) { return; }
    var note = document.createElement("p");
    note.className = "notice notice-info";
    note.setAttribute("role", "status");
    note.textContent = message + " This page has stopped updating.";
    region.parentNode.insertBefore(note, region);
  }

  function watch(region) {
    var url = region.getAttribute("data-live-src");
    var interval = Math.max(1, parseInt(region.getAttribute("data-live-interval"), 10) || 30);
    var etag = region.getAttribute("data-live-etag") || "";
    var delay = interval;
    var timer = null;

    function schedule(seconds) {
      clearTimeout(timer);
      timer = setTimeout(poll, seconds * 1000);
    }

    function poll() {
      if (region.hasAttribute("data-live-stopped") || region.querySelector("[data-live-stop]")) { return; }
      if (document.hidden) { return; }  // resumed by visibilitychange
      var headers = { "Accept": "text/html" };
      if (etag) { headers["If-None-Match"] = etag; }
      fetch(url, { headers: headers, cache: "no-store", credentials: "same-origin" }).then(function (response) {
        if (response.status === 304) { delay = interval; return null; }
        if (response.status === 401 || response.status === 410) {
          return response.text().then(function (text) { stopWith(region, text); return null; });
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        etag = response.headers.get("ETag") || "";
        delay = interval;
        return response.text();
      }).then(function (html) {
        if (html === null || html === undefined) { return; }
        var before = statusesOf(region);
        region.innerHTML = html;
        refreshAges(region);
        if (region.hasAttribute("data-live-announce")) {
          var after = statusesOf(region);
          var changed = [];
          for (var id in after) {
            if (Object.prototype.hasOwnProperty.call(after, id) && before[id] !== after[id]) {
              changed.push(after[id]);
              var card = document.getElementById(id);
              if (card && card.closest) {
                var section = card.closest("section");
                if (section) { section.classList.add("live-flash"); }
              }
            }
          }
          if (changed.length) { announce("Status updated: " + changed.join(", ")); }
        }
      }).catch(function () {
        delay = Math.min(MAX_BACKOFF, delay * 2);
      }).then(function () {
        if (!region.hasAttribute("data-live-stopped")) { schedule(delay); }
      });
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && !region.hasAttribute("data-live-stopped")) { schedule(0); }
    });
    schedule(interval);
  }

  function start() {
    var regions = document.querySelectorAll("[data-live-src]");
    for (var i = 0; i < regions.length; i++) { watch(regions[i]); }
    refreshAges(document);
    setInterval(function () { refreshAges(document); }, 30000);
    var summary = document.getElementById("error-summary") || document.getElementById("form-message");
    if (summary) { summary.focus(); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
