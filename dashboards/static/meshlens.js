// meshlens pages: draw the plotly figures the server put in data-figure attributes, keep the
// time range in the URL, refresh the live parts in place, sort tables, copy snippets.
// Served as a file: the pages' Content-Security-Policy forbids inline scripts.
"use strict";

(function () {
  var PLOT_CONFIG = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d", "toggleSpikelines"],
  };
  var refreshTimer = null;

  function draw(element) {
    var figure = JSON.parse(element.getAttribute("data-figure"));
    var config = Object.assign({}, PLOT_CONFIG);
    if (element.hasAttribute("data-clickable")) {
      config.scrollZoom = true;
    }
    window.Plotly.react(element, figure.data, figure.layout, config);
    if (element.hasAttribute("data-clickable") && !element.dataset.bound) {
      element.dataset.bound = "1";
      element.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        var target = point && point.customdata;
        if (typeof target === "string" && target.charAt(0) === "/" && target.charAt(1) !== "/") {
          window.location.assign(target);
        }
      });
    }
  }

  function drawAll(root) {
    root.querySelectorAll("[data-figure]").forEach(draw);
  }

  function sizeBars(root) {
    root.querySelectorAll(".bar[data-share]").forEach(function (bar) {
      var share = Math.max(0, Math.min(1, parseFloat(bar.getAttribute("data-share")) || 0));
      bar.style.width = Math.round(share * 60) + "px";
    });
  }

  // --- sortable tables ---------------------------------------------------------------------

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) {
      return "";
    }
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
    var number = parseFloat(raw);
    return cell.classList.contains("num") && !isNaN(number) ? number : raw.toLowerCase();
  }

  function sortBy(header) {
    var table = header.closest("table");
    var body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(header.parentNode.cells, header);
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    if (!header.hasAttribute("aria-sort") && header.classList.contains("num")) {
      ascending = false; // numbers: biggest first on the first click
    }
    table.querySelectorAll("th[aria-sort]").forEach(function (other) {
      other.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.filter.call(body.rows, function (row) {
      return !row.classList.contains("none");
    });
    rows.sort(function (a, b) {
      var x = cellValue(a, index);
      var y = cellValue(b, index);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
  }

  function bindTables(root) {
    root.querySelectorAll("table.sortable th[data-sort]").forEach(function (header) {
      if (header.dataset.bound) {
        return;
      }
      header.dataset.bound = "1";
      header.tabIndex = 0;
      header.addEventListener("click", function () {
        sortBy(header);
      });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(header);
        }
      });
    });
  }

  // --- time range in the URL ----------------------------------------------------------------

  function pickerUrl(form) {
    var params = new URLSearchParams();
    form.querySelectorAll("input[type=hidden]").forEach(function (input) {
      if (input.value) {
        params.set(input.name, input.value);
      }
    });
    var chosen = form.querySelector("#window-select").value;
    if (chosen === "custom") {
      params.set("window", form.querySelector("#custom-window").value.trim() || "1h");
      var end = form.querySelector("#custom-end").value.trim();
      if (end) {
        params.set("end", end);
      }
    } else {
      params.set("window", chosen);
    }
    var refresh = form.querySelector("#refresh-select").value;
    if (refresh !== "off") {
      params.set("refresh", refresh);
    }
    return window.location.pathname + "?" + params.toString();
  }

  function bindPicker() {
    var form = document.getElementById("timepicker");
    if (!form) {
      return;
    }
    var windowSelect = form.querySelector("#window-select");
    var custom = form.querySelector("#custom-range");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      window.location.assign(pickerUrl(form));
    });
    windowSelect.addEventListener("change", function () {
      if (windowSelect.value === "custom") {
        custom.hidden = false;
        form.classList.add("custom");
        form.querySelector("#custom-window").focus();
      } else {
        window.location.assign(pickerUrl(form));
      }
    });
    form.querySelector("#refresh-select").addEventListener("change", function (event) {
      var seconds = { off: 0, "10s": 10, "30s": 30, "1m": 60 }[event.target.value] || 0;
      window.history.replaceState(null, "", pickerUrl(form));
      document.querySelectorAll("form.focus").forEach(function (other) {
        var field = other.querySelector("input[name=refresh]");
        if (seconds && !field) {
          field = document.createElement("input");
          field.type = "hidden";
          field.name = "refresh";
          other.appendChild(field);
        }
        if (field && seconds) {
          field.value = event.target.value;
        } else if (field) {
          field.remove();
        }
      });
      document.querySelectorAll('a[href^="/"]').forEach(function (link) {
        var url = new URL(link.href);
        if (url.origin === window.location.origin && url.searchParams.has("window")) {
          if (seconds) {
            url.searchParams.set("refresh", event.target.value);
          } else {
            url.searchParams.delete("refresh");
          }
          link.href = url.pathname + url.search;
        }
      });
      schedule(seconds);
    });
  }

  // --- refresh in place ---------------------------------------------------------------------

  function refresh() {
    return fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        fresh.querySelectorAll("[data-live][id]").forEach(function (part) {
          var current = document.getElementById(part.id);
          if (!current) {
            return;
          }
          if (part.hasAttribute("data-figure")) {
            current.setAttribute("data-figure", part.getAttribute("data-figure"));
            draw(current);
          } else {
            current.replaceWith(document.importNode(part, true));
          }
        });
        bindTables(document);
        sizeBars(document);
        stamp("updated " + new Date().toLocaleTimeString());
      })
      .catch(function (error) {
        stamp("refresh failed (" + error.message + "); retrying");
      });
  }

  function stamp(text) {
    var label = document.getElementById("updated");
    if (label) {
      label.textContent = "· " + text;
    }
  }

  function schedule(seconds) {
    if (refreshTimer) {
      window.clearInterval(refreshTimer);
      refreshTimer = null;
    }
    if (seconds > 0) {
      refreshTimer = window.setInterval(refresh, seconds * 1000);
    }
  }

  // --- copy buttons -------------------------------------------------------------------------

  function bindCopy(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        var text = source ? source.textContent : "";
        var done = function () {
          button.textContent = "Copied";
          window.setTimeout(function () {
            button.textContent = "Copy";
          }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () {});
        } else {
          var range = document.createRange();
          range.selectNodeContents(source);
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          button.textContent = "Selected: press Ctrl+C";
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    drawAll(document);
    bindTables(document);
    sizeBars(document);
    bindPicker();
    bindCopy(document);
    schedule(parseInt(document.body.getAttribute("data-refresh"), 10) || 0);
  });
})();
