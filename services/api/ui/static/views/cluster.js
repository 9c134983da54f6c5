// One cluster: summary, upgrade (only to releases the release service allows), delete,
// maintenance mode (the cluster's, then its machines' one by one), machines with per-item
// LCM progress (add one like an existing one, delete one, mark a pool's one to go first,
// edit its node labels: views/labels.js), its machine pools (created and scaled here:
// views/pools.js), its machine health checks (read-only:
// views/healthchecks.js), its rolling reboot (started, followed and cancelled here:
// views/reboots.js), conditions and events.
// Everything is live. Writes the gateway refuses show its message in the notice.

import {
  ApiError, CLUSTER_LABEL, DELETE_MACHINE_ANNOTATION, POOL_LABEL, api, events, live, session,
} from "../api.js";
import {
  age, badge, condition, confirmAction, confirmTyped, h, phaseOf, progress, replace, table,
} from "../dom.js";
import { readyCount } from "./clusters.js";
import { checksOf, machineHealth, renderHealthChecks } from "./healthchecks.js";
import { editNodeLabels, labelTags } from "./labels.js";
import { markedFirst, poolOf, poolsOf, poolsSection, wanted } from "./pools.js";
import { rebootSection } from "./reboots.js";

const MAX_EVENTS = 50;

function lcmProgress(lcm) {
  if (!lcm) return h("span", { class: "muted" }, "no agent yet");
  const wanted = lcm.spec.stateItems || [];
  const got = lcm.status?.stateItems || {};
  const done = wanted.filter((i) => got[i.name]?.state === "Done").length;
  const failed = wanted.find((i) => got[i.name]?.state === "Failed");
  const running = wanted.find((i) => got[i.name]?.state === "Running");
  const note = failed ? `failed: ${failed.name}` : running ? `running: ${running.name}` : "";
  return h("div", { class: "lcm" }, progress(done, wanted.length, `${done}/${wanted.length}`),
    note ? h("small", { class: failed ? "error" : "muted" }, note) : "");
}

function providerProgress(machine) {
  const steps = machine.status?.providerSteps || [];
  if (!steps.length) return "";
  const done = steps.filter((s) => s.state === "Done").length;
  return progress(done, steps.length, `${done}/${steps.length}`);
}

// Maintenance as asked for (spec.maintenance) and as LCM reports it (the Maintenance
// condition): [state, badge text, tone, message].
function clusterMaintenance(c) {
  const want = Boolean(c.spec.maintenance);
  const got = condition(c, "Maintenance");
  if (want && got?.status === "True") return ["on", "In maintenance", "maint", got.message];
  if (want) {
    return ["entering", "Entering maintenance", "maint",
      got?.message || "requested; waiting for LCM to hold the cluster"];
  }
  if (got?.reason === "MachinesInMaintenance") {
    return ["machines", "Machines in maintenance", "warn", got.message];
  }
  if (got) return ["leaving", "Leaving maintenance", "maint", "waiting for LCM to release it"];
  return ["off", "Off", "", ""];
}

// A machine's Maintenance condition: True/Drained once its node is drained, False/Draining
// while the drain runs or fails (an error the agent reported is the message).
function machineMaintenance(m) {
  const got = condition(m, "Maintenance");
  if (!got) {
    return m.spec.maintenance
      ? h("small", { class: "muted", "data-state": "requested" },
        "requested; waiting for LCM to cordon the node")
      : "";
  }
  const failing = got.status !== "True" && got.severity === "Error";
  const tone = got.status === "True" ? "maint" : failing ? "bad" : "warn";
  return h("div", { class: "stack", "data-state": got.reason },
    h("span", { class: `badge ${tone}` }, got.reason || "Maintenance"),
    got.message ? h("small", { class: failing ? "error" : "muted" }, got.message) : "",
    m.spec.maintenance ? "" : h("small", { class: "muted" }, "leaving maintenance"));
}

function transitions(objects) {
  const out = [];
  for (const o of objects) {
    for (const c of o.status?.conditions || []) {
      if (!c.lastTransitionTime) continue;
      out.push({ time: c.lastTransitionTime, object: `${o.kind}/${o.metadata.name}`,
        what: `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ""}`, message: c.message });
    }
  }
  return out;
}

