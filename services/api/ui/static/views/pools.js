// A cluster's MachinePools on its page (live): how many worker machines each keeps
// (spec.replicas) and how many it has (status: current, Ready, made from its current
// template), its phase and, while its Ready condition is not True, why; which of the
// cluster's machines are its own (the machine-pool label). Scaling writes spec.replicas as
// a JSON merge patch (the gateway judges it: a refusal is shown by the pool); a pool
// machine can be marked to go first when its pool shrinks (the delete-machine annotation).
// Spells out the model's defaults (shared/models/kinds.py), which the API omits.
//
// Each pool's card is kept across updates (only its facts are redrawn), so a count being
// typed into its replicas field survives the status changes that keep coming while it scales.
//
// A writer can also create a pool here (a form kept across updates as well): name, replicas,
// delete policy, strategy, the provider section of its machines (the newest worker's, as
// "Add worker" makes one, else the create wizard's defaults) and node labels; POSTed
// through the gateway, whose 422 is shown by the field its cause names.

import {
  ApiError, DELETE_MACHINE_ANNOTATION, GROUP_VERSION, POOL_LABEL, api, session,
} from "../api.js";
import { badge, condition, confirmAction, h, phaseOf, replace } from "../dom.js";
import { PROFILES, defaultProfile, parseSelector } from "./create.js";
import { parseLabelLines } from "./labels.js";

export const EXAMPLE = "examples/machine-pool/";
const DEFAULTS = { replicas: 1, deletePolicy: "Newest" };
const SEVERITY_CLASS = { Error: "error", Warning: "warning" };

const spelled = (value, fallback) => (value === undefined || value === null ? fallback : value);

export const wanted = (pool) => spelled(pool.spec?.replicas, DEFAULTS.replicas);

// The pool that made a machine ("" for a machine added on its own).
export const poolOf = (machine) => machine.metadata?.labels?.[POOL_LABEL] || "";

export const markedFirst = (machine) =>
  machine.metadata?.annotations?.[DELETE_MACHINE_ANNOTATION] === "true";

// The cluster's pools (`pools` holds the cluster's namespace only).
export function poolsOf(pools, name) {
  return pools.values().filter((p) => p.spec?.cluster === name);
}

// The machines a pool made, of the cluster's machines.
function machinesOf(pool, machines) {
  return machines.filter((m) => poolOf(m) === pool.metadata.name);
}

// Until the region's LCM has written a status, counts are unknown, not 0.
function observed(pool) {
  const s = pool.status || {};
  return Boolean(s.phase || s.observedGeneration || condition(pool, "Ready"));
}

function phase(pool) {
  if (!observed(pool) && !pool.metadata.deletionTimestamp) {
    return h("span", { class: "badge info", "data-phase": "",
      title: `waiting for the LCM of region ${pool.spec.region} to take it up` },
    "Not observed yet");
  }
  const shown = badge(phaseOf(pool));
  shown.dataset.phase = phaseOf(pool);
  return shown;
}

// Why the pool is not Ready (ScalingUp, WaitingForMachines, ClusterNotFound...).
function readyMessage(pool) {
  const ready = condition(pool, "Ready");
  if (!ready || ready.status === "True") return "";
  return h("p", { class: `ready-message ${SEVERITY_CLASS[ready.severity] || "muted"}`,
                  "data-reason": ready.reason || "" },
  h("strong", {}, ready.reason || "NotReady"), ready.message ? `: ${ready.message}` : "");
}

function memberList(own) {
  if (!own.length) return h("span", { class: "muted" }, "none yet");
  return h("ul", { class: "pool-machines" }, own.map((m) => h("li", {
    "data-pool-machine": m.metadata.name },
  m.metadata.name,
  m.metadata.deletionTimestamp ? h("span", { class: "badge warn" }, "deleting")
    : markedFirst(m) ? h("span", { class: "badge warn", title: "removed first on the next " +
        "scale-down" }, "removed first") : "")));
}

