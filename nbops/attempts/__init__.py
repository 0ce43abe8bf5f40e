"""Looking back at stage attempts from the command line (DESIGN §18): find one on either store
(:mod:`nbops.attempts.find`), print its cells (``logs``), reopen it for interactive work
(``debug``) and compare two runs (``diff``).

| module  | job                                                                          |
|---------|------------------------------------------------------------------------------|
| `find`  | `AttemptRef`: a run's attempt on a local or remote store, its records and files |
| `text`  | an executed notebook's cells as text; where each came from, how it ended       |
| `logs`  | `nbops logs`: an attempt's cells, whole or followed as they finish             |
| `debug` | `nbops debug`: an attempt in a directory pinned to the inputs it consumed      |
| `diff`  | `nbops diff`: two runs compared unit by unit (`diff_runs`, `RunDiff`)         |
| `diff_read` | what the diff reads of a run's attempt and of the attempt that ran it        |
| `diff_sections` | the sections' typed changes and their pure comparison rules             |
| `diff_notebook` | two notebooks compared cell by cell with nbdime, volatile parts left out |
| `diff_render` | the diff as text and as the `nbops.diff/1` JSON document                  |
| `diff_html` | the diff as a self-contained HTML page, and where it may be written        |
"""