export function renderCluster(root, { namespace, name }) {
  const clusters = live("clusters", namespace);
  const machines = live("machines", namespace);
  const lcm = live("lcmmachines", namespace);
  const checks = live("machinehealthchecks", namespace);
  const pools = live("machinepools", namespace);
  const reboots = live("gracefulrebootrequests", namespace); // one per cluster, by name
  const feed = [];
  const mine = (o) => o.spec?.cluster === name;
  const key = `${namespace}/${name}`;
  let deleting = false;
  let seen = false;
  let closeLabels = null; // the open node-labels editor's closer

  const header = h("div", { class: "title" }, h("h2", {}, "Cluster ", name));
  const summary = h("div", { class: "card summary" });
  const actions = h("div", { class: "card actions-card" });
  const machinesEl = h("div", {});
  const checksEl = h("div", { class: "health-checks" });
  const readOnly = `Read-only: your role in project ${namespace} cannot change it.`;
  const poolsView = poolsSection({ namespace, name, tell, readOnly });
  const rebootView = rebootSection({ namespace, name, tell, readOnly });
  const conditionsEl = h("div", {});
  const eventsEl = h("div", { class: "events", "data-feed": "connecting" });
  const notice = h("p", { class: "notice", role: "status" });
  root.append(h("section", { "data-cluster-page": key }, header, notice, summary, actions,
    h("h3", {}, "Machines"), machinesEl,
    h("h3", {}, "Machine pools"), poolsView.el,
    h("h3", {}, "Health checks"), checksEl,
    h("h3", {}, "Rolling reboot"), rebootView.el,
    h("h3", {}, "Conditions"), conditionsEl,
    h("h3", {}, "Events"), eventsEl));

  const cluster = () => clusters.items.get(key);
  const reboot = () => reboots.items.get(key);

  function tell(text, failed = false) {
    notice.textContent = text;
    notice.classList.toggle("failed", failed);
  }

  function renderSummary() {
    const c = cluster();
    if (!c) {
      if (clusters.loaded) {
        replace(summary, h("p", { class: "empty" },
          seen ? "This cluster was deleted." : "No such cluster."),
          h("a", { href: "#/clusters" }, "Back to clusters"));
        replace(actions);
      }
      return;
    }
    seen = true;
    const s = c.status || {};
    const [state, label, tone, message] = clusterMaintenance(c);
    replace(summary, h("dl", { class: "facts" },
      h("dt", {}, "Phase"), h("dd", { class: "phase" }, badge(phaseOf(c))),
      h("dt", {}, "Maintenance"), h("dd", { class: "maintenance", "data-state": state },
        tone ? h("span", { class: `badge ${tone}` }, label) : h("span", { class: "muted" }, label),
        message ? h("small", { class: "muted" }, " ", message) : ""),
      h("dt", {}, "Machines ready"), h("dd", { class: "ready" }, readyCount(c)),
      h("dt", {}, "Release"), h("dd", { class: "release" }, s.release || c.spec.release,
        s.release && s.release !== c.spec.release
          ? h("span", { class: "badge warn" }, `upgrading to ${c.spec.release}`) : ""),
      h("dt", {}, "Region"), h("dd", {}, c.spec.region),
      h("dt", {}, "Project"), h("dd", {}, namespace),
      h("dt", {}, "Provider"), h("dd", {}, c.spec.provider,
        c.spec.credential ? ` (credential ${c.spec.credential})` : ""),
      h("dt", {}, "Age"), h("dd", {}, age(c.metadata.creationTimestamp))));
    renderActions(c);
  }

  function renderActions(c) {
    const writable = session.canWrite(namespace);
    const role = h("select", { name: "machine-role", "aria-label": "Role of the new machine" },
      h("option", { value: "worker" }, "worker"),
      h("option", { value: "control-plane" }, "control-plane"));
    const upgrades = c.status?.availableUpgrades || [];
    const choice = h("select", { name: "upgrade", "aria-label": "Upgrade to release",
                                 disabled: !upgrades.length || !writable },
      upgrades.length ? upgrades.map((r) => h("option", { value: r }, r))
                      : h("option", { value: "" }, "no upgrade available"));
    const error = h("span", { class: "field-error", "data-error-for": "spec.release" });
    const inMaintenance = Boolean(c.spec.maintenance);
    const gone = Boolean(c.metadata.deletionTimestamp);
    replace(actions,
      h("div", { class: "upgrade" },
        h("label", {}, "Upgrade to ", choice),
        h("button", { type: "button", name: "upgrade-button",
          disabled: !upgrades.length || !writable || c.metadata.deletionTimestamp,
          onclick: async () => {
            error.textContent = "";
            try {
              await api.patch("clusters", namespace, name, { spec: { release: choice.value } });
              tell(`Upgrade to ${choice.value} requested.`);
            } catch (err) {
              error.textContent = err instanceof ApiError && err.causes.length
                ? err.causes[0].message : err.message;
            }
          } }, "Upgrade"), error),
      h("button", { type: "button", name: "delete-button", class: "danger",
        disabled: !writable || Boolean(c.metadata.deletionTimestamp) || deleting,
        onclick: async () => {
          const ok = await confirmTyped({
            title: `Delete cluster ${name}?`,
            message: "Its machines are deprovisioned and the cluster is gone for good.",
            expected: name,
          });
          if (!ok) return;
          deleting = true;
          try {
            await api.remove("clusters", namespace, name);
            tell(`Deleting cluster ${name}…`);
          } catch (err) {
            deleting = false;
            tell(`Delete failed: ${err.message}`, true);
          }
          renderSummary();
        } }, c.metadata.deletionTimestamp ? "Deleting…" : "Delete cluster"),
      h("div", { class: "maintenance" },
        h("button", { type: "button", name: "maintenance-button", class: "secondary",
          disabled: !writable || gone,
          title: !writable ? readOnly : gone ? "The cluster is being deleted." : inMaintenance
            ? "Take the cluster out of maintenance: held upgrades start"
            : "Hold upgrades, so its machines can be put in maintenance one by one",
          onclick: () => setClusterMaintenance(!inMaintenance) },
        inMaintenance ? "Leave maintenance" : "Enter maintenance")),
      h("div", { class: "add-machine" },
        h("label", {}, "Add ", role, " machine"),
        h("button", { type: "button", name: "add-machine",
          disabled: !writable || Boolean(c.metadata.deletionTimestamp),
          onclick: () => addMachine(role.value) }, "Add")));
  }

  // Maintenance is a JSON merge patch of spec.maintenance; the gateway judges the order
  // (a 409 naming spec.maintenance), and its answer is shown as it gives it.
  async function setMaintenance(plural, objName, on, done) {
    try {
      await api.patch(plural, namespace, objName, { spec: { maintenance: on } });
      tell(done);
    } catch (err) {
      tell(`${on ? "Entering" : "Leaving"} maintenance failed: ${err.message}`, true);
    }
  }

  async function setClusterMaintenance(on) {
    const ok = await confirmAction(on ? {
      title: `Put cluster ${name} into maintenance?`,
      message: h("ul", {},
        h("li", {}, "Upgrades are held: none starts while the cluster is in maintenance ",
          "(a changed release waits until it leaves)."),
        h("li", {}, "Its machines can then be put into maintenance one by one: each one's ",
          "node is cordoned and drained, and LCM applies nothing new to it."),
        h("li", {}, "No node is drained by this step alone.")),
      action: "Enter maintenance",
    } : {
      title: `Take cluster ${name} out of maintenance?`,
      message: h("ul", {},
        h("li", {}, "Every machine must leave maintenance first."),
        h("li", {}, "An upgrade held meanwhile starts then.")),
      action: "Leave maintenance",
    });
    if (!ok) return;
    await setMaintenance("clusters", name, on, on
      ? `Cluster ${name} is entering maintenance: upgrades are held; put machines into ` +
        "maintenance one by one."
      : `Cluster ${name} is leaving maintenance.`);
  }

  async function setMachineMaintenance(m, on) {
    const machine = m.metadata.name;
    const ok = await confirmAction(on ? {
      title: `Put machine ${machine} into maintenance?`,
      message: h("ul", {},
        h("li", {}, "Its node is cordoned and drained: its workloads move to other nodes."),
        h("li", {}, "LCM applies nothing new to it (a changed role, a release) until it ",
          "leaves maintenance."),
        h("li", {}, "A drain that is refused (a PodDisruptionBudget, say) shows as ",
          "Draining with the reason.")),
      action: "Enter maintenance",
    } : {
      title: `Take machine ${machine} out of maintenance?`,
      message: "Its node is uncordoned, and what was held back meanwhile is applied.",
      action: "Leave maintenance",
    });
    if (!ok) return;
    await setMaintenance("machines", machine, on, on
      ? `Machine ${machine} is entering maintenance: its node is cordoned and drained.`
      : `Machine ${machine} is leaving maintenance.`);
  }

  // Entering is for machines of a cluster in maintenance only (the gateway's rule, shown
  // before it has to refuse); leaving is always offered, it is the way back.
  function machineMaintenanceButton(m) {
    const on = Boolean(m.spec.maintenance);
    const why = !session.canWrite(namespace) ? readOnly
      : m.metadata.deletionTimestamp ? "The machine is being deleted."
      : !on && !cluster()?.spec.maintenance
        ? `Put cluster ${name} into maintenance first: a machine enters maintenance only ` +
          "while its cluster is in it."
        : "";
    return h("button", { type: "button", name: "machine-maintenance", class: "secondary small",
      disabled: Boolean(why),
      title: why || (on ? "Uncordon the node and apply what was held back"
                        : "Cordon and drain the node; LCM applies nothing new to it"),
      onclick: () => setMachineMaintenance(m, !on) },
    on ? "Leave maintenance" : "Enter maintenance");
  }

  // A new machine is made like the newest machine of its role (else of any role): same
  // provider section, region, update group and labels, with the next free name.
  function machineLike(role) {
    const ours = machines.values().filter(mine);
    const newest = (list) => list.sort((a, b) =>
      (b.metadata.creationTimestamp || "").localeCompare(a.metadata.creationTimestamp || ""))[0];
    const template = newest(ours.filter((m) => (m.spec.role || "worker") === role)) ||
      newest([...ours]);
    if (!template) return null;
    const short = role === "control-plane" ? "cp" : "worker";
    const taken = new Set(ours.map((m) => m.metadata.name));
    let index = 0;
    while (taken.has(`${name}-${short}-${index}`)) index += 1;
    const md = template.metadata;
    // Made like a pool's machine, it is still no machine of that pool: the pool would
    // count it (its label) and delete it with itself (its owner reference).
    const labels = { ...(md.labels || {}), [CLUSTER_LABEL]: name };
    delete labels[POOL_LABEL];
    const owners = (md.ownerReferences || []).filter((o) => o.kind !== "MachinePool");
    return {
      apiVersion: template.apiVersion, kind: "Machine",
      metadata: { name: `${name}-${short}-${index}`, namespace, labels,
                  ...(owners.length ? { ownerReferences: owners } : {}) },
      spec: { ...template.spec, role },
    };
  }

  async function addMachine(role) {
    const body = machineLike(role);
    if (!body) {
      tell("This cluster has no machine to make one like; add one with the API.", true);
      return;
    }
    try {
      await api.create("machines", namespace, body);
      tell(`Machine ${body.metadata.name} (${role}) requested.`);
    } catch (err) {
      tell(`Adding a machine failed: ${err.message}`, true);
    }
  }

  async function deleteMachine(m) {
    const pool = pools.items.get(`${namespace}/${poolOf(m)}`);
    const ok = await confirmTyped({
      title: `Delete machine ${m.metadata.name}?`,
      message: "Its node is drained and deprovisioned, and its host or VM is freed." + (pool
        ? ` It is a machine of pool ${pool.metadata.name}, which makes a new one to keep ` +
          `${wanted(pool)}: to have one fewer, mark it "Remove first" and scale the pool down.`
        : ""),
      expected: m.metadata.name,
    });
    if (!ok) return;
    try {
      await api.remove("machines", namespace, m.metadata.name);
      tell(`Deleting machine ${m.metadata.name}…`);
    } catch (err) {
      tell(`Delete failed: ${err.message}`, true);
    }
  }

  // The delete-machine annotation: the pool deletes the machine first when it next scales
  // down. A merge patch of the annotation alone (null takes it off).
  async function markFirst(m, on) {
    const machine = m.metadata.name;
    try {
      await api.patch("machines", namespace, machine,
        { metadata: { annotations: { [DELETE_MACHINE_ANNOTATION]: on ? "true" : null } } });
      tell(on ? `Machine ${machine} is removed first when pool ${poolOf(m)} scales down.`
        : `Machine ${machine} is no longer marked to be removed first.`);
    } catch (err) {
      tell(`Marking machine ${machine} failed: ${err.message}`, true);
    }
  }

  function markFirstButton(m) {
    if (!poolOf(m)) return "";
    const on = markedFirst(m);
    const why = !session.canWrite(namespace) ? readOnly
      : m.metadata.deletionTimestamp ? "The machine is being deleted." : "";
    return h("button", { type: "button", name: "remove-first", class: "secondary small",
      disabled: Boolean(why),
      title: why || (on ? "Take the mark off: the pool picks by its delete policy"
        : `Pool ${poolOf(m)} deletes this machine first when it next scales down`),
      onclick: () => markFirst(m, !on) },
    on ? "Unmark" : "Remove first");
  }

  // spec.nodeLabels, and the editor (a JSON merge patch of spec.nodeLabels).
  function nodeLabelsCell(m) {
    const why = !session.canWrite(namespace) ? readOnly
      : m.metadata.deletionTimestamp ? "The machine is being deleted." : "";
    return h("div", { class: "stack" }, labelTags(m.spec.nodeLabels),
      h("button", { type: "button", name: "edit-labels", class: "secondary small",
        disabled: Boolean(why),
        title: why || "Set the labels of this machine's node (key=value lines)",
        onclick: () => {
          closeLabels?.();
          closeLabels = editNodeLabels({ machine: m, namespace, tell });
        } }, "Edit labels"));
  }

  function poolCell(m) {
    const pool = poolOf(m);
    if (!pool) return "";
    return h("div", { class: "stack" },
      h("span", { class: "tag", "data-pool": pool, title: "made by this machine pool" }, pool),
      markedFirst(m) ? h("small", { class: "warning", "data-marked": "remove-first" },
        "removed first on scale-down") : "");
  }

  // A machine's phase is its provider's view (Provisioning, Running...); once both halves
  // are done (node running and LCM Ready: the Ready condition) the user sees Ready.
  function machinePhase(m) {
    const ready = (m.status?.conditions || []).find((x) => x.type === "Ready");
    if (!m.metadata.deletionTimestamp && ready?.status === "True") return "Ready";
    return phaseOf(m);
  }

  function renderMachines() {
    const lcmByMachine = new Map(lcm.values().filter(mine).map((l) => [l.spec.machine, l]));
    replace(machinesEl, table([
      { title: "Name", render: (m) => m.metadata.name, cls: "name" },
      { title: "Role", render: (m) => m.spec.role || "worker", cls: "role" },
      { title: "Pool", render: poolCell, cls: "pool" },
      { title: "Phase", render: (m) => badge(machinePhase(m)), cls: "phase" },
      { title: "Provisioning", render: providerProgress },
      { title: "LCM", render: (m) => lcmProgress(lcmByMachine.get(m.metadata.name)),
        cls: "lcm-cell" },
      { title: "LCM phase", render: (m) => m.status?.lcmPhase || "" },
      { title: "Addresses", render: (m) => (m.status?.addresses || []).join(", ") },
      { title: "Node labels", render: nodeLabelsCell, cls: "node-labels-cell" },
      { title: "Maintenance", render: machineMaintenance, cls: "maintenance" },
      { title: "Health check", render: machineHealth, cls: "health" },
      { title: "", cls: "row-actions", render: (m) => [machineMaintenanceButton(m),
        markFirstButton(m),
        h("button", { type: "button", name: "delete-machine",
          class: "danger small", onclick: () => deleteMachine(m),
          disabled: !session.canWrite(namespace) || Boolean(m.metadata.deletionTimestamp) },
        m.metadata.deletionTimestamp ? "Deleting…" : "Delete")] },
    ], machines.values().filter(mine), {
      empty: "No machines.",
      rowAttrs: (m) => ({ "data-machine": m.metadata.name }),
    }));
  }

  function renderConditions() {
    const c = cluster();
    replace(conditionsEl, table([
      { title: "Type", render: (x) => x.type },
      { title: "Status", render: (x) => x.status, cls: "status" },
      { title: "Reason", render: (x) => x.reason || "" },
      { title: "Message", render: (x) => x.message || "" },
      { title: "Since", render: (x) => age(x.lastTransitionTime) },
    ], c?.status?.conditions || [], {
      empty: "No conditions reported yet.",
      rowAttrs: (x) => ({ "data-condition": x.type }),
    }));
  }

  function renderEvents() {
    const objects = [cluster(), ...machines.values().filter(mine), ...poolsOf(pools, name),
      ...checksOf(checks, name), reboot()].filter(Boolean);
    const rows = [...feed, ...transitions(objects)]
      .sort((a, b) => b.time.localeCompare(a.time)).slice(0, MAX_EVENTS);
    replace(eventsEl, table([
      { title: "When", render: (e) => age(e.time) },
      { title: "Object", render: (e) => e.object },
      { title: "Event", render: (e) => e.what },
      { title: "Message", render: (e) => e.message || "" },
    ], rows, { empty: "No events yet.",
      rowAttrs: (e) => ({ "data-event-object": e.object, "data-event": e.what }) }));
  }

  const renderPools = () =>
    poolsView.render(pools, machines.values().filter(mine), cluster());
  const renderReboot = () => rebootView.render(reboot(), cluster());
  const renderChecks = () =>
    renderHealthChecks(checksEl, checks, { name, namespace, region: cluster()?.spec.region });

  const all = () => {
    renderSummary();
    renderMachines();
    renderPools();
    renderChecks();
    renderReboot();
    renderConditions();
    renderEvents();
  };
  clusters.subscribe(all);
  machines.subscribe(() => { renderMachines(); renderPools(); renderEvents(); });
  lcm.subscribe(renderMachines);
  checks.subscribe(() => { renderChecks(); renderEvents(); });
  pools.subscribe(() => { renderPools(); renderEvents(); });
  reboots.subscribe(() => { renderReboot(); renderEvents(); });

  const stopEvents = events({ namespace }, (ev) => {
    const related = (ev.kind === "Cluster" && ev.name === name) ||
      (ev.labels || {})["kaas.containercloud.dev/cluster"] === name ||
      (ev.owners || []).some((o) => o.kind === "Cluster" && o.name === name) ||
      (ev.kind === "MachineHealthCheck" &&
        checks.items.get(`${namespace}/${ev.name}`)?.spec.cluster === name) ||
      (ev.kind === "MachinePool" &&
        pools.items.get(`${namespace}/${ev.name}`)?.spec.cluster === name) ||
      (ev.kind === "GracefulRebootRequest" && ev.name === name);
    if (!related) return;
    feed.unshift({ time: ev.time || new Date().toISOString(),
      object: `${ev.kind}/${ev.name}`, what: ev.type, message: `resourceVersion ${ev.resourceVersion}` });
    feed.length = Math.min(feed.length, MAX_EVENTS);
    renderEvents();
  }, (connected) => { eventsEl.dataset.feed = connected ? "live" : "reconnecting"; });

  return () => {
    clusters.close();
    machines.close();
    lcm.close();
    checks.close();
    pools.close();
    reboots.close();
    closeLabels?.();
    stopEvents();
  };
}
