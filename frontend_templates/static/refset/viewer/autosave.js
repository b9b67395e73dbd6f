// Draft saving. Changes are buffered in localStorage at once (so a reload, a closed
// tab or a network failure loses nothing), then sent after a short pause. Each
// update or delete carries the version it was based on; the server answers 409 if
// another tab or window saved first, and the queue stops with a clear message
// instead of overwriting. Debounce, retries with backoff (and at once when the
// browser says it is online again) and the visible state are the shared save
// queue's (common/savequeue.js); this module knows what a read sends.
//
// The buffer is one localStorage entry per task holding one record per finding
// uid; a queue only writes or removes the records it made, so two tabs of the
// same read never wipe each other's unsaved changes.

import { api, HttpError } from "../common/http.js";
import { SaveQueueCore } from "../common/savequeue.js";

/** JSON with sorted keys: the server (PostgreSQL jsonb) does not keep key order. */
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => value[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value === undefined ? null : value);
}

const same = (a, b) => canonical(a) === canonical(b);

export class SaveQueue extends SaveQueueCore {
  /**
   * server: {uid: {id, version, measurements}} for findings the server has; caseLabel: {values, version}.
   * taskVersion: the task's version as loaded; it rises by one with each of our writes.
   */
  constructor({ apiRoot, taskId, store, server, caseLabel, taskVersion }) {
    super({ debounceMs: 700, firstRetryMs: 1000, maxBackoffMs: 10000 });
    this.apiRoot = apiRoot;
    this.taskId = taskId;
    this.store = store;
    this.server = server;
    this.caseLabel = { values: caseLabel.values || {}, version: caseLabel.version || 0 };
    this.caseLabelDirty = false;
    this.taskVersion = taskVersion;
    this.dirty = new Set();
    // Changes per finding, counted: a save only clears a finding that did not
    // change again while its request was in flight.
    this.edits = new Map();
    this.key = `refset.read.${taskId}`;
    this.mine = new Set();
    this.caseLabelMine = false;
    store.addEventListener("change", (e) => {
      if (e.detail.why !== "restore") this.touch(e.detail.uid);
    });
  }

  // -- local buffer ------------------------------------------------------------

  _readBuffer() {
    try {
      const raw = JSON.parse(localStorage.getItem(this.key) || "null");
      return raw && typeof raw === "object" ? { findings: raw.findings || {}, caseLabel: raw.caseLabel || null } : null;
    } catch {
      return null;
    }
  }

  _writeBuffer(buffer) {
    try {
      if (!Object.keys(buffer.findings).length && !buffer.caseLabel) localStorage.removeItem(this.key);
      else localStorage.setItem(this.key, JSON.stringify({ ...buffer, at: Date.now() }));
    } catch {
      // Storage full or disabled: the in-memory queue still saves.
    }
  }

  _persist() {
    const buffer = this._readBuffer() || { findings: {}, caseLabel: null };
    for (const uid of this.mine) {
      if (this.dirty.has(uid)) {
        buffer.findings[uid] = { value: this.store.get(uid), base: this.server[uid] || null };
      } else {
        delete buffer.findings[uid];
        this.mine.delete(uid);
      }
    }
    if (this.caseLabelDirty) buffer.caseLabel = this.caseLabel;
    else if (this.caseLabelMine) buffer.caseLabel = null;
    this.caseLabelMine = this.caseLabelDirty;
    this._writeBuffer(buffer);
  }

  /**
   * Re-apply changes a previous page left unsaved; returns how many. A buffered
   * change that the server already holds (its answer was lost when the tab closed)
   * is dropped; any other keeps the version it was based on, so a newer save from
   * another tab answers 409 instead of being overwritten.
   */
  restoreBuffer() {
    const raw = this._readBuffer();
    if (!raw) return 0;
    let n = 0;
    for (const [uid, entry] of Object.entries(raw.findings)) {
      const loaded = this.store.get(uid);
      const arrived = entry.value ? loaded && same(loaded, entry.value) : !loaded && !this.server[uid];
      this.mine.add(uid);
      if (arrived) continue;
      // A create whose answer was lost is on the server already (same uid): the
      // loaded version is then the base.
      if (entry.base) this.server[uid] = entry.base;
      this.store.restore(uid, entry.value);
      this.dirty.add(uid);
      n += 1;
    }
    if (raw.caseLabel) {
      this.caseLabelMine = true;
      if (!same(raw.caseLabel.values, this.caseLabel.values)) {
        this.caseLabel = raw.caseLabel;
        this.caseLabelDirty = true;
        n += 1;
      }
    }
    this._persist();
    if (n) this.schedule(0);
    return n;
  }

