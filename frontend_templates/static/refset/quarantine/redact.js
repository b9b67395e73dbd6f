// Quarantine review page: the reviewer draws boxes over burned-in text on a canvas
// (image pixel coordinates, whatever the canvas' size on screen), previews the
// redaction as the server will write it, and applies it; or releases the image as
// it is (with a reason) or rejects it. Strings come from the djangojs catalogue.

import { api, request } from "../common/http.js";

const config = JSON.parse(document.getElementById("redact-config").textContent);
const canvas = document.getElementById("redact-canvas");
const previewImg = document.getElementById("redact-preview");
const statusLine = document.getElementById("redact-status");
const list = document.getElementById("box-list");
const MIN_SIZE = 2;

let boxes = config.pending ? (config.suggested || []).map(normalise) : [];
let drawing = null; // {x0, y0, x1, y1} while the pointer is down
let busy = false;
const image = new Image();

function normalise(b) {
  return { x: Math.round(b.x), y: Math.round(b.y), width: Math.round(b.width), height: Math.round(b.height) };
}

function say(text, isError = false) {
  if (!statusLine) return;
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function toImage(event) {
  const rect = canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * canvas.width;
  const y = ((event.clientY - rect.top) / rect.height) * canvas.height;
  return {
    x: Math.max(0, Math.min(canvas.width, x)),
    y: Math.max(0, Math.min(canvas.height, y)),
  };
}

function rectOf(d) {
  const x = Math.min(d.x0, d.x1);
  const y = Math.min(d.y0, d.y1);
  return { x: Math.round(x), y: Math.round(y), width: Math.round(Math.abs(d.x1 - d.x0)), height: Math.round(Math.abs(d.y1 - d.y0)) };
}

function draw() {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (image.complete && image.naturalWidth) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  const line = Math.max(1, canvas.width / 400);
  const shown = drawing ? [...boxes, rectOf(drawing)] : boxes;
  shown.forEach((b, i) => {
    ctx.fillStyle = "rgba(220, 40, 40, 0.35)";
    ctx.fillRect(b.x, b.y, b.width, b.height);
    ctx.strokeStyle = "#ff4040";
    ctx.lineWidth = line;
    ctx.strokeRect(b.x, b.y, b.width, b.height);
    if (i < boxes.length) {
      ctx.fillStyle = "#ffffff";
      ctx.font = `${Math.max(10, Math.round(canvas.width / 45))}px sans-serif`;
      ctx.fillText(String(i + 1), b.x + 2 * line, b.y + Math.max(10, canvas.width / 45));
    }
  });
}

function renderList() {
  if (!list) return;
  list.replaceChildren();
  boxes.forEach((b, i) => {
    const li = document.createElement("li");
    li.dataset.testid = "box-item";
    li.textContent = interpolate(gettext("x %(x)s, y %(y)s, %(width)s × %(height)s pixels"), b, true) + " ";
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = gettext("Remove");
    remove.addEventListener("click", () => {
      boxes.splice(i, 1);
      changed();
    });
    li.append(remove);
    list.append(li);
  });
  if (!boxes.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = gettext("No box yet: drag on the image to draw one.");
    list.append(li);
  }
  const apply = document.getElementById("apply");
  if (apply) apply.disabled = busy || !boxes.length;
  const previewButton = document.getElementById("preview");
  if (previewButton) previewButton.disabled = busy || !boxes.length;
}

function changed() {
  showCanvas();
  draw();
  renderList();
}

function showCanvas() {
  previewImg.hidden = true;
  canvas.hidden = false;
  const edit = document.getElementById("edit");
  if (edit) edit.hidden = true;
}

async function preview() {
  if (!boxes.length) return;
  busy = true;
  renderList();
  say(gettext("Preparing the preview…"));
  try {
    const response = await request("POST", config.preview, { body: { boxes }, accept: "image/png, application/json" });
    const blob = await response.blob();
    if (previewImg.src) URL.revokeObjectURL(previewImg.src);
    previewImg.src = URL.createObjectURL(blob);
    await previewImg.decode();
    previewImg.hidden = false;
    canvas.hidden = true;
    document.getElementById("edit").hidden = false;
    say(gettext("Preview: the boxes are black, as they will be written. Apply to release the redacted copy."));
  } catch (error) {
    say(error.message, true);
  } finally {
    busy = false;
    renderList();
  }
}

async function apply() {
  if (!boxes.length || busy) return;
  const question = interpolate(
    ngettext(
      "Black out %s box and release the redacted copy into the project?",
      "Black out %s boxes and release the redacted copy into the project?",
      boxes.length,
    ),
    [boxes.length],
  );
  if (!window.confirm(question)) return;
  busy = true;
  renderList();
  say(gettext("Writing the redacted copy…"));
  try {
    const note = document.getElementById("redact-note").value;
    await api("POST", config.redact, { boxes, note });
    say(gettext("Redacted copy written and released; it now goes through image QC."));
    window.location.reload();
  } catch (error) {
    say(error.message, true);
    busy = false;
    renderList();
  }
}

function decision(formId, url, question) {
  const form = document.getElementById(formId);
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const note = form.elements.note.value.trim();
    if (!note) {
      say(gettext("Say why first."), true);
      form.elements.note.focus();
      return;
    }
    if (!window.confirm(question)) return;
    try {
      await api("POST", url, { note });
      window.location.reload();
    } catch (error) {
      say(error.message, true);
    }
  });
}

function start() {
  canvas.width = config.columns;
  canvas.height = config.rows;
  image.addEventListener("load", () => {
    draw();
    say(config.pending ? gettext("Boxes from OCR are drawn; check them, add or remove boxes.") : "");
  });
  image.addEventListener("error", () => say(gettext("The image could not be loaded."), true));
  image.src = config.image;
  if (config.pending) {
    canvas.classList.add("drawable");
    canvas.addEventListener("pointerdown", (event) => {
      if (busy) return;
      const p = toImage(event);
      drawing = { x0: p.x, y0: p.y, x1: p.x, y1: p.y };
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drawing) return;
      const p = toImage(event);
      drawing.x1 = p.x;
      drawing.y1 = p.y;
      draw();
    });
    const finish = () => {
      if (!drawing) return;
      const box = rectOf(drawing);
      drawing = null;
      if (box.width >= MIN_SIZE && box.height >= MIN_SIZE) boxes.push(box);
      changed();
    };
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    document.getElementById("undo-box").addEventListener("click", () => {
      boxes.pop();
      changed();
    });
    document.getElementById("clear-boxes").addEventListener("click", () => {
      boxes = [];
      changed();
    });
    document.getElementById("suggest-boxes").addEventListener("click", () => {
      for (const s of (config.suggested || []).map(normalise)) {
        if (!boxes.some((b) => b.x === s.x && b.y === s.y && b.width === s.width && b.height === s.height)) boxes.push(s);
      }
      if (!(config.suggested || []).length) say(gettext("OCR found no text to suggest."));
      changed();
    });
    document.getElementById("preview").addEventListener("click", preview);
    document.getElementById("edit").addEventListener("click", changed);
    document.getElementById("apply").addEventListener("click", apply);
    renderList();
  }
  decision("release-form", config.release, gettext("Release this image as it is, without redaction?"));
  decision("reject-form", config.reject, gettext("Reject this image? Its stored file is deleted."));
}

if (config.image) start();
else {
  decision("release-form", config.release, gettext("Release this image as it is, without redaction?"));
  decision("reject-form", config.reject, gettext("Reject this image? Its stored file is deleted."));
}
