/*
 * app.js: browser code for the image classification pages (upload page, results page).
 * Plain JavaScript, no framework, no build step, nothing loaded from other sites.
 * Text from the server or from file names is only ever set with textContent / setAttribute,
 * never with innerHTML.
 *
 * Server contract used (see processors/service.py):
 *   POST {data-upload-url}        multipart field "image_file", one file per request
 *                                 -> 202 {"image_id", "image_name", "status_url"}
 *                                 errors -> {"detail": "..."} with 400/401/413/415
 *   GET  {status_url}             -> {"image_id", "image_name", "status": "pending"|"classified"|"failed",
 *                                     "classifications": [{"label", "confidence"}], "model_id", "error"}
 *   401 anywhere                  -> a link to /login?next=<this page>
 *
 * DOM hooks (stable; browser tests can wait on them)
 * --------------------------------------------------
 * Every page:
 *   html.js                       set once this script runs (html.no-js before)
 *   a.login-link                  links to /login; their href gets ?next=<current page>
 *
 * Upload page (templates/index.html):
 *   form#upload-form              data-upload-url, data-status-url, data-login-url, data-results-url,
 *                                 data-max-upload-mb, data-top-k, data-accepted-types
 *   input#file-input              <input type=file multiple name=image_file>; choosing files starts uploads
 *   #drop-zone                    drop target (the whole page also accepts drops); .dragover while hovering
 *   #auth-banner                  shown (hidden removed) after any 401
 *   #uploads-summary              "2 of 3 done" text; #clear-finished removes finished rows
 *   ol#uploads > li.upload        one row per chosen file, in the order chosen:
 *       id="upload-<n>"           n = 1, 2, 3 ... per page load
 *       data-file-name            the file's original name
 *       data-status               queued | uploading | pending | classified | failed | error
 *                                   queued:     waiting for one of the 4 upload slots
 *                                   uploading:  bytes being sent / waiting for the 202
 *                                   pending:    accepted (202), waiting for the classifier
 *                                   classified: labels shown
 *                                   failed:     the server could not classify it (.message has the reason)
 *                                   error:      not accepted or not followed up: too large (client check),
 *                                               HTTP error (.message has the "detail"), network error,
 *                                               401 (a.login-link inside the row), or gave up polling
 *                                               after 2 minutes
 *       data-image-id             present once the server accepted the file (the 202's image_id)
 *       data-http-status          the HTTP status of a failed request, when there was one
 *       .name                     the file name (text)
 *       .status-text              human-readable status
 *       progress.progress         upload progress 0..100 (removed once uploaded)
 *       .message                  failure reason / error detail (text); empty otherwise
 *       ol.labels > li[data-label][data-confidence]
 *                                 top-k labels, best first: .label (text), meter.bar, .confidence ("87.3%")
 *   #announcer                    aria-live region announcing each finished file
 *
 * Results page (templates/results.html):
 *   #result-count[data-total], form#filter-form (#label-filter, #min-confidence), a#prev-page, a#next-page
 *   table#results tbody tr.result[data-image-id][data-status]
 *       .image-name, .status, img.thumb (alt = name), .error (failed rows),
 *       table.labels tr[data-label][data-confidence] > .label, meter.bar, .confidence
 *   Pending rows are polled like uploads and updated in place; a thumbnail that fails to load is
 *   replaced by span.thumb.thumb-missing.
 */
