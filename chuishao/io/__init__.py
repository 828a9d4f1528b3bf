"""Reading and writing message files, row by row."""
