// Translations come from Django's JavaScript catalogue: the page loads it before
// the modules, giving the globals gettext(), ngettext() and interpolate() (call them by those
// names so makemessages -d djangojs finds the strings). Fallbacks keep the
// English text if the catalogue failed to load.

if (typeof globalThis.gettext !== "function") globalThis.gettext = (text) => text;
if (typeof globalThis.interpolate !== "function") {
  globalThis.interpolate = (text, values, named) => {
    if (named) return text.replace(/%\((\w+)\)s/g, (_, k) => String(values[k]));
    let i = 0;
    return text.replace(/%s/g, () => String(values[i++]));
  };
}
if (typeof globalThis.ngettext !== "function") {
  globalThis.ngettext = (singular, plural, count) => (count === 1 ? singular : plural);
}
