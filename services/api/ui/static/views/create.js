// Create-cluster flow: region -> provider + credential -> release -> machines -> review.
//
// Only "required" is checked here; the gateway is the judge of every format rule. Its 422
// answers name the field (`details.causes[].field`, e.g. "spec.region"), which this view
// maps back to the form: the wizard returns to the step holding that field and shows the
// message beside it.

import { ApiError, CLUSTER_LABEL, GROUP_VERSION, REGION_LABEL, api, session } from "../api.js";
import { condition, h, replace } from "../dom.js";

const PROVIDERS = ["simulated", "openstack", "vsphere", "baremetal"];
const CREDENTIAL_KINDS = { openstack: "openstackcredentials", vsphere: "vspherecredentials" };
const ROLES = ["control-plane", "worker"];

// Per-provider machine profile fields (`key` is the camelCase spec field); the cluster
// page's new-pool form offers the same (views/pools.js).
export const PROFILES = {
  simulated: [{ key: "flavor", label: "Flavor", options: ["small", "medium", "large"],
                value: "small" }],
  openstack: [
    { key: "flavor", label: "Flavor", required: true, value: "m1.large" },
    { key: "image", label: "Image", required: true, value: "ubuntu-22.04" },
    { key: "network", label: "Network", required: true, value: "" },
    { key: "floatingNetwork", label: "Floating network", value: "" },
  ],
  vsphere: [
    { key: "template", label: "VM template", required: true, value: "" },
    { key: "datacenter", label: "Datacenter", required: true, value: "" },
    { key: "numCpus", label: "vCPUs", type: "number", value: "4" },
    { key: "memoryMib", label: "Memory (MiB)", type: "number", value: "8192" },
  ],
  baremetal: [
    { key: "hostSelector", label: "Host profile (labels, k=v,...)", value: "" },
    { key: "image", label: "Image", value: "ubuntu-22.04" },
  ],
};

const STEPS = [
  { title: "Region", fields: ["metadata.name", "metadata.namespace", "spec.region"] },
  { title: "Provider", fields: ["spec.provider", "spec.credential"] },
  { title: "Release", fields: ["spec.release"] },
  { title: "Machines", fields: ["machines"] },
  { title: "Review", fields: [] },
];

function stepOf(field) {
  const i = STEPS.findIndex((s) => s.fields.some((f) => field === f || field.startsWith(`${f}.`)));
  return i < 0 ? STEPS.length - 1 : i;
}

export function defaultProfile(provider) {
  return Object.fromEntries((PROFILES[provider] || []).map((f) => [f.key, f.value]));
}

function selectorParts(text) {
  return String(text || "").split(",").map((s) => s.trim()).filter(Boolean);
}

// "k=v,k2=v2" -> {k: "v", k2: "v2"}; null when a part is not key=value.
export function parseSelector(text) {
  const out = {};
  for (const part of selectorParts(text)) {
    const [k, ...rest] = part.split("=");
    if (!rest.length || !k.trim()) return null;
    out[k.trim()] = rest.join("=").trim();
  }
  return out;
}

// The host fits the selector as the bare metal provider judges it: every label equal.
const matches = (host, selector) =>
  Object.entries(selector).every(([k, v]) => (host.metadata.labels || {})[k] === v);

// What the provider found when it last logged in with a credential (its Valid condition).
function validity(credential) {
  const valid = condition(credential, "Valid");
  if (!valid) return " — not checked yet";
  return valid.status === "True" ? "" : ` — ${valid.reason}: ${valid.message}`;
}

async function listOrEmpty(plural) {
  try {
    return (await api.list(plural)).items;
  } catch {
    return [];
  }
}

