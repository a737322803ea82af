"""Signal types as Arrow schemas (`schema`), batches (`batch`), and id and time helpers."""
