"""Reading message files, row by row (the tag output writers are in chuishao.batch.writers)."""
