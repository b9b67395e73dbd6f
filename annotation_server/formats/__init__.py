"""Date and time formats per language (settings.FORMAT_MODULE_PATH).

Templates never spell a date pattern: they name one of these formats
(`|date:"SHORT_DATETIME_FORMAT"` in table cells and lists, `|date:
"DATETIME_FORMAT"` where one moment is stated, SHORT_DATE_FORMAT /
DATE_FORMAT for days), and Django picks the active language's. Times are shown
in the server's time zone (settings.TIME_ZONE, default Asia/Shanghai): with
USE_TZ the template engine converts every aware datetime to it before
formatting. The short formats are ISO-like in both languages (sortable,
unambiguous between day-first and month-first readers); the long ones read
naturally in each language. 24-hour clock everywhere, as clinical records use.
"""