  /** Forget this page's unsaved changes (another tab's records stay). */
  discardBuffer() {
    this.dirty.clear();
    this.caseLabelDirty = false;
    this._persist();
  }

  // -- queue ---------------------------------------------------------------------

  touch(uid) {
    if (this.stopped) return;
    this.edits.set(uid, (this.edits.get(uid) || 0) + 1);
    this.dirty.add(uid);
    this.mine.add(uid);
    this._persist();
    this.changed();
  }

  setCaseLabel(values) {
    if (this.stopped) return;
    this.caseLabel = { ...this.caseLabel, values };
    this.caseLabelDirty = true;
    this._persist();
    this.changed();
  }

  get pending() {
    return this.dirty.size > 0 || this.caseLabelDirty;
  }

  async _save() {
    for (const uid of [...this.dirty]) {
      const edits = this.edits.get(uid);
      await this._sendFinding(uid);
      // Changed while the request was in flight: still dirty, sent on the next round.
      if (this.edits.get(uid) === edits) this.dirty.delete(uid);
      this._persist();
    }
    if (this.caseLabelDirty) {
      const sent = this.caseLabel.values;
      const { data } = await api("PUT", `${this.apiRoot}reading-tasks/${this.taskId}/case-label/`, {
        values: sent,
        version: this.caseLabel.version,
      });
      this.taskVersion += 1;
      const changedMeanwhile = this.caseLabel.values !== sent;
      this.caseLabel = { values: this.caseLabel.values, version: data.version };
      this.caseLabelDirty = changedMeanwhile;
      this._persist();
    }
  }

  async _sendFinding(uid) {
    const value = this.store.get(uid);
    const known = this.server[uid];
    const base = `${this.apiRoot}findings/`;
    if (!value) {
      if (known) {
        await api("DELETE", `${base}${known.id}/?version=${known.version}`);
        this.taskVersion += 1;
        delete this.server[uid];
      }
      return;
    }
    const body = {
      task: this.taskId,
      uid,
      finding_type: value.finding_type,
      geometry: value.geometry,
      attributes: value.attributes,
      source: value.source,
    };
    if (!known) {
      const { status, data } = await api("POST", base, body);
      if (status === 201) this.taskVersion += 1;
      this._saved(uid, data);
      if (status === 200 && !["finding_type", "geometry", "attributes", "source"].every((k) => same(data[k], body[k]))) {
        // Retried create that had arrived: now send the newer content as an update.
        await this._sendFinding(uid);
      }
      return;
    }
    let data;
    try {
      ({ data } = await api("PUT", `${base}${known.id}/`, { ...body, version: known.version }));
    } catch (error) {
      // 409 because this very change already arrived (sent by an earlier page whose
      // answer was lost): adopt the server's version. Any other content is a conflict.
      if (!(error instanceof HttpError) || error.status !== 409 || error.body.code === "read_locked") throw error;
      const { data: current } = await api("GET", `${base}${known.id}/`);
      const mine = ["finding_type", "geometry", "attributes", "source"];
      if (!mine.every((k) => same(current[k], body[k]))) throw error;
      data = current;
    }
    this.taskVersion += 1;
    this._saved(uid, data);
  }

  /** Keep the server's id, version and measurements (and the outline they are of). */
  _saved(uid, data) {
    this.server[uid] = {
      id: data.id,
      version: data.version,
      measurements: data.measurements ?? null,
      geometry: data.geometry,
    };
    this.dispatchEvent(new CustomEvent("measured", { detail: { uid } }));
  }

  /** A lock, a conflict (404: deleted elsewhere) or a refusal stops the queue. */
  _stopFor(error) {
    if (!(error instanceof HttpError)) return null;
    if (error.status === 409 && error.body.code === "read_locked") return ["locked", error.message];
    if (error.status === 409 || error.status === 404) {
      return [
        "conflict",
        gettext(
          "This read was changed in another tab or window. Your last change was not saved over it: reload the page to continue from the newest version.",
        ),
      ];
    }
    if (error.status === 403) return ["error", gettext("You are logged out or no longer allowed to change this read.")];
    return super._stopFor(error);
  }

  _retryText(error, wait) {
    return interpolate(gettext("Not saved yet (network): retrying in %s s. Your work is kept in this browser."), [
      Math.round(wait / 1000),
    ]);
  }
}
