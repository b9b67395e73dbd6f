// The arbitration view: all reads of a case overlaid (R1..RN, one colour each),
// the disputed clusters with their reasons, a decision per cluster and per
// disputed case-level field, drafts saved with optimistic locking, and the
// signature with the password re-entered. This is its page controller: loading,
// chrome, events and commands. The rest of the Arbitration lives in modules
// installed on its prototype:
//   clusters.js   the cluster list, selecting a cluster, the readers and their colours
//   adding.js     findings no reader marked, added by the arbitrator with a reason
//   deciding.js   the decision panel of the selected cluster and the case-level labels
//   editing.js    the edited finding's outline on the image (the "Edit" decision)
//   painting.js   the overlays and corner texts
//   signing.js    the summary, the signature and the signed result
// The image itself is the reading workstation's: its pixels, renderer, viewport,
// pointer tools, schema forms, the slice view (viewer/sliceview.js: view state,
// frames, slices, window and presets, view commands, progress, save indicator),
// the multiplanar views of a CT volume (viewer/mpr.js: axial, coronal, sagittal,
// layouts, crosshair, reference lines, thick slabs, cine; every read's marks in
// every view they cross), its key table (viewer/shortcuts.js) and the shared
// save queue (draft.js).

import "../viewer/i18n.js";
import { MprController, mprMethods } from "../viewer/mpr.js";
import { bindKeys } from "../viewer/shortcuts.js";
import { sliceViewMethods } from "../viewer/sliceview.js";
import { DRAW_TOOLS, ToolController } from "../viewer/tools.js";
import { $ } from "../viewer/ui.js";
import { addingMethods } from "./adding.js";
import { clusterMethods } from "./clusters.js";
import { decidingMethods } from "./deciding.js";
import { DraftSaver } from "./draft.js";
import { editingMethods } from "./editing.js";
import { paintingMethods } from "./painting.js";
import { signingMethods } from "./signing.js";

// The arbitration's own verbs of the shortcut table; "finding" (] and [) steps
// through the disputed clusters. The multiplanar views' verbs as on the workstation.
const OWN_VERBS = ["finding", "escape", "save", "layout", "slab", "cine", "reflines"];

export class Arbitration {
  constructor(boot) {
    // The view starts afresh on each visit (no remembered view) and keeps its
    // window on reset; the selected cluster decides where it starts.
    this._initSliceView(boot);
    this.showSettled = true;
    this.clusters = this.task.clusters;
    this.settled = boot.settled_clusters || [];
    this.selectedId = null;
    this.selectedAdded = null; // the key of the selected added finding, if one is
    this.reasonCodes = this.task.reason_codes;
    // The protocol's consensus rule: what "accept merged" signs unless another is chosen.
    this.consensusMethod = boot.consensus_method || "majority";

    this.saver = new DraftSaver({
      apiRoot: this.apiRoot,
      taskId: this.task.id,
      version: this.task.version,
      decisions: this.task.decisions,
    });
    this.tools = new ToolController(this);
    this.mpr = MprController.attach(this); // multiplanar views of a CT volume (null otherwise)
    this._bind();
    if (this.writable) {
      if (this.saver.restore() && this.saver.state !== "conflict") {
        this.flash(gettext("Unsaved decisions from your last visit were restored and are being saved."));
      }
    } else {
      this.saver.discardBuffer();
      this.saver._setState("locked");
    }
    this._setSaveState(this.saver.state, this.saver.message);
    this._applyWritable();
    this.renderReaders();
    this.renderClusters();
    this.renderLabels();
    this.renderResult();
    this.setTool("select");
    if (this.clusters.length) this.selectCluster(this.clusters[0].id);
    else this.renderDecision();
    this._load();
  }

  /** The first frame: the image fitted and centred as on the workstation, the
   * selected cluster brought into view if it is not; start on the lung window. */
  _initWindow(header) {
    this._adoptHeader(header);
    this._frameCluster(this.selected());
    const lung = this.presets.find((p) => p.name === "lung");
    if (lung) this.setWindow(lung.center, lung.width, { name: "lung" });
    else this.setWindow(this.defaultWindow.center, this.defaultWindow.width, { name: "file" });
    this._buildPresets(this._defaultWindowText());
  }

  // -- chrome and events ---------------------------------------------------------------

  _bind() {
    this.sliderEl = $("#ws-slider");
    this.sliderEl.max = String(this.count - 1);
    this._bindView();
    $("#arb-invert").addEventListener("click", () => this.command("invert"));
    $("#arb-reset").addEventListener("click", () => this.command("reset"));
    $("#arb-sign-open").addEventListener("click", () => this.openSign());
    $("#arb-add").addEventListener("click", () => this.newFinding());
    $("#arb-sign-cancel").addEventListener("click", () => ($("#arb-sign").hidden = true));
    $("#arb-sign-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.sign();
    });
    $("#arb-merge").addEventListener("click", () => this.mergeConflict());
    $("#arb-discard").addEventListener("click", () => {
      this.saver.discardBuffer();
      window.location.reload();
    });
    this.saver.addEventListener("state", (e) => this._setSaveState(e.detail.state, e.detail.message));
    this.saver.addEventListener("saved", (e) => {
      const state = e.detail.state;
      if (state && $("#arb-state").dataset.state !== state) {
        $("#arb-state").dataset.state = state;
        $("#arb-state").className = `pill pill-${state}`;
        $("#arb-state").textContent = state === "in_progress" ? gettext("in progress") : state;
      }
    });
    bindKeys(this, this._pageKeys(OWN_VERBS), {
      // The signature dialog takes every key; Esc closes it.
      intercept: (combo) => {
        if ($("#arb-sign").hidden) return false;
        if (combo === "escape") $("#arb-sign").hidden = true;
        return true;
      },
    });
    window.addEventListener("beforeunload", (e) => {
      if (this.writable && !this.saver.idle) {
        this.saver.flush();
        e.preventDefault();
      }
    });
  }

  command(action) {
    if (this.mpr && this.mpr.command(action)) return;
    if (this.viewCommand(action)) return;
    const [verb, arg] = action.split(":");
    if (verb === "finding") this.stepCluster(arg === "next" ? 1 : -1);
    else if (verb === "escape") this.tools.cancel();
    else if (verb === "save") this.saver.flush();
  }

  setTool(tool) {
    if (DRAW_TOOLS.has(tool) && !this.canDraw(tool)) {
      this.flash(this.whyCannotDraw(tool));
      return;
    }
    this._useTool(tool);
  }

  _applyWritable() {
    document.body.classList.toggle("ws-readonly", !this.writable);
    $("#arb-sign-open").hidden = !this.writable;
  }

  _setSaveState(state, message) {
    this._showSaveState($("#arb-save"), $("#arb-conflict"), state, message, gettext("All decisions saved"));
    if (state === "conflict" || state === "error") $("#arb-merge").hidden = state !== "conflict";
  }

  async mergeConflict() {
    try {
      const data = await this.saver.merge();
      this.task = { ...this.task, version: data.version };
      this.renderClusters();
      this.renderDecision();
      this.renderLabels();
      this.flash(gettext("Merged: the newer version with your changes on top."));
    } catch (error) {
      this.flash(error.message);
    }
  }
}

Object.assign(
  Arbitration.prototype,
  sliceViewMethods,
  clusterMethods,
  addingMethods,
  decidingMethods,
  editingMethods,
  paintingMethods,
  signingMethods,
  mprMethods,
);

const boot = JSON.parse(document.getElementById("arb-bootstrap").textContent);
window.__arb = new Arbitration(boot);
