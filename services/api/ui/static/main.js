// The shell: sign-in state, project selector and hash routing to the views.
//
// Each view is `render(root, params) -> cleanup`; the cleanup closes the view's watch
// streams, so leaving a page never leaves connections behind.

import { api, session } from "./api.js";
import { h, replace } from "./dom.js";
import { captureCallback } from "./sso.js";
import { renderLogin } from "./views/login.js";
import { renderClusters } from "./views/clusters.js";
import { renderCreate } from "./views/create.js";
import { renderCluster } from "./views/cluster.js";
import { inventoryViews } from "./views/inventory.js";

const routes = [
  [/^\/login$/, renderLogin, "login"],
  [/^\/clusters$/, renderClusters, "clusters"],
  [/^\/clusters\/new$/, renderCreate, "clusters"],
  [/^\/clusters\/([^/]+)\/([^/]+)$/, (root, [ns, name]) =>
    renderCluster(root, { namespace: decodeURIComponent(ns), name: decodeURIComponent(name) }),
   "clusters"],
  ...Object.entries(inventoryViews).map(([name, view]) => [new RegExp(`^/${name}$`), view, name]),
];

let cleanup = null;
const view = document.getElementById("view");

async function ensureSelf() {
  if (session.self || !session.token) return session.self;
  try {
    session.self = await api.self();
  } catch {
    session.setToken("");
    session.self = null;
  }
  return session.self;
}

function renderShell() {
  const signedIn = Boolean(session.self);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("who").hidden = !signedIn;
  if (!signedIn) return;
  document.getElementById("user").textContent = session.self.user;
  const select = document.getElementById("project");
  const projects = session.self.projects.map((p) => p.name);
  if (session.project && !projects.includes(session.project)) session.setProject("");
  replace(select,
    h("option", { value: "" }, "All projects"),
    projects.map((p) => h("option", { value: p, selected: p === session.project }, p)));
}

async function route() {
  const hash = location.hash.replace(/^#/, "") || "/clusters";
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  await ensureSelf();
  renderShell();
  if (!session.self && hash !== "/login") {
    location.hash = "#/login";
    return;
  }
  for (const [pattern, render, section] of routes) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle("active", a.dataset.nav === section);
    }
    replace(view);
    cleanup = render(view, match.slice(1)) || null;
    return;
  }
  replace(view, h("section", {}, h("h2", {}, "Not found"),
    h("p", {}, "No page at ", h("code", {}, hash), ". ", h("a", { href: "#/clusters" },
      "Back to clusters"))));
}

document.getElementById("project").addEventListener("change", (e) => {
  session.setProject(e.target.value);
  route();
});
document.getElementById("logout").addEventListener("click", () => {
  session.setToken("");
  session.self = null;
  location.hash = "#/login";
});
window.addEventListener("ccloud:unauthorized", () => {
  if (location.hash === "#/login") return;
  session.setToken("");
  session.self = null;
  location.hash = "#/login";
});
window.addEventListener("ccloud:signed-in", () => {
  location.hash = "#/clusters";
});
window.addEventListener("hashchange", route);
// Back from the IdP: the login view finishes that sign-in, which replaces any session.
if (captureCallback()) {
  session.setToken("");
  session.self = null;
}
route();
