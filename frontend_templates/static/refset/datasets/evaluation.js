// An evaluation's page while it is scored: follow its job (the jobs API, as the
// export panel does), move the progress bar, reload when the job has ended.
const panel = document.getElementById("evaluation-progress");

async function poll() {
  const res = await fetch(`${panel.dataset.jobs}${panel.dataset.job}/`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (res.ok) {
    const job = await res.json();
    const bar = panel.querySelector("progress");
    if (bar) bar.value = job.progress;
    if (!["queued", "running"].includes(job.state)) {
      window.location.reload();
      return;
    }
  }
  setTimeout(poll, 1000);
}

if (panel && panel.dataset.job) setTimeout(poll, 500);
