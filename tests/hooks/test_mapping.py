"""A hook's expressions over a delivery: what they read, and the bound on the work they do
(connector/hooks/mapping.py)."""

import pytest

from connector.errors import InvalidFields
from connector.hooks import mapping


def doc(body) -> dict:
    return mapping.document(body, {"X-Source": "ci"}, {"run": "7"})


@pytest.mark.parametrize(
    ("expression", "body", "expected"),
    [
        ("body.head_commit.message", {"head_commit": {"message": "Fix"}}, "Fix"),
        ("body[*].name", [{"name": "a"}, {"name": "b"}], ["a", "b"]),
        ("body[].a", [[{"a": 1}], [{"a": 2}]], [1, 2]),
        ("join(',', body[*].name)", [{"name": "a"}, {"name": "b"}], "a,b"),
        ("to_string(body)", {"t": 21.5}, '{"t":21.5}'),
        ('headers."x-source"', {}, "ci"),
        ("query.run", {}, "7"),
        ("{reading: body.t, unit: 'C'}", {"t": 21.5}, {"reading": 21.5, "unit": "C"}),
    ],
)
def test_an_expression_reads_the_delivery(expression, body, expected):
    assert mapping.search("payload", expression, doc(body)) == expected


@pytest.mark.parametrize(
    ("expression", "body"),
    [
        # Each stage makes four times the items of the one before: ten items, seven stages,
        # 163,840 items (at ten stages an unbounded run took 11 s and 426 MB of one worker).
        ("length(body[*]" + ".[@,@,@,@][]" * 7 + ")", list(range(10))),
        # One flatten of many copies of one list.
        ("length([" + ",".join(["body"] * 60) + "][])", list(range(2000))),
        # A text of the same big value many times over.
        ("to_string([" + ",".join(["body"] * 100) + "])", "x" * 20_000),
        ("join('', [" + ",".join(["body"] * 100) + "])", "x" * 20_000),
    ],
)
def test_an_expression_that_multiplies_its_work_is_stopped_at_the_bound(expression, body):
    with pytest.raises(InvalidFields) as refused:
        mapping.search("payload", expression, doc(body))
    assert refused.value.fields == ["payload"]
    assert f"more than {mapping.MAX_STEPS} steps" in str(refused.value)
