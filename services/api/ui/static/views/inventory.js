// Read views for everything around clusters: credentials, bare metal hosts, releases,
// artifact mirrors (with progress bars) and attached clusters. Each is live.

import { live, session } from "../api.js";
import { age, badge, bytes, condition, h, phaseOf, progress, replace, table } from "../dom.js";

const inProject = (o) => !session.project || !o.metadata.namespace ||
  o.metadata.namespace === session.project;

const name = { title: "Name", render: (o) => o.metadata.name, cls: "name" };
const project = { title: "Project", render: (o) => o.metadata.namespace || "" };
const region = { title: "Region", render: (o) => o.spec.region || "" };
// The badge's tooltip says why, from the Ready condition (a refused credential's reason).
const phase = { title: "Status", cls: "phase", render: (o) =>
  h("span", { title: condition(o, "Ready")?.message || "" }, badge(phaseOf(o))) };

// A page with one live table per section: [{title, plural, columns, uses}]. `uses` names
// further live collections a column looks things up in: render(o, {plural: collection}).
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
      const lookups = Object.fromEntries((section.uses || []).map((p) => [p, live(p)]));
      collections.push(col, ...Object.values(lookups));
      const columns = section.columns.map((c) => ({ ...c, render: (o) => c.render(o, lookups) }));
      const render = () => {
        if (col.error && !col.loaded) {
          replace(slot, h("p", { class: "error" }, col.error.message));
          return;
        }
        if (!col.loaded) return;
        replace(slot, table(columns, col.values().filter(inProject), {
          empty: `No ${section.title.toLowerCase()}.`,
          rowAttrs: (o) => ({ "data-name": o.metadata.name }),
        }));
      };
      col.subscribe(render);
      Object.values(lookups).forEach((l) => l.subscribe(render));
    }
    return () => collections.forEach((c) => c.close());
  };
}

// An address without any user:password@ part, should an operator have written one there.
function withoutUserinfo(address) {
  return String(address || "").replace(/^([a-z][\w+.-]*:\/\/)[^/@]*@/i, "$1");
}

// A host's consumer is a Machine uid: shown as that machine, linked to its cluster.
function consumer(host, { machines }) {
  const uid = host.spec.consumer || host.status?.consumer;
  if (!uid) return "";
  const m = machines?.values().find((x) => x.metadata.uid === uid);
  if (!m) return h("span", { class: "muted", title: uid }, "machine gone or not visible");
  const link = `#/clusters/${encodeURIComponent(m.metadata.namespace)}/${
    encodeURIComponent(m.spec.cluster)}`;
  return h("a", { href: link }, m.metadata.name, h("small", { class: "muted" },
    ` (cluster ${m.spec.cluster})`));
}

// A BMC credential has no status of its own: the hosts naming it say whether it works.
function bmcUsers(cred, { baremetalhosts }) {
  const hosts = (baremetalhosts?.values() || []).filter((b) =>
    b.metadata.namespace === cred.metadata.namespace &&
    b.spec.bmc?.credentialsName === cred.metadata.name);
  if (!hosts.length) return h("span", { class: "muted" }, "no host uses it");
  const refused = hosts.filter((b) => condition(b, "BMCReachable")?.status === "False");
  const text = `${hosts.length} host(s)` + (refused.length
    ? `, ${refused.length} unreachable: ${refused.map((b) => b.metadata.name).join(", ")}` : "");
  return h("span", { class: refused.length ? "error" : "",
    title: refused.map((b) => condition(b, "BMCReachable").message).join("\n") }, text);
}

function attachedHealth(o) {
  const s = o.status || {};
  const phase = s.phase || (s.healthy ? "Healthy" : s.lastProbe ? "Unhealthy" : "Pending");
  const why = (s.conditions || []).find((c) => c.type === "Healthy")?.message;
  return h("span", { title: why || "" }, badge(phase === "Ready" ? "Healthy" : phase));
}

function attachedNodes(o) {
  const s = o.status || {};
  const total = (s.nodes || []).length;
  return total ? `${s.readyNodes || 0}/${total} ready` : "";
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
    { title: "Bare metal host credentials", plural: "baremetalhostcredentials", columns: [
      name, project, region,
      { title: "User", render: (o) => o.spec.username },
      { title: "Hosts", render: bmcUsers, cls: "hosts" },
    ], uses: ["baremetalhosts"] },
  ]),
  hosts: page("Bare metal hosts", [
    { title: "Bare metal hosts", plural: "baremetalhosts", columns: [
      name, project, region,
      { title: "BMC", render: (o) => withoutUserinfo(o.spec.bmc.address), cls: "bmc" },
      { title: "Boot MAC", render: (o) => o.spec.bootMacAddress },
      { title: "State", render: (o) => badge(o.status?.provisioningState || "—"),
        cls: "state" },
      { title: "Power", render: (o) => o.status?.powerState || "", cls: "power" },
      { title: "Hardware", render: (o) => {
        const hw = o.status?.hardware;
        return hw ? `${hw.cpus} CPU, ${hw.memoryMib} MiB` : "";
      } },
      { title: "Consumer", render: consumer, cls: "consumer" }, phase,
    ], uses: ["machines"] },
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
      { title: "Health", render: attachedHealth, cls: "health" },
      { title: "Kubernetes", render: (o) => o.status?.kubernetesVersion || "", cls: "version" },
      { title: "Nodes", render: attachedNodes, cls: "nodes" },
      { title: "Last probe", render: (o) => age(o.status?.lastProbe) },
    ] },
  ]),
};
