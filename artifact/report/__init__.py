"""One page to read a run: `report.html` (the verdict first, the claims with their statistics and margins, the
figures, the verify checks, the manifest), self-contained, and its check in a real headless browser.

- `html.py`    builds report.html from a results folder (whatever of it exists)
- `browser.py` opens it in headless Chromium (Debian's chromium and chromedriver) and checks what a reader sees
"""
