"""PathTemplate: literal segments, one-segment parameters, a final multi-segment one."""

from __future__ import annotations

import pytest

from vertex_tools.providers.catalog import PathTemplate


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("/v1/customers/{customer}", "/v1/customers/cus_1", {"customer": "cus_1"}),
        ("/v1/customers/{customer}", "/v1/customers", None),
        ("/v1/customers/{customer}", "/v1/customers/cus_1/x", None),
        ("/v1/balance", "/v1/balance", {}),
        (
            "/r/{o}/{n}/contents/{path+}",
            "/r/a/b/contents/x.md",
            {"o": "a", "n": "b", "path": "x.md"},
        ),
        (
            "/r/{o}/{n}/contents/{path+}",
            "/r/a/b/contents/docs/deep/x.md",
            {"o": "a", "n": "b", "path": "docs/deep/x.md"},
        ),
        ("/r/{o}/{n}/contents/{path+}", "/r/a/b/contents", None),
        ("/r/{o}/{n}/contents/{path+}", "/r/a/b/other/x.md", None),
    ],
)
def test_match(template: str, path: str, params: dict[str, str] | None) -> None:
    assert PathTemplate.parse(template).match(path[1:].split("/")) == params


@pytest.mark.parametrize("bad", ["v1/x", "/v1//x", "/v1/x/", "/{rest+}/x"])
def test_malformed_templates_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="template"):
        PathTemplate.parse(bad)


def test_literal_segments_make_a_template_more_specific() -> None:
    assert PathTemplate.parse("/v1/payment_intents/{i}/confirm").literal_count == 3
    assert PathTemplate.parse("/r/{o}/contents/{path+}").literal_count == 2
