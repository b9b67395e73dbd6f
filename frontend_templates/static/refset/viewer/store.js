// The read's findings in the browser: the reader's own (editable), other readers'
// (review phase only, read-only, as the API labelled them) and the model proposals
// this read may still decide (proposals.js loads them and sends the decisions).
//
// Every change to an own finding is a step {uid, before, after} on the undo stack;
// undo and redo replay snapshots, and every change is announced with the finding's
// uid so the save queue can send it.

export function newUid() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const clone = (value) => (value == null ? value : JSON.parse(JSON.stringify(value)));

/** The part of a finding that is the reader's content (what undo restores and saves send). */
export function content(f) {
  return {
    uid: f.uid,
    finding_type: f.finding_type,
    geometry: clone(f.geometry),
    attributes: clone(f.attributes || {}),
    source: f.source || "manual",
  };
}

export class FindingStore extends EventTarget {
  constructor(own = []) {
    super();
    this.items = new Map();
    for (const f of own) this.items.set(f.uid, content(f));
    this.others = [];
    this.proposals = [];
    this.undoStack = [];
    this.redoStack = [];
    this.readOnly = false;
  }

  list() {
    return [...this.items.values()];
  }

  get(uid) {
    return this.items.get(uid) || null;
  }

  _emit(uid, why) {
    this.dispatchEvent(new CustomEvent("change", { detail: { uid, why } }));
  }

  _set(uid, value) {
    if (value) this.items.set(uid, clone(value));
    else this.items.delete(uid);
  }

  _step(uid, before, after, why, { merge = false } = {}) {
    const top = this.undoStack[this.undoStack.length - 1];
    if (merge && top && top.uid === uid && top.merge === merge) {
      top.after = clone(after);
    } else {
      this.undoStack.push({ uid, before: clone(before), after: clone(after), merge });
      if (this.undoStack.length > 200) this.undoStack.shift();
    }
    this.redoStack = [];
    this._emit(uid, why);
  }

  create(data) {
    if (this.readOnly) return null;
    const f = content({ ...data, uid: data.uid || newUid() });
    this._set(f.uid, f);
    this._step(f.uid, null, f, "create");
    return f.uid;
  }

  /** Change an own finding: `mutate` gets a copy and returns the new content. */
  update(uid, mutate, { why = "update", merge = false } = {}) {
    if (this.readOnly) return;
    const before = this.items.get(uid);
    if (!before) return;
    const after = content(mutate(clone(before)));
    after.uid = uid;
    if (JSON.stringify(after) === JSON.stringify(before)) return;
    this._set(uid, after);
    this._step(uid, before, after, why, { merge });
  }

  remove(uid) {
    if (this.readOnly) return;
    const before = this.items.get(uid);
    if (!before) return;
    this._set(uid, null);
    this._step(uid, before, null, "delete");
  }

  undo() {
    if (this.readOnly) return null;
    const step = this.undoStack.pop();
    if (!step) return null;
    this._set(step.uid, step.before);
    this.redoStack.push(step);
    this._emit(step.uid, "undo");
    return step.uid;
  }

  redo() {
    if (this.readOnly) return null;
    const step = this.redoStack.pop();
    if (!step) return null;
    this._set(step.uid, step.after);
    this.undoStack.push(step);
    this._emit(step.uid, "redo");
    return step.uid;
  }

  /** Replace local content without an undo step (restoring the unsaved buffer). */
  restore(uid, value) {
    this._set(uid, value);
    this._emit(uid, "restore");
  }

  setOthers(list) {
    this.others = list;
    this.dispatchEvent(new CustomEvent("others"));
  }

  /** Model proposals still to decide: [{id, finding_type, geometry, attributes, score, model, ...}]. */
  setProposals(list) {
    this.proposals = list;
    this.dispatchEvent(new CustomEvent("proposals"));
  }

  dropProposal(id) {
    this.setProposals(this.proposals.filter((p) => p.id !== id));
  }

  /**
   * A finding the server made (a proposal accepted there): it joins the own
   * findings as saved, without an undo step (deleting it is how to take it back).
   */
  adopt(finding) {
    this._set(finding.uid, content(finding));
    this._emit(finding.uid, "restore");
    return finding.uid;
  }
}
