"""Layer 0: infrastructure shared by every layer; imports nothing of the package but errors.

- ``atomic``: the one atomic, durable file writer (temporary file, fsync, ``os.replace``).
- ``blas_threads``: ``one_blas_thread()``, BLAS held at one thread while small systems are
  solved (the logistic head's fit).
- ``model_threads``: where blocking model calls run: a bounded pool of daemon threads per
  model, hung calls written off and named (the pipeline's sources and metrics, the adapters'
  synchronous-only inner models).
- ``extras``: ``require_extra()``, the one gate for optional packages
  (:class:`~shared_router.errors.MissingDependencyError` naming the pip command).
- ``progress``: the one progress bar (rich, on stderr).
- ``validation``: argument validators (finite number vectors, lists of texts).

May import: :mod:`shared_router.errors` only.
"""
