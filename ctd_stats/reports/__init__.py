"""Reports for people (Markdown and self-contained HTML) and the atomic output directories they go in."""
