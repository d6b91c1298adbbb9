// Tabs (the WAI-ARIA tabs pattern) for pages with [role=tablist][data-tabs]: the tab in the URL's #hash is
// shown, arrow keys move between tabs, and a panel being shown gets a "tab-shown" event (the live views start
// on it, so a socket opens only for what is looked at). Without JavaScript every panel stays visible.

function tabsOf(list) {
  return [...list.querySelectorAll("[role=tab]")];
}

function select(list, tab, { focus = false, push = true } = {}) {
  for (const other of tabsOf(list)) {
    const selected = other === tab;
    other.setAttribute("aria-selected", selected ? "true" : "false");
    other.tabIndex = selected ? 0 : -1;
    const panel = document.getElementById(other.getAttribute("aria-controls"));
    if (panel) panel.hidden = !selected;
  }
  if (focus) tab.focus();
  if (push && tab.dataset.hash) history.replaceState(null, "", `#${tab.dataset.hash}`);
  const panel = document.getElementById(tab.getAttribute("aria-controls"));
  if (panel) panel.dispatchEvent(new CustomEvent("tab-shown", { bubbles: true }));
}

export function setup(list) {
  const tabs = tabsOf(list);
  if (tabs.length === 0) return;
  list.addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (tab) select(list, tab);
  });
  list.addEventListener("keydown", (event) => {
    const i = tabs.indexOf(document.activeElement);
    if (i === -1) return;
    const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(list, tabs[(moves[event.key] + tabs.length) % tabs.length], { focus: true });
  });
  const fromHash = () => tabs.find((t) => t.dataset.hash && `#${t.dataset.hash}` === location.hash);
  select(list, fromHash() || tabs[0], { push: false });
  window.addEventListener("hashchange", () => {
    const tab = fromHash();
    if (tab) select(list, tab, { push: false });
  });
}

export function setupAll() {
  document.querySelectorAll("[role=tablist][data-tabs]").forEach(setup);
}
