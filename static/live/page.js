// The live views of a page (container tabs, the attach page, the overview): tabs, and each live view started the
// first time its tab is shown (xterm.js and Chart.js are loaded only then). The tab shown is kept in the
// URL's #hash, so a reload comes back to the same view (and a terminal resumes its session).

import { setupAll } from "./tabs.js";

// Chart.js is a classic UMD script (window.Chart): add it once, when the first chart is needed.
let chartjs = null;
function loadChartJs(src) {
  if (window.Chart) return Promise.resolve();
  chartjs = chartjs || new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(script);
  });
  return chartjs;
}

const starters = {
  logs: async (el) => (await import("./logs.js")).start(el),
  stats: async (el) => {
    await loadChartJs(el.dataset.chartjs);
    return (await import("./stats.js")).startContainer(el);
  },
  "host-stats": async (el) => {
    await loadChartJs(el.dataset.chartjs);
    return (await import("./stats.js")).startHost(el);
  },
  terminal: async (el) => {
    const term = (await import("./terminal.js")).start(el);
    term.shown();
    return term;
  },
};

function startIn(panel) {
  for (const el of panel.querySelectorAll("[data-live]")) {
    const starter = starters[el.dataset.live];
    if (starter) starter(el).catch((e) => console.error(`starting the ${el.dataset.live} view:`, e));
  }
}

document.addEventListener("tab-shown", (event) => startIn(event.target));
setupAll();

// Views outside any tab panel (the attach page) start at once.
for (const el of document.querySelectorAll("[data-live]")) {
  if (!el.closest("[role=tabpanel]")) startIn(el.parentElement);
}
