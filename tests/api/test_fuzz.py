"""Schemathesis against /openapi.json: no 5xx, and every response matches what the spec documents.

Every operation is exercised with a bounded number of generated requests, with a valid user
key on user routes and the admin key on admin routes; OpenRouter is faked with requests-mock.
"""

import pytest
import schemathesis
from hypothesis import given
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ADMIN, bearer, create_user, repeatable_examples

EXAMPLES_PER_OPERATION = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz_operation(operation, headers):
    """Run one operation's generated cases through the app and the checks."""

    @given(case=operation.as_strategy())
    @repeatable_examples(EXAMPLES_PER_OPERATION)
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


@pytest.mark.slow  # every documented operation, generated requests
def test_generated_requests_get_documented_answers(app, upstream):
    _, key = create_user(app.test_client(), credits="1000.00", plan="enterprise")
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        headers = ADMIN if operation.path.startswith("/admin") else bearer(key)
        fuzz_operation(operation, headers)
