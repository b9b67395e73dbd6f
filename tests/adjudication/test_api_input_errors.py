"""Inputs the API fuzz (tests/fuzz) sent that answered 500: each now answers 4xx
with a message."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action", ["settle", "reopen"])
@pytest.mark.parametrize("pk", ["abc", "1e309", "%FF%FE"])
def test_manager_actions_on_a_case_id_that_is_not_a_number_are_404(
    case, manager, session_client_for, action, pk
):
    response = session_client_for(manager).post(
        f"/api/v1/adjudication/{pk}/{action}/", {"reason": "x"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["detail"]
