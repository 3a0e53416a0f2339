"""The engine: steps, plans, the journal, runs, the runner, undo, review, the phase registry, the state store,
locks and kill points. It imports no phase."""
