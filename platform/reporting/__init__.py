"""What `python -m platform.report` builds: the trials read from MLflow (trials), the figures
(figures) and the self-contained comparison page (page)."""
