"""STOW-RS through dicomweb-client: stored instances, failures with reasons."""

from __future__ import annotations

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

import fixtures
from annotation_server.imaging.models import Instance
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _client(live_server, user, path="dicomweb/projects/lung"):
    session = requests.Session()
    session.auth = (user.username, factories.PASSWORD)
    return DICOMwebClient(url=f"{live_server.url}/{path}", session=session)


def test_manager_stores_a_series_and_gets_the_store_response(live_server, project, manager):
    datasets, truth = fixtures.build_ct_datasets(slices=3, seed=12, matrix=64)
    response = _client(live_server, manager).store_instances(datasets)
    stored = response.ReferencedSOPSequence
    assert len(stored) == 3
    new_uids = {str(item.ReferencedSOPInstanceUID) for item in stored}
    assert new_uids == set(Instance.objects.values_list("sop_instance_uid", flat=True))
    assert not new_uids & {str(ds.SOPInstanceUID) for ds in datasets}  # de-identified


def test_bad_part_is_listed_as_failed_and_the_rest_stored(live_server, project, manager):
    datasets, _ = fixtures.build_ct_datasets(slices=2, seed=13, matrix=64)
    broken = pydicom.Dataset()
    broken.PatientName = "NOT^AN^IMAGE"
    broken.file_meta = pydicom.dataset.FileMetaDataset()
    broken.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    broken.file_meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    broken.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID
    broken.SOPClassUID = broken.file_meta.MediaStorageSOPClassUID
    result = _client(live_server, manager).store_instances([*datasets, broken])
    assert len(result.ReferencedSOPSequence) == 2
    assert len(result.FailedSOPSequence) == 1
    failed = result.FailedSOPSequence[0]
    assert failed.FailureReason == 0x0110
    assert "missing required" in failed[0x00000902].value
    assert Instance.objects.count() == 2


def test_reader_cannot_store(live_server, project, reader_a):
    datasets, _ = fixtures.build_ct_datasets(slices=1, seed=14, matrix=64)
    with pytest.raises(requests.HTTPError) as err:
        _client(live_server, reader_a).store_instances(datasets)
    assert err.value.response.status_code == 403
    assert not Instance.objects.exists()
