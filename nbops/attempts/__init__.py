"""Looking back at stage attempts from the command line (DESIGN §18): find one on either store
(:mod:`nbops.attempts.find`), print its cells (``logs``), reopen it for interactive work
(``debug``) and compare two runs (``diff``).

| module  | job                                                                          |
|---------|------------------------------------------------------------------------------|
| `find`  | `AttemptRef`: a run's attempt on a local or remote store, its records and files |
"""
