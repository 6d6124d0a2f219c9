// Puna dashboard: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  var SENTIMENT_COLORS = { negative: "#b42318", neutral: "#6e7781", positive: "#1a7f37" };
  var PALETTE = ["#0b5cad", "#8250df", "#bf3989", "#b35900", "#1a7f37", "#0a7f8f", "#6e7781", "#953800", "#57606a"];

  // Deferred scripts (Chart.js comes after this one) have all run by DOMContentLoaded.
  function ready(fn) {
    if (document.readyState === "complete") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  // --- charts (overview) ----------------------------------------------------------------------
  function drawCharts() {
    var source = document.getElementById("chart-data");
    if (!source || typeof window.Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var Chart = window.Chart;
    Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    Chart.defaults.color = "#1b1f24";
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.animation = false;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var key = canvas.getAttribute("data-chart");
      var chart = data[key];
      if (!chart) return;
      var config;
      if (key === "volume") {
        config = {
          type: "bar",
          data: {
            labels: chart.labels,
            datasets: ["negative", "neutral", "positive"].map(function (name) {
              return { label: name.charAt(0).toUpperCase() + name.slice(1), data: chart[name], backgroundColor: SENTIMENT_COLORS[name] };
            })
          },
          options: {
            scales: { x: { stacked: true, ticks: { autoSkip: true, maxRotation: 0 } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
            plugins: { legend: { position: "bottom" } }
          }
        };
      } else {
        config = {
          type: "bar",
          data: { labels: chart.labels, datasets: [{ label: "Feedback", data: chart.values, backgroundColor: PALETTE }] },
          options: {
            indexAxis: "y",
            scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
            plugins: { legend: { display: false } }
          }
        };
      }
      new Chart(canvas, config);
      canvas.setAttribute("data-chart-drawn", "");
      // The chart now shows the numbers; keep the table one click away for screen readers.
      var table = canvas.closest(".chart-card").querySelector("details.chart-data");
      if (table) table.removeAttribute("open");
    });
  }

  // --- progress polling (imports, training runs) ------------------------------------------------
  function poll(el) {
    var url = el.getAttribute("data-poll");
    var bar = el.querySelector("progress");
    var text = el.querySelector("[data-poll-text]");
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (p) {
          if (bar && p.percent !== null && p.percent !== undefined) { bar.value = p.percent; bar.textContent = p.percent + "%"; }
          if (text) text.textContent = p.text;
          if (p.done) { el.setAttribute("data-done", ""); window.setTimeout(function () { window.location.reload(); }, 400); }
          else window.setTimeout(tick, 1000);
        })
        .catch(function () { window.setTimeout(tick, 3000); });
    }
    tick();
  }

  // --- inline review (explorer rows, detail page) -----------------------------------------------
  function inlineReview(form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var status = form.querySelector(".form-status");
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      if (status) status.textContent = "Saving…";
      fetch(form.getAttribute("action"), { method: "POST", body: new FormData(form), headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (res) {
          if (!res.ok) {
            var errors = res.body.errors || {};
            if (status) status.textContent = Object.keys(errors).map(function (k) { return errors[k].join(" "); }).join(" ") || "Not saved.";
            return;
          }
          if (status) status.textContent = "Saved";
          var row = form.closest("tr");
          if (row) {
            var fb = res.body.feedback;
            var s = row.querySelector("[data-cell=sentiment]");
            if (s) {
              s.textContent = "";
              var span = document.createElement("span");
              span.className = "sentiment sentiment-" + fb.sentiment;
              span.textContent = fb.sentiment.charAt(0).toUpperCase() + fb.sentiment.slice(1);
              s.appendChild(span);
            }
            var c = row.querySelector("[data-cell=category]");
            if (c) c.textContent = fb.category || "–";
            var st = row.querySelector("[data-cell=status] .badge");
            if (st) st.textContent = fb.status.charAt(0).toUpperCase() + fb.status.slice(1);
          }
        })
        .catch(function () { if (status) status.textContent = "Not saved: network error."; })
        .then(function () { button.disabled = false; });
    });
  }

  // --- upload preview -------------------------------------------------------------------------
  function importForm(form) {
    var target = document.getElementById("import-preview");
    var file = form.querySelector("input[type=file]");
    function preview() {
      if (!file.files.length) return;
      var body = new FormData(form);
      body.set("action", "preview");
      // form.action would be the button named "action", not the form's address.
      fetch(form.getAttribute("action") || window.location.href, { method: "POST", body: body, headers: { "X-Puna-Fragment": "preview" }, credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) { target.innerHTML = html; })
        .catch(function () { target.textContent = "Could not read the file for a preview; you can still import it."; });
    }
    file.addEventListener("change", function () {
      // A new file: forget the previous file's columns, then show this one's.
      target.innerHTML = "";
      preview();
    });
    var button = form.querySelector("[data-preview-button]");
    if (button) button.addEventListener("click", function (event) { event.preventDefault(); preview(); });
  }

  // --- select all (bulk actions) ---------------------------------------------------------------
  function selectAll(box) {
    var name = box.getAttribute("data-select-all");
    box.addEventListener("change", function () {
      document.querySelectorAll("input[type=checkbox][name='" + name + "']").forEach(function (cb) { cb.checked = box.checked; });
    });
  }

  ready(function () {
    document.documentElement.classList.add("js");
    drawCharts();
    document.querySelectorAll("[data-poll]:not([data-done])").forEach(poll);
    document.querySelectorAll("form[data-inline-review]").forEach(inlineReview);
    document.querySelectorAll("form[data-import-form]").forEach(importForm);
    document.querySelectorAll("input[data-select-all]").forEach(selectAll);
  });
})();
