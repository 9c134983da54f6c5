// Tiny DOM helpers: build elements declaratively, format values, show dialogs.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "value" || key === "checked" || key === "selected" || key === "disabled") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function age(timestamp) {
  if (!timestamp) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(timestamp)) / 1000);
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function condition(obj, type) {
  return (obj?.status?.conditions || []).find((c) => c.type === type);
}

// A phase for any object: status.phase, else its Ready condition, else "Pending".
export function phaseOf(obj) {
  if (obj?.metadata?.deletionTimestamp) return "Deleting";
  if (obj?.status?.phase) return obj.status.phase;
  const ready = condition(obj, "Ready");
  if (ready) return ready.status === "True" ? "Ready" : ready.reason || "NotReady";
  return "Pending";
}

export function badge(phase) {
  const tone = {
    Ready: "ok", Running: "ok", Provisioned: "ok", Done: "ok", Healthy: "ok",
    Failed: "bad", Error: "bad", Unhealthy: "bad",
    Deleting: "warn", Upgrading: "warn",
    Maintenance: "maint",
  }[phase] || "info";
  return h("span", { class: `badge ${tone}` }, phase || "—");
}

export function progress(done, total, label) {
  const pct = total > 0 ? Math.min(100, Math.round((100 * done) / total)) : 0;
  return h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-valuenow": pct, title: label || `${done}/${total}` },
    h("div", { class: "bar", style: `width:${pct}%` }),
    h("span", { class: "label" }, label || `${done}/${total}`),
  );
}

export function table(columns, rows, { empty = "Nothing here yet.", rowAttrs } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.title)))),
    h("tbody", {}, rows.map((row) =>
      h("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) =>
        h("td", { class: c.cls }, c.render(row)))))),
  );
}

// A modal confirmation; resolves true only when the user types `expected` and confirms.
export function confirmTyped({ title, message, expected, action = "Delete" }) {
  return new Promise((resolve) => {
    const input = h("input", { type: "text", name: "confirm", autocomplete: "off",
                               "aria-label": `Type ${expected} to confirm` });
    const ok = h("button", { type: "submit", value: "confirm", class: "danger", disabled: true },
               action);
    input.addEventListener("input", () => { ok.disabled = input.value !== expected; });
    const dialog = h(
      "dialog",
      { class: "confirm" },
      h("form", { method: "dialog" },
        h("h3", {}, title),
        h("p", {}, message),
        h("label", {}, "Type ", h("code", {}, expected), " to confirm", input),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary",
                        onclick: () => dialog.close("cancel") }, "Cancel"),
          ok)),
    );
    dialog.addEventListener("close", () => {
      const confirmed = dialog.returnValue === "confirm" && input.value === expected;
      dialog.remove();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

// A modal confirmation for a reversible action; resolves true only when the user confirms.
// `message` may be a string or nodes (a list of what the action does).
export function confirmAction({ title, message, action }) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm" },
      h("form", { method: "dialog" },
        h("h3", {}, title),
        h("div", { class: "message" }, message),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary",
                        onclick: () => dialog.close("cancel") }, "Cancel"),
          h("button", { type: "submit", value: "confirm" }, action))),
    );
    dialog.addEventListener("close", () => {
      const confirmed = dialog.returnValue === "confirm";
      dialog.remove();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
