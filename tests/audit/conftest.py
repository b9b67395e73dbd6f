import pytest


@pytest.fixture(autouse=True)
def _own_anchor_storage(settings, tmp_path):
    """Anchors live in the default storage: give each test its own, so tests on
    other xdist workers (other databases) never read this test's anchors."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.REFSET_AUDIT_ANCHOR_KEY = "test-anchor-key"