(function () {
  "use strict";

  var MAX_CONCURRENT_UPLOADS = 4;
  var POLL_FIRST_MS = 300;
  var POLL_MAX_MS = 2000;
  var POLL_FACTOR = 1.5;
  var POLL_GIVE_UP_MS = 120000;
  var POLL_MAX_NOT_FOUND = 5;

  var root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  /* ---------------------------------------------------------------- helpers */

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clamp01(x) {
    var n = Number(x);
    if (!isFinite(n)) return 0;
    return Math.min(1, Math.max(0, n));
  }

  function percent(c) {
    return (clamp01(c) * 100).toFixed(1) + "%";
  }

  function formatBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + " KB";
    return (n / (1024 * 1024)).toFixed(1) + " MB";
  }

  function loginHref(base) {
    var here = window.location.pathname + window.location.search;
    return (base || "/login") + "?next=" + encodeURIComponent(here);
  }

  /* Text of an error answer: FastAPI's {"detail": "..."} or a validation list, else the status line. */
  function errorDetail(status, statusText, body) {
    var detail = "";
    if (body) {
      try {
        var data = JSON.parse(body);
        if (data && typeof data.detail === "string") {
          detail = data.detail;
        } else if (data && Array.isArray(data.detail)) {
          detail = data.detail.map(function (d) {
            return d && d.msg ? String(d.msg) : JSON.stringify(d);
          }).join("; ");
        } else if (data && data.detail !== undefined) {
          detail = JSON.stringify(data.detail);
        }
      } catch (e) {
        detail = "";
      }
    }
    var line = "HTTP " + status + (statusText ? " " + statusText : "");
    return detail ? detail + " (" + line + ")" : line;
  }

  function sortedClassifications(list, k) {
    if (!Array.isArray(list)) return [];
    return list
      .filter(function (c) { return c && c.label !== undefined && c.label !== null; })
      .slice()
      .sort(function (a, b) { return clamp01(b.confidence) - clamp01(a.confidence); })
      .slice(0, k);
  }

  function makeMeter(confidence) {
    var meter = el("meter", "bar");
    meter.min = 0;
    meter.max = 1;
    meter.value = clamp01(confidence);
    meter.setAttribute("aria-hidden", "true");
    return meter;
  }

  /* Fetch JSON status. Resolves {status, data, text}; rejects only on network failure. */
  function getJSON(url) {
    return fetch(url, {
      method: "GET",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Accept": "application/json" }
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        if (resp.ok) {
          try { data = JSON.parse(text); } catch (e) { data = null; }
        }
        return { status: resp.status, statusText: resp.statusText, data: data, text: text };
      });
    });
  }

  /*
   * Poll a status URL with backoff until the image is classified or failed.
   * handlers: onUpdate(data) for every answer, onDone(data), onError(message, httpStatus),
   *           onUnauthorized(), onGiveUp()
   */
  function pollStatus(url, handlers) {
    var started = Date.now();
    var delay = POLL_FIRST_MS;
    var notFound = 0;
    var stopped = false;

    function schedule() {
      if (stopped) return;
      if (Date.now() - started >= POLL_GIVE_UP_MS) {
        stopped = true;
        handlers.onGiveUp();
        return;
      }
      window.setTimeout(tick, delay);
      delay = Math.min(POLL_MAX_MS, Math.round(delay * POLL_FACTOR));
    }

    function tick() {
      getJSON(url).then(function (r) {
        if (r.status === 401) {
          stopped = true;
          handlers.onUnauthorized();
          return;
        }
        if (r.status === 404 && ++notFound <= POLL_MAX_NOT_FOUND) {
          schedule(); // the row may not be visible yet; try again a few times
          return;
        }
        if (r.status >= 500 || r.status === 429 || r.status === 408) {
          schedule(); // transient
          return;
        }
        if (r.status < 200 || r.status >= 300 || !r.data) {
          stopped = true;
          handlers.onError(errorDetail(r.status, r.statusText, r.text), r.status);
          return;
        }
        handlers.onUpdate(r.data);
        if (r.data.status === "classified" || r.data.status === "failed") {
          stopped = true;
          handlers.onDone(r.data);
          return;
        }
        schedule();
      }, function () {
        schedule(); // network error: keep trying until the deadline
      });
    }

    schedule();
  }

  /* Point every login link at /login?next=<this page>. */
  function fixLoginLinks(scope, loginUrl) {
    var links = (scope || document).querySelectorAll("a.login-link");
    for (var i = 0; i < links.length; i++) links[i].href = loginHref(loginUrl);
  }

  /* ------------------------------------------------------------ upload page */

  function initUploadPage(form) {
    var input = document.getElementById("file-input");
    var dropZone = document.getElementById("drop-zone");
    var list = document.getElementById("uploads");
    var empty = document.getElementById("uploads-empty");
    var summary = document.getElementById("uploads-summary");
    var clearButton = document.getElementById("clear-finished");
    var authBanner = document.getElementById("auth-banner");
    var announcer = document.getElementById("announcer");

    var uploadUrl = form.getAttribute("data-upload-url") || "/image-upload";
    var statusBase = form.getAttribute("data-status-url") || "/api/images/";
    var loginUrl = form.getAttribute("data-login-url") || "/login";
    var maxMb = Number(form.getAttribute("data-max-upload-mb")) || 0;
    var topK = Number(form.getAttribute("data-top-k")) || 5;
    var maxBytes = maxMb > 0 ? maxMb * 1024 * 1024 : Infinity;

    var queue = [];
    var active = 0;
    var counter = 0;
    var items = [];
    var unauthorized = false;

    function announce(text) {
      if (!announcer) return;
      announcer.textContent = "";
      window.setTimeout(function () { announcer.textContent = text; }, 50);
    }

    function refreshSummary() {
      var done = 0;
      for (var i = 0; i < items.length; i++) if (items[i].finished) done++;
      if (empty) empty.hidden = items.length > 0;
      if (summary) summary.textContent = items.length ? done + " of " + items.length + " done" : "";
      if (clearButton) clearButton.hidden = done === 0;
    }

    var STATUS_TEXT = {
      queued: "Waiting to upload",
      uploading: "Uploading…",
      pending: "Classifying…",
      classified: "Classified",
      failed: "Classification failed",
      error: "Error"
    };

    function setStatus(item, status, text) {
      item.row.setAttribute("data-status", status);
      item.statusText.textContent = text || STATUS_TEXT[status] || status;
      item.finished = status === "classified" || status === "failed" || status === "error";
      if (item.finished && item.progress) {
        item.progress.remove();
        item.progress = null;
      }
      refreshSummary();
    }

    function setMessage(item, text) {
      item.message.textContent = text || "";
      item.message.hidden = !text;
    }

    function showLoginLink(item) {
      var p = el("p", "login-hint");
      p.appendChild(document.createTextNode("Login required: "));
      var a = el("a", "login-link", "log in");
      a.href = loginHref(loginUrl);
      p.appendChild(a);
      p.appendChild(document.createTextNode(", then choose the file again."));
      item.body.appendChild(p);
    }

    function onUnauthorized(item) {
      item.row.setAttribute("data-http-status", "401");
      setStatus(item, "error", "Not authorized");
      setMessage(item, "The server needs an API token (HTTP 401).");
      showLoginLink(item);
      unauthorized = true;
      if (authBanner && authBanner.hidden) {
        fixLoginLinks(authBanner, loginUrl);
        authBanner.hidden = false;
      }
      // Files still waiting would get the same answer: stop them here.
      while (queue.length) {
        var waiting = queue.shift();
        setStatus(waiting, "error", "Not uploaded");
        setMessage(waiting, "Not sent: log in first.");
      }
    }

    function renderLabels(item, classifications) {
      var old = item.row.querySelector(".labels");
      if (old) old.remove();
      var top = sortedClassifications(classifications, topK);
      if (!top.length) {
        setMessage(item, "The model returned no labels.");
        return;
      }
      var ol = el("ol", "labels");
      ol.setAttribute("aria-label", "Top labels");
      top.forEach(function (c) {
        var li = el("li");
        li.setAttribute("data-label", String(c.label));
        li.setAttribute("data-confidence", String(c.confidence));
        li.appendChild(el("span", "label", c.label));
        li.appendChild(makeMeter(c.confidence));
        li.appendChild(el("span", "confidence", percent(c.confidence)));
        ol.appendChild(li);
      });
      item.body.appendChild(ol);
    }

    function finishWith(item, data) {
      if (data.status === "classified") {
        setStatus(item, "classified");
        setMessage(item, "");
        renderLabels(item, data.classifications);
        var top = sortedClassifications(data.classifications, 1)[0];
        announce(item.name + ": " + (top ? top.label + " " + percent(top.confidence) : "no labels"));
      } else {
        setStatus(item, "failed");
        setMessage(item, data.error ? String(data.error) : "The image could not be classified.");
        announce(item.name + ": classification failed");
      }
    }

    function follow(item, statusUrl) {
      pollStatus(statusUrl, {
        onUpdate: function (data) {
          if (data.model_id) item.row.setAttribute("data-model-id", String(data.model_id));
        },
        onDone: function (data) { finishWith(item, data); },
        onError: function (message, status) {
          if (status) item.row.setAttribute("data-http-status", String(status));
          setStatus(item, "error", "Status unavailable");
          setMessage(item, "Could not read the status: " + message);
        },
        onUnauthorized: function () { onUnauthorized(item); },
        onGiveUp: function () {
          setStatus(item, "error", "Still not classified");
          setMessage(item, "No result after 2 minutes. It may still be classified later: check the results page.");
          announce(item.name + ": still not classified after 2 minutes");
        }
      });
    }

    function startUpload(item) {
      active++;
      setStatus(item, "uploading");
      var xhr = new XMLHttpRequest();
      var settled = false;

      function done() {
        if (settled) return false;
        settled = true;
        active--;
        pump();
        return true;
      }

      xhr.open("POST", uploadUrl, true);
      xhr.setRequestHeader("Accept", "application/json");
      var csrf = document.querySelector('meta[name="csrf-token"]');
      if (csrf && csrf.content) xhr.setRequestHeader("X-CSRF-Token", csrf.content);
      xhr.withCredentials = true;

      xhr.upload.onprogress = function (e) {
        if (!item.progress) return;
        if (e.lengthComputable && e.total > 0) {
          item.progress.value = Math.min(100, (e.loaded / e.total) * 100);
        }
      };
      xhr.upload.onload = function () {
        // Every byte sent: the server is storing it and journaling the event.
        if (item.progress) item.progress.removeAttribute("value"); // indeterminate
        item.statusText.textContent = "Storing…";
      };
      xhr.onload = function () {
        if (xhr.status === 401) unauthorized = true; // before done() lets the next file start
        if (!done()) return;
        var status = xhr.status;
        if (status === 401) {
          onUnauthorized(item);
          return;
        }
        if (status < 200 || status >= 300) {
          item.row.setAttribute("data-http-status", String(status));
          setStatus(item, "error", status === 413 ? "Too large" : status === 415 ? "Not an image" : "Upload failed");
          setMessage(item, errorDetail(status, xhr.statusText, xhr.responseText));
          announce(item.name + ": upload failed");
          return;
        }
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (!data || !data.image_id) {
          setStatus(item, "error", "Upload failed");
          setMessage(item, "Unexpected answer from the server (HTTP " + status + ").");
          return;
        }
        item.row.setAttribute("data-image-id", String(data.image_id));
        setStatus(item, "pending");
        var statusUrl = data.status_url || statusBase + encodeURIComponent(String(data.image_id));
        follow(item, statusUrl);
      };
      xhr.onerror = function () {
        if (!done()) return;
        setStatus(item, "error", "Upload failed");
        setMessage(item, "The connection failed before the server answered" +
          (item.file.size > 1024 * 1024 ? " (the server may have refused a large file)." : "."));
      };
      xhr.ontimeout = xhr.onerror;
      xhr.onabort = function () {
        if (!done()) return;
        setStatus(item, "error", "Cancelled");
        setMessage(item, "The upload was cancelled.");
      };

      var body = new FormData();
      body.append("image_file", item.file, item.file.name);
      xhr.send(body);
    }

    function pump() {
      while (!unauthorized && active < MAX_CONCURRENT_UPLOADS && queue.length) {
        startUpload(queue.shift());
      }
    }

    function addPreview(item) {
      if (!window.URL || !URL.createObjectURL) return;
      if (!/^image\//.test(item.file.type) || item.file.size > 30 * 1024 * 1024) return;
      var img = el("img", "preview");
      img.alt = "";
      img.decoding = "async";
      var url = URL.createObjectURL(item.file);
      img.onload = function () { URL.revokeObjectURL(url); };
      img.onerror = function () {
        URL.revokeObjectURL(url);
        img.remove();
      };
      img.src = url;
      item.thumb.appendChild(img);
    }

    function addFile(file) {
      counter++;
      var row = el("li", "upload");
      row.id = "upload-" + counter;
      row.setAttribute("data-file-name", file.name);

      var thumb = el("div", "upload-thumb");
      thumb.setAttribute("aria-hidden", "true");
      var body = el("div", "upload-body");
      var head = el("div", "upload-head");
      var name = el("span", "name", file.name);
      name.title = file.name;
      var size = el("span", "size muted", formatBytes(file.size));
      var statusText = el("span", "status-text");
      head.appendChild(name);
      head.appendChild(size);
      head.appendChild(statusText);
      body.appendChild(head);

      var progress = el("progress", "progress");
      progress.max = 100;
      progress.value = 0;
      progress.setAttribute("aria-label", "Upload progress for " + file.name);
      body.appendChild(progress);

      var message = el("p", "message");
      message.hidden = true;
      body.appendChild(message);

      row.appendChild(thumb);
      row.appendChild(body);
      list.appendChild(row);

      var item = {
        file: file, name: file.name, row: row, thumb: thumb, body: body,
        statusText: statusText, progress: progress, message: message, finished: false
      };
      items.push(item);
      addPreview(item);

      if (file.size > maxBytes) {
        setStatus(item, "error", "Too large");
        setMessage(item, "This file is " + formatBytes(file.size) + "; the limit is " + maxMb +
          " MB per image. It was not uploaded.");
        return;
      }
      if (file.size === 0) {
        setStatus(item, "error", "Empty file");
        setMessage(item, "This file is empty. It was not uploaded.");
        return;
      }
      setStatus(item, "queued");
      queue.push(item);
    }

    function addFiles(fileList) {
      if (!fileList || !fileList.length) return;
      // A new choice tries again (the user may have logged in in another tab meanwhile).
      unauthorized = false;
      for (var i = 0; i < fileList.length; i++) addFile(fileList[i]);
      pump();
    }

    input.addEventListener("change", function () {
      addFiles(input.files);
      input.value = ""; // choosing the same file again starts another upload
    });

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      addFiles(input.files);
      input.value = "";
    });

    // Drag and drop: the drop zone highlights; a drop anywhere on the page is accepted
    // (and never makes the browser navigate away to the file).
    var dragDepth = 0;
    function hasFiles(e) {
      var types = e.dataTransfer && e.dataTransfer.types;
      if (!types) return false;
      for (var i = 0; i < types.length; i++) if (types[i] === "Files") return true;
      return false;
    }
    document.addEventListener("dragenter", function (e) {
      if (!hasFiles(e)) return;
      e.preventDefault();
      dragDepth++;
      dropZone.classList.add("dragover");
    });
    document.addEventListener("dragover", function (e) {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    });
    document.addEventListener("dragleave", function (e) {
      if (!hasFiles(e)) return;
      dragDepth = Math.max(0, dragDepth - 1);
      if (!dragDepth) dropZone.classList.remove("dragover");
    });
    document.addEventListener("drop", function (e) {
      if (!hasFiles(e)) return;
      e.preventDefault();
      dragDepth = 0;
      dropZone.classList.remove("dragover");
      addFiles(e.dataTransfer.files);
    });

    if (clearButton) {
      clearButton.addEventListener("click", function () {
        items = items.filter(function (item) {
          if (item.finished) item.row.remove();
          return !item.finished;
        });
        refreshSummary();
        input.focus();
      });
    }

    refreshSummary();
  }

  /* ----------------------------------------------------------- results page */

  function markThumbMissing(img) {
    if (!img.parentNode) return;
    var span = el("span", "thumb thumb-missing", "No preview");
    span.title = img.alt;
    img.parentNode.replaceChild(span, img);
  }

  function initResultsPage(table) {
    // Thumbnails that fail (not made yet, or removed) become a placeholder.
    var imgs = table.querySelectorAll("img.thumb");
    for (var i = 0; i < imgs.length; i++) {
      var img = imgs[i];
      if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) markThumbMissing(img);
    }
    table.addEventListener("error", function (e) {
      var t = e.target;
      if (t && t.tagName === "IMG" && t.classList.contains("thumb")) markThumbMissing(t);
    }, true);

    // Rows still pending are followed and updated in place.
    var pending = table.querySelectorAll("tr.result[data-status='pending']");
    Array.prototype.forEach.call(pending, function (row) {
      var id = row.getAttribute("data-image-id");
      if (!id) return;
      pollStatus("/api/images/" + encodeURIComponent(id), {
        onUpdate: function () {},
        onDone: function (data) { updateResultRow(row, data); },
        onError: function () {},
        onUnauthorized: function () {},
        onGiveUp: function () {}
      });
    });
  }

  function updateResultRow(row, data) {
    row.setAttribute("data-status", data.status);
    var badge = row.querySelector(".status");
    if (badge) {
      badge.textContent = data.status;
      badge.className = "status status-" + (data.status === "failed" ? "failed" : "classified");
    }
    var cell = row.querySelector(".labels-cell");
    if (!cell) return;
    while (cell.firstChild) cell.removeChild(cell.firstChild);
    if (data.status === "failed") {
      cell.appendChild(el("p", "error", data.error || "Classification failed"));
      var img = row.querySelector("img.thumb");
      if (img) markThumbMissing(img);
      return;
    }
    var top = sortedClassifications(data.classifications, 5);
    if (!top.length) {
      cell.appendChild(el("p", "muted", "No labels."));
      return;
    }
    var name = row.querySelector(".image-name");
    var inner = el("table", "labels");
    var caption = el("caption", "visually-hidden", "Top labels for " + (name ? name.textContent : ""));
    inner.appendChild(caption);
    var tbody = el("tbody");
    top.forEach(function (c) {
      var tr = el("tr");
      tr.setAttribute("data-label", String(c.label));
      tr.setAttribute("data-confidence", String(c.confidence));
      var th = el("th", "label", c.label);
      th.scope = "row";
      var barCell = el("td", "bar-cell");
      barCell.appendChild(makeMeter(c.confidence));
      tr.appendChild(th);
      tr.appendChild(barCell);
      tr.appendChild(el("td", "confidence", percent(c.confidence)));
      tbody.appendChild(tr);
    });
    inner.appendChild(tbody);
    cell.appendChild(inner);
    // The thumbnail may have been missing while the row was pending.
    var missing = row.querySelector(".thumb-missing");
    if (missing && row.getAttribute("data-image-id")) {
      var fresh = el("img", "thumb");
      fresh.alt = name ? name.textContent : "";
      fresh.width = 96;
      fresh.height = 96;
      fresh.src = "/images/" + encodeURIComponent(row.getAttribute("data-image-id")) + "/thumbnail";
      missing.parentNode.replaceChild(fresh, missing);
    }
  }

  /* Filter form: leave empty fields out of the URL. */
  function initFilterForm(form) {
    form.addEventListener("submit", function () {
      var fields = form.querySelectorAll("input[name]");
      for (var i = 0; i < fields.length; i++) {
        if (fields[i].value.trim() === "") fields[i].disabled = true;
      }
      window.setTimeout(function () {
        for (var j = 0; j < fields.length; j++) fields[j].disabled = false;
      }, 0);
    });
  }

  /* Show aware timestamps in the reader's local time (the UTC text stays as a tooltip). */
  function localizeTimes() {
    var times = document.querySelectorAll("time.localize[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var iso = t.getAttribute("datetime");
      if (!/(Z|[+-]\d\d:?\d\d)$/.test(iso)) continue; // naive: leave as written
      var d = new Date(iso);
      if (isNaN(d.getTime())) continue;
      t.title = t.textContent;
      t.textContent = d.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit"
      });
    }
  }

  function init() {
    var uploadForm = document.getElementById("upload-form");
    fixLoginLinks(document, uploadForm ? uploadForm.getAttribute("data-login-url") : "/login");
    if (uploadForm) initUploadPage(uploadForm);
    var results = document.getElementById("results");
    if (results) initResultsPage(results);
    var filter = document.getElementById("filter-form");
    if (filter) initFilterForm(filter);
    localizeTimes();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
