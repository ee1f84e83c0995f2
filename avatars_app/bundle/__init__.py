"""The avatar bundle on disk (DESIGN.md §6): format, writer (builder) and reader. No Django imports."""
