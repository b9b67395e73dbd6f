// Model proposals in the workstation (and a model's case-level estimates, such as
// a radiograph's exposure and positioning classes): loaded from the read's endpoints
// (the server decides which a reader sees: phase, lowest confidence, the
// no-assistance arm), listed apart from the reader's own findings with their
// confidence and model, filterable by confidence, drawn dashed in their own
// colour in every view they cross (the main view and mpr.js planes), and decided
// one by one. Every decision goes to the server, which
// records it (accepted, edited, rejected) and makes the finding with its origin:
//   Accept  the proposal becomes the reader's finding as it is;
//   Edit    the same, then selected for reshaping: once its shape differs from the
//           proposal's the server records it as edited (Dice and HD95);
//   Reject  nothing is made; the proposal leaves the list.
// Installed on Workstation.prototype.

import { api } from "../common/http.js";
import { label } from "./forms.js";
import { drawCuts } from "./planemarks.js";
import { $, h, PROPOSAL_COLOUR } from "./ui.js";

const percent = (score) => `${Math.round(score * 100)}%`;

/** Methods of Workstation for model proposals. */
export const proposalMethods = {
  _initProposals() {
    this.proposalMin = Number(this.boot.proposal_min_confidence || 0);
    this.selectedProposal = null;
    const slider = $("#ws-proposal-min");
    slider.min = String(this.proposalMin);
    slider.value = String(this.proposalMin);
    $("#ws-proposal-min-value").textContent = percent(this.proposalMin);
    slider.addEventListener("input", () => {
      this.proposalMin = Number(slider.value);
      $("#ws-proposal-min-value").textContent = percent(this.proposalMin);
      this._renderProposals();
      this.redraw();
    });
    if (this.boot.proposals_enabled && this.writable) this._loadProposals();
  },

  async _loadProposals() {
    const root = `${this.apiRoot}reading-tasks/${this.task.id}/`;
    try {
      const [{ data }, { data: estimates }] = await Promise.all([
        api("GET", `${root}proposals/`),
        api("GET", `${root}case-probabilities/`),
      ]);
      this.caseEstimates = estimates || [];
      this.store.setProposals((data || []).filter((p) => !p.disposition));
    } catch (error) {
      this.flash(error.message);
    }
  },

  /** A case-level class's name: the schema's finding type, else a known quality class. */
  _estimateLabel(key) {
    const type = this.types.find((t) => t.key === key);
    if (type) return label(type.label, this.lang);
    const names = {
      under_exposed: gettext("Under-exposed"),
      over_exposed: gettext("Over-exposed"),
      mispositioned: gettext("Mispositioned"),
    };
    return names[key] || key;
  },

  _renderEstimates() {
    const box = $("#ws-case-estimates");
    const rows = this.caseEstimates || [];
    box.hidden = !rows.length;
    box.textContent = "";
    for (const row of rows) {
      box.append(h("dt", { text: interpolate(gettext("%s estimates for the case"), [`${row.model} ${row.model_version}`]) }));
      const entries = Object.entries(row.probabilities).sort((a, b) => b[1] - a[1]);
      for (const [key, p] of entries) {
        box.append(h("dd", { "data-class": key, text: `${this._estimateLabel(key)} ${percent(p)}` }));
      }
    }
  },

  /** The undecided proposals at or above the confidence the reader chose. */
  shownProposals() {
    return this.store.proposals.filter((p) => p.score >= this.proposalMin - 1e-9);
  },

  _renderProposals() {
    const box = $("#ws-proposals");
    const all = this.store.proposals;
    this._renderEstimates();
    box.hidden = !all.length && !(this.caseEstimates || []).length;
    $("#ws-proposal-count").hidden = !all.length;
    if (!all.length) {
      $("#ws-proposals-list").textContent = "";
      return;
    }
    const shown = this.shownProposals();
    $("#ws-proposal-count").textContent = interpolate(
      ngettext("%(shown)s of %(all)s proposal shown", "%(shown)s of %(all)s proposals shown", all.length),
      { shown: shown.length, all: all.length },
      true,
    );
    const list = $("#ws-proposals-list");
    list.textContent = "";
    for (const p of shown) list.append(this._proposalItem(p));
  },

  _proposalItem(p) {
    const type = this._typeOf(p.finding_type);
    const slices = (p.geometry.shapes || []).map((s) => s.slice_index + 1);
    const where = this.count > 1 && slices.length ? interpolate(gettext("slice %s"), [slices[Math.floor(slices.length / 2)]]) : "";
    const button = (text, action, testid) => {
      const b = h("button", { type: "button", text, "data-testid": testid, disabled: !this.writable });
      b.addEventListener("click", (e) => {
        e.stopPropagation();
        this.decideProposal(p, action);
      });
      return b;
    };
    const item = h(
      "li",
      {
        class: `ws-proposal${this.selectedProposal === p.id ? " on" : ""}`,
        "data-testid": "proposal",
        "data-proposal": String(p.id),
        tabIndex: 0,
      },
      [
        h("span", { class: "ws-swatch", style: `background:${PROPOSAL_COLOUR}` }),
        h("span", { class: "ws-proposal-name", text: `${label(type.label, this.lang)} ${where}` }),
        h("span", { class: "ws-proposal-score", text: percent(p.score), title: gettext("Model confidence") }),
        h("span", {
          class: "ws-proposal-model",
          text: `${p.model} ${p.model_version}`,
          title: interpolate(gettext("weights sha256 %s"), [p.weights_sha256]),
        }),
        h("span", { class: "ws-proposal-acts" }, [
          button(gettext("Accept"), "accept", "proposal-accept"),
          button(gettext("Edit"), "edit", "proposal-edit"),
          button(gettext("Reject"), "reject", "proposal-reject"),
        ]),
      ],
    );
    item.addEventListener("click", () => this._showProposal(p));
    return item;
  },

  _showProposal(p) {
    this.selectedProposal = p.id;
    const slices = (p.geometry.shapes || []).map((s) => s.slice_index);
    if (slices.length && !this._shapeOn(p.geometry, this.slice)) this.goToSlice(slices[Math.floor(slices.length / 2)]);
    this._renderProposals();
    this.redraw();
  },

  /** Send one decision; the proposal leaves the list once the server recorded it. */
  async decideProposal(p, action) {
    if (!this.writable || this.deciding) return;
    this.deciding = true;
    const root = `${this.apiRoot}reading-tasks/${this.task.id}/proposals/${p.id}/`;
    try {
      if (action === "reject") {
        await api("POST", `${root}reject/`, {});
        this.store.dropProposal(p.id);
        this.flash(gettext("Proposal rejected."));
        return;
      }
      // Our own pending edits go first: the accept is a write to the same read.
      await this.queue.flush();
      const { data } = await api("POST", `${root}accept/`, {});
      const { data: finding } = await api("GET", `${this.apiRoot}findings/${data.finding}/`);
      this.queue._saved(finding.uid, finding); // id, version and the server's measurements
      this.queue.taskVersion += 1;
      this.store.dropProposal(p.id);
      const uid = this.store.adopt(finding);
      this.select(uid);
      this._jumpTo(uid);
      if (action === "edit") {
        this.setTool("select");
        this.flash(gettext("Reshape the outline; the change is recorded as an edit of the proposal."));
      } else {
        this.flash(gettext("Proposal accepted as your finding."));
      }
    } catch (error) {
      this.flash(error.message);
      if (error.status === 404 || error.status === 400) this._loadProposals();
    } finally {
      this.deciding = false;
      if (this.selectedProposal === p.id) this.selectedProposal = null;
    }
  },

  /** Draw the shown proposals (dashed, their own colour, with the score) on the
   * main view's slice, or where they cross a reformatted `plane` at `index` (mpr.js). */
  _paintProposals(ctx, vp, plane = null, index = this.slice, drawn = null) {
    for (const p of this.shownProposals()) {
      const look = {
        color: PROPOSAL_COLOUR,
        dash: [2, 3],
        width: this.selectedProposal === p.id ? 2.5 : 1.5,
        label: `${gettext("AI")} ${percent(p.score)}`,
      };
      drawCuts(ctx, vp, p.geometry, plane, index, look, drawn, `proposal:${p.id}`);
    }
  },
};
