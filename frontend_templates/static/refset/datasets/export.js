// The version page's export panel: follow running export jobs, reload when one ends.
const panel = document.getElementById("export-panel");
const rows = panel ? [...panel.querySelectorAll("tr[data-export-job]")] : [];
const running = rows.filter((r) => ["queued", "running"].includes(r.dataset.state));

async function poll() {
  let finished = false;
  for (const row of running) {
    const res = await fetch(`${panel.dataset.jobs}${row.dataset.exportJob}/`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!res.ok) continue;
    const job = await res.json();
    const bar = row.querySelector("progress");
    if (bar) bar.value = job.progress;
    if (!["queued", "running"].includes(job.state)) finished = true;
  }
  if (finished) window.location.reload();
  else setTimeout(poll, 1500);
}

if (running.length) setTimeout(poll, 1000);
