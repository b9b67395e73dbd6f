// The save queue both editing pages build on (viewer/autosave.js for a read's
// findings, arbitration/draft.js for an arbitration's decisions). A user's change
// is first kept by the page (in localStorage), then `changed()` sends it after a
// short pause; a network failure retries with backoff (capped) and at once when
// the browser says it is online again; an answer retrying cannot fix (409: saved
// elsewhere first, 400, 403) stops the queue with a visible state and message.
//
// States: "saved", "pending", "saving", "retrying", "error", "conflict", "locked".
// Each change of state is a "state" event {state, message}.
//
// A user of the core provides:
//   get pending()      true while something is not saved yet
//   async _save()      send what is pending (throws on failure)
//   _stopFor(error)    [state, message] for a failure that must stop the queue, or
//                      null to retry (the default stops on 409, 400 and 403)
//   _retryText(error, waitMs)  the message while retrying

import { HttpError } from "./http.js";

const STOPPED = new Set(["conflict", "locked"]);

/** What a 400 answer says: DRF's field errors, a list of details or its detail. */
export function badRequestText(error) {
  const { errors, detail } = error.body;
  if (Array.isArray(errors) && errors.length) return errors.join("; ");
  if (Array.isArray(detail)) return detail.join("; ");
  return error.message;
}

export class SaveQueueCore extends EventTarget {
  /** debounceMs: the pause after a change; retries wait firstRetryMs, doubling up to maxBackoffMs. */
  constructor({ debounceMs = 700, firstRetryMs = 1000, maxBackoffMs = 10000 } = {}) {
    super();
    this.debounceMs = debounceMs;
    this.firstRetryMs = firstRetryMs;
    this.maxBackoffMs = maxBackoffMs;
    this.state = "saved";
    this.message = "";
    this.timer = null;
    this.running = null;
    this.failures = 0;
    if (typeof window !== "undefined") {
      window.addEventListener("online", () => {
        if (this.pending && (this.state === "retrying" || this.state === "pending")) this.schedule(0);
      });
    }
  }

  get pending() {
    return false;
  }

  /** Nothing unsaved and nothing in flight. */
  get idle() {
    return !this.running && !this.pending;
  }

  /** A conflict or a lock stops sending until the page resolves it. */
  get stopped() {
    return STOPPED.has(this.state);
  }

  _setState(state, message = "") {
    this.state = state;
    this.message = message;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, message } }));
  }

  /** The page kept a change: save it after the pause (not while stopped). */
  changed() {
    if (this.stopped) return;
    this._setState("pending");
    this.schedule(this.debounceMs);
  }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), ms);
  }

  /** Save now; resolves when done (or stopped by an error). */
  async flush() {
    clearTimeout(this.timer);
    if (this.running) {
      while (this.running) await this.running;
      // Someone else's save ran: go on only if it left more to send and did not fail.
      if (this.state === "error") return;
    }
    if (this.stopped) return;
    if (!this.pending) {
      if (this.state !== "saved") this._setState("saved");
      return;
    }
    this.running = this._run();
    try {
      await this.running;
    } finally {
      this.running = null;
    }
  }

  async _run() {
    this._setState(this.failures ? "retrying" : "saving");
    try {
      await this._save();
      this.failures = 0;
      if (!this.pending) this._setState("saved");
      else this.schedule(0);
    } catch (error) {
      this._failed(error);
    }
  }

  _stopFor(error) {
    if (!(error instanceof HttpError)) return null;
    if (error.status === 409) return ["conflict", error.message];
    if (error.status === 400) return ["error", badRequestText(error)];
    if (error.status === 403) return ["error", error.message];
    return null;
  }

  _retryText(error) {
    return error.message;
  }

  _failed(error) {
    const stop = this._stopFor(error);
    if (stop) {
      this._setState(stop[0], stop[1]);
      return;
    }
    this.failures += 1;
    const wait = Math.min(this.maxBackoffMs, this.firstRetryMs * 2 ** Math.min(this.failures - 1, 5));
    this._setState("retrying", this._retryText(error, wait));
    this.schedule(wait);
  }
}