export function renderCreate(root) {
  const writable = (session.self?.projects || []).filter((p) => p.canWrite).map((p) => p.name);
  const state = {
    step: 0,
    name: "",
    namespace: writable.includes(session.project) ? session.project : writable[0] || "",
    region: "",
    provider: "",
    credential: "",
    release: "",
    machines: [],
    errors: {},
    general: "",
    created: null,
    createdMachines: new Set(),
    busy: false,
  };
  const data = { regions: [], releases: [], kaas: [], credentials: {}, hosts: [] };
  const body = h("div", { class: "wizard" }, h("p", { class: "empty" }, "Loading…"));
  root.append(h("section", {}, h("div", { class: "title" }, h("h2", {}, "Create cluster"),
    h("a", { href: "#/clusters", class: "button secondary" }, "Cancel")), body));

  const rerender = () => replace(body, stepper(), h("form", {
    class: "card", novalidate: true,
    onsubmit: (e) => { e.preventDefault(); next(); },
  }, STEP_VIEWS[state.step](), nav()));

  // --- field helpers --------------------------------------------------------------------

  function errorSpan(field) {
    return h("span", { class: "field-error", "data-error-for": field, role: "alert" },
      state.errors[field] || "");
  }

  function field(label, name, control, hint) {
    control.name = name;
    control.id = `f-${name}`;
    control.dataset.field = name;
    if (state.errors[name]) control.setAttribute("aria-invalid", "true");
    return h("div", { class: `field${state.errors[name] ? " invalid" : ""}` },
      h("label", { for: control.id }, label), control, errorSpan(name),
      !hint || hint instanceof Node ? hint || "" : h("small", { class: "hint" }, hint));
  }

  function input(value, onInput, attrs = {}) {
    return h("input", { type: "text", value: value ?? "", autocomplete: "off", ...attrs,
      oninput: (e) => onInput(e.target.value) });
  }

  function select(options, value, onChange, { placeholder } = {}) {
    return h("select", { onchange: (e) => onChange(e.target.value) },
      placeholder !== undefined ? h("option", { value: "" }, placeholder) : "",
      options.map((o) => {
        const [v, text] = Array.isArray(o) ? o : [o, o];
        return h("option", { value: v, selected: v === value }, text);
      }));
  }

  // --- steps ------------------------------------------------------------------------------

  const region = () => data.regions.find((r) => r.metadata.name === state.region);
  const providers = () => {
    const offered = region()?.spec?.providers || [];
    return offered.length ? offered : PROVIDERS;
  };
  // Free hosts as the provider sees them: same project and region, unclaimed, not deleting.
  const freeHosts = () => data.hosts.filter((b) => b.metadata.namespace === state.namespace &&
    b.spec.region === state.region && !b.spec.consumer && !b.metadata.deletionTimestamp);
  const credentials = () => (data.credentials[state.provider] || []).filter((c) =>
    c.metadata.namespace === state.namespace && c.spec.region === state.region);

  // A credential chosen for another project or region is not offered any more: forget it.
  function dropStale() {
    if (!credentials().some((c) => c.metadata.name === state.credential)) state.credential = "";
  }

  function stepRegion() {
    return [
      field("Cluster name", "metadata.name",
        input(state.name, (v) => { state.name = v; }, { placeholder: "demo" }),
        "Lower-case letters, digits and dashes."),
      field("Project", "metadata.namespace",
        select(writable, state.namespace, (v) => { state.namespace = v; dropStale(); },
               { placeholder: "Choose a project" })),
      field("Region", "spec.region",
        select(data.regions.map((r) => r.metadata.name), state.region, (v) => {
          state.region = v;
          if (!providers().includes(state.provider)) {
            state.provider = "";
            state.machines = [];
          }
          dropStale();
        }, { placeholder: "Choose a region" }),
        data.regions.length ? "" : "No regions are registered yet."),
    ];
  }

  function stepProvider() {
    const kind = CREDENTIAL_KINDS[state.provider];
    const creds = credentials();
    const out = [field("Provider", "spec.provider",
      select(providers(), state.provider, (v) => {
        state.provider = v;
        state.credential = "";
        state.machines = defaultMachines(v);
        rerender();
      }, { placeholder: "Choose a provider" }))];
    if (kind) {
      out.push(field("Credential", "spec.credential",
        select(creds.map((c) => [c.metadata.name, c.metadata.name + validity(c)]),
          state.credential,
          (v) => { state.credential = v; }, { placeholder: "Choose a credential" }),
        creds.length ? "" : `No ${kind} in project ${state.namespace}, region ${state.region}.`));
    } else if (state.provider === "baremetal") {
      out.push(h("p", { class: "hint" },
        `${freeHosts().length} free bare metal host(s) in this project and region.`));
    } else if (state.provider) {
      out.push(h("p", { class: "hint" }, "No credential needed for this provider."));
    }
    return out;
  }

  function stepRelease() {
    const supported = new Set((data.kaas[0]?.spec?.supportedClusterReleases || [])
      .map((s) => s.name));
    const options = data.releases.map((r) => [r.metadata.name,
      `${r.metadata.name} (MKE ${r.spec.mkeVersion})${supported.has(r.metadata.name) ? "" :
        " — not supported by this management release"}`]);
    const chosen = data.releases.find((r) => r.metadata.name === state.release);
    return [
      field("Cluster release", "spec.release",
        select(options, state.release, (v) => { state.release = v; rerender(); },
               { placeholder: "Choose a release" })),
      chosen ? h("p", { class: "hint" }, chosen.spec.description || "") : "",
    ];
  }

  function defaultMachines(provider) {
    return [
      { role: "control-plane", count: "1", profile: defaultProfile(provider) },
      { role: "worker", count: "2", profile: defaultProfile(provider) },
    ];
  }

  // For a bare metal group: how many free hosts its host profile (selector) matches, live.
  function hostMatch(m, i) {
    const out = h("small", { class: "hint", "data-hosts-for": i });
    const update = () => {
      const selector = parseSelector(m.profile.hostSelector);
      const n = selector ? freeHosts().filter((b) => matches(b, selector)).length : 0;
      out.textContent = selector
        ? `${n} free host(s) match${Number(m.count) > n ? `; ${m.count} wanted` : ""}.`
        : "Use key=value pairs separated by commas.";
    };
    update();
    return { el: out, update };
  }

  function stepMachines() {
    const fields = PROFILES[state.provider] || [];
    return [
      h("div", { class: "machines" }, state.machines.map((m, i) => {
        const match = state.provider === "baremetal" ? hostMatch(m, i) : null;
        const set = (key) => (v) => { m.profile[key] = v; match?.update(); };
        return h(
        "fieldset", { class: "machine-row", "data-row": i },
        h("legend", {}, `Machine group ${i + 1}`),
        field("Role", `machines.${i}.role`, select(ROLES, m.role, (v) => { m.role = v; })),
        field("Count", `machines.${i}.count`, input(m.count, (v) => { m.count = v; match?.update(); },
          { type: "number", min: "0", step: "1" })),
        fields.map((f) => field(f.label, `machines.${i}.${f.key}`, f.options
          ? select(f.options, m.profile[f.key], set(f.key))
          : input(m.profile[f.key], set(f.key), f.type ? { type: f.type } : {}),
          f.key === "hostSelector" ? match.el : "")),
        h("button", { type: "button", class: "secondary small",
          onclick: () => { state.machines.splice(i, 1); rerender(); } }, "Remove"));
      })),
      h("button", { type: "button", class: "secondary", onclick: () => {
        state.machines.push({ role: "worker", count: "1", profile: defaultProfile(state.provider) });
        rerender();
      } }, "Add machine group"),
      errorSpan("machines"),
    ];
  }

  function stepReview() {
    const counts = {};
    for (const m of state.machines) counts[m.role] = (counts[m.role] || 0) + Number(m.count || 0);
    const rows = [
      ["Name", state.name], ["Project", state.namespace], ["Region", state.region],
      ["Provider", state.provider], ["Credential", state.credential || "—"],
      ["Release", state.release],
      ["Machines", Object.entries(counts).map(([r, n]) => `${n} × ${r}`).join(", ")],
    ];
    return [
      h("dl", { class: "review" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      state.created ? h("p", { class: "hint" },
        `Cluster ${state.created.metadata.name} exists; only the missing machines are created.`)
        : "",
      state.general ? h("p", { class: "error", role: "alert" }, state.general) : "",
    ];
  }

  const STEP_VIEWS = [stepRegion, stepProvider, stepRelease, stepMachines, stepReview];

  function stepper() {
    return h("ol", { class: "stepper" }, STEPS.map((s, i) => h("li", {
      class: i === state.step ? "current" : i < state.step ? "done" : "",
      "aria-current": i === state.step ? "step" : false,
    }, i < state.step
      ? h("a", { href: "javascript:void 0", onclick: () => { state.step = i; rerender(); } },
          s.title)
      : s.title)));
  }

  function nav() {
    const last = state.step === STEPS.length - 1;
    return h("div", { class: "actions" },
      state.step > 0 ? h("button", { type: "button", class: "secondary",
        onclick: () => { state.step -= 1; rerender(); } }, "Back") : "",
      h("button", { type: "submit", disabled: state.busy },
        last ? (state.busy ? "Creating…" : "Create cluster") : "Next"));
  }

  // --- validation and submission ------------------------------------------------------------

  function required() {
    const errors = {};
    const need = (ok, f, msg = "Required.") => { if (!ok) errors[f] = msg; };
    need(state.name.trim(), "metadata.name");
    need(state.namespace, "metadata.namespace");
    need(state.region, "spec.region");
    need(state.provider, "spec.provider");
    if (CREDENTIAL_KINDS[state.provider]) need(state.credential, "spec.credential");
    need(state.release, "spec.release");
    need(state.machines.length, "machines", "Add at least one machine group.");
    need(state.machines.some((m) => m.role === "control-plane" && Number(m.count) > 0),
         "machines", "At least one control-plane machine is needed.");
    state.machines.forEach((m, i) => {
      const n = Number(m.count);
      need(Number.isInteger(n) && n >= 0 && String(m.count).trim() !== "", `machines.${i}.count`,
           "A whole number, 0 or more.");
      for (const f of PROFILES[state.provider] || []) {
        if (f.required) need(String(m.profile[f.key] || "").trim(), `machines.${i}.${f.key}`);
      }
      if (state.provider === "baremetal") {
        need(parseSelector(m.profile.hostSelector), `machines.${i}.hostSelector`,
             "Use key=value pairs separated by commas.");
      }
    });
    return errors;
  }

  function next() {
    const errors = required();
    const here = Object.keys(errors).filter((f) => stepOf(f) <= state.step);
    state.errors = Object.fromEntries(here.map((f) => [f, errors[f]]));
    if (here.length) {
      state.step = Math.min(...here.map(stepOf));
      rerender();
      return;
    }
    if (state.step < STEPS.length - 1) {
      state.step += 1;
      rerender();
      return;
    }
    submit();
  }

  function clusterBody() {
    const spec = { region: state.region, provider: state.provider, release: state.release };
    if (state.credential) spec.credential = state.credential;
    return {
      apiVersion: GROUP_VERSION, kind: "Cluster",
      metadata: { name: state.name.trim(), namespace: state.namespace,
                  labels: { [REGION_LABEL]: state.region } },
      spec,
    };
  }

  function profileSpec(m) {
    const out = {};
    for (const f of PROFILES[state.provider] || []) {
      const raw = m.profile[f.key];
      if (raw === "" || raw === undefined) continue;
      if (f.key === "hostSelector") out.hostSelector = parseSelector(raw);
      else out[f.key] = f.type === "number" ? Number(raw) : raw;
    }
    return out;
  }

  function machineBodies(cluster) {
    const seen = {};
    const out = [];
    state.machines.forEach((m, row) => {
      for (let k = 0; k < Number(m.count); k += 1) {
        const short = m.role === "control-plane" ? "cp" : "worker";
        const index = seen[short] || 0;
        seen[short] = index + 1;
        out.push({ row, body: {
          apiVersion: GROUP_VERSION, kind: "Machine",
          metadata: {
            name: `${cluster.metadata.name}-${short}-${index}`,
            namespace: cluster.metadata.namespace,
            labels: { [CLUSTER_LABEL]: cluster.metadata.name, [REGION_LABEL]: state.region },
            ownerReferences: [{ apiVersion: GROUP_VERSION, kind: "Cluster",
              name: cluster.metadata.name, uid: cluster.metadata.uid,
              controller: true, blockOwnerDeletion: true }],
          },
          spec: { cluster: cluster.metadata.name, role: m.role, region: state.region,
                  [state.provider]: profileSpec(m) },
        } });
      }
    });
    return out;
  }

  function showServerError(err, mapField) {
    state.errors = {};
    state.general = "";
    if (err instanceof ApiError && err.causes.length) {
      for (const c of err.causes) {
        const f = mapField(c.field);
        if (f) state.errors[f] = c.message || err.message;
        else state.general = err.message;
      }
      const steps = Object.keys(state.errors).map(stepOf);
      if (steps.length) state.step = Math.min(...steps);
    } else {
      state.general = err.message;
    }
    rerender();
  }

  const clusterField = (f) => (STEPS.some((s) => s.fields.includes(f)) ? f : null);
  const machineField = (row) => (f) => {
    if (f === "spec.role") return `machines.${row}.role`;
    const m = f.match(new RegExp(`^spec\\.${state.provider}\\.(\\w+)`));
    return m ? `machines.${row}.${m[1]}` : null;
  };

  async function submit() {
    state.busy = true;
    state.general = "";
    rerender();
    try {
      if (!state.created) {
        try {
          state.created = await api.create("clusters", state.namespace, clusterBody());
        } catch (err) {
          showServerError(err, clusterField);
          return;
        }
      }
      for (const { row, body: machine } of machineBodies(state.created)) {
        if (state.createdMachines.has(machine.metadata.name)) continue;
        try {
          await api.create("machines", state.namespace, machine);
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 409)) {
            showServerError(err, machineField(row));
            return;
          }
        }
        state.createdMachines.add(machine.metadata.name);
      }
      const c = state.created.metadata;
      state.busy = false;
      location.hash = `#/clusters/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.name)}`;
    } finally {
      if (state.busy) {
        state.busy = false;
        rerender();
      }
    }
  }

  // --- data ------------------------------------------------------------------------------

  (async () => {
    const [regions, releases, kaas, osc, vsc, hosts] = await Promise.all([
      listOrEmpty("regions"), listOrEmpty("clusterreleases"), listOrEmpty("kaasreleases"),
      listOrEmpty("openstackcredentials"), listOrEmpty("vspherecredentials"),
      listOrEmpty("baremetalhosts"),
    ]);
    Object.assign(data, { regions, kaas, hosts,
      releases: releases.sort((a, b) => a.spec.version.localeCompare(b.spec.version,
        undefined, { numeric: true })),
      credentials: { openstack: osc, vsphere: vsc } });
    if (regions.length === 1) state.region = regions[0].metadata.name;
    const supported = (kaas[0]?.spec?.supportedClusterReleases || []).map((s) => s.name);
    state.release = supported.at(-1) || data.releases.at(-1)?.metadata.name || "";
    if (!writable.length) {
      replace(body, h("p", { class: "error" },
        "You may not create clusters in any project."));
      return;
    }
    rerender();
  })();
}
