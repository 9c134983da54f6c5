// The management API client: bearer-token requests, Status errors and live collections.
//
// `live(plural, namespace)` lists a collection, then follows the gateway's watch over a
// websocket (`?watch=true&resourceVersion=N`, one event per message). A dropped watch
// resumes from the last version seen, so nothing is lost; a 410 Gone relists. Views
// subscribe and re-render on every change: no page reload. (Not a chunked HTTP stream: a
// browser keeps six connections per host, each stream holds one for as long as it runs,
// and a cluster page follows six collections - two tabs of it used to stall.)

export const GROUP_VERSION = "kaas.containercloud.dev/v1alpha1";
export const CLUSTER_LABEL = "kaas.containercloud.dev/cluster";
export const REGION_LABEL = "kaas.containercloud.dev/region";
// On a Machine a MachinePool made: the pool's name; and, set by a user, the mark that picks
// the Machine first when its pool scales down (shared/models/meta.py).
export const POOL_LABEL = "kaas.containercloud.dev/machine-pool";
export const DELETE_MACHINE_ANNOTATION = "kaas.containercloud.dev/delete-machine";
const BASE = `/apis/${GROUP_VERSION}`;
const TOKEN_KEY = "ccloud.token";
const RETRY_MS = [250, 500, 1000, 2000, 5000];
const WATCH_PROTOCOL = "ccloud.watch.v1";
const EVENTS_PROTOCOL = "ccloud.events.v1";

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  self: null,
  project: sessionStorage.getItem("ccloud.project") || "",
  setToken(token) {
    this.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  setProject(project) {
    this.project = project;
    sessionStorage.setItem("ccloud.project", project);
  },
  canWrite(namespace, { credentials = false } = {}) {
    const p = (this.self?.projects || []).find((x) => x.name === namespace);
    if (!p) return Boolean(this.self?.operator);
    return credentials ? p.canWriteCredentials : p.canWrite;
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.reason = body?.reason || "";
    // Causes carry Kubernetes field paths ("spec.region"; "$.spec.region" accepted too).
    this.causes = (body?.details?.causes || []).map((c) => ({
      ...c, field: String(c.field || "").replace(/^\$\.?/, ""),
    }));
  }
}

export function path(plural, namespace, name, subresource) {
  let p = namespace ? `${BASE}/namespaces/${encodeURIComponent(namespace)}/${plural}`
                    : `${BASE}/${plural}`;
  if (name) p += `/${encodeURIComponent(name)}`;
  if (subresource) p += `/${subresource}`;
  return p;
}

// The token as a websocket subprotocol (a browser cannot set the Authorization header).
function bearerProtocol() {
  const token = btoa(session.token).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `base64url.bearer.authorization.k8s.io.${token}`;
}

