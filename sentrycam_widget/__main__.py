"""``python -m sentrycam_widget``: runs the command line (:func:`sentrycam_widget.cli.main`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