function facts(pool, own) {
  const s = pool.status || {};
  const seen = observed(pool);
  const count = (v) => (seen ? String(spelled(v, 0)) : "—");
  return [
    h("div", { class: "title" }, h("h4", {}, pool.metadata.name), phase(pool)),
    h("dl", { class: "facts" },
      h("dt", {}, "Replicas wanted"), h("dd", { class: "replicas" }, String(wanted(pool))),
      h("dt", {}, "Current"), h("dd", { class: "current-replicas",
        title: "machines of the pool, not being deleted" }, count(s.replicas)),
      h("dt", {}, "Ready"), h("dd", { class: "ready-replicas" }, count(s.readyReplicas)),
      h("dt", {}, "Up to date"), h("dd", { class: "updated-replicas",
        title: "made from the pool's current template" }, count(s.updatedReplicas)),
      h("dt", {}, "Delete policy"), h("dd", { class: "delete-policy",
        title: "which machines go when it scales down, after those marked to be removed " +
          "first, those made from an older template and those not Ready" },
      spelled(pool.spec.deletePolicy, DEFAULTS.deletePolicy)),
      h("dt", {}, "Machines"), h("dd", { class: "members" }, memberList(own))),
    readyMessage(pool),
  ];
}

// The page's "Machine pools" section. `tell(text, failed)` is the page's notice.
export function poolsSection({ namespace, name, tell, readOnly }) {
  const listEl = h("div", { class: "pool-list" });
  const creator = createPoolForm({ namespace, name, tell });
  const el = h("div", { class: "machine-pools" }, listEl, creator.el);
  const cards = new Map(); // pool name -> its kept card, facts and scale form
  let latest = { pools: [], machines: [] };

  async function scale(card) {
    const pool = latest.pools.find((p) => p.metadata.name === card.name);
    if (!pool) return;
    const text = card.input.value.trim();
    card.error.textContent = "";
    card.input.removeAttribute("aria-invalid");
    if (text === "") {
      card.error.textContent = "Enter the number of machines the pool should keep.";
      card.input.setAttribute("aria-invalid", "true");
      return;
    }
    const replicas = Number(text);
    const own = machinesOf(pool, latest.machines).filter((m) => !m.metadata.deletionTimestamp);
    const going = own.length - replicas;
    if (Number.isInteger(replicas) && replicas >= 0 && going > 0) {
      const marked = own.filter(markedFirst).map((m) => m.metadata.name);
      const ok = await confirmAction({
        title: `Scale machine pool ${card.name} down to ${replicas}?`,
        message: h("ul", {},
          h("li", {}, `${going} of its ${own.length} machines ${going === 1 ? "is" : "are"} `,
            "deleted: each one's node is drained and deprovisioned."),
          h("li", {}, "First to go: ", marked.length ? `${marked.join(", ")} (marked), then ` : "",
            "those made from an older template, those not Ready, then the ",
            spelled(pool.spec.deletePolicy, DEFAULTS.deletePolicy).toLowerCase(), ".")),
        action: "Scale down",
      });
      if (!ok) return;
    }
    card.button.disabled = true;
    try {
      await api.patch("machinepools", namespace, card.name, { spec: { replicas } });
      tell(`Machine pool ${card.name} is scaling to ${replicas} machine${
        replicas === 1 ? "" : "s"}.`);
    } catch (err) {
      const why = err instanceof ApiError ? err.message : `${err.message || err}`;
      card.error.textContent = why;
      card.input.setAttribute("aria-invalid", "true");
      tell(`Scaling machine pool ${card.name} failed: ${why}`, true);
    } finally {
      card.button.disabled = false;
      update(card);
    }
  }

  function cardFor(pool) {
    const poolName = pool.metadata.name;
    if (cards.has(poolName)) return cards.get(poolName);
    const card = { name: poolName, shown: null };
    card.input = h("input", { type: "number", name: "replicas", min: 0, step: 1,
      inputmode: "numeric", "aria-label": `Replicas of machine pool ${poolName}`,
      oninput: () => {
        card.error.textContent = "";
        card.input.removeAttribute("aria-invalid");
      } });
    card.button = h("button", { type: "submit", name: "scale", class: "secondary" }, "Scale");
    card.error = h("span", { class: "field-error scale-error", role: "alert",
                             "data-error-for": "spec.replicas" });
    // novalidate: the gateway judges the count (its bounds are the model's), and says why.
    card.form = h("form", { class: "scale", novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      scale(card);
    } }, h("label", {}, "Replicas ", card.input), card.button, card.error);
    card.facts = h("div", { class: "pool-facts" });
    card.el = h("div", { class: "card machine-pool", "data-machine-pool": poolName },
      card.facts, card.form);
    cards.set(poolName, card);
    return card;
  }

  // Redraw a card's facts; the form stays, and its field follows spec.replicas unless the
  // operator has typed another count into it.
  function update(card) {
    const pool = latest.pools.find((p) => p.metadata.name === card.name);
    if (!pool) return;
    replace(card.facts, facts(pool, machinesOf(pool, latest.machines)));
    const want = wanted(pool);
    if (card.shown === null || card.input.value === String(card.shown)) {
      card.input.value = String(want);
    }
    card.shown = want;
    const why = !session.canWrite(namespace) ? readOnly
      : pool.metadata.deletionTimestamp ? "The machine pool is being deleted." : "";
    card.input.disabled = Boolean(why);
    card.button.disabled = Boolean(why);
    card.button.title = why || "Set how many machines the pool keeps";
  }

  // `pools`: the namespace's live MachinePools; `machines`: the cluster's Machines.
  function render(pools, machines, cluster) {
    creator.update(cluster, machines);
    if (pools.error && !pools.loaded) {
      replace(listEl, h("p", { class: "error" }, `Machine pools could not be listed: ${
        pools.error.message}`));
      cards.clear();
      return;
    }
    if (!pools.loaded) return;
    latest = { pools: poolsOf(pools, name), machines };
    for (const poolName of [...cards.keys()]) {
      if (!latest.pools.some((p) => p.metadata.name === poolName)) cards.delete(poolName);
    }
    if (!latest.pools.length) {
      replace(listEl, hint(cluster?.spec || {}));
      return;
    }
    const wantedCards = latest.pools.map(cardFor);
    wantedCards.forEach(update);
    // Moving a node would take the focus from a field being typed in: only when needed.
    const same = wantedCards.length === listEl.children.length &&
      wantedCards.every((c, i) => listEl.children[i] === c.el);
    if (!same) replace(listEl, wantedCards.map((c) => c.el));
  }

  function hint({ region, provider }) {
    return h("div", { class: "empty pool-hint" },
      h("p", {}, "No machine pools: this cluster's workers are added and deleted one by one."),
      h("p", {}, "Keep a number of workers made from one template with ",
        h("code", {}, `ccctl apply -f ${EXAMPLE}`), " after setting ",
        h("code", {}, `metadata.namespace: ${namespace}`), ", ",
        h("code", {}, `spec.cluster: ${name}`),
        region ? [" and ", h("code", {}, `spec.region: ${region}`)] : "",
        " in its workers.yaml",
        provider && provider !== "baremetal"
          ? [" (and its template's ", h("code", {}, "baremetal"), " section made a ",
            h("code", {}, provider), " one)"] : "",
        "; the pool is then scaled here."));
  }

  return { el, render };
}

