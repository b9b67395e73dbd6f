// Import page: collect files from drops (folders walked recursively) or pickers,
// upload them with progress, then follow the import job and show its report.

import { api } from "./common/http.js";

const form = document.getElementById("import-form");
const T = JSON.parse(document.getElementById("import-strings").textContent);
const picked = [];  // [{file, path}]

// The delivering site stays chosen between imports (and visits): the page starts
// on the site of this manager's last import; a choice made here is kept too.
const siteSelect = form.querySelector("[name=site]");
const siteKey = `refset.import.site.${siteSelect.dataset.project}`;
const keptSite = localStorage.getItem(siteKey);
if (keptSite !== null && [...siteSelect.options].some((o) => o.value === keptSite)) siteSelect.value = keptSite;
siteSelect.addEventListener("change", () => localStorage.setItem(siteKey, siteSelect.value));

function fmt(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, k) => String(values[k]));
}

function showSelection() {
  const bytes = picked.reduce((n, p) => n + p.file.size, 0);
  document.getElementById("selection").textContent =
    fmt(T.selected, { n: picked.length, mb: (bytes / 1048576).toFixed(1) });
  document.getElementById("start").disabled = picked.length === 0;
  // Photographs need manifest.csv (the server recognises both by content and name;
  // this only warns before the upload, by file extension).
  const name = (p) => p.path.split("/").pop().toLowerCase();
  const photos = picked.some((p) => /\.(jpe?g|png|tiff?)$/.test(name(p)));
  const manifest = picked.some((p) => name(p) === "manifest.csv");
  document.getElementById("photo-hint").hidden = !(photos && !manifest);
}

function addFiles(files) {
  for (const file of files) picked.push({ file, path: file.webkitRelativePath || file.name });
  showSelection();
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function walk(entry, prefix) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    picked.push({ file, path: prefix + file.name });
    return;
  }
  const reader = entry.createReader();
  for (let batch = await readEntries(reader); batch.length; batch = await readEntries(reader)) {
    for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
  }
}

const zone = document.getElementById("dropzone");
zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", async (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry());
  if (entries.every(Boolean)) {
    for (const entry of entries) await walk(entry, "");
    showSelection();
  } else {
    addFiles(e.dataTransfer.files);
  }
});
document.getElementById("pick-files").addEventListener("change", (e) => addFiles(e.target.files));
document.getElementById("pick-folder").addEventListener("change", (e) => addFiles(e.target.files));

function bar(id, pct) {
  const box = document.getElementById(id);
  box.hidden = false;
  box.querySelector("progress").value = pct;
  box.querySelector(".pct").textContent = `${Math.round(pct)}%`;
}

function upload(data) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.api);
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    xhr.upload.onprogress = (e) => e.lengthComputable && bar("upload-progress", 100 * e.loaded / e.total);
    xhr.onload = () => (xhr.status === 202 ? resolve(JSON.parse(xhr.responseText))
      : reject(new Error(xhr.responseText || xhr.statusText)));
    xhr.onerror = () => reject(new Error(T.upload_failed));
    xhr.send(data);
  });
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

function report(job) {
  const section = document.getElementById("report");
  section.hidden = false;
  const summary = section.querySelector(".summary tbody");
  summary.replaceChildren();
  const s = job.result.summary || {};
  for (const key of ["files", "imported", "duplicates", "quarantined", "rejected", "studies", "series", "patients"]) {
    const row = summary.insertRow();
    row.dataset.key = key;
    cell(row, T[key]);
    cell(row, s[key] ?? 0);
  }
  const files = section.querySelector(".files tbody");
  files.replaceChildren();
  // Every file that did not come in, with why; the sentence above the table
  // says the same as the numbers (never "every file was imported" beside a list).
  const problems = (job.result.files || []).filter((f) => f.status !== "imported");
  const total = s.files ?? 0;
  const verdict = section.querySelector(".report-verdict");
  if (total && s.imported === total) verdict.textContent = T.none;
  else if (total && s.duplicates === total) verdict.textContent = T.nothing_new;
  else verdict.textContent = "";
  verdict.hidden = !verdict.textContent;
  section.querySelector(".files-heading").hidden = !problems.length;
  section.querySelector(".files").hidden = !problems.length;
  for (const f of problems) {
    const row = files.insertRow();
    row.className = `result-${f.status}`;
    cell(row, f.name);
    cell(row, T[f.status] || f.status);
    cell(row, f.reason);
  }
  let link = section.querySelector("a.full-report");
  if (!link) {
    link = document.createElement("a");
    link.className = "full-report";
    link.dataset.testid = "full-report";
    section.appendChild(link);
  }
  link.textContent = T.open_report;
  link.href = `${form.dataset.reports}${job.id}/`;
}

async function follow(job) {
  for (;;) {
    ({ data: job } = await api("GET", `${form.dataset.jobs}${job.id}/`));
    bar("job-progress", job.progress);
    if (["succeeded", "failed", "cancelled"].includes(job.state)) break;
    await new Promise((r) => setTimeout(r, 800));
  }
  if (job.state === "succeeded") report(job);
  else alert(`${T.failed} ${job.error}`);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  document.getElementById("start").disabled = true;
  const data = new FormData();
  for (const { file, path } of picked) {
    data.append("files", file, file.name);
    data.append("paths", path);
  }
  const site = form.querySelector("[name=site]").value;
  if (site) data.append("site", site);
  localStorage.setItem(siteKey, site);
  try {
    const job = await upload(data);
    bar("upload-progress", 100);
    await follow(job);
  } catch (err) {
    alert(err.message);
  } finally {
    picked.length = 0;
    showSelection();
  }
});
