// Clusters grouped by region and project, live from the watch stream.

import { live, session } from "../api.js";
import { badge, h, phaseOf, replace } from "../dom.js";

export function readyCount(cluster) {
  const s = cluster.status || {};
  return `${s.readyMachines || 0}/${s.totalMachines || 0}`;
}

function row(c) {
  const ns = c.metadata.namespace;
  const upgrades = c.status?.availableUpgrades || [];
  return h(
    "tr",
    { "data-cluster": `${ns}/${c.metadata.name}` },
    h("td", { class: "name" },
      h("a", { href: `#/clusters/${encodeURIComponent(ns)}/${encodeURIComponent(c.metadata.name)}` },
        c.metadata.name)),
    h("td", { class: "provider" }, c.spec.provider),
    h("td", { class: "phase" }, badge(phaseOf(c))),
    h("td", { class: "ready", title: "machines ready / total" }, readyCount(c)),
    h("td", { class: "release" }, c.status?.release || c.spec.release),
    h("td", { class: "upgrade" },
      upgrades.length ? h("span", { class: "badge next" }, `→ ${upgrades.join(", ")}`) : ""),
  );
}

function grouped(clusters) {
  const regions = new Map();
  for (const c of clusters) {
    const region = c.spec.region;
    const ns = c.metadata.namespace;
    if (!regions.has(region)) regions.set(region, new Map());
    const projects = regions.get(region);
    if (!projects.has(ns)) projects.set(ns, []);
    projects.get(ns).push(c);
  }
  return [...regions.entries()].sort(([a], [b]) => a.localeCompare(b));
}

export function renderClusters(root) {
  const clusters = live("clusters");
  const body = h("div", { class: "groups" }, h("p", { class: "empty" }, "Loading…"));
  const canCreate = (session.self?.projects || []).some((p) => p.canWrite);
  root.append(h(
    "section", {},
    h("div", { class: "title" },
      h("h2", {}, "Clusters"),
      canCreate ? h("a", { class: "button", href: "#/clusters/new" }, "Create cluster") : ""),
    body,
  ));

  clusters.subscribe((col) => {
    if (col.error && !col.loaded) {
      replace(body, h("p", { class: "error" }, col.error.message));
      return;
    }
    const shown = col.values().filter((c) =>
      !session.project || c.metadata.namespace === session.project);
    if (!shown.length) {
      replace(body, h("p", { class: "empty" }, "No clusters yet."));
      return;
    }
    replace(body, grouped(shown).map(([region, projects]) => h(
      "div", { class: "region", "data-region": region },
      h("h3", {}, "Region ", h("span", { class: "region-name" }, region)),
      [...projects.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([ns, items]) => h(
        "div", { class: "project", "data-project": ns },
        h("h4", {}, "Project ", ns),
        h("table", { class: "clusters" },
          h("thead", {}, h("tr", {},
            ["Name", "Provider", "Phase", "Ready", "Release", "Upgrade"].map((t) =>
              h("th", {}, t)))),
          h("tbody", {}, items.map(row))),
      )),
    )));
  });
  return () => clusters.close();
}
