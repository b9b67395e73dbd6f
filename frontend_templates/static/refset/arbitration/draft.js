// Draft decisions of one arbitration task, saved as the arbitrator works.
//
// Every change goes to localStorage at once (a reload or a closed tab loses
// nothing), then to PUT /arbitration-tasks/{id}/decisions/ with the version it was
// based on. If someone saved a newer version first (another tab, another session)
// the server answers 409: the queue stops, keeps the local decisions, and offers to
// merge them onto the newer version (the items changed here win) or to discard them.
// Debounce, retries with backoff (and at once when the browser is online again) and
// the visible state are the shared save queue's (common/savequeue.js).

import { api, HttpError } from "../common/http.js";
import { SaveQueueCore } from "../common/savequeue.js";

function copy(value) {
  return JSON.parse(JSON.stringify(value));
}

// Put one item's decision into `decisions` (null removes it). Clusters and labels
// are maps by id; findings added by the arbitrator are a list, each by its key.
function put(decisions, kind, id, value) {
  if (kind === "added") {
    const list = (decisions.added || []).filter((a) => a.key !== String(id));
    const at = (decisions.added || []).findIndex((a) => a.key === String(id));
    if (value != null) list.splice(at < 0 ? list.length : at, 0, copy(value));
    if (list.length) decisions.added = list;
    else delete decisions.added;
    return;
  }
  const items = decisions[kind] || (decisions[kind] = {});
  if (value == null) delete items[String(id)];
  else items[String(id)] = copy(value);
}

export class DraftSaver extends SaveQueueCore {
  constructor({ apiRoot, taskId, version, decisions }) {
    super({ debounceMs: 600, firstRetryMs: 2000, maxBackoffMs: 30000 });
    this.url = `${apiRoot}arbitration-tasks/${taskId}/`;
    this.key = `refset.arbitration.${taskId}`;
    this.version = version;
    this.local = { clusters: {}, labels: {}, ...copy(decisions || {}) };
    this.dirty = new Set();
    this.changes = 0;
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
    this.changed();
    return true;
  }

  get(kind, id) {
    if (kind === "added") return (this.local.added || []).find((a) => a.key === String(id)) || null;
    return (this.local[kind] || {})[String(id)] || null;
  }

  /** Set (or clear with null) the decision on one item ("added": a finding no
   * reader marked, by its key). */
  set(kind, id, value) {
    if (this.state === "locked") return;
    put(this.local, kind, id, value);
    this.dirty.add(`${kind}:${id}`);
    this.changes += 1;
    this._persist();
    this.changed();
  }

  get pending() {
    return this.dirty.size > 0;
  }

  async _save() {
    const sentAt = this.changes;
    const { data } = await api("PUT", `${this.url}decisions/`, { decisions: copy(this.local), version: this.version });
    this.version = data.version;
    if (this.changes === sentAt) this.dirty.clear();
    this._persist();
    this.dispatchEvent(new CustomEvent("saved", { detail: data }));
  }

  /** 409: saved elsewhere first; 403: no longer this arbitrator's to change. */
  _stopFor(error) {
    if (error instanceof HttpError && error.status === 409) {
      return [
        "conflict",
        error.body.code === "version_conflict"
          ? interpolate(
              gettext("Someone saved these decisions elsewhere first (version %s; you edited version %s). Nothing was overwritten and your changes are kept here."),
              [error.body.current_version, this.version],
            )
          : error.message,
      ];
    }
    if (error instanceof HttpError && error.status === 403) return ["locked", error.message];
    return super._stopFor(error);
  }

  _retryText(error) {
    return interpolate(gettext("Saving failed (%s); retrying…"), [error.message]);
  }

  /** After a conflict: load the newest version, re-apply the items changed here, save. */
  async merge() {
    const { data } = await api("GET", this.url);
    const merged = { clusters: {}, labels: {}, ...copy(data.decisions || {}) };
    for (const key of this.dirty) {
      const [kind, id] = key.split(":");
      put(merged, kind, id, this.get(kind, id));
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
