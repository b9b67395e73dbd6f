import pytest


@pytest.fixture(autouse=True)
def _private_media_root(settings, tmp_path):
    """Each imaging test stores files in its own folder (xdist workers share var/)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
