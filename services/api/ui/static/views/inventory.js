// Read views for everything around clusters: credentials, bare metal hosts, releases,
// artifact mirrors (with progress bars) and attached clusters. Each is live.

import { live, session } from "../api.js";
import { age, badge, bytes, h, phaseOf, progress, replace, table } from "../dom.js";

const inProject = (o) => !session.project || !o.metadata.namespace ||
  o.metadata.namespace === session.project;

const name = { title: "Name", render: (o) => o.metadata.name, cls: "name" };
const project = { title: "Project", render: (o) => o.metadata.namespace || "" };
const region = { title: "Region", render: (o) => o.spec.region || "" };
const phase = { title: "Status", render: (o) => badge(phaseOf(o)), cls: "phase" };

// A page with one live table per section: [{title, plural, columns, filter}].
function page(title, sections) {
  return (root) => {
    const collections = [];
    root.append(h("h2", {}, title));
    for (const section of sections) {
      const slot = h("div", { class: "slot", "data-plural": section.plural },
        h("p", { class: "empty" }, "Loading…"));
      if (sections.length > 1) root.append(h("h3", {}, section.title));
      root.append(slot);
      const col = live(section.plural);
      collections.push(col);
      col.subscribe(() => {
        if (col.error && !col.loaded) {
          replace(slot, h("p", { class: "error" }, col.error.message));
          return;
        }
        replace(slot, table(section.columns, col.values().filter(inProject), {
          empty: `No ${section.title.toLowerCase()}.`,
          rowAttrs: (o) => ({ "data-name": o.metadata.name }),
        }));
      });
    }
    return () => collections.forEach((c) => c.close());
  };
}

function mirrorProgress(m) {
  const s = m.status || {};
  return h("div", { class: "stack" },
    progress(s.itemsDone || 0, s.itemsTotal || 0,
      `${s.itemsDone || 0}/${s.itemsTotal || 0} artifacts`),
    progress(s.bytesDone || 0, s.bytesTotal || 0,
      `${bytes(s.bytesDone)} / ${bytes(s.bytesTotal)}`));
}

export const inventoryViews = {
  credentials: page("Credentials", [
    { title: "OpenStack credentials", plural: "openstackcredentials", columns: [
      name, project, region,
      { title: "Auth URL", render: (o) => o.spec.auth.authUrl },
      { title: "User / app credential", render: (o) =>
        o.spec.auth.username || o.spec.auth.applicationCredentialId || "" },
      { title: "Project (cloud)", render: (o) => o.spec.auth.projectName || "" },
      phase,
    ] },
    { title: "vSphere credentials", plural: "vspherecredentials", columns: [
      name, project, region,
      { title: "Server", render: (o) => `${o.spec.server}:${o.spec.port || 443}` },
      { title: "User", render: (o) => o.spec.username }, phase,
    ] },
  ]),
  hosts: page("Bare metal hosts", [
    { title: "Bare metal hosts", plural: "baremetalhosts", columns: [
      name, project, region,
      { title: "BMC", render: (o) => o.spec.bmc.address },
      { title: "Boot MAC", render: (o) => o.spec.bootMacAddress },
      { title: "Provisioning", render: (o) => badge(o.status?.provisioningState || "—") },
      { title: "Power", render: (o) => o.status?.powerState || "" },
      { title: "Hardware", render: (o) => {
        const hw = o.status?.hardware;
        return hw ? `${hw.cpus} CPU, ${hw.memoryMib} MiB` : "";
      } },
      { title: "Consumer", render: (o) => o.status?.consumer || o.spec.consumer || "" },
    ] },
  ]),
  releases: page("Releases", [
    { title: "Cluster releases", plural: "clusterreleases", columns: [
      name,
      { title: "Version", render: (o) => o.spec.version },
      { title: "MKE", render: (o) => o.spec.mkeVersion },
      { title: "Runtime", render: (o) =>
        `${o.spec.containerRuntime || ""} ${o.spec.containerRuntimeVersion || ""}` },
      { title: "Upgrades to", render: (o) => (o.spec.allowedUpgrades || []).join(", ") },
      { title: "Artifacts", render: (o) => (o.spec.artifacts || []).length },
    ] },
    { title: "Management releases", plural: "kaasreleases", columns: [
      name,
      { title: "Version", render: (o) => o.spec.version },
      { title: "Supported cluster releases", render: (o) =>
        (o.spec.supportedClusterReleases || []).map((s) =>
          s.availableUpgrades?.length ? `${s.name} → ${s.availableUpgrades.join(", ")}`
                                      : s.name).join("; ") },
    ] },
  ]),
  mirrors: page("Artifact mirrors", [
    { title: "Artifact mirrors", plural: "artifactmirrors", columns: [
      name, project, region,
      { title: "Release", render: (o) => o.spec.release },
      { title: "Progress", render: mirrorProgress, cls: "progress-cell" },
      { title: "Failures", render: (o) => {
        const f = o.status?.failures || [];
        return f.length ? h("span", { class: "error", title: f.map((x) =>
          `${x.artifact}: ${x.reason}`).join("\n") }, String(f.length)) : "0";
      } },
      phase,
    ] },
  ]),
  attached: page("Attached clusters", [
    { title: "Attached clusters", plural: "attachedclusters", columns: [
      name, project, region,
      { title: "Endpoint", render: (o) => o.spec.endpoint },
      { title: "Health", render: (o) => badge(o.status?.healthy ? "Healthy" :
        o.status?.lastProbe ? "Unhealthy" : "Pending") },
      { title: "Kubernetes", render: (o) => o.status?.kubernetesVersion || "" },
      { title: "Nodes", render: (o) => (o.status?.nodes || []).length },
      { title: "Last probe", render: (o) => age(o.status?.lastProbe) },
    ] },
  ]),
};
