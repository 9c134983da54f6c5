// Node labels as the console edits them: "key=value" lines (a pool's template labels when
// it is created, a machine's spec.nodeLabels on the cluster page). Only the line format is
// checked here; the gateway judges the label syntax and the reserved prefixes (a 422 naming
// the key), and its reason is shown as it gives it.

import { ApiError, api } from "../api.js";
import { h } from "../dom.js";

// "k=v" lines -> { labels } or { error }: blank lines are skipped, the first "=" splits
// (an empty value is a label too: "node-role.kubernetes.io/storage=").
export function parseLabelLines(text) {
  const labels = {};
  const lines = String(text || "").split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i].trim();
    if (!line) continue;
    const eq = line.indexOf("=");
    const key = eq < 0 ? "" : line.slice(0, eq).trim();
    if (!key) return { error: `Line ${i + 1} (${line}) is not key=value.` };
    if (Object.hasOwn(labels, key)) return { error: `Label ${key} is given twice.` };
    labels[key] = line.slice(eq + 1).trim();
  }
  return { labels };
}

export function labelLines(labels) {
  return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join("\n");
}

// The merge patch from `was` to `now`: changed and new keys with their value, removed keys
// null (a merge patch leaves out what it does not name, so a removal has to be said).
// Keys neither side changed are left out, so a label set meanwhile by someone else stays.
export function labelsPatch(was, now) {
  const patch = {};
  for (const key of Object.keys(was || {})) if (!Object.hasOwn(now, key)) patch[key] = null;
  for (const [key, value] of Object.entries(now)) if (was?.[key] !== value) patch[key] = value;
  return patch;
}

// The gateway's reason: its causes' messages (the key and what is wrong with it), else its
// message.
export function refusal(err) {
  if (err instanceof ApiError && err.causes.length) {
    return err.causes.map((c) => c.message || err.message).join("; ");
  }
  return err.message || String(err);
}

// A machine's labels in its row: one tag each.
export function labelTags(labels) {
  const entries = Object.entries(labels || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h("span", { class: "muted" }, "none");
  return h("div", { class: "node-labels" }, entries.map(([k, v]) =>
    h("span", { class: "tag", "data-label": k }, `${k}=${v}`)));
}

// Edit a machine's spec.nodeLabels in a modal (it outlives the table's redraws). Saving
// sends a JSON merge patch of spec.nodeLabels against the labels as they were when it
// opened; a refusal is shown in it, which stays open. Returns a closer.
export function editNodeLabels({ machine, namespace, tell }) {
  const name = machine.metadata.name;
  const was = { ...(machine.spec.nodeLabels || {}) };
  const text = h("textarea", { name: "nodeLabels", rows: 6, spellcheck: "false",
    "aria-label": `Node labels of machine ${name}`, placeholder: "tier=db" });
  text.value = labelLines(was);
  const error = h("span", { class: "field-error", role: "alert",
                            "data-error-for": "spec.nodeLabels" });
  const save = h("button", { type: "submit", name: "save-labels" }, "Save");
  const clearError = () => {
    error.textContent = "";
    text.removeAttribute("aria-invalid");
  };
  const fail = (why) => {
    error.textContent = why;
    text.setAttribute("aria-invalid", "true");
  };
  text.addEventListener("input", clearError);

  async function submit(e) {
    e.preventDefault();
    clearError();
    const parsed = parseLabelLines(text.value);
    if (parsed.error) {
      fail(parsed.error);
      return;
    }
    const patch = labelsPatch(was, parsed.labels);
    if (!Object.keys(patch).length) {
      dialog.close();
      return;
    }
    save.disabled = true;
    try {
      await api.patch("machines", namespace, name, { spec: { nodeLabels: patch } });
      dialog.close();
      tell(`Node labels of machine ${name} saved: LCM relabels its node.`);
    } catch (err) {
      fail(refusal(err));
      tell(`Saving the node labels of machine ${name} failed: ${err.message}`, true);
    } finally {
      save.disabled = false;
    }
  }

  const dialog = h("dialog", { class: "confirm labels-editor", "data-labels-for": name },
    h("form", { novalidate: true, onsubmit: submit },
      h("h3", {}, `Node labels of machine ${name}`),
      h("p", { class: "hint" }, "One key=value a line. LCM sets them on the node without ",
        "draining it; a label whose line goes is taken off the node."),
      text, error,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close() },
          "Cancel"),
        save)));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  text.focus();
  return () => { if (dialog.open) dialog.close(); };
}
