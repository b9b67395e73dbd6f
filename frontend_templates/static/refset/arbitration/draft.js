// Draft decisions of one arbitration task, saved as the arbitrator works.
//
// Every change goes to localStorage at once (a reload or a closed tab loses
// nothing), then to PUT /arbitration-tasks/{id}/decisions/ with the version it was
// based on. If someone saved a newer version first (another tab, another session)
// the server answers 409: the queue stops, keeps the local decisions, and offers to
// merge them onto the newer version (the items changed here win) or to discard them.
//
// States: "saved", "pending", "saving", "retrying", "error", "conflict", "locked".

import { api, HttpError } from "../viewer/autosave.js";

const DEBOUNCE_MS = 600;

function copy(value) {
  return JSON.parse(JSON.stringify(value));
}

export class DraftSaver extends EventTarget {
  constructor({ apiRoot, taskId, version, decisions }) {
    super();
    this.url = `${apiRoot}arbitration-tasks/${taskId}/`;
    this.key = `refset.arbitration.${taskId}`;
    this.version = version;
    this.local = { clusters: {}, labels: {}, ...copy(decisions || {}) };
    this.dirty = new Set();
    this.changes = 0;
    this.state = "saved";
    this.message = "";
    this.timer = null;
    this.running = null;
    this.failures = 0;
  }

  _setState(state, message = "") {
    this.state = state;
    this.message = message;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, message } }));
  }

  _persist() {
    try {
      if (!this.dirty.size) localStorage.removeItem(this.key);
      else localStorage.setItem(this.key, JSON.stringify({ local: this.local, dirty: [...this.dirty], base: this.version }));
    } catch {
      /* storage unavailable: the server copy is still saved */
    }
  }

  discardBuffer() {
    this.dirty.clear();
    try {
      localStorage.removeItem(this.key);
    } catch {
      /* nothing kept */
    }
  }

  /** Decisions left unsaved by an earlier visit: true when some were restored. */
  restore() {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(this.key) || "null");
    } catch {
      saved = null;
    }
    if (!saved || !saved.dirty || !saved.dirty.length) return false;
    const server = copy(this.local);
    this.local = saved.local;
    this.dirty = new Set(saved.dirty);
    if (saved.base !== this.version) {
      // Saved elsewhere since: do not overwrite; let the arbitrator merge.
      this.serverCopy = server;
      this._setState(
        "conflict",
        interpolate(
          gettext("These decisions were saved elsewhere (now version %s) after your unsaved changes here. Your changes are kept in this browser."),
          [this.version],
        ),
      );
      return true;
    }
    this._schedule();
    return true;
  }

  get(kind, id) {
    return (this.local[kind] || {})[String(id)] || null;
  }

  /** Set (or clear with null) the decision on one item. */
  set(kind, id, value) {
    if (this.state === "locked") return;
    const items = this.local[kind] || (this.local[kind] = {});
    if (value == null) delete items[String(id)];
    else items[String(id)] = copy(value);
    this.dirty.add(`${kind}:${id}`);
    this.changes += 1;
    this._persist();
    if (this.state !== "conflict") this._schedule();
  }

  _schedule(delay = DEBOUNCE_MS) {
    clearTimeout(this.timer);
    if (this.state !== "saving" && this.state !== "retrying") this._setState("pending");
    this.timer = setTimeout(() => this.flush(), delay);
  }

  get idle() {
    return !this.running && !this.dirty.size;
  }

  /** Save now; resolves when this save (or the one running) is done. */
  async flush() {
    clearTimeout(this.timer);
    if (this.running) {
      await this.running;
      if (this.dirty.size && this.state !== "conflict" && this.state !== "error") return this.flush();
      return;
    }
    if (!this.dirty.size || this.state === "conflict" || this.state === "locked") return;
    this.running = this._send().finally(() => (this.running = null));
    await this.running;
  }

  async _send() {
    const sentAt = this.changes;
    const body = { decisions: copy(this.local), version: this.version };
    this._setState("saving");
    try {
      const { data } = await api("PUT", `${this.url}decisions/`, body);
      this.version = data.version;
      this.failures = 0;
      if (this.changes === sentAt) {
        this.dirty.clear();
        this._persist();
        this._setState("saved");
      } else {
        this._persist();
        this._schedule();
      }
      this.dispatchEvent(new CustomEvent("saved", { detail: data }));
    } catch (error) {
      if (error instanceof HttpError && error.status === 409) {
        this._setState(
          "conflict",
          error.body.code === "version_conflict"
            ? interpolate(
                gettext("Someone saved these decisions elsewhere first (version %s; you edited version %s). Nothing was overwritten and your changes are kept here."),
                [error.body.current_version, this.version],
              )
            : error.message,
        );
      } else if (error instanceof HttpError && error.status === 400) {
        const detail = error.body.detail;
        this._setState("error", Array.isArray(detail) ? detail.join("; ") : error.message);
      } else if (error instanceof HttpError && error.status === 403) {
        this._setState("locked", error.message);
      } else {
        this.failures += 1;
        const wait = Math.min(30000, 1000 * 2 ** Math.min(this.failures, 5));
        this._setState("retrying", interpolate(gettext("Saving failed (%s); retrying…"), [error.message]));
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.flush(), wait);
      }
    }
  }

  /** After a conflict: load the newest version, re-apply the items changed here, save. */
  async merge() {
    const { data } = await api("GET", this.url);
    const merged = { clusters: {}, labels: {}, ...copy(data.decisions || {}) };
    for (const key of this.dirty) {
      const [kind, id] = key.split(":");
      const mine = (this.local[kind] || {})[id];
      if (!merged[kind]) merged[kind] = {};
      if (mine == null) delete merged[kind][id];
      else merged[kind][id] = mine;
    }
    this.local = merged;
    this.version = data.version;
    this.changes += 1;
    this._setState("pending");
    this._persist();
    await this.flush();
    return data;
  }
}