// --- creating a pool ------------------------------------------------------------------------

const DELETE_POLICIES = ["Newest", "Oldest"];
const STRATEGIES = ["OnDelete", "RollingUpdate"];
const LABELS_FIELD = "spec.template.spec.nodeLabels";

// The machine a new pool's machines are made like, as "Add worker" picks one: the newest
// worker, else the newest machine.
function newestLike(machines) {
  const newest = (list) => [...list].sort((a, b) =>
    (b.metadata.creationTimestamp || "").localeCompare(a.metadata.creationTimestamp || ""))[0];
  return newest(machines.filter((m) => (m.spec.role || "worker") === "worker")) ||
    newest(machines);
}

// The wizard's defaults as a provider section (what it would send for a machine).
function defaultSection(provider) {
  const out = {};
  for (const f of PROFILES[provider] || []) {
    const raw = defaultProfile(provider)[f.key];
    if (raw === "" || raw === undefined) continue;
    if (f.key === "hostSelector") out.hostSelector = parseSelector(raw) || {};
    else out[f.key] = f.type === "number" ? Number(raw) : raw;
  }
  return out;
}

function shown(f, section) {
  const value = section[f.key];
  if (f.key === "hostSelector") {
    return Object.entries(value || {}).map(([k, v]) => `${k}=${v}`).join(",");
  }
  return value === undefined || value === null ? "" : String(value);
}

