// SPDX-License-Identifier: MIT
// topics.js - the live topic tree: the last value of each topic that matches the
// page's filter, and MQTT filter matching (OASIS MQTT 5.0, 4.7).

export function filterValid(f) {
  if (!f) return false;
  const lv = f.split("/");
  return lv.every((l, i) => (l === "#" ? i === lv.length - 1 : l === "+" || !/[+#]/.test(l)));
}

export function matches(filter, topic) {
  const f = filter.split("/"), t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "#" || f[0] === "+")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

export class Topics {
  constructor() { this.filter = "#"; this.map = new Map(); }

  setFilter(f) {
    this.filter = f;
    for (const t of [...this.map.keys()]) if (!matches(f, t)) this.map.delete(t);
  }

  // true when the message was kept (its topic matches the filter).
  add(topic, payload, retain) {
    if (!matches(this.filter, topic)) return false;
    const old = this.map.get(topic);
    this.map.set(topic, { payload, retain, count: (old?.count ?? 0) + 1, at: new Date() });
    return true;
  }

  // A nested {name, topic?, entry?, children: Map} for rendering.
  tree() {
    const root = { name: "", children: new Map() };
    const natural = (a, b) => a.localeCompare(b, "en", { numeric: true });
    for (const t of [...this.map.keys()].sort(natural)) {
      let node = root;
      for (const level of t.split("/")) {
        if (!node.children.has(level)) node.children.set(level, { name: level, children: new Map() });
        node = node.children.get(level);
      }
      node.topic = t;
      node.entry = this.map.get(t);
    }
    return root;
  }
}
