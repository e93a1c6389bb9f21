/*
 * Unmask page behaviour, no build step and no dependencies.
 *
 * - Elements with data-scan-poll-url (a queued or running scan) poll the scan API. While the scan runs,
 *   status and progress are updated in place; once it is done or failed, the region named by
 *   data-refresh-region is fetched again from the server and swapped in once (the whole page is reloaded
 *   if that fails), so the finished result is rendered by the same templates as a normal page load.
 * - Forms with data-confirm ask before submitting (delete, token regeneration).
 * - Buttons with data-copy-target copy the target field's value (the API token).
 */
(function () {
  "use strict";

  var TERMINAL = { done: true, failed: true };
  var STATUS_LABELS = { queued: "Queued", processing: "Processing", done: "Done", failed: "Failed" };
  var MAX_ERROR_DELAY_MS = 15000;
  var refreshing = {};

  function setText(container, selector, text) {
    var element = container.querySelector(selector);
    if (element) {
      element.textContent = text;
    }
  }

  function showProgress(container, scan) {
    var progress = scan.progress || {};
    var badge = container.querySelector("[data-scan-status]");
    if (badge && STATUS_LABELS[scan.status]) {
      badge.className = "badge status-" + scan.status;
      badge.textContent = STATUS_LABELS[scan.status];
      if (!TERMINAL[scan.status]) {
        var spinner = document.createElement("span");
        spinner.className = "spinner";
        spinner.setAttribute("aria-hidden", "true");
        badge.prepend(spinner);
      }
    }
    if (scan.status === "processing") {
      setText(container, "[data-scan-stage]", progress.stage ? "Analysing: " + progress.stage + "…" : "Analysing…");
    }
    var bar = container.querySelector("[data-scan-progress]");
    var total = progress.frames_total;
    var done = progress.frames_done || 0;
    if (bar && typeof total === "number" && total > 0) {
      bar.value = Math.max(0, Math.min(100, Math.round((done / total) * 100)));
    }
    var details = [];
    if (typeof total === "number" && total > 0) {
      details.push(done + " of " + total + " frames");
    }
    if (typeof progress.faces_found === "number") {
      details.push(progress.faces_found + (progress.faces_found === 1 ? " face" : " faces") + " found");
    }
    if (details.length) {
      setText(container, "[data-scan-progress-text]", details.join(" · "));
    }
  }

  function refreshRegion(selector) {
    if (refreshing[selector]) {
      return;
    }
    refreshing[selector] = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector(selector);
        var current = document.querySelector(selector);
        if (!fresh || !current) {
          throw new Error("region " + selector + " not found");
        }
        current.replaceWith(document.importNode(fresh, true));
        refreshing[selector] = false;
        startPolling(document);
      })
      .catch(function () {
        window.location.reload();
      });
  }

  function poll(element) {
    var url = element.getAttribute("data-scan-poll-url");
    var interval = parseInt(element.getAttribute("data-poll-interval"), 10) || 1500;
    var region = element.getAttribute("data-refresh-region");
    var errorDelay = interval;

    function schedule(delay) {
      window.setTimeout(tick, delay);
    }

    function tick() {
      if (!element.isConnected) {
        return;
      }
      if (document.hidden) {
        schedule(interval);
        return;
      }
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 404 || response.status === 401 || response.status === 403) {
            // Deleted, or the session ended: a reload shows the page the server now wants to show.
            window.location.reload();
            return null;
          }
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (scan) {
          if (!scan) {
            return;
          }
          errorDelay = interval;
          if (TERMINAL[scan.status]) {
            if (region) {
              refreshRegion(region);
            } else {
              window.location.reload();
            }
            return;
          }
          showProgress(element, scan);
          schedule(interval);
        })
        .catch(function () {
          // The server or the network hiccupped: keep trying, less often.
          errorDelay = Math.min(errorDelay * 2, MAX_ERROR_DELAY_MS);
          schedule(errorDelay);
        });
    }

    schedule(interval);
  }

  function startPolling(root) {
    var elements = root.querySelectorAll("[data-scan-poll-url]");
    for (var i = 0; i < elements.length; i += 1) {
      if (!elements[i].hasAttribute("data-polling")) {
        elements[i].setAttribute("data-polling", "");
        poll(elements[i]);
      }
    }
  }

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy-target]");
    if (!button) {
      return;
    }
    var field = document.querySelector(button.getAttribute("data-copy-target"));
    if (!field) {
      return;
    }
    field.select();
    var label = button.textContent;
    var copied = function () {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(copied, function () { /* the value stays selected */ });
    } else if (document.execCommand && document.execCommand("copy")) {
      copied();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { startPolling(document); });
  } else {
    startPolling(document);
  }
})();
