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

import { ApiError, DELETE_MACHINE_ANNOTATION, POOL_LABEL, api, session } from "../api.js";
import { badge, condition, confirmAction, h, phaseOf, replace } from "../dom.js";

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
  const el = h("div", { class: "machine-pools" });
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
    if (pools.error && !pools.loaded) {
      replace(el, h("p", { class: "error" }, `Machine pools could not be listed: ${
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
      replace(el, hint(cluster?.spec || {}));
      return;
    }
    const wantedCards = latest.pools.map(cardFor);
    wantedCards.forEach(update);
    // Moving a node would take the focus from a field being typed in: only when needed.
    const same = wantedCards.length === el.children.length &&
      wantedCards.every((c, i) => el.children[i] === c.el);
    if (!same) replace(el, wantedCards.map((c) => c.el));
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
