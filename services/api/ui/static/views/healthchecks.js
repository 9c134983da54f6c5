// A cluster's MachineHealthChecks on its page (read-only): what each covers and allows,
// how many machines it finds healthy, whether remediation is held (RemediationAllowed
// False, TooManyUnhealthy) and which machines it is rebooting; and, per machine, the
// HealthCheckSucceeded condition the check writes on it while it has something to say.
// Spells out the model's defaults (shared/models/kinds.py), which the API omits.

import { age, condition, h, replace } from "../dom.js";

export const EXAMPLE = "examples/health-check/";
const DEFAULTS = { maxUnhealthy: "40%", strategy: "Reboot", retryLimit: 2,
                   retryIntervalSeconds: 300, nodeStartupTimeoutSeconds: 1200 };
const REMEDIATION_FAILED = "RemediationFailed";
const TARGET_TONE = { Rebooting: "warn", Rebooted: "info", Failed: "bad" };
const SEVERITY_TONE = { Error: "bad", Warning: "warn", Info: "info" };

const spelled = (value, fallback) => (value === undefined || value === null ? fallback : value);

// The check's own Ready: Healthy, Remediating, TooManyUnhealthy, RemediationFailed,
// ClusterNotFound; "not judged yet" until the region's LCM has written a status.
function readiness(mhc) {
  const ready = condition(mhc, "Ready");
  if (!ready) {
    return h("span", { class: "badge info", "data-ready": "pending",
      title: `waiting for the LCM of region ${mhc.spec.region} to judge it` }, "Not judged yet");
  }
  const tone = ready.status === "True" ? "ok" : SEVERITY_TONE[ready.severity] || "info";
  return h("span", { class: `badge ${tone}`, "data-ready": ready.status,
                     title: ready.message || "" },
    ready.reason || (ready.status === "True" ? "Ready" : "NotReady"));
}

function covers(spec) {
  const labels = Object.entries(spec.selector?.matchLabels || {});
  if (!labels.length) return "every machine of the cluster";
  return ["machines labelled ", labels.map(([k, v], i) =>
    [i ? ", " : "", h("code", {}, `${k}=${v}`)])];
}

function unhealthyWhen(spec) {
  const conditions = (spec.unhealthyConditions || []).map((c) =>
    `${c.type} ${c.status} for ${spelled(c.timeoutSeconds, 0)}s`);
  const startup = spelled(spec.nodeStartupTimeoutSeconds, DEFAULTS.nodeStartupTimeoutSeconds);
  if (startup) conditions.push(`node not up ${startup}s after start`);
  return conditions.join("; ") || "never";
}

function remediationText(spec) {
  const r = spec.remediation || {};
  const limit = spelled(r.retryLimit, DEFAULTS.retryLimit);
  const interval = spelled(r.retryIntervalSeconds, DEFAULTS.retryIntervalSeconds);
  return `${spelled(r.strategy, DEFAULTS.strategy)}, at most ${limit} time${
    limit === 1 ? "" : "s"}, ${interval}s apart`;
}

// RemediationAllowed False (TooManyUnhealthy): nothing is rebooted; a warning, not an error.
function held(mhc) {
  const allowed = condition(mhc, "RemediationAllowed");
  if (!allowed || allowed.status !== "False") return "";
  return h("p", { class: "remediation-held warning", "data-reason": allowed.reason || "" },
    h("strong", {}, allowed.reason || "RemediationNotAllowed"), ": ", allowed.message || "",
    " ", h("small", { class: "muted" }, `(since ${age(allowed.lastTransitionTime)})`));
}

// Why the check is not Ready, unless the held-remediation warning already says it.
function readyMessage(mhc) {
  const ready = condition(mhc, "Ready");
  if (ready?.status !== "False" || !ready.message) return "";
  const allowed = condition(mhc, "RemediationAllowed");
  if (allowed?.status === "False" && allowed.message === ready.message) return "";
  const tone = { Error: "error", Warning: "warning" }[ready.severity] || "muted";
  return h("p", { class: `ready-message ${tone}` }, ready.message);
}

function when(timestamp) {
  if (!timestamp) return "";
  return h("time", { datetime: timestamp, title: timestamp }, `${age(timestamp)} ago`);
}

