"""yoloanonymize-ray: anonymizes a whole video archive on a Ray cluster.

One Ray task per file; each task runs the project's command-line tool, ``yoloanonymize-cli``,
on one input into a temporary file in the destination folder, checks that the output decodes to
as many frames as went in, and only then renames it into place. A JSON-lines manifest records
every file; a rerun skips what is done and checked. See ``yoloanonymize-ray --help`` and the
section "Many files, many machines" of the repository's README.md.
"""

__version__ = "0.1.0"
