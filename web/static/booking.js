/* Orthodex webinars: each session's time in the visitor's own time zone.
   The server writes the time in the session's zone and in UTC; this adds a third line, "Your time:",
   from the <time datetime> instants, using the browser's zone (Intl.DateTimeFormat). Without this
   file the line stays hidden and nothing else changes. No inline script: the CSP forbids it. */
(function () {
  "use strict";

  var OPTIONS = {
    weekday: "long", year: "numeric", month: "long", day: "numeric",
    hour: "numeric", minute: "2-digit", timeZoneName: "short"
  };

  function city(zone) {
    // "America/Los_Angeles" -> "Los Angeles", as the server names the session's zone.
    return zone.split("/").pop().replace(/_/g, " ");
  }

  function showYourTime(holder, format, zone) {
    var time = holder.querySelector("time[datetime]");
    if (!time) {
      return;
    }
    if (zone && zone === time.getAttribute("data-zone")) {
      // The line above is already in the visitor's zone: say so rather than repeat it.
      holder.textContent = "That is your time zone too.";
      holder.hidden = false;
      return;
    }
    var start = new Date(time.getAttribute("datetime"));
    var end = new Date(time.getAttribute("data-end"));
    if (isNaN(start.getTime())) {
      return;
    }
    time.textContent = (typeof format.formatRange === "function" && !isNaN(end.getTime()))
      ? format.formatRange(start, end)
      : format.format(start);
    var label = holder.querySelector("[data-your-zone]");
    if (label && zone) {
      label.textContent = " (" + city(zone) + " time)";
    }
    holder.hidden = false;
  }

  function start() {
    var holders = document.querySelectorAll("[data-your-time]");
    if (!holders.length || typeof Intl !== "object") {
      return;
    }
    var format = new Intl.DateTimeFormat(document.documentElement.lang || undefined, OPTIONS);
    var zone = format.resolvedOptions().timeZone;
    for (var i = 0; i < holders.length; i++) {
      showYourTime(holders[i], format, zone);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
