"""API pagination with bounds: a page is at most MAX_LIMIT rows and an offset past
MAX_OFFSET is refused with a clear 400 (a 40-digit offset once reached the
database and answered 500). Imports no app: settings name it for every list."""

from __future__ import annotations

from django.utils.translation import gettext
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 1000
MAX_OFFSET = 10**9


def bounded_int(value: str, name: str, maximum: int) -> int:
    """A non-negative integer query parameter, at most `maximum` digits' worth:
    ValueError naming the parameter otherwise."""
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(gettext("%(name)s must be a non-negative integer.") % {"name": name})
    if len(text) > len(str(maximum)) or int(text) > maximum:
        raise ValueError(
            gettext("%(name)s must be at most %(max)s.") % {"name": name, "max": maximum}
        )
    return int(text)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request):
        raw = request.query_params.get(self.limit_query_param)
        if raw is not None and raw.strip().isdigit() and len(raw.strip()) > 9:
            return self.max_limit  # any huge limit means "as many as allowed"
        return super().get_limit(request)

    def get_offset(self, request):
        raw = request.query_params.get(self.offset_query_param)
        if raw in (None, ""):
            return 0
        try:
            return bounded_int(raw, self.offset_query_param, MAX_OFFSET)
        except ValueError as error:
            raise ValidationError({self.offset_query_param: [str(error)]}) from None
