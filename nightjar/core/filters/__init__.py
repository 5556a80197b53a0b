"""User filters: a declarative language (CEL) checked when saved, and the context it reads.

:mod:`.language` parses and type-checks an expression against :mod:`.schema` (the typed
context, with units) and compiles it; :mod:`.context` builds the context of one alert
from what the pipeline stores.  Both are pure: the runner (:mod:`nightjar.runner.filters`)
evaluates them on the stream and over the archive.
"""
