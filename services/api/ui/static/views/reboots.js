// A cluster's rolling reboot on its page (live): the GracefulRebootRequest named after the
// cluster, if any - its phase, how many machines are rebooted of how many, why it waits or
// failed (its Ready condition), and each machine's step (Waiting, Draining, Rebooting,
// Uncordoning, Done, Skipped, Failed) with the controller's message (a refused drain, say).
// Once done the request is gone (LCM deletes it, as MCC does) and the cluster's
// GracefulReboot condition tells how the last one ended.
// A writer starts one for every machine of the cluster (LCM takes them in the upgrade
// order), cancels one under way (deleting it: LCM lets go of the node it holds) or clears a
// finished one, each after a confirmation; the gateway's refusals are shown as it gives them.

import { GROUP_VERSION, api, session } from "../api.js";
import { age, badge, condition, confirmAction, h, progress, replace, table } from "../dom.js";

export const EXAMPLE = "examples/graceful-reboot/";
const STATE_TONE = { Done: "ok", Skipped: "info", Failed: "bad", Waiting: "info" };
// Steps whose node the request holds cordoned: deleting the request lets go of it.
const HOLDING = ["Draining", "Rebooting", "Uncordoning", "Failed"];

// A completed request that holds no node: a record, cleared without a question.
const isRecord = (request) => request.status?.phase === "Completed" &&
  !(request.status?.targets || []).some((t) => HOLDING.includes(t.state));

function stateBadge(state) {
  return h("span", { class: `badge ${STATE_TONE[state] || "warn"}`, "data-step": state }, state);
}

export function rebootSection({ namespace, name, tell, readOnly }) {
  const el = h("div", { class: "card reboot", "data-reboot": "none" });

  async function start(cluster) {
    const ok = await confirmAction({
      title: `Reboot every node of cluster ${name}?`,
      message: h("ul", {},
        h("li", {}, "One machine at a time, control plane first, then workers by update group."),
        h("li", {}, "Each node is cordoned and drained, power cycled by its provider, and ",
          "uncordoned once its agent is back."),
        h("li", {}, "A refused drain (a PodDisruptionBudget, say) holds the reboot there.")),
      action: "Reboot nodes",
    });
    if (!ok) return;
    try {
      await api.create("gracefulrebootrequests", namespace, {
        apiVersion: GROUP_VERSION, kind: "GracefulRebootRequest",
        metadata: { name, namespace }, spec: { region: cluster.spec.region },
      });
      tell(`Rolling reboot of cluster ${name} requested.`);
    } catch (err) {
      tell(`Starting the reboot failed: ${err.message}`, true);
    }
  }

  async function remove(request) {
    const finished = isRecord(request);
    const ok = finished || await confirmAction({
      title: `Cancel the rolling reboot of cluster ${name}?`,
      message: "Machines not started yet are not rebooted; a node being drained or waiting " +
        "for its reboot is let go (uncordoned) as it is.",
      action: "Cancel reboot",
    });
    if (!ok) return;
    try {
      await api.remove("gracefulrebootrequests", namespace, name);
      tell(finished ? `Rolling reboot record of ${name} cleared.`
                    : `Rolling reboot of cluster ${name} cancelled.`);
    } catch (err) {
      tell(`Removing the reboot failed: ${err.message}`, true);
    }
  }

  function render(request, cluster) {
    const writable = session.canWrite(namespace);
    const why = !writable ? readOnly : !cluster ? "The cluster is not loaded yet."
      : cluster.metadata.deletionTimestamp ? "The cluster is being deleted." : "";
    if (!request) {
      el.dataset.reboot = "none";
      // A request is deleted once done (as MCC's): the cluster's condition keeps the record.
      const last = cluster && condition(cluster, "GracefulReboot");
      replace(el,
        last
          ? h("p", { class: "reboot-last", "data-reason": last.reason || "" },
            "Last rolling reboot: ", h("strong", {}, last.reason || last.status), " — ",
            last.message || "", " ",
            h("small", { class: "muted" }, `(${age(last.lastTransitionTime)} ago)`))
          : "",
        h("p", { class: "empty" }, "No rolling reboot under way. ",
          h("small", { class: "muted" }, `(or: ccctl apply -f ${EXAMPLE})`)),
        h("button", { type: "button", name: "reboot-button", class: "secondary",
          disabled: Boolean(why), title: why || "Drain and reboot every node, one at a time",
          onclick: () => start(cluster) }, "Reboot all nodes"));
      return;
    }
    const s = request.status || {};
    const phase = request.metadata.deletionTimestamp ? "Deleting" : s.phase || "Pending";
    el.dataset.reboot = phase;
    const ready = condition(request, "Ready");
    const targets = s.targets || [];
    const finished = isRecord(request);
    replace(el,
      h("div", { class: "facts-row" }, badge(phase),
        progress(s.rebooted || 0, s.total || targets.length,
          `${s.rebooted || 0} of ${s.total || targets.length} rebooted`),
        h("button", { type: "button", name: "reboot-remove", class: "secondary small",
          disabled: !writable || Boolean(request.metadata.deletionTimestamp),
          title: !writable ? readOnly : "",
          onclick: () => remove(request) }, finished ? "Clear" : "Cancel reboot")),
      ready && ready.status !== "True" && ready.message
        ? h("p", { class: `reboot-message ${ready.severity === "Error" ? "error" : "muted"}` },
          ready.message)
        : "",
      table([
        { title: "Machine", render: (t) => t.machine },
        { title: "Step", render: (t) => stateBadge(t.state || "Waiting") },
        { title: "Message", render: (t) => t.message || "" },
      ], targets, {
        empty: "Not taken up yet by the region's LCM.",
        rowAttrs: (t) => ({ "data-reboot-machine": t.machine }),
      }));
  }

  return { el, render };
}
