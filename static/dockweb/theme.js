// Apply the saved colour scheme before the first paint (loaded synchronously in <head>).
// Without a saved choice Pico follows prefers-color-scheme.
(function () {
  var theme = null;
  try { theme = localStorage.getItem("dockweb-theme"); } catch (e) { /* storage blocked: follow the system */ }
  if (theme === "light" || theme === "dark") document.documentElement.setAttribute("data-theme", theme);
})();
