"""Connection settings of the DuckDB store: what the writer and readers open the file with."""

from __future__ import annotations

from pathlib import Path

import pytest

from stethoscope.store.duckdb.store import CHECKPOINT_THRESHOLD, DuckDBStore

MIB = 1024 * 1024


def setting_bytes(store: DuckDBStore, name: str) -> float:
    """A DuckDB size setting in bytes (DuckDB shows them as e.g. '122.0 MiB')."""
    found = store.cursor().execute(f"SELECT current_setting('{name}')").fetchone()
    assert found is not None
    number, unit = str(found[0]).split()
    return float(number) * {"KiB": 1024, "MiB": MIB, "GiB": 1024 * MIB}[unit]


def test_the_writer_checkpoints_less_often_than_duckdb_by_default(tmp_path: Path) -> None:
    # DuckDB's 16 MB default leaves ~13 B of free blocks per span in a 2M-span store.
    store = DuckDBStore(tmp_path)
    assert CHECKPOINT_THRESHOLD == "128MB"
    assert setting_bytes(store, "checkpoint_threshold") == pytest.approx(128e6, rel=0.01)
    store.close()


def test_the_checkpoint_threshold_can_be_set(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path, checkpoint_threshold="32MB")
    assert setting_bytes(store, "checkpoint_threshold") == pytest.approx(32e6, rel=0.01)
    store.close()


def test_a_reader_keeps_duckdbs_own_threshold(tmp_path: Path) -> None:
    DuckDBStore(tmp_path).close()
    reader = DuckDBStore(tmp_path, read_only=True, checkpoint_threshold="not read")
    assert setting_bytes(reader, "checkpoint_threshold") == 16 * MIB
    reader.close()


@pytest.mark.parametrize(
    ("memory_limit", "checkpoint_threshold", "named"),
    [
        ("1GB", "lots", "'lots'"),
        ("1GB", "", "''"),
        ("big", "128MB", "'big'"),
    ],
    ids=["word-threshold", "empty-threshold", "word-memory-limit"],
)
def test_a_size_duckdb_cannot_read_is_refused_with_the_form_expected(
    tmp_path: Path, memory_limit: str, checkpoint_threshold: str, named: str
) -> None:
    with pytest.raises(ValueError, match=f"sizes such as '384MB'.*{named}"):
        DuckDBStore(tmp_path, memory_limit=memory_limit, checkpoint_threshold=checkpoint_threshold)
