// Behaviour every page of the shell shares, kept out of the templates so the
// Content-Security-Policy can refuse inline script:
// - <select data-submit-on-change> submits its form when the choice changes (the
//   language switch; without JavaScript its <noscript> button does it);
// - <a data-history-back> goes back one page (its href is the fallback).

for (const select of document.querySelectorAll("select[data-submit-on-change]")) {
  select.addEventListener("change", () => select.form.submit());
}

for (const link of document.querySelectorAll("a[data-history-back]")) {
  link.addEventListener("click", (event) => {
    if (window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });
}
