"""The OpenAPI schema describes every request and response body: generating it
with warnings as failures is part of `make test`, so an endpoint added without
a described body (an APIView without a serializer, an action returning a dict,
a binary response) fails the build, not the API fuzz or a client later."""

from django.core.management import call_command


def test_schema_generates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    # Raises SchemaGenerationError on any warning or error (and on an invalid schema).
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.stat().st_size > 0
