"""Label schema definitions: structure checks and attribute validation.

Plain Python on plain data, so the same rules run in the API, in the admin, in
tests and (later) in the browser's generated forms. A definition looks like:

    {
      "finding_types": [
        {"key": "nodule", "label": {"en": "Nodule", "zh-hans": "结节"},
         "geometry": ["contour", "ellipse", "point"],
         "attributes": [ATTRIBUTE, ...]}
      ],
      "case_fields": [ATTRIBUTE, ...]
    }

and an ATTRIBUTE is one of

    {"key": "type", "kind": "enum", "options": [{"value": "solid", "label": {...}}, ...]}
    {"key": "malignancy", "kind": "ordinal", "min": 1, "max": 5, "labels": {"1": {...}}}
    {"key": "long_axis", "kind": "number", "unit": "mm", "min": 0, "max": 200}
    {"key": "calcified", "kind": "boolean"}
    {"key": "comment", "kind": "text", "max_length": 500}

each with "label" ({"en": ..., "zh-hans": ...}), optional "required" (default
false), optional "help". An enum may set "multiple": true (a list of values).

An ordinal, or a single-choice enum (macular oedema: absent / present), may also
name answers outside its scale, such as "ungradable":
"outside_scale": [{"value": "ungradable", "label": {...}}] (string values, not
options of the enum); the agreement figures leave them out and count them, and
an answer outside the scale against one on it always goes to arbitration. An
ordinal may set "referable_from": N, the lowest scale value that counts as referable (used by
the protocol's "referable/non-referable" grade rule and by derived fields).

A definition may list "derived" fields: computed on the server from a read,
never typed by the reader, stored with the read (CaseLabel.derived):

    {"key": "referable_dr", "kind": "boolean", "rule": "referable_dr", "label": {...}}

where "rule" names one entry of DERIVED_RULES (annotation_server/reading/derived.py
computes them).
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.utils.translation import gettext

from annotation_server.errors import DomainError

GEOMETRY_KINDS = ("point", "line", "box", "ellipse", "polygon", "contour", "polyline", "mask")
ATTRIBUTE_KINDS = ("enum", "ordinal", "number", "boolean", "text")
LANGS = ("en", "zh-hans")
# Names of the server-side computations a schema's "derived" fields may use
# (annotation_server/reading/derived.py implements each).
DERIVED_RULES = ("referable_dr", "vertical_cdr")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


class SchemaError(DomainError, ValueError):
    """A definition or a set of answers does not fit; `errors` lists every problem."""

    status = 400
    code = "schema"

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors

    def payload(self) -> dict:
        return {
            "detail": gettext("The data does not fit the label schema."),
            "code": self.code,
            "errors": self.errors,
        }


def _t(message: str, **values) -> str:
    """A translated structure message (the place in the schema stays as written)."""
    text = gettext(message)
    return text % values if values else text


def _check_label(where: str, label: Any, errors: list[str]) -> None:
    if not isinstance(label, dict) or any(not label.get(lang) for lang in LANGS):
        errors.append(f"{where}: " + _t("label needs both 'en' and 'zh-hans' text"))


def _check_outside_scale(where: str, attr: dict, errors: list[str]) -> None:
    extra = attr.get("outside_scale", [])
    if not isinstance(extra, list) or any(
        not isinstance(o, dict) or not isinstance(o.get("value"), str) or not o["value"]
        for o in extra
    ):
        errors.append(f"{where}: " + _t("outside_scale must list options with a string value"))
        return
    for option in extra:
        _check_label(f"{where} option {option['value']!r}", option.get("label"), errors)
    if attr.get("kind") == "enum":
        if extra and attr.get("multiple"):
            errors.append(f"{where}: " + _t("a multiple-choice enum cannot have outside_scale"))
        options = {o.get("value") for o in attr.get("options") or [] if isinstance(o, dict)}
        clash = sorted(o["value"] for o in extra if o["value"] in options)
        if clash:
            errors.append(
                f"{where}: "
                + _t("%(values)s is both an option and outside the scale", values=", ".join(clash))
            )


def _check_attribute(where: str, attr: Any, errors: list[str]) -> None:
    if not isinstance(attr, dict):
        errors.append(f"{where}: " + _t("must be an object"))
        return
    key = attr.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        errors.append(
            f"{where}: " + _t("key %(key)s must be snake_case (a-z, 0-9, _)", key=repr(key))
        )
    where = f"{where} ({key})"
    _check_label(where, attr.get("label"), errors)
    kind = attr.get("kind")
    if kind not in ATTRIBUTE_KINDS:
        errors.append(
            f"{where}: "
            + _t(
                "kind %(kind)s is not one of %(kinds)s",
                kind=repr(kind),
                kinds=", ".join(ATTRIBUTE_KINDS),
            )
        )
        return
    if not isinstance(attr.get("required", False), bool):
        errors.append(f"{where}: " + _t("required must be true or false"))
    if kind == "enum":
        options = attr.get("options")
        if not isinstance(options, list) or not options:
            errors.append(f"{where}: " + _t("an enum needs a non-empty options list"))
            return
        values = [o.get("value") if isinstance(o, dict) else None for o in options]
        if any(not isinstance(v, str) or not v for v in values):
            errors.append(f"{where}: " + _t("every option needs a string value"))
        if len(set(values)) != len(values):
            errors.append(f"{where}: " + _t("option values must be unique"))
        for option in options:
            if isinstance(option, dict):
                _check_label(f"{where} option {option.get('value')!r}", option.get("label"), errors)
        _check_outside_scale(where, attr, errors)
    elif kind == "ordinal":
        lo, hi = attr.get("min"), attr.get("max")
        if not isinstance(lo, int) or not isinstance(hi, int) or lo >= hi:
            errors.append(f"{where}: " + _t("an ordinal scale needs integer min < max"))
        _check_outside_scale(where, attr, errors)
        referable = attr.get("referable_from")
        if referable is not None and (
            isinstance(referable, bool)
            or not isinstance(referable, int)
            or not isinstance(lo, int)
            or not isinstance(hi, int)
            or not lo <= referable <= hi
        ):
            errors.append(f"{where}: " + _t("referable_from must be a value of the scale"))
        labels = attr.get("labels", {})
        if not isinstance(labels, dict):
            errors.append(f"{where}: " + _t("ordinal labels must map scale values to labels"))
        elif isinstance(lo, int) and isinstance(hi, int):
            for value, label in labels.items():
                if not str(value).lstrip("-").isdigit() or not lo <= int(value) <= hi:
                    errors.append(
                        f"{where}: "
                        + _t(
                            "label for %(value)s is outside %(lo)s..%(hi)s",
                            value=repr(value),
                            lo=lo,
                            hi=hi,
                        )
                    )
                _check_label(f"{where} level {value}", label, errors)
    elif kind == "number":
        if not isinstance(attr.get("unit"), str):
            errors.append(f"{where}: " + _t("a number needs a unit (use '' for none)"))
        lo, hi = attr.get("min"), attr.get("max")
        for bound in (lo, hi):
            if bound is not None and not isinstance(bound, int | float):
                errors.append(f"{where}: " + _t("min and max must be numbers"))
        if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
            errors.append(f"{where}: " + _t("min is greater than max"))
    elif kind == "text":
        max_length = attr.get("max_length", 2000)
        if not isinstance(max_length, int) or max_length <= 0:
            errors.append(f"{where}: " + _t("max_length must be a positive integer"))


def _check_unique_keys(where: str, items: list, errors: list[str]) -> None:
    keys = [i.get("key") for i in items if isinstance(i, dict)]
    dupes = sorted({k for k in keys if keys.count(k) > 1 and k is not None})
    if dupes:
        errors.append(f"{where}: " + _t("duplicate keys %(keys)s", keys=", ".join(map(str, dupes))))


def _check_derived(derived: Any, case_fields: list, errors: list[str]) -> None:
    if not isinstance(derived, list):
        errors.append(_t("derived must be a list"))
        return
    _check_unique_keys("derived", derived, errors)
    typed = {f.get("key") for f in case_fields if isinstance(f, dict)}
    for j, item in enumerate(derived):
        where = f"derived[{j}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: " + _t("must be an object"))
            continue
        key = item.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            errors.append(f"{where}: " + _t("key %(key)s must be snake_case", key=repr(key)))
        elif key in typed:
            errors.append(f"{where}: " + _t("key %(key)s is also a case field", key=repr(key)))
        _check_label(f"{where} ({key})", item.get("label"), errors)
        if item.get("rule") not in DERIVED_RULES:
            errors.append(
                f"{where}: "
                + _t(
                    "rule %(rule)s is not one of %(rules)s",
                    rule=repr(item.get("rule")),
                    rules=", ".join(DERIVED_RULES),
                )
            )
        if item.get("kind") not in ("boolean", "number"):
            errors.append(f"{where}: " + _t("a derived field is a boolean or a number"))


def outside_scale(attr: dict) -> list[str]:
    """The non-scale answers an ordinal or single-choice enum accepts (e.g. "ungradable")."""
    return [o["value"] for o in attr.get("outside_scale", []) if isinstance(o, dict)]


def validate_definition(definition: Any) -> None:
    """Raise SchemaError listing every structural problem of a schema definition."""
    errors: list[str] = []
    if not isinstance(definition, dict):
        raise SchemaError([_t("the definition must be a JSON object")])
    unknown = set(definition) - {"finding_types", "case_fields", "description", "derived"}
    if unknown:
        errors.append(_t("unknown top-level keys: %(keys)s", keys=", ".join(sorted(unknown))))
    finding_types = definition.get("finding_types", [])
    case_fields = definition.get("case_fields", [])
    if not isinstance(finding_types, list) or not isinstance(case_fields, list):
        raise SchemaError([_t("finding_types and case_fields must be lists")])
    if not finding_types and not case_fields:
        errors.append(_t("a schema needs at least one finding type or case-level field"))
    _check_unique_keys("finding_types", finding_types, errors)
    for i, ftype in enumerate(finding_types):
        where = f"finding_types[{i}]"
        if not isinstance(ftype, dict):
            errors.append(f"{where}: " + _t("must be an object"))
            continue
        if not isinstance(ftype.get("key"), str) or not _KEY.match(ftype["key"]):
            errors.append(
                f"{where}: " + _t("key %(key)s must be snake_case", key=repr(ftype.get("key")))
            )
        where = f"{where} ({ftype.get('key')})"
        _check_label(where, ftype.get("label"), errors)
        kinds = ftype.get("geometry")
        if not isinstance(kinds, list) or not kinds:
            errors.append(f"{where}: " + _t("geometry must list at least one kind"))
        else:
            bad = [k for k in kinds if k not in GEOMETRY_KINDS]
            if bad:
                errors.append(
                    f"{where}: "
                    + _t(
                        "unknown geometry kinds %(bad)s; use %(kinds)s",
                        bad=bad,
                        kinds=GEOMETRY_KINDS,
                    )
                )
        attrs = ftype.get("attributes", [])
        if not isinstance(attrs, list):
            errors.append(f"{where}: " + _t("attributes must be a list"))
            continue
        _check_unique_keys(f"{where} attributes", attrs, errors)
        for j, attr in enumerate(attrs):
            _check_attribute(f"{where}.attributes[{j}]", attr, errors)
    _check_unique_keys("case_fields", case_fields, errors)
    for j, attr in enumerate(case_fields):
        _check_attribute(f"case_fields[{j}]", attr, errors)
    _check_derived(definition.get("derived", []), case_fields, errors)
    if errors:
        raise SchemaError(errors)


def _value_errors(attr: dict, value: Any) -> str | None:
    kind = attr["kind"]
    if kind == "enum":
        allowed = [o["value"] for o in attr["options"]]
        if not attr.get("multiple"):
            allowed += outside_scale(attr)
        values = value if attr.get("multiple") else [value]
        if attr.get("multiple") and not isinstance(value, list):
            return "must be a list of options"
        bad = [v for v in values if v not in allowed]
        return f"{bad[0]!r} is not one of {', '.join(allowed)}" if bad else None
    if kind == "ordinal":
        if isinstance(value, str) and value in outside_scale(attr):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            extra = outside_scale(attr)
            return "must be a whole number" + (f" or one of {', '.join(extra)}" if extra else "")
        if not attr["min"] <= value <= attr["max"]:
            return f"must be between {attr['min']} and {attr['max']}"
        return None
    if kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return "must be a number"
        if attr.get("min") is not None and value < attr["min"]:
            return f"must be at least {attr['min']} {attr.get('unit', '')}".rstrip()
        if attr.get("max") is not None and value > attr["max"]:
            return f"must be at most {attr['max']} {attr.get('unit', '')}".rstrip()
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "text":
        if not isinstance(value, str):
            return "must be text"
        if len(value) > attr.get("max_length", 2000):
            return f"is longer than {attr.get('max_length', 2000)} characters"
    return None


def validate_values(attrs: list[dict], values: Any, *, complete: bool, where: str = "") -> None:
    """Check answers against attribute definitions.

    `complete=False` (drafts) accepts missing required answers; `complete=True`
    (submission) does not. Unknown keys are always an error.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(values, dict):
        raise SchemaError([f"{prefix}answers must be a JSON object"])
    errors: list[str] = []
    by_key = {a["key"]: a for a in attrs}
    for key in sorted(set(values) - set(by_key)):
        errors.append(f"{prefix}{key!r} is not defined by the schema")
    for key, attr in by_key.items():
        value = values.get(key)
        if value is None or value == "" or value == []:
            if complete and attr.get("required"):
                errors.append(f"{prefix}{key} is required")
            continue
        problem = _value_errors(attr, value)
        if problem:
            errors.append(f"{prefix}{key} {problem}")
    if errors:
        raise SchemaError(errors)


def finding_type(definition: dict, key: str) -> dict:
    for ftype in definition.get("finding_types", []):
        if ftype["key"] == key:
            return ftype
    known = ", ".join(f["key"] for f in definition.get("finding_types", []))
    raise SchemaError([f"finding type {key!r} is not in the schema (known: {known or 'none'})"])


def validate_finding(
    definition: dict, type_key: str, geometry_kind: str, attributes: Any, *, complete: bool
) -> None:
    ftype = finding_type(definition, type_key)
    errors: list[str] = []
    if geometry_kind not in ftype["geometry"]:
        errors.append(
            f"{type_key} cannot be drawn as {geometry_kind!r}; "
            f"allowed: {', '.join(ftype['geometry'])}"
        )
    try:
        validate_values(ftype.get("attributes", []), attributes, complete=complete, where=type_key)
    except SchemaError as exc:
        errors.extend(exc.errors)
    if errors:
        raise SchemaError(errors)
