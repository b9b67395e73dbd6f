// The reader's worklist: N opens the next unread case (the "Next case" link),
// unless the reader is typing in a field or holds a modifier key.

document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (target && ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName)) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "n" || event.key === "N") {
    const next = document.querySelector("[data-testid=next-case]");
    if (!next) return;
    event.preventDefault();
    next.click();
  }
});
