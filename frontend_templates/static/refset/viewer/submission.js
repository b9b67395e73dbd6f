// Reading time and submission: the active-time clock and heartbeat, the
// completeness check against the schema, the confirmation and the submit call
// that locks the read (or reports a conflict). Installed on Workstation.prototype.

import { api, HttpError } from "../common/http.js";
import { label, validate } from "./forms.js";
import { $, formatTime, h } from "./ui.js";

/** Methods of Workstation for reading time and submission. */
export const submissionMethods = {
  _startClock() {
    const clock = $("#ws-clock");
    setInterval(() => {
      if (!this.writable) return;
      if (document.visibilityState === "visible" && Date.now() - this.lastActivity < 60000) {
        this.pendingSeconds += 1;
      }
      clock.textContent = formatTime(this.activeSeconds + this.pendingSeconds);
      if (this.pendingSeconds >= 30) this._heartbeat(false);
    }, 1000);
    clock.textContent = formatTime(this.activeSeconds);
  },

  async _heartbeat(leaving) {
    const seconds = this.pendingSeconds;
    if (!seconds || !this.writable || this._beating) return;
    this._beating = true;
    try {
      const { data } = await api("POST", `${this.apiRoot}reading-tasks/${this.task.id}/heartbeat/`, { seconds }, { keepalive: leaving });
      this.pendingSeconds -= seconds;
      this.activeSeconds = data.active_seconds;
    } catch {
      /* kept: sent with the next report */
    } finally {
      this._beating = false;
    }
  },

  _clientErrors() {
    const problems = [];
    let firstBad = null;
    for (const f of this.store.list()) {
      const type = this._typeOf(f.finding_type);
      const errors = validate(type.attributes || [], f.attributes, { complete: true });
      const keys = Object.keys(errors);
      if (keys.length) {
        if (!firstBad) firstBad = { uid: f.uid, errors };
        const names = keys.map((k) => label((type.attributes.find((a) => a.key === k) || {}).label, this.lang) || k);
        problems.push(interpolate(gettext("Finding #%s: %s"), [this._number(f.uid), names.join(", ")]));
      }
    }
    const caseErrors = validate(this.schema.case_fields || [], this.queue.caseLabel.values, { complete: true });
    if (Object.keys(caseErrors).length) {
      const names = Object.keys(caseErrors).map((k) => label((this.schema.case_fields.find((a) => a.key === k) || {}).label, this.lang));
      problems.push(interpolate(gettext("Case: %s"), [names.join(", ")]));
    }
    this.caseForm.showErrors(caseErrors);
    return { problems, firstBad };
  },

  _showSubmitErrors(problems) {
    const box = $("#ws-submit-errors");
    box.textContent = "";
    box.hidden = !problems.length;
    if (!problems.length) return;
    box.append(h("strong", { text: gettext("Cannot submit yet. Required fields are missing:") }));
    const ul = h("ul");
    for (const p of problems) ul.append(h("li", { text: p }));
    box.append(ul);
  },

  askSubmit() {
    if (!this.writable) return;
    const { problems, firstBad } = this._clientErrors();
    this._showSubmitErrors(problems);
    if (problems.length) {
      if (firstBad) {
        this.selected = firstBad.uid;
        this._jumpTo(firstBad.uid);
        this.renderFindings();
        if (this.attrForm) this.attrForm.form.showErrors(firstBad.errors);
      }
      return;
    }
    $("#ws-confirm").hidden = false;
    $("#ws-confirm-yes").focus();
  },

  async submit() {
    $("#ws-confirm").hidden = true;
    const button = $("#ws-submit");
    button.disabled = true;
    try {
      await this.queue.flush();
      if (!this.queue.idle || this.queue.state === "conflict") {
        this.flash(gettext("Some changes are not saved yet; the read was not submitted."));
        return;
      }
      await this._heartbeat(false);
      const { data } = await api("POST", `${this.apiRoot}reading-tasks/${this.task.id}/submit/`, {
        version: this.queue.taskVersion,
        active_seconds: this.activeSeconds + this.pendingSeconds,
      });
      this.task = { ...this.task, ...data };
      this.pendingSeconds = 0;
      this.writable = false;
      this.queue.discardBuffer();
      this.queue._setState("locked", "");
      this._applyWritable();
      this.setTool("select");
      this.renderFindings();
      this._showSubmitErrors([]);
      $("#ws-state").textContent = gettext("submitted");
      $("#ws-state").className = "pill pill-submitted";
      this.flash(gettext("Submitted. This read is now read-only for this phase."));
      $("#ws-next").focus();
    } catch (error) {
      if (error instanceof HttpError && error.status === 409) {
        this._setSaveState(
          "conflict",
          gettext("This read was changed in another tab or window since you opened it. Reload to see the newest version, then submit."),
        );
      } else if (error instanceof HttpError && error.status === 400) {
        this._showSubmitErrors(error.body.errors || [error.message]);
      } else {
        this.flash(error.message);
      }
    } finally {
      button.disabled = false;
    }
  },
};
