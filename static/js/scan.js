/*
 * Unmask page behaviour, no build step and no dependencies.
 *
 * - Elements with data-scan-poll-url (a queued or running scan) poll the scan API. While the scan runs,
 *   status and progress are updated in place; once it is done or failed, the region named by
 *   data-refresh-region is fetched again from the server and swapped in once (the whole page is reloaded
 *   if that fails), so the finished result is rendered by the same templates as a normal page load.
 *   Messages tagged data-while-running ("queued for analysis") go once nothing on the page runs any more.
 * - Forms with data-confirm ask before submitting (delete, token regeneration).
 * - Buttons with data-copy-target copy the target field's value (the API token).
 * - The upload form (data-upload-form): a drop zone, and the file sent with an upload progress bar; a refused
 *   upload shows the server's error in place, with the chosen file still chosen.
 * - Evidence (data-zoom): one <dialog> shows a crop large with its heatmap over it and an opacity slider, or a
 *   key frame large with a button that plays the video from it.
 * - The timeline's points (data-seek) seek the video player on click, Enter or Space.
 * - The video player gets each tracked person's face box drawn over it (data from #track-boxes), held or
 *   interpolated between the sampled frames.
 */
(function () {
  "use strict";

  var TERMINAL = { done: true, failed: true };
  var STATUS_LABELS = {
    fetching: "Downloading", queued: "Queued", processing: "Processing", done: "Done", failed: "Failed"
  };
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
        dropFinishedMessages();
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
          // A scan by URL whose media has just been downloaded has a name, a picture or a player to show now:
          // the whole page is loaded again (its title is outside the region).
          if (element.getAttribute("data-scan-status-now") === "fetching" && scan.status !== "fetching") {
            window.location.reload();
            return;
          }
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

  function dropFinishedMessages() {
    if (document.querySelector("[data-scan-poll-url]")) {
      return;
    }
    var stale = document.querySelectorAll("[data-while-running]");
    for (var i = 0; i < stale.length; i += 1) {
      var list = stale[i].parentElement;
      stale[i].remove();
      if (list && !list.children.length) {
        list.remove();
      }
    }
  }

  // --- Upload: drop zone and progress ------------------------------------------------------------------

  function showChosen(form, input) {
    var label = form.querySelector("[data-file-name]");
    if (label) {
      label.textContent = input.files && input.files.length ? "You chose “" + input.files[0].name + "”." : "";
    }
  }

  function setUpUpload(form) {
    var input = form.querySelector("[data-upload-input]");
    var zone = form.querySelector("[data-drop-zone]");
    if (!input || !zone) {
      return;
    }
    input.addEventListener("change", function () { showChosen(form, input); });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("drop-zone-active");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("drop-zone-active"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        showChosen(form, input);
      }
    });
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest || !input.files || !input.files.length) {
        return;  // the plain form post says what is missing
      }
      event.preventDefault();
      sendUpload(form, input);
    });
  }

  function sendUpload(form, input) {
    var row = form.querySelector("[data-upload-progress-row]");
    var bar = form.querySelector("[data-upload-progress]");
    var text = form.querySelector("[data-upload-progress-text]");
    var button = form.querySelector("button[type=submit]");
    var request = new XMLHttpRequest();
    row.hidden = false;
    bar.value = 0;
    setText(form, "[data-upload-progress-name]", "“" + input.files[0].name + "”");
    button.disabled = true;
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        var percent = Math.round((event.loaded / event.total) * 100);
        bar.value = percent;
        text.textContent = percent + "% of " + Math.max(1, Math.round(event.total / 1048576)) + " MB sent";
      }
    });
    request.upload.addEventListener("load", function () { text.textContent = "Sent; starting the analysis…"; });
    request.addEventListener("load", function () {
      if (request.status === 201) {
        window.location.assign(JSON.parse(request.responseText).url);
        return;
      }
      showUploadErrors(form, request.responseText, request.status);
      row.hidden = true;
      button.disabled = false;
    });
    request.addEventListener("error", function () {
      showUploadErrors(form, "", 0);
      row.hidden = true;
      button.disabled = false;
    });
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "text/html");
    // The server answers an accepted upload with the scan's address instead of a redirect (scans/views.py).
    request.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    request.send(new FormData(form));
  }

  function showUploadErrors(form, html, status) {
    var old = form.querySelectorAll("[data-upload-errors]");
    for (var i = 0; i < old.length; i += 1) {
      old[i].remove();
    }
    var messages = [];
    if (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html").querySelectorAll("[data-upload-form] [data-upload-errors]");
      for (var j = 0; j < fresh.length; j += 1) {
        messages.push(fresh[j].textContent.trim());
      }
    }
    if (!messages.length) {
      messages.push(status ? "The upload failed (HTTP " + status + "). Try again." : "The upload failed: the connection was lost. Try again.");
    }
    var box = document.createElement("div");
    box.className = "form-errors";
    box.setAttribute("role", "alert");
    box.setAttribute("data-upload-errors", "");
    messages.forEach(function (message) {
      var line = document.createElement("p");
      line.textContent = message;
      box.appendChild(line);
    });
    var zone = form.querySelector("[data-drop-zone]");
    zone.classList.add("field-invalid");
    zone.appendChild(box);
  }

  // --- Evidence dialog ---------------------------------------------------------------------------------

  function openZoom(trigger) {
    var dialog = document.querySelector("[data-zoom-dialog]");
    if (!dialog || typeof dialog.showModal !== "function") {
      window.open(trigger.getAttribute("data-zoom-src"), "_blank", "noopener");
      return;
    }
    var image = dialog.querySelector("[data-zoom-image]");
    var overlay = dialog.querySelector("[data-zoom-overlay]");
    var sliderRow = dialog.querySelector("[data-zoom-slider-row]");
    var slider = dialog.querySelector("[data-zoom-slider]");
    var play = dialog.querySelector("[data-zoom-play]");
    var caption = trigger.getAttribute("data-zoom-caption") || "";
    var overlaySrc = trigger.getAttribute("data-zoom-overlay");
    var seek = trigger.getAttribute("data-zoom-seek");
    image.src = trigger.getAttribute("data-zoom-src");
    image.alt = caption;
    setText(dialog, "[data-zoom-caption]", caption);
    overlay.hidden = !overlaySrc;
    sliderRow.hidden = !overlaySrc;
    if (overlaySrc) {
      overlay.src = overlaySrc;
      overlay.style.opacity = slider.value / 100;
    }
    play.hidden = seek === null || !document.querySelector("[data-scan-video]");
    play.onclick = function () {
      dialog.close();
      seekVideo(parseFloat(seek));
    };
    dialog.showModal();
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("[data-zoom-slider]")) {
      var overlay = document.querySelector("[data-zoom-overlay]");
      overlay.style.opacity = event.target.value / 100;
    }
  });

  // --- Timeline and player -----------------------------------------------------------------------------

  function seekVideo(seconds) {
    var video = document.querySelector("[data-scan-video]");
    if (!video || isNaN(seconds)) {
      return;
    }
    video.currentTime = seconds;
    video.scrollIntoView({ block: "center", behavior: "smooth" });
    var playing = video.play();
    if (playing && playing.catch) {
      playing.catch(function () { /* autoplay refused: the frame is shown, paused */ });
    }
  }

  function boxAt(boxes, time, gap) {
    // boxes: [[time_s, x, y, w, h], ...] in time order; held for a gap after the last sighting.
    var before = null;
    var after = null;
    for (var i = 0; i < boxes.length; i += 1) {
      if (boxes[i][0] <= time) {
        before = boxes[i];
      } else {
        after = boxes[i];
        break;
      }
    }
    if (!before) {
      return after && after[0] - time <= gap / 2 ? after.slice(1) : null;
    }
    if (after && after[0] - before[0] <= gap * 1.5) {
      var share = (time - before[0]) / (after[0] - before[0]);
      return before.slice(1).map(function (value, index) { return value + (after[index + 1] - value) * share; });
    }
    return time - before[0] <= gap ? before.slice(1) : null;
  }

  function setUpOverlay() {
    var data = document.getElementById("track-boxes");
    var video = document.querySelector("[data-scan-video]");
    var overlay = document.querySelector("[data-video-overlay]");
    if (!data || !video || !overlay) {
      return;
    }
    var tracks = JSON.parse(data.textContent);
    var frames = tracks.tracks.map(function (track) {
      var box = document.createElement("span");
      box.className = "face-box face-" + (track.verdict || "unknown");
      var label = document.createElement("span");
      label.className = "face-label";
      label.textContent = "Person " + track.number;
      box.appendChild(label);
      box.hidden = true;
      overlay.appendChild(box);
      return box;
    });

    function draw() {
      // The picture inside the <video> box, which letterboxes it (object-fit: contain).
      var width = video.clientWidth;
      var height = video.clientHeight;
      var sourceWidth = video.videoWidth || tracks.width;
      var sourceHeight = video.videoHeight || tracks.height;
      var scale = Math.min(width / sourceWidth, height / sourceHeight);
      var left = (width - sourceWidth * scale) / 2;
      var top = (height - sourceHeight * scale) / 2;
      // Stored boxes are in the analysed frame's pixels (the stream's own size).
      var factor = scale * (sourceWidth / tracks.width);
      overlay.style.width = width + "px";
      overlay.style.height = height + "px";
      tracks.tracks.forEach(function (track, index) {
        var box = boxAt(track.boxes, video.currentTime, tracks.frame_gap_s);
        var element = frames[index];
        element.hidden = !box;
        if (box) {
          element.style.left = left + box[0] * factor + "px";
          element.style.top = top + box[1] * factor + "px";
          element.style.width = box[2] * factor + "px";
          element.style.height = box[3] * factor + "px";
        }
      });
    }

    function loop() {
      draw();
      if (!video.paused && !video.ended) {
        window.requestAnimationFrame(loop);
      }
    }

    video.addEventListener("play", function () { window.requestAnimationFrame(loop); });
    ["seeked", "loadedmetadata", "timeupdate"].forEach(function (name) { video.addEventListener(name, draw); });
    window.addEventListener("resize", draw);
    draw();
  }

  document.addEventListener("click", function (event) {
    var zoom = event.target.closest && event.target.closest("[data-zoom]");
    if (zoom) {
      openZoom(zoom);
      return;
    }
    var point = event.target.closest && event.target.closest("[data-seek]");
    if (point) {
      seekVideo(parseFloat(point.getAttribute("data-seek")));
    }
  });

  document.addEventListener("keydown", function (event) {
    var point = event.target.closest && event.target.closest("[data-seek]");
    if (point && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      seekVideo(parseFloat(point.getAttribute("data-seek")));
    }
  });

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

  function start() {
    startPolling(document);
    var forms = document.querySelectorAll("[data-upload-form]");
    for (var i = 0; i < forms.length; i += 1) {
      setUpUpload(forms[i]);
    }
    setUpOverlay();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
