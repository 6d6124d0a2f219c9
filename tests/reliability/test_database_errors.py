"""Which database errors mean "unavailable, retry" (503) and which stay server errors (500)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import ProgrammingError, connections
from django.db.utils import ConnectionHandler
from django.test import RequestFactory
from procrastinate.exceptions import ConnectorException
from pytest_django import DjangoDbBlocker

from saas.errors import database_unavailable, server_error
from tests.reliability.servers import free_port


@pytest.fixture
def refused(django_db_blocker: DjangoDbBlocker) -> Callable[[], Exception]:
    """The real error Django raises when nothing listens where PostgreSQL should be."""

    def connect() -> Exception:
        settings_dict = {**connections["default"].settings_dict, "PORT": free_port()}
        handler = ConnectionHandler({"default": settings_dict})
        with django_db_blocker.unblock():
            try:
                handler["default"].ensure_connection()
            except Exception as exc:
                return exc
            finally:
                handler.close_all()
        raise AssertionError("connected to a closed port")

    return connect


def test_connection_refused_is_unavailable(refused: Callable[[], Exception]) -> None:
    assert database_unavailable(refused())


def test_a_job_queue_error_caused_by_it_is_unavailable(refused: Callable[[], Exception]) -> None:
    error = ConnectorException("could not defer")
    error.__cause__ = refused()
    assert database_unavailable(error)


@pytest.mark.parametrize("exc", [ProgrammingError("syntax error"), ValueError("bug"), None])
def test_other_errors_are_not(exc: Exception | None) -> None:
    assert not database_unavailable(exc)


def test_server_error_answers_503_with_retry_after_for_an_unavailable_database(
    refused: Callable[[], Exception],
) -> None:
    request = RequestFactory().get("/api/v1/feedback")
    try:
        raise refused()
    except Exception:
        response = server_error(request)
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    try:
        raise ProgrammingError("relation does not exist")
    except ProgrammingError:
        assert server_error(request).status_code == 500
