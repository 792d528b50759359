"""Reconcile's building blocks: the external sort gives S3's listing order whatever the chunk
size, and the merge-join pairs every key exactly once."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.reconcile.merge import merge_join
from infra.reconcile.sorting import ExternalSorter

keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


def utf8_order(values: list[str]) -> list[str]:
    """S3's listing order: by the keys' UTF-8 bytes."""
    return sorted(values, key=lambda key: key.encode("utf-8"))


@settings(max_examples=60, deadline=None)
@given(st.lists(keys, max_size=60), st.integers(1, 7))
def test_the_external_sort_gives_the_listing_order(
    tmp_path_factory: pytest.TempPathFactory, values: list[str], chunk: int
) -> None:
    folder = tmp_path_factory.mktemp("runs")
    sorter = ExternalSorter(folder, chunk)
    for value in values:
        sorter.add((value, len(value)))
    result = [row[0] for row in sorter.sorted()]
    assert result == utf8_order(values)
    assert sorter.runs == len(values) // chunk and sorter.count == len(values)


@given(st.lists(keys, max_size=30), st.sets(keys, max_size=30))
def test_the_merge_pairs_every_key_once(left: list[str], right: set[str]) -> None:
    pairs = list(
        merge_join([(k,) for k in utf8_order(left)], [(k,) for k in utf8_order(list(right))])
    )
    lefts = [a[0] for a, _ in pairs if a is not None]
    rights = [b[0] for _, b in pairs if b is not None]
    assert lefts == utf8_order(left)
    assert sorted(set(rights)) == sorted(right)
    for a, b in pairs:
        if a is not None and b is not None:
            assert a[0] == b[0]
        elif a is not None:
            assert a[0] not in right
        else:
            assert b is not None and b[0] not in left
