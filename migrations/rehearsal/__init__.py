"""The rehearsal: what `trustfold demo` runs against the sandbox, in what order."""