function createPoolForm({ namespace, name, tell }) {
  let cluster = null;
  let machines = [];
  let provider = "";
  let base = {}; // the provider section the form started from (fields it does not show kept)
  const errors = new Map(); // field path -> its error span
  const controls = new Map(); // field path -> its control

  const toggle = h("button", { type: "button", name: "create-pool", class: "secondary",
    onclick: () => open() }, "Create machine pool");
  const general = h("p", { class: "error", role: "alert", "data-error-for": "" });
  const fieldsEl = h("div", {});
  const providerEl = h("fieldset", { class: "pool-provider" });
  const submit = h("button", { type: "submit", name: "create-pool-submit" }, "Create");
  const form = h("form", { class: "card pool-create", novalidate: true, hidden: true,
    onsubmit: (e) => { e.preventDefault(); create(); } },
  h("h4", {}, "New machine pool"), fieldsEl, providerEl, general,
  h("div", { class: "actions" },
    h("button", { type: "button", class: "secondary", name: "cancel-pool",
      onclick: () => close() }, "Cancel"),
    submit));
  const el = h("div", { class: "pool-create-area", hidden: true }, toggle, form);

  function field(label, path, control, hint) {
    control.name = path;
    control.id = `pool-${path}`;
    control.addEventListener("input", () => clearError(path));
    controls.set(path, control);
    const error = h("span", { class: "field-error", role: "alert", "data-error-for": path });
    errors.set(path, error);
    return h("div", { class: "field" }, h("label", { for: control.id }, label), control, error,
      hint ? h("small", { class: "hint" }, hint) : "");
  }

  const select = (options, value) => h("select", {},
    options.map((o) => h("option", { value: o, selected: o === value }, o)));

  function clearError(path) {
    if (errors.has(path)) errors.get(path).textContent = "";
    controls.get(path)?.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    for (const path of errors.keys()) clearError(path);
    general.textContent = "";
  }

  function showError(path, message) {
    errors.get(path).textContent = message;
    controls.get(path)?.setAttribute("aria-invalid", "true");
  }

  // The form, fresh: the provider section from the newest worker as it is now.
  function build() {
    errors.clear();
    controls.clear();
    provider = cluster.spec.provider;
    const like = newestLike(machines);
    base = like?.spec?.[provider] ? structuredClone(like.spec[provider])
      : defaultSection(provider);
    const labels = h("textarea", { rows: 3, spellcheck: "false", placeholder: "tier=pool" });
    replace(fieldsEl,
      field("Name", "metadata.name", h("input", { type: "text", autocomplete: "off",
        placeholder: `${name}-workers` }), "Its machines are named <name>-0, <name>-1, ..."),
      field("Replicas", "spec.replicas", h("input", { type: "number", min: 0, step: 1,
        value: "1", inputmode: "numeric" })),
      field("Delete policy", "spec.deletePolicy", select(DELETE_POLICIES, "Newest"),
        "Which machines go first when it scales down, after marked, outdated and not Ready ones"),
      field("Strategy", "spec.strategy", select(STRATEGIES, "OnDelete"),
        "OnDelete: a template change applies to machines made after it; RollingUpdate: the " +
        "pool replaces the older ones (one extra machine at a time)"),
      field("Node labels", LABELS_FIELD, labels,
        "key=value, one a line: on the node of every machine of the pool"));
    const section = `spec.template.spec.${provider}`;
    const sectionError = h("span", { class: "field-error", role: "alert",
                                     "data-error-for": section });
    errors.set(section, sectionError);
    replace(providerEl,
      h("legend", {}, `Machines (${provider})`),
      h("small", { class: "hint pool-source" }, like
        ? `As machine ${like.metadata.name}.` : "The create wizard's defaults."),
      (PROFILES[provider] || []).map((f) => field(f.label, `${section}.${f.key}`, f.options
        ? select(f.options, shown(f, base))
        : h("input", { type: f.type || "text", autocomplete: "off", value: shown(f, base) }))),
      sectionError);
    general.textContent = "";
  }

  function open() {
    if (!cluster) return;
    build();
    toggle.hidden = true;
    form.hidden = false;
    controls.get("metadata.name").focus();
  }

  function close() {
    form.hidden = true;
    toggle.hidden = false;
  }

  // The cause's field, or the nearest enclosing one the form shows. A template's label
  // error names the template spec: its message says nodeLabels.
  function pathOf(cause) {
    let f = cause.field || "";
    if (/^spec\.template(\.spec)?$/.test(f) && /^nodeLabels\b/.test(cause.message || "")) {
      f = LABELS_FIELD;
    }
    return [...errors.keys()].filter((p) => f === p || f.startsWith(`${p}.`) ||
      f.startsWith(`${p}[`)).sort((a, b) => b.length - a.length)[0] || "";
  }

  function body(values) {
    const section = { ...base };
    for (const f of PROFILES[provider] || []) {
      const raw = values[f.key];
      if (raw === "") delete section[f.key];
      else if (f.key === "hostSelector") section.hostSelector = parseSelector(raw);
      else section[f.key] = f.type === "number" ? Number(raw) : raw;
    }
    const template = { [provider]: section };
    if (Object.keys(values.labels).length) template.nodeLabels = values.labels;
    return {
      apiVersion: GROUP_VERSION, kind: "MachinePool",
      metadata: { name: values.name, namespace },
      spec: { cluster: name, region: cluster.spec.region, replicas: values.replicas,
              deletePolicy: values.deletePolicy, strategy: { type: values.strategy },
              template: { spec: template } },
    };
  }

  async function create() {
    clearErrors();
    const value = (path) => controls.get(path).value.trim();
    const bad = {};
    const values = { name: value("metadata.name"), deletePolicy: value("spec.deletePolicy"),
                     strategy: value("spec.strategy") };
    if (!values.name) bad["metadata.name"] = "Required.";
    if (value("spec.replicas") === "") bad["spec.replicas"] = "Required.";
    values.replicas = Number(value("spec.replicas"));
    const labels = parseLabelLines(controls.get(LABELS_FIELD).value);
    if (labels.error) bad[LABELS_FIELD] = labels.error;
    values.labels = labels.labels;
    for (const f of PROFILES[provider] || []) {
      const path = `spec.template.spec.${provider}.${f.key}`;
      values[f.key] = value(path);
      if (f.required && !values[f.key]) bad[path] = "Required.";
      if (f.key === "hostSelector" && values[f.key] && !parseSelector(values[f.key])) {
        bad[path] = "Use key=value pairs separated by commas.";
      }
    }
    if (Object.keys(bad).length) {
      for (const [path, message] of Object.entries(bad)) showError(path, message);
      return;
    }
    submit.disabled = true;
    try {
      await api.create("machinepools", namespace, body(values));
      close();
      tell(`Machine pool ${values.name} created: LCM makes its ${values.replicas} machine${
        values.replicas === 1 ? "" : "s"}.`);
    } catch (err) {
      const causes = err instanceof ApiError ? err.causes : [];
      let unplaced = !causes.length;
      for (const c of causes) {
        const path = pathOf(c);
        if (path) showError(path, c.message || err.message);
        else unplaced = true;
      }
      if (unplaced) general.textContent = err.message;
      tell(`Creating machine pool ${values.name} failed: ${err.message}`, true);
    } finally {
      submit.disabled = false;
    }
  }

  // Shown to writers once the cluster is known; not offered while the cluster is deleted.
  function update(c, ms) {
    cluster = c || null;
    machines = ms;
    el.hidden = !cluster || !session.canWrite(namespace);
    const gone = Boolean(cluster?.metadata.deletionTimestamp);
    toggle.disabled = gone;
    toggle.title = gone ? "The cluster is being deleted: no new pools join it."
      : "A pool keeps a number of worker machines made from one template";
    if (gone) close();
  }

  return { el, update };
}
