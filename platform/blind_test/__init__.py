"""The blind listening test that `python -m platform.listen --serve EXPERIMENT` serves."""