function socketUrl(target) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${target}`;
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  if (session.token) h.Authorization = `Bearer ${session.token}`;
  return h;
}

export async function request(method, url, body, { contentType = "application/json" } = {}) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = contentType;
  }
  const response = await fetch(url, init);
  let payload = null;
  const text = await response.text();
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = { message: text };
  }
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("ccloud:unauthorized"));
    throw new ApiError(response.status, payload);
  }
  return payload;
}

export const api = {
  get: (plural, ns, name) => request("GET", path(plural, ns, name)),
  list: (plural, ns) => request("GET", path(plural, ns)),
  create: (plural, ns, obj) => request("POST", path(plural, ns), obj),
  patch: (plural, ns, name, patch) =>
    request("PATCH", path(plural, ns, name), patch, {
      contentType: "application/merge-patch+json",
    }),
  remove: (plural, ns, name) => request("DELETE", path(plural, ns, name)),
  self: () => request("GET", "/apis/ccloud/v1/self"),
  authConfig: () => request("GET", "/ui/auth-config"),
};

function key(obj) {
  return `${obj.metadata.namespace || ""}/${obj.metadata.name}`;
}

// A live view of one collection. `items` is a Map keyed "namespace/name".
export class LiveCollection {
  constructor(plural, namespace = "") {
    this.plural = plural;
    this.namespace = namespace;
    this.items = new Map();
    this.loaded = false;
    this.error = null;
    this.listeners = new Set();
    this.socket = null;
    this.closed = false;
    this.rv = "";
  }

  subscribe(fn) {
    this.listeners.add(fn);
    if (this.loaded || this.error) fn(this);
    return () => this.listeners.delete(fn);
  }

  notify(change) {
    for (const fn of this.listeners) fn(this, change);
  }

  values() {
    return [...this.items.values()].sort((a, b) => key(a).localeCompare(key(b)));
  }

  async start() {
    while (!this.closed) {
      try {
        if (!this.rv) await this.relist();
        // Closed while the list was in flight (the page was left): no stream, which nothing
        // would abort and which would hold one of the browser's few connections to the host.
        if (this.closed) return;
        await this.follow();
      } catch (err) {
        if (this.closed) return;
        if (err instanceof ApiError && err.status === 410) {
          this.rv = "";
          continue;
        }
        this.error = err;
        this.notify({ type: "ERROR", error: err });
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return;
      }
      if (this.closed) return;
      await this.pause();
    }
  }

  async pause() {
    this.attempt = (this.attempt || 0) + 1;
    const ms = RETRY_MS[Math.min(this.attempt, RETRY_MS.length) - 1];
    await new Promise((resolve) => setTimeout(resolve, ms));
  }

  async relist() {
    const list = await request("GET", path(this.plural, this.namespace));
    this.items = new Map(list.items.map((o) => [key(o), o]));
    this.rv = list.metadata.resourceVersion || "";
    this.loaded = true;
    this.error = null;
    this.notify({ type: "RESET" });
  }

  // Until the watch ends (resolves) or the gateway sends an ERROR event (rejects with it).
  // A socket that never opened (a refused token, a gateway going away) relists next: the
  // list's request says why, if anything is wrong.
  follow() {
    return new Promise((resolve, reject) => {
      const target = `${path(this.plural, this.namespace)}?watch=true&resourceVersion=${
        encodeURIComponent(this.rv)}`;
      const socket = new WebSocket(socketUrl(target), [WATCH_PROTOCOL, bearerProtocol()]);
      let opened = false;
      this.socket = socket;
      socket.onopen = () => { opened = true; this.attempt = 0; };
      socket.onmessage = (msg) => {
        try {
          this.apply(JSON.parse(msg.data));
        } catch (err) {
          socket.onclose = null;
          socket.close();
          this.socket = null;
          reject(err);
        }
      };
      socket.onclose = () => {
        this.socket = null;
        if (!opened) this.rv = "";
        resolve();
      };
    });
  }

  apply(event) {
    if (event.type === "ERROR") {
      throw new ApiError(event.object?.code || 500, event.object);
    }
    const obj = event.object;
    this.rv = obj.metadata.resourceVersion || this.rv;
    if (event.type === "DELETED") this.items.delete(key(obj));
    else this.items.set(key(obj), obj);
    this.notify({ type: event.type, object: obj });
  }

  close() {
    this.closed = true;
    this.listeners.clear();
    if (this.socket) this.socket.close();
  }
}

export function live(plural, namespace = "") {
  const collection = new LiveCollection(plural, namespace);
  collection.start();
  return collection;
}

// Change events (websocket): calls `onEvent(event)` per message and `onState(connected)`
// when the socket opens or drops (the view shows whether its feed is live); returns a closer.
export function events(query, onEvent, onState = () => {}) {
  const params = new URLSearchParams(query);
  let socket = null;
  let closed = false;
  let after = "";
  let failures = 0;
  const open = () => {
    if (after) params.set("after", after);
    socket = new WebSocket(socketUrl(`/apis/events?${params}`),
      [EVENTS_PROTOCOL, bearerProtocol()]);
    socket.onopen = () => { failures = 0; onState(true); };
    socket.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      after = String(data.seq);
      onEvent(data.event);
    };
    socket.onclose = () => {
      failures += 1;
      if (!closed) onState(false);
      // A gateway without a bus refuses the upgrade: give up quietly after a few tries.
      if (!closed && failures < 4) setTimeout(open, 1000 * failures);
    };
  };
  open();
  return () => { closed = true; socket?.close(); };
}
