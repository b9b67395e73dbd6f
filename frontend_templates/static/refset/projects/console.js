// The manager's console: show the inputs that belong to the chosen option, and copy
// one-time secrets to the clipboard. No inline script (Content-Security-Policy).
//
// - <fieldset data-show-when="NAME=VALUE"> is shown only while the radio or select
//   named NAME has VALUE;
// - <button data-copy="ELEMENT-ID"> copies that element's text.

const gettext = window.gettext || ((s) => s);

function sync() {
  for (const block of document.querySelectorAll("[data-show-when]")) {
    const [name, value] = block.dataset.showWhen.split("=");
    const input = document.querySelector(`[name="${name}"]:checked, select[name="${name}"]`);
    block.hidden = !input || input.value !== value;
  }
}

document.addEventListener("change", sync);
sync();

for (const button of document.querySelectorAll("button[data-copy]")) {
  button.addEventListener("click", async () => {
    const text = document.getElementById(button.dataset.copy).textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = gettext("Copied");
    } catch {
      button.textContent = gettext("Select the text and copy it");
    }
  });
}
