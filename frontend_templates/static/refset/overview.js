// The project overview's "settle by force or withdraw" form: the chosen case's id
// goes into the action's URL (/projects/<slug>/cases/<id>/...), and the manager
// confirms, since settling discards the drafts of reads not yet submitted.
const form = document.getElementById("case-action");
if (form) {
  form.addEventListener("submit", (event) => {
    const button = event.submitter;
    const select = form.querySelector("select[name=case]");
    if (!button || !select) return;
    const target = button.getAttribute("formaction").replace(/\/cases\/0\//, `/cases/${select.value}/`);
    const code = select.options[select.selectedIndex].text;
    const question = button.dataset.action === "force-settle"
      ? interpolate(gettext("Settle case %s now? Drafts of reads not submitted are discarded."), [code])
      : interpolate(gettext("Withdraw case %s from reading? Its reads are kept."), [code]);
    if (!window.confirm(question)) {
      event.preventDefault();
      return;
    }
    button.setAttribute("formaction", target);
  });
}
