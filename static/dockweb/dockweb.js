// dockweb's page behaviour: the dark-mode toggle, select-all and confirm for bulk actions, and showing the
// server's refusal when an htmx request fails (htmx does not swap 4xx/5xx answers).
(function () {
  "use strict";

  function currentTheme() {
    var set = document.documentElement.getAttribute("data-theme");
    if (set === "light" || set === "dark") return set;
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function showTheme(button) {
    var dark = currentTheme() === "dark";
    button.setAttribute("aria-pressed", dark ? "true" : "false");
    button.title = dark ? "Switch to light mode" : "Switch to dark mode";
  }

  function flash(text, level) {
    var box = document.getElementById("messages");
    if (!box) return;
    var p = document.createElement("p");
    p.className = "flash flash-" + level;
    p.setAttribute("role", level === "error" ? "alert" : "status");
    p.textContent = text;
    box.replaceChildren(p);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      showTheme(toggle);
      toggle.addEventListener("click", function () {
        var next = currentTheme() === "dark" ? "light" : "dark";
        document.documentElement.setAttribute("data-theme", next);
        try { localStorage.setItem("dockweb-theme", next); } catch (e) { /* not remembered: fine */ }
        showTheme(toggle);
      });
      // Without a saved choice the page follows the system: keep the button's state in step with it.
      if (window.matchMedia) {
        window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () { showTheme(toggle); });
      }
    }
  });

  // Delegated, so it keeps working on tables htmx swaps in.
  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-select-all]");
    if (!all) return;
    var form = all.form || all.closest("form");
    form.querySelectorAll('input[type=checkbox][name="' + all.dataset.selectAll + '"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = xhr.status + " " + (xhr.statusText || "error");
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var message = doc.getElementById("error-message");
      if (message && message.textContent.trim()) text = message.textContent.trim();
    } catch (e) { /* keep the status line */ }
    flash(text, "error");
  });

  document.addEventListener("htmx:sendError", function () {
    flash("The server did not answer: check your connection and try again.", "error");
  });
})();
