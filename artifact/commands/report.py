"""`report --results DIR`: write DIR/report.html, the one page to read a run (artifact.report.html); `--check` opens
it in headless Chromium, checks what a reader sees and saves DIR/report.png (artifact.report.browser)."""

from __future__ import annotations

import argparse

from artifact.commands.options import add_command, add_io_options

EXAMPLE = """examples:
  python -m artifact report --results results/embedded-smoke
  python -m artifact report --results results/embedded-smoke --check     # needs Debian's chromium, chromium-driver

report.html, in reading order: the verdict (did this run reproduce the stored one?), the paper's claims with the
statistics and margins behind each verdict, the figures (T->T beside S->T), the verify checks (failed first), the run
manifest. Self-contained (figures embedded, no script, no network); prints to PDF from any browser. Missing parts of
the results folder are said in plain words."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "report",
        help="write report.html: one self-contained page to read a run",
        description="Write <results>/report.html from a results folder of the pipeline (run_all.sh).",
        epilog=EXAMPLE,
    )
    add_io_options(parser, results="a results folder (results/<model>-<profile>)")
    parser.add_argument("--check", action="store_true",
                        help="open the page in headless Chromium at 1366x768: no broken image or link, the verdict "
                             "in the first viewport, a PDF print; saves the first viewport as <results>/report.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.report.html import write_report_html  # lazy: fast --help

    path = write_report_html(args.results)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if not args.check:
        return 0
    from artifact.report.browser import check_report  # lazy: fast --help

    check = check_report(path, screenshot=path.with_name("report.png"))
    print(f"browser check ({check.viewport[0]}x{check.viewport[1]} viewport, {check.seconds} s): verdict "
          f"{check.verdict!r} {'within' if check.verdict_in_first_viewport else 'NOT within'} the first viewport; "
          f"{check.images} images ({len(check.broken_images)} broken), {check.links} links "
          f"({len(check.broken_links)} broken); {check.pdf_pages} PDF pages (A4); screenshot {check.screenshot}")
    for problem in check.problems:
        print(f"  problem: {problem}")
    return 1 if check.problems else 0
