"""What `python -m platform.report` writes beside its figures: the comparison page (page)."""
