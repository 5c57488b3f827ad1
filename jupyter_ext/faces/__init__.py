"""The faces: `cli` (`jupyter-optimize`) and `magics` (`%optimize`). Each parses its input
with the verb table (`verbs.table`), calls one core verb and prints or returns the result
object. Faces import only the core, never each other; the widget panels (top-level
`widgets/`) are the third face."""