function targets(mhc) {
  const list = mhc.status?.targets || [];
  const limit = spelled(mhc.spec.remediation?.retryLimit, DEFAULTS.retryLimit);
  if (!list.length) return h("p", { class: "empty targets" }, "No machine is being remediated.");
  return h("table", { class: "targets" },
    h("thead", {}, h("tr", {}, ["Machine", "State", "Reboots", "Last reboot", "Reason",
      "Message"].map((t) => h("th", {}, t)))),
    h("tbody", {}, list.map((t) => h("tr", { "data-target": t.machine, "data-state": t.state },
      h("td", { class: "machine" }, t.machine),
      h("td", { class: "state" },
        h("span", { class: `badge ${TARGET_TONE[t.state] || "info"}` }, t.state)),
      h("td", { class: "attempts" }, `${spelled(t.attempts, 0)} of ${limit}`),
      h("td", { class: "last" }, when(t.lastAttemptTime)),
      h("td", { class: "reason" }, t.reason || ""),
      h("td", { class: `message${t.state === "Failed" ? " error" : ""}` }, t.message || "")))));
}

function card(mhc) {
  const { spec } = mhc;
  const s = mhc.status || {};
  const judged = Boolean(condition(mhc, "Ready")) || Boolean(s.observedGeneration);
  const count = (v) => (judged ? String(spelled(v, 0)) : "—");
  return h("div", { class: "card health-check", "data-health-check": mhc.metadata.name },
    h("div", { class: "title" }, h("h4", {}, mhc.metadata.name), readiness(mhc)),
    h("dl", { class: "facts" },
      h("dt", {}, "Max unhealthy"),
      h("dd", { class: "max-unhealthy" },
        String(spelled(spec.maxUnhealthy, DEFAULTS.maxUnhealthy))),
      h("dt", {}, "Healthy"),
      h("dd", { class: "healthy", title: "healthy / expected machines" },
        judged ? `${count(s.currentHealthy)}/${count(s.expectedMachines)}` : "—"),
      h("dt", {}, "Remediations allowed"),
      h("dd", { class: "remediations-allowed" }, count(s.remediationsAllowed)),
      h("dt", {}, "Covers"), h("dd", { class: "covers" }, covers(spec)),
      h("dt", {}, "Unhealthy when"), h("dd", { class: "unhealthy-when" }, unhealthyWhen(spec)),
      h("dt", {}, "Remediation"), h("dd", { class: "remediation" }, remediationText(spec))),
    readyMessage(mhc),
    held(mhc),
    targets(mhc));
}

// The page's "Health checks" section: `checks` is the namespace's live collection.
export function renderHealthChecks(el, checks, { name, namespace, region }) {
  if (checks.error && !checks.loaded) {
    replace(el, h("p", { class: "error" }, `Health checks could not be listed: ${
      checks.error.message}`));
    return;
  }
  if (!checks.loaded) return;
  const mine = checksOf(checks, name);
  if (mine.length) {
    replace(el, mine.map(card));
    return;
  }
  replace(el, h("div", { class: "empty health-hint" },
    h("p", {}, "No health checks: machines whose nodes hang are not rebooted automatically."),
    h("p", {}, "Add one with ", h("code", {}, `ccctl apply -f ${EXAMPLE}`), " after setting ",
      h("code", {}, `metadata.namespace: ${namespace}`), ", ",
      h("code", {}, `spec.cluster: ${name}`),
      region ? [" and ", h("code", {}, `spec.region: ${region}`)] : "",
      " in its demo.yaml: it reboots a machine whose Ready has been False or Unknown for ",
      "5 minutes, at most twice, and none while more than 40% of the machines are down.")));
}

// A machine's HealthCheckSucceeded when False: the reason it is being remediated (warning
// colour), or RemediationFailed once the check gave up on it (error colour).
export function machineHealth(m) {
  const got = condition(m, "HealthCheckSucceeded");
  if (!got || got.status !== "False") return "";
  const failed = got.reason === REMEDIATION_FAILED || got.severity === "Error";
  return h("div", { class: "stack", "data-reason": got.reason || "" },
    h("span", { class: `badge ${failed ? "bad" : "warn"}` }, got.reason || "Unhealthy"),
    got.message ? h("small", { class: failed ? "error" : "warning" }, got.message) : "");
}

// The cluster's checks (`checks` holds the cluster's namespace only).
export function checksOf(checks, name) {
  return checks.values().filter((c) => c.spec?.cluster === name);
}
